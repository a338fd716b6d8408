//! One type over the four (algorithm, environment) pairs the CLI can train.

use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use ratchet_agents::{
    AgentError, DeviceKind, Dqn, InferenceMlp, NamedTensor, Ppo, TrainingState, UpdateLog,
};
use ratchet_env::{CartPole, EpisodeMode, TradingEnv};

use crate::market::Market;
use ratchet_config::{Algo, Device, EnvKind, TrainConfig};

pub enum Learner {
    PpoTrading(Ppo<TradingEnv>),
    DqnTrading(Dqn<TradingEnv>),
    PpoCartPole(Ppo<CartPole>),
    DqnCartPole(Dqn<CartPole>),
}

/// Runs `$body` with `$agent` bound to whichever agent `$learner` holds.
macro_rules! with_agent {
    ($learner:expr, $agent:ident => $body:expr) => {
        match $learner {
            Learner::PpoTrading($agent) => $body,
            Learner::DqnTrading($agent) => $body,
            Learner::PpoCartPole($agent) => $body,
            Learner::DqnCartPole($agent) => $body,
        }
    };
}

impl Learner {
    /// A fresh agent for `config`: trading environments over the training split of
    /// `market`, or CartPole.
    pub fn build(config: &TrainConfig, market: Option<&Market>) -> Result<Self> {
        let train = market.map(|m| m.splits.train.range());
        Self::build_over(config, market, train)
    }

    /// [`Learner::build`] with the trading environments over feature rows `train` (the
    /// walk-forward's training windows) instead of the training split.
    pub fn build_over(
        config: &TrainConfig,
        market: Option<&Market>,
        train: Option<std::ops::Range<usize>>,
    ) -> Result<Self> {
        let device = match config.run.device {
            Device::Cpu => DeviceKind::Cpu,
            Device::Wgpu => DeviceKind::Wgpu,
        };
        let (seed, n) = (config.run.seed, config.run.n_envs);
        Ok(match (config.run.env, market) {
            (EnvKind::Cartpole, _) => {
                let envs = (0..n).map(|_| CartPole::default()).collect::<Vec<_>>();
                match config.run.algo {
                    Algo::Ppo => {
                        Learner::PpoCartPole(Ppo::new(config.ppo.clone(), envs, device, seed)?)
                    }
                    Algo::Dqn => {
                        Learner::DqnCartPole(Dqn::new(config.dqn.clone(), envs, device, seed)?)
                    }
                }
            }
            (EnvKind::Trading, Some(market)) => {
                let train = train.unwrap_or_else(|| market.splits.train.range());
                let envs = (0..n)
                    .map(|_| {
                        TradingEnv::new(
                            market.data.clone(),
                            train.clone(),
                            config.trading.clone(),
                            EpisodeMode::RandomStarts,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| {
                        format!("building the training environment over rows {train:?}")
                    })?;
                match config.run.algo {
                    Algo::Ppo => {
                        Learner::PpoTrading(Ppo::new(config.ppo.clone(), envs, device, seed)?)
                    }
                    Algo::Dqn => {
                        Learner::DqnTrading(Dqn::new(config.dqn.clone(), envs, device, seed)?)
                    }
                }
            }
            (EnvKind::Trading, None) => anyhow::bail!("a trading agent needs market data"),
        })
    }

    /// Trains `steps` more steps, or fewer when `stop` is set: then it returns at the next
    /// update boundary.
    pub fn train(
        &mut self,
        steps: u64,
        on_update: &mut dyn FnMut(&UpdateLog),
        stop: &AtomicBool,
    ) -> Result<(), AgentError> {
        with_agent!(self, a => a.train(steps, on_update, stop))
    }

    /// The complete training state, borrowing what it can from the agent (a DQN's replay
    /// buffer): checkpoints are written from it without a second copy.
    pub fn state(&self) -> Result<TrainingState<'_>, AgentError> {
        match self {
            Learner::PpoTrading(a) => a.state(),
            Learner::PpoCartPole(a) => a.state(),
            Learner::DqnTrading(a) => a.borrowed_state(),
            Learner::DqnCartPole(a) => a.borrowed_state(),
        }
    }

    /// Loads only the networks' weights: enough to act (backtests).
    pub fn load_weights(&mut self, weights: &[NamedTensor]) -> Result<(), AgentError> {
        with_agent!(self, a => a.load_weights(weights))
    }

    pub fn restore(&mut self, state: &TrainingState) -> Result<(), AgentError> {
        with_agent!(self, a => a.restore(state))
    }

    /// The greedy policy's network (action logits or Q-values) as plain f32 weights.
    pub fn policy(&self) -> InferenceMlp {
        with_agent!(self, a => a.policy())
    }

    /// The scheduled hyperparameter and its value for the next update: PPO's learning rate,
    /// DQN's exploration rate.
    pub fn schedule_value(&self) -> (&'static str, f64) {
        match self {
            Learner::PpoTrading(a) => ("learning rate", a.learning_rate()),
            Learner::PpoCartPole(a) => ("learning rate", a.learning_rate()),
            Learner::DqnTrading(a) => ("epsilon", a.exploration_rate()),
            Learner::DqnCartPole(a) => ("epsilon", a.exploration_rate()),
        }
    }

    pub fn total_steps(&self) -> u64 {
        with_agent!(self, a => a.total_steps())
    }
}
