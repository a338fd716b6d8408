//! Environments for Ratchet's agents.
//!
//! - [`Env`]: the discrete-action interface, observations written into `f32` buffers;
//! - [`VecEnv`]: N copies stepped together with auto-reset;
//! - [`CartPole`]: the algorithm sanity check;
//! - [`Rng`]: the serialisable generator behind every random draw;
//! - [`execution`]: how a position change fills and what it costs, shared with backtests.

mod cartpole;
mod env;
pub mod execution;
mod rng;
mod vec_env;

pub use cartpole::CartPole;
pub use env::{Env, EnvError, Step};
pub use rng::{Rng, RngState};
pub use vec_env::{EpisodeEnd, VecEnv, VecEnvState, VecStep};
