//! What every agent does, whatever its algorithm: train, save and restore its complete
//! state, take saved weights, and act. [`Ppo`] and [`Dqn`] implement it, so a caller holds a
//! `Box<dyn Agent>` and never matches over algorithms.

use std::sync::atomic::AtomicBool;

use ratchet_env::Env;

use crate::inference::InferenceMlp;
use crate::state::{Environments, NamedTensor, TrainingState};
use crate::{AgentError, Dqn, Ppo, UpdateLog};

pub trait Agent {
    /// Trains `steps` more environment steps, or fewer when `stop` is set (it returns at the
    /// next update boundary); `on_update` gets each update's diagnostics.
    fn train(
        &mut self,
        steps: u64,
        on_update: &mut dyn FnMut(&UpdateLog),
        stop: &AtomicBool,
    ) -> Result<(), AgentError>;

    /// The complete training state (weights, optimizer, counters, RNG, environments, a DQN's
    /// replay buffer), borrowing what it can: a checkpoint is written from it without a
    /// second copy.
    fn state(&self) -> Result<TrainingState<'_>, AgentError>;

    /// Continues exactly where [`state`](Self::state) was taken (with
    /// [`Environments::Fresh`], in new episodes).
    fn restore(
        &mut self,
        state: &TrainingState,
        environments: Environments,
    ) -> Result<(), AgentError>;

    /// Takes the networks' weights only: enough to act.
    fn load_weights(&mut self, weights: &[NamedTensor]) -> Result<(), AgentError>;

    /// The greedy policy's network (action logits or Q-values), Burn-free.
    fn policy(&self) -> InferenceMlp;

    fn total_steps(&self) -> u64;

    /// The scheduled hyperparameter and its value for the next update: PPO's learning rate,
    /// DQN's exploration rate.
    fn schedule(&self) -> (&'static str, f64);
}

impl<E: Env> Agent for Ppo<E> {
    fn train(
        &mut self,
        steps: u64,
        on_update: &mut dyn FnMut(&UpdateLog),
        stop: &AtomicBool,
    ) -> Result<(), AgentError> {
        Ppo::train(self, steps, on_update, stop)
    }

    fn state(&self) -> Result<TrainingState<'_>, AgentError> {
        Ppo::state(self)
    }

    fn restore(
        &mut self,
        state: &TrainingState,
        environments: Environments,
    ) -> Result<(), AgentError> {
        Ppo::restore(self, state, environments)
    }

    fn load_weights(&mut self, weights: &[NamedTensor]) -> Result<(), AgentError> {
        Ppo::load_weights(self, weights)
    }

    fn policy(&self) -> InferenceMlp {
        Ppo::policy(self)
    }

    fn total_steps(&self) -> u64 {
        Ppo::total_steps(self)
    }

    fn schedule(&self) -> (&'static str, f64) {
        ("learning rate", self.learning_rate())
    }
}

impl<E: Env> Agent for Dqn<E> {
    fn train(
        &mut self,
        steps: u64,
        on_update: &mut dyn FnMut(&UpdateLog),
        stop: &AtomicBool,
    ) -> Result<(), AgentError> {
        Dqn::train(self, steps, on_update, stop)
    }

    fn state(&self) -> Result<TrainingState<'_>, AgentError> {
        self.borrowed_state()
    }

    fn restore(
        &mut self,
        state: &TrainingState,
        environments: Environments,
    ) -> Result<(), AgentError> {
        Dqn::restore(self, state, environments)
    }

    fn load_weights(&mut self, weights: &[NamedTensor]) -> Result<(), AgentError> {
        Dqn::load_weights(self, weights)
    }

    fn policy(&self) -> InferenceMlp {
        Dqn::policy(self)
    }

    fn total_steps(&self) -> u64 {
        Dqn::total_steps(self)
    }

    fn schedule(&self) -> (&'static str, f64) {
        ("epsilon", self.exploration_rate())
    }
}
