//! Proximal Policy Optimization (Schulman et al., 2017, "Proximal Policy Optimization
//! Algorithms") with the clipped surrogate objective, following Stable-Baselines3's `PPO`.
//!
//! One training iteration:
//!
//! 1. **Rollout.** Step `n_envs` environments `n_steps` times with actions sampled from the
//!    current policy, storing observations, actions, rewards, value estimates and log-probabilities.
//!    When an episode is cut by a time limit, the value of its last observation is added to the
//!    final reward (`r + gamma * V(s_final)`), so truncation is not mistaken for failure.
//! 2. **Advantages.** Generalised advantage estimation, `A_t = sum_l (gamma lambda)^l delta_{t+l}`
//!    with `delta_t = r_t + gamma V(s_{t+1}) - V(s_t)`; returns are `A_t + V(s_t)`.
//! 3. **Update.** `n_epochs` passes over the rollout in shuffled minibatches of `batch_size`,
//!    minimising `L = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + vf_coef (V - R)^2 - ent_coef H`
//!    (advantages normalised per minibatch), with gradients clipped to a global norm and Adam.
//!
//! Rollouts run on a Burn-free copy of the networks ([`InferenceMlp`]), refreshed after every
//! update. The update runs on the host for small networks on the CPU (the forward and backward
//! passes fused into a few matrix kernels, see `learner`), else on Burn with autodiff, with
//! diagnostics read back from the device once per update, not per minibatch.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use ratchet_agents::{DeviceKind, Ppo, PpoConfig};
//! use ratchet_env::CartPole;
//!
//! let mut ppo = Ppo::new(PpoConfig::default(), vec![CartPole::default()], DeviceKind::Cpu, 1)?;
//! let never = AtomicBool::new(false); // or a flag a Ctrl-C handler sets
//! ppo.train(100_000, &mut |log| {
//!     if let Some(r) = log.get("rollout/ep_return_mean") {
//!         println!("{:>7} steps  mean return {r:.1}", log.step);
//!     }
//! }, &never)?;
//! # Ok::<(), ratchet_agents::AgentError>(())
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use ratchet_env::{Env, Rng, VecEnv};
use serde::{Deserialize, Serialize};

use crate::episodes::EpisodeStats;
use crate::inference::InferenceMlp;
use crate::isa::{Arithmetic, is_exact};
use crate::network::{Activation, Mlp, MlpConfig};
use crate::optim::{Adam, AdamConfig};
use crate::schedule::LinearSchedule;
use crate::{AgentError, DeviceKind, UpdateLog};

mod learner;
mod saved;

use learner::{Diagnostics, Learner, Minibatch};

/// PPO's hyperparameters. The defaults are Stable-Baselines3's `PPO("MlpPolicy", env)`, so a run
/// compares one to one with SB3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// Adam's step size. Default 3e-4.
    pub learning_rate: f64,
    /// Anneal the learning rate linearly to 0 over this many environment steps (SB3: pass a
    /// linear schedule; CleanRL: `anneal_lr`). Default `None`: constant.
    pub lr_anneal_steps: Option<u64>,
    /// Steps per environment in each rollout. Default 2048.
    pub n_steps: usize,
    /// Minibatch size. Default 64.
    pub batch_size: usize,
    /// Passes over each rollout. Default 10.
    pub n_epochs: usize,
    /// Discount factor. Default 0.99.
    pub gamma: f64,
    /// GAE's lambda. Default 0.95.
    pub gae_lambda: f64,
    /// Clipping of the probability ratio. Default 0.2.
    pub clip_range: f64,
    /// Clipping of the value prediction around the rollout's value. Default `None`: no clipping.
    pub clip_range_vf: Option<f64>,
    /// Normalise advantages per minibatch. Default true.
    pub normalize_advantage: bool,
    /// Entropy bonus coefficient. Default 0.0.
    pub ent_coef: f64,
    /// Value loss coefficient. Default 0.5.
    pub vf_coef: f64,
    /// Global gradient-norm clipping. Default 0.5.
    pub max_grad_norm: f64,
    /// Hidden layers of the policy and of the (separate) value network. Default `[64, 64]`.
    pub hidden: Vec<usize>,
    /// Default tanh.
    pub activation: Activation,
    /// Adam's epsilon. Default 1e-5: SB3's `ActorCriticPolicy` sets it for PPO (PyTorch's own
    /// default is 1e-8; Burn's is 1e-5). Explicit either way.
    pub adam_eps: f64,
    /// How the CPU networks' matrix products add up ([`Arithmetic`]): `exact` (the default)
    /// or `fma`. Left out of the saved config when exact, so configs and hashes of exact runs
    /// are those of every earlier version.
    #[serde(skip_serializing_if = "is_exact")]
    pub arithmetic: Arithmetic,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            learning_rate: 3e-4,
            lr_anneal_steps: None,
            n_steps: 2048,
            batch_size: 64,
            n_epochs: 10,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_range: 0.2,
            clip_range_vf: None,
            normalize_advantage: true,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            adam_eps: 1e-5,
            arithmetic: Arithmetic::Exact,
        }
    }
}

impl PpoConfig {
    fn validate(&self) -> Result<(), AgentError> {
        let bad = |msg: String| Err(AgentError::Config(msg));
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!(
                "learning_rate must be > 0, got {}",
                self.learning_rate
            ));
        }
        if self.n_steps == 0 || self.batch_size == 0 || self.n_epochs == 0 {
            return bad("n_steps, batch_size and n_epochs must be at least 1".into());
        }
        if self.normalize_advantage && self.batch_size < 2 {
            return bad("batch_size must be at least 2 to normalise advantages".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.gae_lambda) {
            return bad(format!(
                "gamma and gae_lambda must lie in [0, 1], got {} and {}",
                self.gamma, self.gae_lambda
            ));
        }
        if self.clip_range <= 0.0 || self.clip_range_vf.is_some_and(|c| c <= 0.0) {
            return bad("clip_range and clip_range_vf must be > 0".into());
        }
        if self.max_grad_norm <= 0.0 || self.adam_eps <= 0.0 {
            return bad("max_grad_norm and adam_eps must be > 0".into());
        }
        if self.lr_anneal_steps == Some(0) {
            return bad(
                "lr_anneal_steps must be at least 1 (or absent for a constant rate)".into(),
            );
        }
        if self.hidden.contains(&0) {
            return bad("hidden layer widths must be at least 1".into());
        }
        Ok(())
    }
}

/// The policy (logits) and value networks, optimised together as SB3 does.
#[derive(Module, Debug)]
pub struct ActorCritic {
    pub actor: Mlp,
    pub critic: Mlp,
}

/// The current rollout, stored step-major: entry `t * n_envs + e` is step `t` of copy `e`.
#[derive(Clone, Debug, Default)]
struct Rollout {
    len: usize,
    observations: Vec<f32>,
    actions: Vec<usize>,
    rewards: Vec<f32>,
    /// 1 where the observation is the first of an episode.
    episode_starts: Vec<f32>,
    values: Vec<f32>,
    log_probs: Vec<f32>,
}

impl Rollout {
    fn clear(&mut self) {
        self.len = 0;
        self.observations.clear();
        self.actions.clear();
        self.rewards.clear();
        self.episode_starts.clear();
        self.values.clear();
        self.log_probs.clear();
    }
}

/// A PPO agent training on its own vector of environments.
pub struct Ppo<E: Env> {
    config: PpoConfig,
    device_kind: DeviceKind,
    /// The training device, with autodiff.
    device: Device,
    seed: u64,
    envs: VecEnv<E>,
    /// Every random draw after initialisation: action sampling and minibatch shuffling.
    rng: Rng,
    model: ActorCritic,
    adam: Adam,
    /// Burn-free copies of `model` for rollouts.
    actor: InferenceMlp,
    critic: InferenceMlp,
    rollout: Rollout,
    /// Whether each copy's current observation starts an episode.
    episode_starts: Vec<bool>,
    total_steps: u64,
    updates: u64,
    episodes: EpisodeStats,
}

impl<E: Env> Ppo<E> {
    /// Builds the agent: networks initialised from `seed`, environments reset with draws from it.
    pub fn new(
        config: PpoConfig,
        envs: Vec<E>,
        device_kind: DeviceKind,
        seed: u64,
    ) -> Result<Self, AgentError> {
        config.validate()?;
        let (obs_size, actions) = crate::env_shapes("PPO", &envs)?;
        let device = crate::device(device_kind)?.autodiff();
        let mut rng = Rng::seed_from(seed);
        let mut init = rng.fork();
        let envs = VecEnv::new(envs, rng.next_u64());
        // SB3's orthogonal initialisation: gain sqrt(2) for hidden layers, 0.01 for the policy
        // output (near-uniform initial policy), 1 for the value output.
        let actor_config = MlpConfig::new(obs_size, config.hidden.clone(), actions)
            .with_activation(config.activation)
            .with_output_gain(0.01);
        let critic_config = MlpConfig::new(obs_size, config.hidden.clone(), 1)
            .with_activation(config.activation)
            .with_output_gain(1.0);
        let model = ActorCritic {
            actor: Mlp::new(&actor_config, &device, &mut init),
            critic: Mlp::new(&critic_config, &device, &mut init),
        };
        let adam = Adam::new(AdamConfig {
            epsilon: config.adam_eps,
            max_grad_norm: Some(config.max_grad_norm),
            ..AdamConfig::default()
        });
        let n = envs.len();
        Ok(Self {
            actor: InferenceMlp::from_mlp(&model.actor, config.arithmetic)?,
            critic: InferenceMlp::from_mlp(&model.critic, config.arithmetic)?,
            config,
            device_kind,
            device,
            seed,
            envs,
            rng,
            model,
            adam,
            rollout: Rollout::default(),
            episode_starts: vec![true; n],
            total_steps: 0,
            updates: 0,
            episodes: EpisodeStats::default(),
        })
    }

    /// Takes `steps` more environment steps (rounded up to a multiple of the number of
    /// environments), updating the networks after every full rollout and calling `on_update`
    /// after each update. Training can stop anywhere, mid-rollout included: `train(a)` then
    /// `train(b)` is exactly `train(a + b)`. Returns early, at the first update boundary after
    /// `stop` is set (checked after each `on_update`, which may set it); the agent then
    /// continues exactly from where it stopped. Pass `&AtomicBool::new(false)` to run all
    /// `steps`.
    pub fn train(
        &mut self,
        steps: u64,
        on_update: &mut dyn FnMut(&UpdateLog),
        stop: &AtomicBool,
    ) -> Result<(), AgentError> {
        let target = self.total_steps + steps;
        let clock = (Instant::now(), self.total_steps);
        while self.total_steps < target {
            self.collect_step();
            if self.rollout.len == self.config.n_steps {
                let (advantages, returns) = self.compute_advantages();
                let metrics = self.update(&advantages, &returns)?;
                self.rollout.clear();
                UpdateLog::emit(metrics, clock, self.total_steps, &self.episodes, on_update);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Step 1: one step of every environment with actions sampled from the policy.
    fn collect_step(&mut self) {
        let (n, k) = (self.envs.len(), self.envs.observation_size());
        let a = self.envs.action_count();
        let mut logits = vec![0.0f32; n * a];
        let mut values = vec![0.0f32; n];
        let obs = self.envs.observations();
        self.actor.forward_batch(obs, n, &mut logits);
        self.critic.forward_batch(obs, n, &mut values);
        let r = &mut self.rollout;
        r.observations.extend_from_slice(obs);
        let mut actions = Vec::with_capacity(n);
        for (e, row) in logits.chunks_exact(a).enumerate() {
            let (action, log_prob) = sample_categorical(row, &mut self.rng);
            actions.push(action);
            r.actions.push(action);
            r.log_probs.push(log_prob);
            r.values.push(values[e]);
            r.episode_starts
                .push(if self.episode_starts[e] { 1.0 } else { 0.0 });
        }
        r.len += 1;

        let step = self.envs.step(&actions);
        let mut rewards = step.rewards.to_vec();
        let done: Vec<(bool, bool)> = step
            .terminated
            .iter()
            .zip(step.truncated)
            .map(|(&te, &tr)| (te, tr))
            .collect();
        for end in step.finished {
            self.episodes.record(end);
        }
        let mut v = [0.0f32];
        for (e, &(terminated, truncated)) in done.iter().enumerate() {
            if truncated && !terminated {
                // Bootstrap through the time limit from the episode's last observation.
                self.critic.forward(self.envs.final_observation(e), &mut v);
                rewards[e] += self.config.gamma as f32 * v[0];
            }
            self.episode_starts[e] = terminated || truncated;
        }
        self.rollout.rewards.extend_from_slice(&rewards);
        self.total_steps += n as u64;
        debug_assert_eq!(self.rollout.observations.len(), self.rollout.len * n * k);
    }

    /// Step 2: GAE(lambda) advantages and returns over the full rollout.
    fn compute_advantages(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.envs.len();
        let (gamma, lambda) = (self.config.gamma as f32, self.config.gae_lambda as f32);
        let r = &self.rollout;
        let mut last_values = vec![0.0f32; n];
        self.critic
            .forward_batch(self.envs.observations(), n, &mut last_values);
        let mut advantages = vec![0.0f32; r.len * n];
        let mut last_gae = vec![0.0f32; n];
        for t in (0..r.len).rev() {
            for e in 0..n {
                let (next_value, next_non_terminal) = if t + 1 == r.len {
                    let done = if self.episode_starts[e] { 1.0 } else { 0.0 };
                    (last_values[e], 1.0 - done)
                } else {
                    let j = (t + 1) * n + e;
                    (r.values[j], 1.0 - r.episode_starts[j])
                };
                let i = t * n + e;
                let delta = r.rewards[i] + gamma * next_value * next_non_terminal - r.values[i];
                last_gae[e] = delta + gamma * lambda * next_non_terminal * last_gae[e];
                advantages[i] = last_gae[e];
            }
        }
        let returns = advantages
            .iter()
            .zip(&r.values)
            .map(|(a, v)| a + v)
            .collect();
        (advantages, returns)
    }

    /// Step 3: `n_epochs` passes of shuffled minibatches; returns the update's diagnostics.
    fn update(
        &mut self,
        advantages: &[f32],
        returns: &[f32],
    ) -> Result<Vec<(&'static str, f64)>, AgentError> {
        let lr = self.learning_rate();
        let on_cpu = self.device_kind == DeviceKind::Cpu;
        let widths = self.network_widths();
        let mut learner = Learner::new(
            &self.model,
            &mut self.adam,
            &self.device,
            on_cpu,
            &widths,
            self.config.arithmetic,
        )?;
        let mut indices: Vec<usize> = Vec::with_capacity(advantages.len());
        for _epoch in 0..self.config.n_epochs {
            indices.clear();
            indices.extend(0..advantages.len());
            self.rng.shuffle(&mut indices);
            for minibatch in indices.chunks(self.config.batch_size) {
                let batch =
                    Minibatch::gather(&self.rollout, minibatch, advantages, returns, &self.config);
                learner.step(&batch, &self.config, lr, &mut self.adam)?;
            }
        }
        let (model, diagnostics) = learner.finish(self.model.clone(), &self.adam)?;
        self.model = model;
        self.actor = InferenceMlp::from_mlp(&self.model.actor, self.config.arithmetic)?;
        self.critic = InferenceMlp::from_mlp(&self.model.critic, self.config.arithmetic)?;
        self.updates += 1;

        let mut metrics = self.summarise(diagnostics);
        metrics.push((
            "train/explained_variance",
            explained_variance(&self.rollout.values, returns),
        ));
        metrics.push(("train/learning_rate", lr));
        metrics.push(("train/clip_range", self.config.clip_range));
        metrics.push((
            "train/n_updates",
            (self.updates * self.config.n_epochs as u64) as f64,
        ));
        Ok(metrics)
    }

    /// Widths of the actor's layers, `[input, hidden.., actions]` (the critic's are no wider).
    fn network_widths(&self) -> Vec<usize> {
        let mut widths = vec![self.envs.observation_size()];
        widths.extend(&self.config.hidden);
        widths.push(self.envs.action_count());
        widths
    }

    /// Averages the update's per-minibatch results as SB3 does (the mean over minibatches of
    /// each minibatch's mean).
    fn summarise(&self, d: Diagnostics) -> Vec<(&'static str, f64)> {
        let (ratios, log_probs) = (&d.ratios, &d.log_probs);
        let a = self.envs.action_count();
        let clip = self.config.clip_range;
        let (mut kl, mut clipped, mut entropy, mut start) = (0.0, 0.0, 0.0, 0);
        for &size in &d.sizes {
            let rs = &ratios[start..start + size];
            kl += rs
                .iter()
                .map(|&r| (r as f64 - 1.0) - (r as f64).ln())
                .sum::<f64>()
                / size as f64;
            clipped += rs
                .iter()
                .filter(|&&r| (r as f64 - 1.0).abs() > clip)
                .count() as f64
                / size as f64;
            entropy += log_probs[start * a..(start + size) * a]
                .iter()
                .map(|&lp| -(lp as f64).exp() * lp as f64)
                .sum::<f64>()
                / size as f64;
            start += size;
        }
        let m = d.sizes.len() as f64;
        let mean = |xs: &[f32]| xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        vec![
            ("train/policy_loss", -mean(&d.objectives)),
            ("train/value_loss", mean(&d.value_losses)),
            ("train/entropy", entropy / m),
            ("train/approx_kl", kl / m),
            ("train/clip_fraction", clipped / m),
        ]
    }

    /// The learning rate of the next update.
    pub fn learning_rate(&self) -> f64 {
        match self.config.lr_anneal_steps {
            None => self.config.learning_rate,
            Some(horizon) => LinearSchedule {
                start: self.config.learning_rate,
                end: 0.0,
                fraction: 1.0,
            }
            .at_step(self.total_steps, horizon),
        }
    }

    /// The policy as a Burn-free network whose outputs are action logits.
    pub fn policy(&self) -> InferenceMlp {
        self.actor.clone()
    }

    /// The value network, Burn-free.
    pub fn value_function(&self) -> InferenceMlp {
        self.critic.clone()
    }

    /// The Burn networks.
    pub fn model(&self) -> &ActorCritic {
        &self.model
    }

    pub fn config(&self) -> &PpoConfig {
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

    /// Updates (full rollouts trained on) so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn episode_stats(&self) -> &EpisodeStats {
        &self.episodes
    }

    pub fn envs(&self) -> &VecEnv<E> {
        &self.envs
    }
}

/// Samples an action from the softmax of `logits`; returns it with its log-probability.
fn sample_categorical(logits: &[f32], rng: &mut Rng) -> (usize, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let log_norm = max + sum.ln();
    let u = rng.next_f64() as f32 * sum;
    let mut acc = 0.0f32;
    let mut action = logits.len() - 1;
    for (i, &l) in logits.iter().enumerate() {
        acc += (l - max).exp();
        if u < acc {
            action = i;
            break;
        }
    }
    (action, logits[action] - log_norm)
}

/// `1 - Var(returns - values) / Var(returns)`: how much of the returns' variance the value
/// function explains (NaN when the returns do not vary).
fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
    let var = |xs: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = xs.collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64
    };
    let var_returns = var(&mut returns.iter().map(|&x| x as f64));
    if var_returns == 0.0 {
        return f64::NAN;
    }
    let var_residual = var(&mut returns.iter().zip(values).map(|(&r, &v)| (r - v) as f64));
    1.0 - var_residual / var_returns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categorical_sampling_follows_the_softmax() {
        let mut rng = Rng::seed_from(5);
        let logits = [0.0f32, (3.0f32).ln()]; // probabilities 1/4, 3/4
        let n = 40_000;
        let ones = (0..n)
            .filter(|_| sample_categorical(&logits, &mut rng).0 == 1)
            .count();
        assert!((ones as f64 / n as f64 - 0.75).abs() < 0.01);
        let (a, lp) = sample_categorical(&logits, &mut rng);
        let expected = if a == 1 { 0.75f32.ln() } else { 0.25f32.ln() };
        assert!((lp - expected).abs() < 1e-6);
    }

    #[test]
    fn advantages_are_normalised_with_the_unbiased_std() {
        let mut xs = [1.0f32, 2.0, 3.0];
        learner::normalize(&mut xs);
        assert!((xs[0] + 1.0).abs() < 1e-6 && xs[1].abs() < 1e-6 && (xs[2] - 1.0).abs() < 1e-6);
    }
}
