//! A DQN agent's complete training state, out and back in: what checkpoints, `--resume`
//! and continue-training are made of (the replay buffer included, borrowed rather than
//! copied), and the weights alone that backtests and serving load.

use ratchet_env::{Env, Rng, RngState};
use serde::{Deserialize, Serialize};

use crate::episodes::EpisodeStats;
use crate::inference::InferenceMlp;
use crate::optim::Adam;
use crate::state::{
    Environments, NamedTensor, SavedEnvs, TrainingState, load_module_tensors, module_tensors,
};
use crate::{AgentError, DeviceKind};

use super::{Dqn, DqnConfig, greedy_from_tensors, greedy_network};
use crate::replay::ReplayBuffer;

impl<E: Env> Dqn<E> {
    /// The complete training state: weights (`q_network.*`), target weights
    /// (`target_network.*`), Adam moments (`optim.q_network.*`), the replay buffer
    /// (`replay.*`), the environments' observations (`envs.observations`), and in `meta` the
    /// counters, RNG and environment states, replay position, episode statistics and config.
    /// The exploration schedule is a function of `total_steps`.
    pub fn state(&self) -> Result<TrainingState<'static>, AgentError> {
        Ok(self.borrowed_state()?.into_owned())
    }

    /// [`Dqn::state`] with the replay buffer's observations and rewards borrowed instead of
    /// copied: a checkpoint is written from it with no second copy of the buffer in memory.
    pub fn borrowed_state(&self) -> Result<TrainingState<'_>, AgentError> {
        let mut tensors = module_tensors(&self.q_network, "q_network")?;
        tensors.extend(module_tensors(&self.target_network, "target_network")?);
        tensors.extend(self.adam.tensors("optim.q_network", &self.q_network)?);
        tensors.extend(self.replay.tensors("replay"));
        let envs = SavedEnvs::capture(&self.envs, &mut tensors);
        let meta = DqnMeta {
            config: self.config.clone(),
            seed: self.seed,
            device: self.device_kind,
            envs,
            total_steps: self.total_steps,
            n_updates: self.n_updates,
            adam_steps: self.adam.steps(),
            rng: self.rng.state(),
            replay_position: self.replay.position(),
            episodes: self.episodes.clone(),
        };
        TrainingState::new("dqn", tensors, &meta)
    }

    /// Loads the Q-network's weights (`q_network.*` of [`Dqn::state`]) and nothing else:
    /// enough to act greedily, as a backtest does. On error the agent is unchanged.
    /// The greedy network of saved weights (the `q_network.*` tensors of [`Dqn::state`]),
    /// without an agent: what a server loads. Equal to [`Dqn::policy`] after
    /// [`Dqn::load_weights`] of the same weights.
    pub fn policy_from_weights(
        config: &DqnConfig,
        weights: &[NamedTensor],
    ) -> Result<InferenceMlp, AgentError> {
        let q_network = weights
            .iter()
            .filter_map(|t| {
                let name = t.name.strip_prefix("q_network.")?;
                Some(NamedTensor::new(name, t.shape.clone(), t.data.to_vec()))
            })
            .collect();
        greedy_from_tensors(q_network, config, config.activation)
    }

    pub fn load_weights(&mut self, weights: &[NamedTensor]) -> Result<(), AgentError> {
        let q_network = load_module_tensors(self.q_network.clone(), weights, "q_network")?;
        self.greedy = greedy_network(&q_network, &self.config)?;
        self.q_network = q_network;
        Ok(())
    }

    /// Restores a state from [`Dqn::state`] into this agent, which must have the same network
    /// (hidden layers, activation, dueling head), environments and room in its replay buffer.
    /// Other hyperparameters stay this agent's own (continued training may change them); on
    /// error the agent is unchanged. With [`Environments::Fresh`] the agent keeps its own new
    /// episodes.
    pub fn restore(
        &mut self,
        state: &TrainingState,
        environments: Environments,
    ) -> Result<(), AgentError> {
        let meta: DqnMeta = state.meta_of("dqn")?;
        let env_state = meta.envs.check(&self.envs, state)?;
        let (k, a) = (self.envs.observation_size(), self.envs.action_count());
        let (saved, mine) = (&meta.config, &self.config);
        if saved.hidden != mine.hidden
            || saved.activation != mine.activation
            || saved.dueling != mine.dueling
        {
            return Err(AgentError::State(format!(
                "the state's Q-network is {:?} {:?}{}, this agent's is {:?} {:?}{}",
                saved.hidden,
                saved.activation,
                if saved.dueling { " dueling" } else { "" },
                mine.hidden,
                mine.activation,
                if mine.dueling { " dueling" } else { "" },
            )));
        }
        let q_network = load_module_tensors(self.q_network.clone(), &state.tensors, "q_network")?;
        let target_network = load_module_tensors(
            self.target_network.clone(),
            &state.tensors,
            "target_network",
        )?;
        let mut adam = Adam::new(self.adam.config().clone());
        adam.restore(
            &state.tensors,
            "optim.q_network",
            meta.adam_steps,
            &q_network,
        )?;
        let mut replay = ReplayBuffer::new(self.config.buffer_size, k);
        replay.restore(&state.tensors, "replay", meta.replay_position)?;
        if let Some(bad) = replay.actions().iter().find(|&&x| x as usize >= a) {
            return Err(AgentError::State(format!(
                "replay.actions holds action {bad}, but the environment has {a}"
            )));
        }
        let greedy = greedy_network(&q_network, &self.config)?;
        if environments == Environments::Restore {
            self.envs.restore(&env_state)?;
        }

        self.q_network = q_network;
        self.target_network = target_network;
        self.adam = adam;
        self.greedy = greedy;
        self.replay = replay;
        self.rng = Rng::from_state(meta.rng);
        self.seed = meta.seed;
        self.total_steps = meta.total_steps;
        self.n_updates = meta.n_updates;
        self.episodes = meta.episodes;
        Ok(())
    }
}

/// The plain-data part of a DQN training state.
#[derive(Serialize, Deserialize)]
struct DqnMeta {
    config: DqnConfig,
    seed: u64,
    device: DeviceKind,
    #[serde(flatten)]
    envs: SavedEnvs,
    total_steps: u64,
    n_updates: u64,
    adam_steps: u64,
    rng: RngState,
    replay_position: usize,
    episodes: EpisodeStats,
}
