//! The environment interface shared by every environment and every agent.

use crate::Rng;

/// What one step of an environment reports besides the next observation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Step {
    pub reward: f32,
    /// The episode reached a terminal state of the task (no bootstrapping past it).
    pub terminated: bool,
    /// The episode was cut short by a time limit (the value of the next state still counts).
    pub truncated: bool,
}

impl Step {
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// Errors an environment reports instead of panicking.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot restore environment state: {0}")]
    BadState(String),
    #[error("invalid environment configuration: {0}")]
    Config(String),
}

/// A discrete-action environment writing observations into caller-owned `f32` buffers,
/// so that a [`crate::VecEnv`] can keep the observations of all its copies contiguous.
///
/// Randomness comes in through `rng` (owned by the caller) so that the environment's own
/// state is plain data that [`Env::state`] can capture exactly.
pub trait Env {
    /// Length of one observation.
    fn observation_size(&self) -> usize;
    /// Number of discrete actions; actions are `0..action_count()`.
    fn action_count(&self) -> usize;
    /// Starts a new episode and writes its first observation into `obs`.
    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]);
    /// Applies `action` and writes the next observation into `obs`.
    fn step(&mut self, action: usize, obs: &mut [f32]) -> Step;
    /// The environment's mutable state (position in the episode, physics, accounts) as
    /// numbers that round-trip exactly through JSON.
    fn state(&self) -> Vec<f64>;
    /// Restores a state returned by [`Env::state`] on an environment built with the same
    /// configuration.
    fn restore(&mut self, state: &[f64]) -> Result<(), EnvError>;
}
