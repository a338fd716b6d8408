//! Deep-RL agents for Ratchet, written with Burn 0.22.
//!
//! - [`Ppo`] and [`Dqn`]: proximal policy optimisation and (double) deep Q-learning, one file each
//!   ([`ppo`], [`dqn`]), reading top to bottom like their papers; both are an [`Agent`];
//! - [`network`]: the MLP the agents are made of, plus [`inference::InferenceMlp`], its Burn-free copy
//!   for fast rollouts and backtests;
//! - [`optim::Adam`]: Adam with global gradient-norm clipping and state keyed by parameter path;
//! - [`state`]: a complete training state as named `f32` tensors plus JSON, the bridge to the
//!   Burn-free registry;
//! - [`device`]: `cpu` (Burn's flex backend, the default) or `wgpu`, chosen at run time.
//!
//! Every random draw (initialisation, action sampling, minibatch shuffling, episode starts) comes
//! from [`ratchet_env::Rng`], whose state is saved with the training state, so a resumed run is
//! bitwise identical to an uninterrupted one.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use ratchet_agents::{DeviceKind, Ppo, PpoConfig};
//! use ratchet_env::CartPole;
//!
//! let envs = (0..1).map(|_| CartPole::default()).collect();
//! let mut ppo = Ppo::new(PpoConfig::default(), envs, DeviceKind::Cpu, 42)?;
//! let stop = AtomicBool::new(false); // set it (from a Ctrl-C handler, say) to stop early
//! ppo.train(100_000, &mut |log| eprintln!("{} {:?}", log.step, log.metrics), &stop)?;
//! let saved = ppo.state()?; // weights, Adam moments, counters, RNG and env state
//! # Ok::<(), ratchet_agents::AgentError>(())
//! ```

pub mod agent;
pub mod cpu;
mod dense;
pub mod device;
pub mod dqn;
pub mod episodes;
mod fused;
pub mod inference;
mod isa;
mod matmul;
pub mod network;
pub mod optim;
pub mod ppo;
pub mod replay;
pub mod schedule;
pub mod state;
pub mod trading_policy;

pub use agent::Agent;
pub use device::{DeviceKind, device};
pub use dqn::{Dqn, DqnConfig};
pub use episodes::EpisodeStats;
pub use inference::{InferenceMlp, argmax, greedy_return};
pub use isa::Arithmetic;
pub use network::{Activation, Mlp, MlpConfig};
pub use optim::{Adam, AdamConfig};
pub use ppo::{Ppo, PpoConfig};
pub use schedule::LinearSchedule;
pub use state::{Environments, NamedTensor, TensorGroup, TrainingState};
pub use trading_policy::TradingPolicy;

/// Diagnostics handed to the training callback after every update.
///
/// `metrics` use the names Stable-Baselines3 logs (`train/policy_loss`, `train/value_loss`,
/// `train/entropy`, `train/approx_kl`, `train/clip_fraction`, `train/explained_variance`,
/// `train/learning_rate`, `train/epsilon`, `time/steps_per_second`, `rollout/ep_return_mean`,
/// `rollout/ep_len_mean`, …); an algorithm reports those that apply to it.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateLog {
    /// Environment steps taken so far (over all copies of the environment).
    pub step: u64,
    pub metrics: Vec<(&'static str, f64)>,
}

impl UpdateLog {
    /// Completes an update's `metrics` with the speed of the current `train` call (begun at
    /// `start` with `start_steps` taken) and the episode statistics, and hands them to
    /// `on_update`.
    pub(crate) fn emit(
        mut metrics: Vec<(&'static str, f64)>,
        (start, start_steps): (std::time::Instant, u64),
        step: u64,
        episodes: &EpisodeStats,
        on_update: &mut dyn FnMut(&UpdateLog),
    ) {
        let elapsed = start.elapsed().as_secs_f64().max(1e-9);
        metrics.push((
            "time/steps_per_second",
            (step - start_steps) as f64 / elapsed,
        ));
        episodes.log_into(&mut metrics);
        on_update(&UpdateLog { step, metrics });
    }

    /// The value logged under `name`, if any.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Everything that can go wrong in this crate, as one-line messages.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The requested compute device cannot be used.
    #[error("{0}")]
    Device(String),
    /// A hyperparameter or shape is invalid.
    #[error("invalid agent configuration: {0}")]
    Config(String),
    /// A saved training state does not fit this agent.
    #[error("cannot restore training state: {0}")]
    State(String),
    /// The backend failed while computing.
    #[error("backend error: {0}")]
    Backend(String),
    #[error(transparent)]
    Env(#[from] ratchet_env::EnvError),
}

/// The observation size and action count shared by `envs`, or why they cannot be trained on
/// by `algorithm`: no environment, copies of different shapes, or an empty shape.
pub(crate) fn env_shapes<E: ratchet_env::Env>(
    algorithm: &str,
    envs: &[E],
) -> Result<(usize, usize), AgentError> {
    let Some(first) = envs.first() else {
        return Err(AgentError::Config(format!(
            "{algorithm} needs at least one environment"
        )));
    };
    let (obs_size, actions) = (first.observation_size(), first.action_count());
    if envs
        .iter()
        .any(|e| e.observation_size() != obs_size || e.action_count() != actions)
    {
        return Err(AgentError::Config(
            "all environments must have the same observation size and action count".into(),
        ));
    }
    if actions == 0 || obs_size == 0 {
        return Err(AgentError::Config(
            "the environment must have at least one action and one observation value".into(),
        ));
    }
    Ok((obs_size, actions))
}
