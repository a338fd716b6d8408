//! The library side of the `ratchet` binary: the pieces benchmarks and tests use directly.
//! Everything else lives in the workspace crates (`ratchet-data`, `ratchet-env`,
//! `ratchet-agents`, `ratchet-backtest`, `ratchet-registry`) and in the binary's modules.

pub mod policy;
