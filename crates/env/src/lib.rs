//! Environments for Ratchet's agents.
//!
//! - [`Env`]: the discrete-action interface, observations written into `f32` buffers;
//! - [`VecEnv`]: N copies stepped together with auto-reset;
//! - [`TradingEnv`]: short/flat/long on [`MarketData`], filled at the next bar's open;
//! - [`CartPole`]: the algorithm sanity check;
//! - [`Rng`]: the serialisable generator behind every random draw;
//! - [`execution`]: how a position change fills and what it costs, shared with backtests.

mod cartpole;
mod env;
pub mod execution;
mod market_data;
mod rng;
mod trading;
mod vec_env;

pub use cartpole::CartPole;
pub use env::{Env, EnvError, Step};
pub use market_data::{MarketData, position_of_action, write_observation};
pub use rng::{Rng, RngState};
pub use trading::{
    BANKRUPTCY_LOG_RETURN, DSR_MIN_VARIANCE, EpisodeMode, RewardKind, SymbolSampling,
    TradingConfig, TradingEnv,
};
pub use vec_env::{EpisodeEnd, VecEnv, VecEnvState, VecStep};
