//! One module per command: each parses nothing itself (`cli` does), runs the command
//! through the workspace crates, and prints its result.

pub mod backtest;
pub mod evaluate;
pub mod features;
pub mod models;
pub mod retrain;
pub mod runs;
pub mod serve;
pub mod sweep;
pub mod train;
