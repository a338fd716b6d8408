//! PPO's gradient steps: the loss of one minibatch, differentiated and applied with Adam.
//!
//! Two ways to run them, picked by [`Learner::new`]: small networks on the CPU train on the
//! host ([`crate::fused`]: the loss's gradient is written out below, the networks' passes are a
//! few matrix kernels), everything else through Burn's autodiff on the training device (the
//! GPU, or networks too wide for the host path). Both minimise the same loss; the tests hold
//! the host gradients to Burn's.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{ActorCritic, PpoConfig, Rollout};
use crate::AgentError;
use crate::fused::{self, FusedMlp, Trace};
use crate::isa::{Arithmetic, Isa};
use crate::optim::Adam;
use crate::state::read_f32;

/// One minibatch of the rollout, gathered on the host.
pub(super) struct Minibatch {
    pub(super) size: usize,
    observation_size: usize,
    observations: Vec<f32>,
    actions: Vec<usize>,
    old_log_probs: Vec<f32>,
    /// Normalised when `normalize_advantage` is set.
    advantages: Vec<f32>,
    returns: Vec<f32>,
    /// Only for a clipped value loss.
    old_values: Option<Vec<f32>>,
}

impl Minibatch {
    pub(super) fn gather(
        r: &Rollout,
        indices: &[usize],
        advantages: &[f32],
        returns: &[f32],
        config: &PpoConfig,
    ) -> Self {
        let k = r.observations.len() / r.values.len().max(1);
        let pick = |xs: &[f32]| -> Vec<f32> { indices.iter().map(|&i| xs[i]).collect() };
        let mut observations = Vec::with_capacity(indices.len() * k);
        for &i in indices {
            observations.extend_from_slice(&r.observations[i * k..(i + 1) * k]);
        }
        let mut advantages = pick(advantages);
        if config.normalize_advantage {
            normalize(&mut advantages);
        }
        Self {
            size: indices.len(),
            observation_size: k,
            observations,
            actions: indices.iter().map(|&i| r.actions[i]).collect(),
            old_log_probs: pick(&r.log_probs),
            advantages,
            returns: pick(returns),
            old_values: config.clip_range_vf.map(|_| pick(&r.values)),
        }
    }
}

/// `(x - mean) / (std + 1e-8)` with the unbiased standard deviation, as SB3 does per minibatch.
pub(super) fn normalize(xs: &mut [f32]) {
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let scale = 1.0 / (var.sqrt() + 1e-8);
    xs.iter_mut()
        .for_each(|x| *x = ((*x as f64 - mean) * scale) as f32);
}

/// What an update reports, per minibatch, in minibatch order.
#[derive(Default)]
pub(super) struct Diagnostics {
    pub(super) sizes: Vec<usize>,
    /// Probability ratios, one per sample.
    pub(super) ratios: Vec<f32>,
    /// Log-probabilities of every action, `action_count` per sample.
    pub(super) log_probs: Vec<f32>,
    /// The clipped surrogate objective (the negative of the policy loss), one per minibatch.
    pub(super) objectives: Vec<f32>,
    pub(super) value_losses: Vec<f32>,
}

/// Runs the gradient steps of one update on a copy of the networks; [`Learner::finish`] hands
/// back the trained networks and the update's diagnostics.
pub(super) enum Learner {
    Host(Box<HostLearner>),
    Burn(BurnLearner),
}

impl Learner {
    /// The host path when the device is the CPU and the networks are small enough for it.
    pub(super) fn new(
        model: &ActorCritic,
        adam: &mut Adam,
        device: &Device,
        on_cpu: bool,
        widths: &[usize],
        arithmetic: Arithmetic,
    ) -> Result<Self, AgentError> {
        Ok(if on_cpu && fused::fits(widths) {
            Learner::Host(Box::new(HostLearner::new(model, adam, arithmetic)?))
        } else {
            Learner::Burn(BurnLearner {
                model: model.clone(),
                device: device.clone(),
                pending: Vec::new(),
            })
        })
    }

    /// One Adam step on the PPO loss of `batch`.
    pub(super) fn step(
        &mut self,
        batch: &Minibatch,
        config: &PpoConfig,
        lr: f64,
        adam: &mut Adam,
    ) -> Result<(), AgentError> {
        match self {
            Learner::Host(host) => {
                host.step(batch, config, lr, adam);
                Ok(())
            }
            Learner::Burn(burn) => burn.step(batch, config, lr, adam),
        }
    }

    /// `model` with the trained parameters, and the update's diagnostics.
    pub(super) fn finish(
        self,
        model: ActorCritic,
        adam: &Adam,
    ) -> Result<(ActorCritic, Diagnostics), AgentError> {
        match self {
            Learner::Host(host) => Ok((
                adam.write_parameters(model, &host.params, false),
                host.diagnostics,
            )),
            Learner::Burn(burn) => burn.finish(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// On the host
// ---------------------------------------------------------------------------------------------

/// The actor and critic as [`FusedMlp`]s over one flat parameter vector in Adam's layout.
pub(super) struct HostLearner {
    isa: Isa,
    params: Vec<f32>,
    grads: Vec<f32>,
    actor: FusedMlp,
    critic: FusedMlp,
    actor_trace: Trace,
    critic_trace: Trace,
    grad_logits: Vec<f32>,
    grad_values: Vec<f32>,
    diagnostics: Diagnostics,
}

impl HostLearner {
    fn new(
        model: &ActorCritic,
        adam: &mut Adam,
        arithmetic: Arithmetic,
    ) -> Result<Self, AgentError> {
        let (params, layout) = adam.parameters(model)?;
        let mut actor = FusedMlp::new(&layout, "actor.", model.actor.activation)?;
        let mut critic = FusedMlp::new(&layout, "critic.", model.critic.activation)?;
        actor.load(&params);
        critic.load(&params);
        Ok(Self {
            isa: Isa::detect(arithmetic),
            grads: vec![0.0; params.len()],
            params,
            actor,
            critic,
            actor_trace: Trace::default(),
            critic_trace: Trace::default(),
            grad_logits: Vec::new(),
            grad_values: Vec::new(),
            diagnostics: Diagnostics::default(),
        })
    }

    fn step(&mut self, batch: &Minibatch, config: &PpoConfig, lr: f64, adam: &mut Adam) {
        self.gradients(batch, config);
        adam.step_host(lr, &self.grads, &mut self.params);
        self.actor.load(&self.params);
        self.critic.load(&self.params);
        self.diagnostics.sizes.push(batch.size);
    }

    /// The loss's gradients with respect to every parameter, into `self.grads`.
    fn gradients(&mut self, batch: &Minibatch, config: &PpoConfig) {
        let (isa, obs, n) = (self.isa, &batch.observations, batch.size);
        let params = &self.params;
        self.actor
            .forward(isa, params, obs, n, &mut self.actor_trace);
        self.critic
            .forward(isa, params, obs, n, &mut self.critic_trace);
        let logits = Rows::of(&self.actor, &self.actor_trace);
        policy_loss(
            config,
            batch,
            logits,
            &mut self.grad_logits,
            &mut self.diagnostics,
        );
        let values = Rows::of(&self.critic, &self.critic_trace);
        value_loss(
            config,
            batch,
            values,
            &mut self.grad_values,
            &mut self.diagnostics,
        );
        let (actor, critic) = (&self.actor, &self.critic);
        actor.backward(
            isa,
            &self.params,
            obs,
            &mut self.actor_trace,
            &self.grad_logits,
            &mut self.grads,
        );
        critic.backward(
            isa,
            &self.params,
            obs,
            &mut self.critic_trace,
            &self.grad_values,
            &mut self.grads,
        );
    }
}

/// A network's outputs: rows of `stride` values, the first `width` of them used.
#[derive(Clone, Copy)]
struct Rows<'a> {
    data: &'a [f32],
    width: usize,
    stride: usize,
}

impl<'a> Rows<'a> {
    fn of(net: &FusedMlp, trace: &'a Trace) -> Self {
        Self {
            data: trace.output(),
            width: net.output_size(),
            stride: net.output_stride(),
        }
    }

    fn row(&self, r: usize) -> &'a [f32] {
        &self.data[r * self.stride..][..self.width]
    }
}

/// The policy loss `-mean(min(rho A, clip(rho) A)) - ent_coef * entropy` of a minibatch, from
/// the actor's logits: writes its gradient with respect to the logits (rows of the same
/// stride) into `grad` and records ratios, log-probabilities and the objective.
fn policy_loss(
    config: &PpoConfig,
    batch: &Minibatch,
    logits: Rows,
    grad: &mut Vec<f32>,
    diagnostics: &mut Diagnostics,
) {
    let (n, a) = (batch.size, logits.width);
    let inv_n = 1.0 / n as f32;
    let (low, high) = (
        1.0 - config.clip_range as f32,
        1.0 + config.clip_range as f32,
    );
    let ent_coef = config.ent_coef as f32;
    grad.clear();
    grad.resize(n * logits.stride, 0.0);
    let mut objective = 0.0f32;
    let start = diagnostics.log_probs.len();
    for r in 0..n {
        let row = logits.row(r);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_norm = max + row.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
        diagnostics
            .log_probs
            .extend(row.iter().map(|&l| l - log_norm));
        let log_probs = &diagnostics.log_probs[start + r * a..][..a];
        let action = batch.actions[r];
        let ratio = (log_probs[action] - batch.old_log_probs[r]).exp();
        let advantage = batch.advantages[r];
        let surrogate = ratio * advantage;
        let clipped = ratio.clamp(low, high) * advantage;
        objective += surrogate.min(clipped);
        diagnostics.ratios.push(ratio);
        // d(loss)/d(log pi(a)): the minimum's gradient flows through the unclipped term
        // only (the clipped one is flat where it is the smaller).
        let d_ratio = if surrogate <= clipped { advantage } else { 0.0 };
        let d_log_prob = -inv_n * d_ratio * ratio;
        let g = &mut grad[r * logits.stride..][..a];
        // d(log pi(a))/d(logit j) = [j = a] - p_j.
        for (j, (g, &lp)) in g.iter_mut().zip(log_probs).enumerate() {
            let indicator = if j == action { 1.0 } else { 0.0 };
            *g = d_log_prob * (indicator - lp.exp());
        }
        if ent_coef != 0.0 {
            // d(sum p log p)/d(logit j) = p_j (log p_j - sum p log p).
            let p_log_p: f32 = log_probs.iter().map(|&lp| lp.exp() * lp).sum();
            for (g, &lp) in g.iter_mut().zip(log_probs) {
                *g += ent_coef * inv_n * lp.exp() * (lp - p_log_p);
            }
        }
    }
    diagnostics.objectives.push(objective * inv_n);
}

/// `vf_coef` times the value loss `mean((R - V)^2)` (with `V` optionally clipped around the
/// rollout's value), from the critic's outputs: writes its gradient with respect to them into
/// `grad` and records the value loss.
fn value_loss(
    config: &PpoConfig,
    batch: &Minibatch,
    values: Rows,
    grad: &mut Vec<f32>,
    diagnostics: &mut Diagnostics,
) {
    let n = batch.size;
    let scale = config.vf_coef as f32 * 2.0 / n as f32;
    grad.clear();
    grad.resize(n * values.stride, 0.0);
    let mut loss = 0.0f32;
    for r in 0..n {
        let mut value = values.row(r)[0];
        let mut slope = 1.0;
        if let (Some(c), Some(old)) = (config.clip_range_vf, &batch.old_values) {
            let c = c as f32;
            let change = value - old[r];
            slope = if change.abs() <= c { 1.0 } else { 0.0 };
            value = old[r] + change.clamp(-c, c);
        }
        let error = value - batch.returns[r];
        loss += error * error;
        grad[r * values.stride] = scale * error * slope;
    }
    diagnostics.value_losses.push(loss / n as f32);
}

// ---------------------------------------------------------------------------------------------
// Through Burn
// ---------------------------------------------------------------------------------------------

/// The networks as Burn modules on the training device, differentiated by autodiff.
pub(super) struct BurnLearner {
    model: ActorCritic,
    device: Device,
    /// Per-minibatch results kept on the device until the update ends: one read, not one per
    /// minibatch.
    pending: Vec<(usize, PolicyTensors, Tensor<1>)>,
}

/// What the policy loss reports, on the device.
struct PolicyTensors {
    ratio: Tensor<2>,
    log_probs: Tensor<2>,
    objective: Tensor<1>,
}

impl BurnLearner {
    fn step(
        &mut self,
        batch: &Minibatch,
        config: &PpoConfig,
        lr: f64,
        adam: &mut Adam,
    ) -> Result<(), AgentError> {
        let (model, device) = (&self.model, &self.device);
        let ((mut grads, policy), (value_grads, value_loss)) = on_two_threads(
            || policy_loss_gradients(&model.actor, batch, config, device),
            || value_loss_gradients(&model.critic, batch, config, device),
        );
        move_gradients(value_grads, &mut grads, &model.critic);
        self.model = adam.step(lr, self.model.clone(), grads)?;
        self.pending.push((batch.size, policy, value_loss));
        Ok(())
    }

    fn finish(self) -> Result<(ActorCritic, Diagnostics), AgentError> {
        let mut d = Diagnostics::default();
        let (mut ratios, mut log_probs, mut objectives, mut value_losses) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (size, policy, value_loss) in self.pending {
            d.sizes.push(size);
            ratios.push(policy.ratio);
            log_probs.push(policy.log_probs);
            objectives.push(policy.objective);
            value_losses.push(value_loss);
        }
        if !d.sizes.is_empty() {
            d.ratios = read_f32(Tensor::cat(ratios, 0))?;
            d.log_probs = read_f32(Tensor::cat(log_probs, 0))?;
            d.objectives = read_f32(Tensor::cat(objectives, 0))?;
            d.value_losses = read_f32(Tensor::cat(value_losses, 0))?;
        }
        Ok((self.model, d))
    }
}

/// Runs `a` and `b`, on two threads when rayon has two. The policy and the value network share
/// no parameter, so their losses are differentiated separately; the result does not depend on
/// the number of threads.
fn on_two_threads<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    rayon::join(a, b)
}

impl Minibatch {
    fn observations(&self, device: &Device) -> Tensor<2> {
        let data = TensorData::new(
            self.observations.clone(),
            [self.size, self.observation_size],
        );
        Tensor::from_data(data, device)
    }

    /// Per-sample values as a `[size, 1]` column, the shape the networks' outputs come in.
    fn column(&self, values: &[f32], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), [self.size, 1]), device)
    }
}

/// Gradients of the policy's loss: minus the clipped surrogate objective, minus the entropy
/// bonus.
fn policy_loss_gradients(
    actor: &crate::Mlp,
    batch: &Minibatch,
    config: &PpoConfig,
    device: &Device,
) -> (GradientsParams, PolicyTensors) {
    let actions: Vec<i64> = batch.actions.iter().map(|&a| a as i64).collect();
    let actions = Tensor::<2, Int>::from_data(TensorData::new(actions, [batch.size, 1]), device);
    let old_log_probs = batch.column(&batch.old_log_probs, device);
    let advantages = batch.column(&batch.advantages, device);

    let log_probs = log_softmax(actor.forward(batch.observations(device)), 1);
    let ratio = (log_probs.clone().gather(1, actions) - old_log_probs).exp();

    // Clipped surrogate objective (maximised).
    let clip = config.clip_range;
    let surrogate = ratio.clone() * advantages.clone();
    let clipped = ratio.clone().clamp(1.0 - clip, 1.0 + clip) * advantages;
    let objective = surrogate.min_pair(clipped).mean();

    let mut loss = objective.clone().neg();
    if config.ent_coef != 0.0 {
        // - ent_coef * entropy, with entropy = -sum(p log p).
        let p_log_p = (log_probs.clone().exp() * log_probs.clone())
            .sum_dim(1)
            .mean();
        loss = loss + p_log_p.mul_scalar(config.ent_coef);
    }
    let grads = GradientsParams::from_grads(loss.backward(), actor);
    let diagnostics = PolicyTensors {
        ratio: ratio.inner(),
        log_probs: log_probs.inner(),
        objective: objective.inner(),
    };
    (grads, diagnostics)
}

/// Gradients of `vf_coef` times the value loss, the squared error of the value prediction
/// (optionally clipped around the rollout's value) against the returns; and that loss.
fn value_loss_gradients(
    critic: &crate::Mlp,
    batch: &Minibatch,
    config: &PpoConfig,
    device: &Device,
) -> (GradientsParams, Tensor<1>) {
    let returns = batch.column(&batch.returns, device);
    let mut values = critic.forward(batch.observations(device));
    if let (Some(c), Some(old)) = (config.clip_range_vf, &batch.old_values) {
        let old = batch.column(old, device);
        values = old.clone() + (values - old).clamp(-c, c);
    }
    let value_loss = (returns - values).square().mean();
    let loss = value_loss.clone().mul_scalar(config.vf_coef);
    (
        GradientsParams::from_grads(loss.backward(), critic),
        value_loss.inner(),
    )
}

/// Moves the gradients of `module`'s parameters from `from` into `into`.
fn move_gradients<M: Module>(mut from: GradientsParams, into: &mut GradientsParams, module: &M) {
    struct Move<'a> {
        from: &'a mut GradientsParams,
        into: &'a mut GradientsParams,
    }
    impl ModuleVisitor for Move<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.from.remove::<D>(param.id) {
                self.into.register(param.id, g);
            }
        }
    }
    module.visit(&mut Move {
        from: &mut from,
        into,
    });
}

#[cfg(test)]
mod tests {
    use ratchet_env::Rng;

    use super::*;
    use crate::fused::testing::{assert_gradients_match, burn_gradients};
    use crate::network::{Mlp, MlpConfig};
    use crate::optim::AdamConfig;

    /// A minibatch whose ratios fall on both sides of the clipping range.
    fn minibatch(rng: &mut Rng, size: usize, k: usize, actions: usize) -> Minibatch {
        let mut draw = |n: usize, scale: f64| -> Vec<f32> {
            (0..n).map(|_| (rng.normal() * scale) as f32).collect()
        };
        let observations = draw(size * k, 1.0);
        let old_log_probs = draw(size, 0.3)
            .iter()
            .map(|x| x - (actions as f32).ln())
            .collect();
        let (advantages, returns, old_values) = (draw(size, 1.0), draw(size, 2.0), draw(size, 0.5));
        Minibatch {
            size,
            observation_size: k,
            observations,
            actions: (0..size).map(|i| i % actions).collect(),
            old_log_probs,
            advantages,
            returns,
            old_values: Some(old_values),
        }
    }

    #[test]
    fn host_gradients_match_burns_autodiff() {
        let device = crate::device(crate::DeviceKind::Cpu).unwrap().autodiff();
        let mut rng = Rng::seed_from(8);
        for (k, actions, ent_coef, clip_range_vf) in [(4, 2, 0.0, None), (7, 3, 0.01, Some(0.2))] {
            let config = PpoConfig {
                ent_coef,
                clip_range_vf,
                ..PpoConfig::default()
            };
            let net = |out: usize, rng: &mut Rng| {
                Mlp::new(&MlpConfig::new(k, vec![64, 64], out), &device, rng)
            };
            let model = ActorCritic {
                actor: net(actions, &mut rng),
                critic: net(1, &mut rng),
            };
            let batch = minibatch(&mut rng, 64, k, actions);

            let (mut grads, _) = policy_loss_gradients(&model.actor, &batch, &config, &device);
            let (value_grads, _) = value_loss_gradients(&model.critic, &batch, &config, &device);
            move_gradients(value_grads, &mut grads, &model.critic);
            let burn = burn_gradients(&model, grads);

            let mut adam = Adam::new(AdamConfig::default());
            let mut host = HostLearner::new(&model, &mut adam, config.arithmetic).unwrap();
            host.gradients(&batch, &config);
            let what = format!("{k} inputs, {actions} actions, ent_coef {ent_coef}");
            assert_gradients_match(&host.grads, &burn, &what);
            let ratios = &host.diagnostics.ratios;
            assert!(
                ratios.iter().any(|r| (r - 1.0).abs() > 0.2),
                "some ratios clip"
            );
        }
    }
}
