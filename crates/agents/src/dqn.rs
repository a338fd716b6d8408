//! Deep Q-Network (Mnih et al., 2015, "Human-level control through deep reinforcement
//! learning") with double Q-learning (van Hasselt et al., 2016) and an optional dueling head
//! (Wang et al., 2016), following Stable-Baselines3's `DQN`.
//!
//! Every environment step:
//!
//! 1. **Act.** Uniformly random actions until `learning_starts`, then epsilon-greedy on the
//!    online network `Q_θ`, epsilon falling linearly from `exploration_initial_eps` to
//!    `exploration_final_eps` over the first `exploration_fraction` of `total_timesteps`.
//! 2. **Store** `(s, a, r, s', terminated)` in the replay buffer. When an episode ends, `s'` is
//!    its last observation (the vector environment has already reset the copy), and only a real
//!    termination stops bootstrapping: an episode cut by a time limit keeps `terminated = 0`.
//! 3. **Target network.** Every `target_update_interval` steps, `θ⁻ ← τ θ + (1 − τ) θ⁻`
//!    (a hard copy with the default `τ = 1`).
//! 4. **Learn.** Every `train_freq` steps once past `learning_starts`, `gradient_steps` times:
//!    sample a minibatch, compute the target
//!    `y = r + γ (1 − terminated) Q_θ⁻(s', argmax_a' Q_θ(s', a'))` (double DQN; plain DQN takes
//!    `max_a' Q_θ⁻(s', a')`), minimise the Huber loss of `Q_θ(s, a) − y`, clip the gradients'
//!    global norm to `max_grad_norm`, and take an Adam step.
//!
//! Acting runs on a Burn-free copy of `Q_θ` ([`InferenceMlp`]), refreshed after every learning
//! phase. Learning runs on the host for small networks on the CPU (forward and backward passes
//! fused into a few matrix kernels, see `learner`), else on Burn with autodiff, with
//! diagnostics read back from the device once per phase, not per gradient step.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use ratchet_agents::{DeviceKind, Dqn, DqnConfig};
//! use ratchet_env::CartPole;
//!
//! let config = DqnConfig::rl_zoo_cartpole();
//! let mut dqn = Dqn::new(config, vec![CartPole::default()], DeviceKind::Cpu, 1)?;
//! let never = AtomicBool::new(false); // or a flag a Ctrl-C handler sets
//! dqn.train(50_000, &mut |log| {
//!     if let Some(r) = log.get("rollout/ep_return_mean") {
//!         println!("{:>6} steps  mean return {r:.1}", log.step);
//!     }
//! }, &never)?;
//! let greedy = dqn.policy(); // Q-values, Burn-free: act with `argmax`
//! let saved = dqn.state()?; // weights, target, Adam, replay buffer, RNG, environments
//! # Ok::<(), ratchet_agents::AgentError>(())
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ratchet_env::{Env, Rng, VecEnv};
use serde::{Deserialize, Serialize};

use crate::episodes::EpisodeStats;
use crate::inference::{InferenceMlp, argmax};
use crate::isa::{Arithmetic, is_exact};
use crate::network::{Activation, Mlp, MlpConfig};
use crate::optim::{Adam, AdamConfig};
use crate::replay::{ReplayBatch, ReplayBuffer};
use crate::schedule::LinearSchedule;
use crate::state::{NamedTensor, module_tensors};
use crate::{AgentError, DeviceKind, UpdateLog};

mod learner;
mod saved;

use learner::Learner;

/// DQN's hyperparameters. The defaults are Stable-Baselines3's `DQN("MlpPolicy", env)`, except
/// where noted ([`DqnConfig::double_q`], [`DqnConfig::total_timesteps`]);
/// [`DqnConfig::rl_zoo_cartpole`] gives rl-baselines3-zoo's tuned CartPole-v1 settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DqnConfig {
    /// Adam's step size, constant. Default 1e-4.
    pub learning_rate: f64,
    /// Replay buffer capacity in transitions. Default 1,000,000.
    pub buffer_size: usize,
    /// Environment steps of uniformly random actions before learning starts. Default 100.
    pub learning_starts: u64,
    /// Minibatch size. Default 32.
    pub batch_size: usize,
    /// Target network update coefficient: 1 copies, below 1 is Polyak averaging. Default 1.0.
    pub tau: f64,
    /// Discount factor. Default 0.99.
    pub gamma: f64,
    /// Learn every this many steps of the vector environment. Default 4.
    pub train_freq: u64,
    /// Gradient steps per learning phase. Default 1.
    pub gradient_steps: u64,
    /// Update the target network every this many environment steps. Default 10,000.
    pub target_update_interval: u64,
    /// Share of `total_timesteps` over which epsilon falls. Default 0.1.
    pub exploration_fraction: f64,
    /// Default 1.0.
    pub exploration_initial_eps: f64,
    /// Default 0.05.
    pub exploration_final_eps: f64,
    /// Global gradient-norm clipping. Default 10.
    pub max_grad_norm: f64,
    /// Hidden layers of the Q-network. Default `[64, 64]`.
    pub hidden: Vec<usize>,
    /// Default ReLU.
    pub activation: Activation,
    /// Adam's epsilon. Default 1e-8, PyTorch's (SB3's DQN keeps it; Burn's own default is 1e-5).
    pub adam_eps: f64,
    /// How the CPU networks' matrix products add up ([`Arithmetic`]): `exact` (the default)
    /// or `fma`. Left out of the saved config when exact, so configs and hashes of exact runs
    /// are those of every earlier version.
    #[serde(skip_serializing_if = "is_exact")]
    pub arithmetic: Arithmetic,
    /// Double DQN: the online network picks the next action, the target network values it.
    /// Default true; SB3's DQN is plain DQN (`false`).
    pub double_q: bool,
    /// Dueling head: the network outputs a state value and one advantage per action, combined as
    /// `Q = V + A - mean(A)`. Default false (SB3 has none).
    pub dueling: bool,
    /// Length of the run the exploration schedule is laid out over (SB3 takes it from
    /// `learn(total_timesteps)`). Training may go past it or stop short, in any number of
    /// `train` calls. Default 1,000,000.
    pub total_timesteps: u64,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-4,
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 32,
            tau: 1.0,
            gamma: 0.99,
            train_freq: 4,
            gradient_steps: 1,
            target_update_interval: 10_000,
            exploration_fraction: 0.1,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.05,
            max_grad_norm: 10.0,
            hidden: vec![64, 64],
            activation: Activation::Relu,
            adam_eps: 1e-8,
            arithmetic: Arithmetic::Exact,
            double_q: true,
            dueling: false,
            total_timesteps: 1_000_000,
        }
    }
}

impl DqnConfig {
    /// rl-baselines3-zoo's tuned hyperparameters for CartPole-v1 (`hyperparams/dqn.yml`):
    /// 50,000 steps, learning rate 2.3e-3, batch 64, buffer 100,000, learning starts 1,000,
    /// target update every 10 steps, 128 gradient steps every 256 steps, epsilon to 0.04 over
    /// the first 16%, a 256x256 network.
    pub fn rl_zoo_cartpole() -> Self {
        Self {
            learning_rate: 2.3e-3,
            batch_size: 64,
            buffer_size: 100_000,
            learning_starts: 1_000,
            gamma: 0.99,
            target_update_interval: 10,
            train_freq: 256,
            gradient_steps: 128,
            exploration_fraction: 0.16,
            exploration_final_eps: 0.04,
            hidden: vec![256, 256],
            total_timesteps: 50_000,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), AgentError> {
        let bad = |msg: String| Err(AgentError::Config(msg));
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!(
                "learning_rate must be > 0, got {}",
                self.learning_rate
            ));
        }
        if self.buffer_size == 0 || self.batch_size == 0 {
            return bad("buffer_size and batch_size must be at least 1".into());
        }
        if !(self.tau > 0.0 && self.tau <= 1.0) {
            return bad(format!("tau must lie in (0, 1], got {}", self.tau));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return bad(format!("gamma must lie in [0, 1], got {}", self.gamma));
        }
        if self.train_freq == 0 || self.gradient_steps == 0 || self.target_update_interval == 0 {
            return bad(
                "train_freq, gradient_steps and target_update_interval must be at least 1".into(),
            );
        }
        if !(self.exploration_fraction > 0.0 && self.exploration_fraction <= 1.0) {
            return bad(format!(
                "exploration_fraction must lie in (0, 1], got {}",
                self.exploration_fraction
            ));
        }
        for (name, eps) in [
            ("exploration_initial_eps", self.exploration_initial_eps),
            ("exploration_final_eps", self.exploration_final_eps),
        ] {
            if !(0.0..=1.0).contains(&eps) {
                return bad(format!("{name} must lie in [0, 1], got {eps}"));
            }
        }
        if [self.max_grad_norm, self.adam_eps]
            .iter()
            .any(|x| x.is_nan() || *x <= 0.0)
        {
            return bad("max_grad_norm and adam_eps must be > 0".into());
        }
        if self.hidden.contains(&0) {
            return bad("hidden layer widths must be at least 1".into());
        }
        if self.total_timesteps == 0 {
            return bad("total_timesteps must be at least 1".into());
        }
        Ok(())
    }

    /// Epsilon after `step` environment steps.
    pub fn exploration_rate(&self, step: u64) -> f64 {
        LinearSchedule {
            start: self.exploration_initial_eps,
            end: self.exploration_final_eps,
            fraction: self.exploration_fraction,
        }
        .at_step(step, self.total_timesteps)
    }
}

/// A DQN agent training on its own vector of environments.
pub struct Dqn<E: Env> {
    config: DqnConfig,
    device_kind: DeviceKind,
    /// The training device, with autodiff.
    device: Device,
    /// The same device without autodiff, for the gradient-free target computation.
    plain: Device,
    seed: u64,
    envs: VecEnv<E>,
    /// Every random draw after initialisation: exploration and minibatch sampling.
    rng: Rng,
    /// `Q_θ`, trained.
    q_network: Mlp,
    /// `Q_θ⁻`, without autodiff.
    target_network: Mlp,
    adam: Adam,
    /// Burn-free copy of `Q_θ` (dueling head folded into plain Q-values) for acting.
    greedy: InferenceMlp,
    replay: ReplayBuffer,
    total_steps: u64,
    n_updates: u64,
    episodes: EpisodeStats,
    /// Scratch buffers reused every step.
    batch: ReplayBatch,
    actions: Vec<usize>,
    observations: Vec<f32>,
}

impl<E: Env> Dqn<E> {
    /// Builds the agent: network initialised from `seed`, environments reset with draws from it.
    pub fn new(
        config: DqnConfig,
        envs: Vec<E>,
        device_kind: DeviceKind,
        seed: u64,
    ) -> Result<Self, AgentError> {
        config.validate()?;
        let (obs_size, actions) = crate::env_shapes("DQN", &envs)?;
        let device = crate::device(device_kind)?.autodiff();
        let plain = device.clone().without_autodiff();
        let mut rng = Rng::seed_from(seed);
        let mut init = rng.fork();
        let envs = VecEnv::new(envs, rng.next_u64());
        // Orthogonal initialisation, gain sqrt(2) for hidden layers and 1 for the Q-values.
        let outputs = if config.dueling { actions + 1 } else { actions };
        let net_config = MlpConfig::new(obs_size, config.hidden.clone(), outputs)
            .with_activation(config.activation)
            .with_output_gain(1.0);
        let q_network = Mlp::new(&net_config, &device, &mut init);
        let target_network = q_network.valid();
        let adam = Adam::new(AdamConfig {
            epsilon: config.adam_eps,
            max_grad_norm: Some(config.max_grad_norm),
            ..AdamConfig::default()
        });
        let n = envs.len();
        Ok(Self {
            greedy: greedy_network(&q_network, &config)?,
            replay: ReplayBuffer::new(config.buffer_size, obs_size),
            config,
            device_kind,
            device,
            plain,
            seed,
            envs,
            rng,
            q_network,
            target_network,
            adam,
            total_steps: 0,
            n_updates: 0,
            episodes: EpisodeStats::default(),
            batch: ReplayBatch::default(),
            actions: vec![0; n],
            observations: vec![0.0; n * obs_size],
        })
    }

    /// Takes `steps` more environment steps (rounded up to a multiple of the number of
    /// environments), learning every `train_freq` steps and calling `on_update` after each
    /// learning phase. `train(a)` then `train(b)` is exactly `train(a + b)`. Returns early, at
    /// the first update boundary after `stop` is set (checked after each `on_update`, which may
    /// set it); the agent then continues exactly from where it stopped. Pass
    /// `&AtomicBool::new(false)` to run all `steps`.
    pub fn train(
        &mut self,
        steps: u64,
        on_update: &mut dyn FnMut(&UpdateLog),
        stop: &AtomicBool,
    ) -> Result<(), AgentError> {
        let end = self.total_steps + steps;
        let clock = (Instant::now(), self.total_steps);
        let n = self.envs.len() as u64;
        // Both intervals count steps of the vector environment, as SB3's do.
        let target_every = (self.config.target_update_interval / n).max(1);
        while self.total_steps < end {
            self.collect_step();
            let calls = self.total_steps / n;
            if calls.is_multiple_of(target_every) {
                self.update_target_network();
            }
            if calls.is_multiple_of(self.config.train_freq)
                && self.total_steps > self.config.learning_starts
            {
                let metrics = self.learn()?;
                UpdateLog::emit(metrics, clock, self.total_steps, &self.episodes, on_update);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Steps 1 and 2: act in every environment, store the transitions.
    fn collect_step(&mut self) {
        let (n, k) = (self.envs.len(), self.envs.observation_size());
        let action_count = self.envs.action_count() as u64;
        let warming_up = self.total_steps < self.config.learning_starts;
        let epsilon = self.exploration_rate();
        let mut q = vec![0.0f32; self.greedy.output_size()];
        self.observations.copy_from_slice(self.envs.observations());
        for (e, obs) in self.observations.chunks_exact(k).enumerate() {
            self.actions[e] = if warming_up || self.rng.next_f64() < epsilon {
                self.rng.below(action_count) as usize
            } else {
                self.greedy.forward(obs, &mut q);
                argmax(&q)
            };
        }

        let step = self.envs.step(&self.actions);
        let outcomes: Vec<(f32, bool, bool)> = (0..n)
            .map(|e| (step.rewards[e], step.terminated[e], step.truncated[e]))
            .collect();
        for end in step.finished {
            self.episodes.record(end);
        }
        for (e, &(reward, terminated, truncated)) in outcomes.iter().enumerate() {
            let next = if terminated || truncated {
                self.envs.final_observation(e)
            } else {
                &self.envs.observations()[e * k..(e + 1) * k]
            };
            self.replay.push(
                &self.observations[e * k..(e + 1) * k],
                self.actions[e] as u32,
                reward,
                next,
                terminated,
            );
        }
        self.total_steps += n as u64;
    }

    /// Step 3: `θ⁻ ← τ θ + (1 − τ) θ⁻`.
    fn update_target_network(&mut self) {
        let online = self.q_network.valid();
        self.target_network = if self.config.tau >= 1.0 {
            online
        } else {
            polyak(self.target_network.clone(), &online, self.config.tau)
        };
    }

    /// Step 4: `gradient_steps` minibatch updates; returns the phase's diagnostics.
    ///
    /// All the phase's minibatches are drawn up front; each gradient step takes its rows.
    fn learn(&mut self) -> Result<Vec<(&'static str, f64)>, AgentError> {
        let (steps, size) = (self.config.gradient_steps as usize, self.config.batch_size);
        self.replay
            .sample(&mut self.rng, steps * size, &mut self.batch);
        let on_cpu = self.device_kind == DeviceKind::Cpu;
        let mut widths = vec![self.envs.observation_size()];
        widths.extend(&self.config.hidden);
        widths.push(self.q_network.output_size());
        let mut learner = Learner::new(
            &self.config,
            &self.batch,
            &self.q_network,
            &self.target_network,
            &mut self.adam,
            (&self.device, &self.plain),
            on_cpu,
            &widths,
        )?;
        for j in 0..steps {
            learner.step(j, &self.config, &mut self.adam)?;
        }
        let (q_network, stats) = learner.finish(self.q_network.clone(), &self.adam)?;
        self.q_network = q_network;
        self.n_updates += steps as u64;
        self.greedy = greedy_network(&self.q_network, &self.config)?;

        let mean = |xs: &[f32]| xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        Ok(vec![
            ("train/loss", mean(&stats.losses)),
            ("train/q_mean", mean(&stats.q_means)),
            ("train/learning_rate", self.config.learning_rate),
            ("train/epsilon", self.exploration_rate()),
            ("train/n_updates", self.n_updates as f64),
        ])
    }

    /// Epsilon of the next step.
    pub fn exploration_rate(&self) -> f64 {
        self.config.exploration_rate(self.total_steps)
    }

    /// The greedy policy as a Burn-free network whose outputs are Q-values (a dueling head is
    /// folded into plain Q-values): act with [`argmax`].
    pub fn policy(&self) -> InferenceMlp {
        self.greedy.clone()
    }

    /// The online Q-network `Q_θ`.
    pub fn q_network(&self) -> &Mlp {
        &self.q_network
    }

    /// The target network `Q_θ⁻`.
    pub fn target_network(&self) -> &Mlp {
        &self.target_network
    }

    pub fn replay_buffer(&self) -> &ReplayBuffer {
        &self.replay
    }

    pub fn config(&self) -> &DqnConfig {
        &self.config
    }

    pub fn device_kind(&self) -> DeviceKind {
        self.device_kind
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Environment steps taken so far, over all copies.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// Gradient steps taken so far.
    pub fn n_updates(&self) -> u64 {
        self.n_updates
    }

    pub fn episode_stats(&self) -> &EpisodeStats {
        &self.episodes
    }

    pub fn envs(&self) -> &VecEnv<E> {
        &self.envs
    }
}

/// A Burn-free copy of `net` whose outputs are Q-values. A dueling head is linear in the last
/// hidden layer, so `V + A - mean(A)` folds exactly into one plain output layer.
fn greedy_network(net: &Mlp, config: &DqnConfig) -> Result<InferenceMlp, AgentError> {
    greedy_from_tensors(module_tensors(net, "")?, config, net.activation)
}

/// [`greedy_network`] of a Q-network's tensors (named `layers.{i}.weight` / `.bias`).
fn greedy_from_tensors(
    mut tensors: Vec<NamedTensor<'static>>,
    config: &DqnConfig,
    activation: Activation,
) -> Result<InferenceMlp, AgentError> {
    if config.dueling {
        let last = tensors
            .iter()
            .filter(|t| t.name.ends_with(".weight"))
            .count()
            - 1;
        for t in &mut tensors {
            if t.name == format!("layers.{last}.weight") || t.name == format!("layers.{last}.bias")
            {
                let width = *t.shape.last().expect("a parameter has a shape");
                let rows = t.data.len() / width;
                let actions = width - 1;
                let mut folded = Vec::with_capacity(rows * actions);
                for row in t.data.chunks_exact(width) {
                    let mean_a = row[1..].iter().sum::<f32>() / actions as f32;
                    folded.extend(row[1..].iter().map(|&adv| row[0] + adv - mean_a));
                }
                *t.shape.last_mut().expect("a parameter has a shape") = actions;
                t.data = folded.into();
            }
        }
    }
    InferenceMlp::from_tensors(&tensors, "", activation, config.arithmetic)
}

/// `τ online + (1 − τ) target`, parameter by parameter (both networks have the same shape).
fn polyak(target: Mlp, online: &Mlp, tau: f64) -> Mlp {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let n = value.shape().num_elements();
            self.0.push(value.reshape([n]));
        }
    }
    struct Blend {
        online: std::vec::IntoIter<Tensor<1>>,
        tau: f64,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let online = self.online.next().expect("networks of the same shape");
            let tau = self.tau;
            param.map(|target| {
                let shape = target.shape();
                target.mul_scalar(1.0 - tau) + online.reshape(shape).mul_scalar(tau)
            })
        }
    }
    let mut collect = Collect(Vec::new());
    online.visit(&mut collect);
    target.map(&mut Blend {
        online: collect.0.into_iter(),
        tau,
    })
}
