//! A PPO agent's complete training state, out and back in: what checkpoints, `--resume`
//! and continue-training are made of, and the weights alone that backtests and serving load.

use ratchet_env::{Env, Rng, RngState};
use serde::{Deserialize, Serialize};

use crate::episodes::EpisodeStats;
use crate::inference::InferenceMlp;
use crate::optim::Adam;
use crate::state::{
    Environments, NamedTensor, SavedEnvs, TrainingState, load_module_tensors, module_tensors,
};
use crate::{AgentError, DeviceKind};

use super::{ActorCritic, Ppo, PpoConfig, Rollout};

impl<E: Env> Ppo<E> {
    /// The complete training state: weights (`actor.*`, `critic.*`), Adam moments (`optim.*`),
    /// the partial rollout (`rollout.*`), the environments' observations (`envs.observations`),
    /// and in `meta` the counters, RNG and environment states, episode statistics and config.
    pub fn state(&self) -> Result<TrainingState<'static>, AgentError> {
        let mut tensors = module_tensors(&self.model.actor, "actor")?;
        tensors.extend(module_tensors(&self.model.critic, "critic")?);
        tensors.extend(self.adam.tensors("optim", &self.model)?);
        let (n, k) = (self.envs.len(), self.envs.observation_size());
        let envs = SavedEnvs::capture(&self.envs, &mut tensors);
        let r = &self.rollout;
        if r.len > 0 {
            let flat = |name: &str, data: Vec<f32>| NamedTensor::new(name, vec![r.len, n], data);
            tensors.push(NamedTensor::new(
                "rollout.observations",
                vec![r.len, n, k],
                r.observations.clone(),
            ));
            tensors.push(flat(
                "rollout.actions",
                r.actions.iter().map(|&a| a as f32).collect(),
            ));
            tensors.push(flat("rollout.rewards", r.rewards.clone()));
            tensors.push(flat("rollout.episode_starts", r.episode_starts.clone()));
            tensors.push(flat("rollout.values", r.values.clone()));
            tensors.push(flat("rollout.log_probs", r.log_probs.clone()));
        }
        let meta = PpoMeta {
            config: self.config.clone(),
            seed: self.seed,
            device: self.device_kind,
            envs,
            total_steps: self.total_steps,
            updates: self.updates,
            adam_steps: self.adam.steps(),
            rng: self.rng.state(),
            episode_starts: self.episode_starts.clone(),
            rollout_len: r.len,
            episodes: self.episodes.clone(),
        };
        TrainingState::new("ppo", tensors, &meta)
    }

    /// Loads the networks' weights (`actor.*`, `critic.*` of [`Ppo::state`]) and nothing
    /// else: enough to act, as a backtest does. On error the agent is unchanged.
    /// The policy network of saved weights (the `actor.*` tensors of [`Ppo::state`]), without
    /// an agent: what a server loads. Equal to [`Ppo::policy`] after [`Ppo::load_weights`] of
    /// the same weights.
    pub fn policy_from_weights(
        config: &PpoConfig,
        weights: &[NamedTensor],
    ) -> Result<InferenceMlp, AgentError> {
        InferenceMlp::from_tensors(weights, "actor", config.activation, config.arithmetic)
    }

    pub fn load_weights(&mut self, weights: &[NamedTensor]) -> Result<(), AgentError> {
        let model = ActorCritic {
            actor: load_module_tensors(self.model.actor.clone(), weights, "actor")?,
            critic: load_module_tensors(self.model.critic.clone(), weights, "critic")?,
        };
        let actor = InferenceMlp::from_mlp(&model.actor, self.config.arithmetic)?;
        let critic = InferenceMlp::from_mlp(&model.critic, self.config.arithmetic)?;
        self.actor = actor;
        self.critic = critic;
        self.model = model;
        Ok(())
    }

    /// Restores a state from [`Ppo::state`] into this agent, which must have the same network
    /// shape and number of environments. Hyperparameters stay this agent's own (continued
    /// training may change them); the seed becomes the saved run's. On error the agent is
    /// unchanged. With [`Environments::Fresh`] the agent keeps its own new episodes and no
    /// partial rollout.
    pub fn restore(
        &mut self,
        state: &TrainingState,
        environments: Environments,
    ) -> Result<(), AgentError> {
        let meta: PpoMeta = state.meta_of("ppo")?;
        let env_state = meta.envs.check(&self.envs, state)?;
        let (n, k) = (self.envs.len(), self.envs.observation_size());
        if meta.rollout_len > self.config.n_steps {
            return Err(AgentError::State(format!(
                "the saved rollout holds {} steps, more than n_steps = {}",
                meta.rollout_len, self.config.n_steps
            )));
        }
        let model = ActorCritic {
            actor: load_module_tensors(self.model.actor.clone(), &state.tensors, "actor")?,
            critic: load_module_tensors(self.model.critic.clone(), &state.tensors, "critic")?,
        };
        let mut adam = Adam::new(self.adam.config().clone());
        adam.restore(&state.tensors, "optim", meta.adam_steps, &model)?;

        let fresh = environments == Environments::Fresh;
        let len = if fresh { 0 } else { meta.rollout_len };
        let mut rollout = Rollout {
            len,
            ..Rollout::default()
        };
        if len > 0 {
            let a = self.envs.action_count();
            rollout.observations = state.tensor_data("rollout.observations", &[len, n, k])?;
            rollout.actions = state
                .tensor_data("rollout.actions", &[len, n])?
                .into_iter()
                .map(|x| x as usize)
                .collect();
            if let Some(bad) = rollout.actions.iter().find(|&&x| x >= a) {
                return Err(AgentError::State(format!(
                    "rollout.actions holds action {bad}, but the environment has {a}"
                )));
            }
            rollout.rewards = state.tensor_data("rollout.rewards", &[len, n])?;
            rollout.episode_starts = state.tensor_data("rollout.episode_starts", &[len, n])?;
            rollout.values = state.tensor_data("rollout.values", &[len, n])?;
            rollout.log_probs = state.tensor_data("rollout.log_probs", &[len, n])?;
        }
        if meta.episode_starts.len() != n {
            return Err(AgentError::State(format!(
                "episode_starts has {} entries for {n} environments",
                meta.episode_starts.len()
            )));
        }
        let actor = InferenceMlp::from_mlp(&model.actor, self.config.arithmetic)?;
        let critic = InferenceMlp::from_mlp(&model.critic, self.config.arithmetic)?;
        if !fresh {
            self.envs.restore(&env_state)?;
            self.rollout = rollout;
            self.episode_starts = meta.episode_starts;
        }

        self.model = model;
        self.adam = adam;
        self.actor = actor;
        self.critic = critic;
        self.seed = meta.seed;
        self.rng = Rng::from_state(meta.rng);
        self.total_steps = meta.total_steps;
        self.updates = meta.updates;
        self.episodes = meta.episodes;
        Ok(())
    }
}

/// The plain-data part of a PPO training state.
#[derive(Serialize, Deserialize)]
struct PpoMeta {
    config: PpoConfig,
    seed: u64,
    device: DeviceKind,
    #[serde(flatten)]
    envs: SavedEnvs,
    total_steps: u64,
    updates: u64,
    adam_steps: u64,
    rng: RngState,
    episode_starts: Vec<bool>,
    rollout_len: usize,
    episodes: EpisodeStats,
}
