//! DQN's gradient steps of one learning phase: targets from the target network, the Huber
//! loss of the online network's Q-values, Adam.
//!
//! As for PPO, two ways to run them, picked by [`Learner::new`]: small networks on the CPU
//! train on the host ([`crate::fused`]), everything else through Burn's autodiff on the
//! training device. The tests hold the host gradients to Burn's.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::DqnConfig;
use crate::AgentError;
use crate::fused::{self, FusedMlp, Trace};
use crate::isa::Isa;
use crate::network::Mlp;
use crate::optim::Adam;
use crate::replay::ReplayBatch;
use crate::state::{module_tensors, read_f32};

/// A learning phase's minibatches (`steps` of `size` transitions, one after another) and the
/// networks: runs the phase's gradient steps; [`Learner::finish`] hands back the trained
/// Q-network and the per-step losses and mean Q-values.
pub(super) enum Learner<'a> {
    Host(Box<HostLearner<'a>>),
    Burn(Box<BurnLearner>),
}

/// Per gradient step: the loss and the mean Q-value of the actions taken.
pub(super) struct PhaseStats {
    pub(super) losses: Vec<f32>,
    pub(super) q_means: Vec<f32>,
}

impl<'a> Learner<'a> {
    /// The host path when the device is the CPU and the network is small enough for it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        config: &DqnConfig,
        batch: &'a ReplayBatch,
        q_network: &Mlp,
        target_network: &Mlp,
        adam: &mut Adam,
        (device, plain): (&Device, &Device),
        on_cpu: bool,
        widths: &[usize],
    ) -> Result<Self, AgentError> {
        Ok(if on_cpu && fused::fits(widths) {
            Learner::Host(Box::new(HostLearner::new(
                config,
                batch,
                q_network,
                target_network,
                adam,
            )?))
        } else {
            Learner::Burn(Box::new(BurnLearner {
                phase: PhaseBatch::upload(batch, config.gamma, device, plain),
                q_network: q_network.clone(),
                target_network: target_network.clone(),
                losses: Vec::new(),
                q_means: Vec::new(),
            }))
        })
    }

    /// Gradient step `j` of the phase: minibatch `j`, one Adam step.
    pub(super) fn step(
        &mut self,
        j: usize,
        config: &DqnConfig,
        adam: &mut Adam,
    ) -> Result<(), AgentError> {
        match self {
            Learner::Host(host) => {
                host.step(j, config, adam);
                Ok(())
            }
            Learner::Burn(burn) => burn.step(j, config, adam),
        }
    }

    /// `q_network` with the trained parameters, and the phase's statistics.
    pub(super) fn finish(
        self,
        q_network: Mlp,
        adam: &Adam,
    ) -> Result<(Mlp, PhaseStats), AgentError> {
        match self {
            Learner::Host(host) => {
                let stats = PhaseStats {
                    losses: host.losses,
                    q_means: host.q_means,
                };
                Ok((adam.write_parameters(q_network, &host.params, false), stats))
            }
            Learner::Burn(burn) => burn.finish(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// On the host
// ---------------------------------------------------------------------------------------------

/// The online network as a [`FusedMlp`], its parameters flat in Adam's layout; the target
/// network's outputs for the whole phase.
pub(super) struct HostLearner<'a> {
    isa: Isa,
    batch: &'a ReplayBatch,
    observation_size: usize,
    actions: usize,
    params: Vec<f32>,
    grads: Vec<f32>,
    online: FusedMlp,
    /// `Q_θ⁻(s')` of every transition of the phase, `[rows, output_stride]`: the target
    /// network does not change within a phase, so it runs over all of them at the start, its
    /// weights read once instead of once per gradient step (the same bits: each row is
    /// computed on its own).
    next_target: Vec<f32>,
    trace: Trace,
    next_online: Trace,
    grad_output: Vec<f32>,
    losses: Vec<f32>,
    q_means: Vec<f32>,
}

impl<'a> HostLearner<'a> {
    fn new(
        config: &DqnConfig,
        batch: &'a ReplayBatch,
        q_network: &Mlp,
        target_network: &Mlp,
        adam: &mut Adam,
    ) -> Result<Self, AgentError> {
        let (params, layout) = adam.parameters(q_network)?;
        let mut online = FusedMlp::new(&layout, "", q_network.activation)?;
        let mut target = online.clone();
        online.load(&params);
        let target_params: Vec<f32> = module_tensors(target_network, "")?
            .into_iter()
            .flat_map(|t| t.data.into_owned())
            .collect();
        target.load(&target_params);
        let (isa, k, stride) = (
            Isa::detect(config.arithmetic),
            online.input_size(),
            online.output_stride(),
        );
        let mut next_target = Vec::with_capacity(batch.len() * stride);
        let mut trace = Trace::default();
        for next in batch.next_observations.chunks(config.batch_size * k) {
            let rows = next.len() / k;
            target.forward(isa, &target_params, next, rows, &mut trace);
            next_target.extend_from_slice(&trace.output()[..rows * stride]);
        }
        let outputs = online.output_size();
        let actions = if config.dueling { outputs - 1 } else { outputs };
        Ok(Self {
            isa,
            batch,
            observation_size: k,
            actions,
            grads: vec![0.0; params.len()],
            params,
            online,
            next_target,
            trace,
            next_online: Trace::default(),
            grad_output: Vec::new(),
            losses: Vec::new(),
            q_means: Vec::new(),
        })
    }

    fn step(&mut self, j: usize, config: &DqnConfig, adam: &mut Adam) {
        self.gradients(j, config);
        adam.step_host(config.learning_rate, &self.grads, &mut self.params);
        self.online.load(&self.params);
    }

    /// The loss's gradients of gradient step `j` with respect to every parameter, into
    /// `self.grads`.
    fn gradients(&mut self, j: usize, config: &DqnConfig) {
        let (isa, size, k) = (self.isa, config.batch_size, self.observation_size);
        let stride = self.online.output_stride();
        let rows = j * size..(j + 1) * size;
        let b = self.batch;
        let observations = &b.observations[rows.start * k..rows.end * k];
        let next_observations = &b.next_observations[rows.start * k..rows.end * k];
        let (dueling, gamma) = (config.dueling, config.gamma as f32);

        // y = r + γ (1 − terminated) Q_θ⁻(s', a*), without gradients.
        if config.double_q {
            let params = &self.params;
            self.online
                .forward(isa, params, next_observations, size, &mut self.next_online);
        }
        let next_target = &self.next_target[rows.start * stride..rows.end * stride];
        let target_q = QValues::new(&self.online, next_target, dueling);
        let online_q = QValues::new(&self.online, self.next_online.output(), dueling);
        let mut targets = Vec::with_capacity(size);
        for (r, i) in rows.clone().enumerate() {
            let next_q = if config.double_q {
                target_q.at(r, argmax_q(&online_q, r, self.actions))
            } else {
                (0..self.actions)
                    .map(|a| target_q.at(r, a))
                    .fold(f32::NEG_INFINITY, f32::max)
            };
            let discount = gamma * (1.0 - b.terminated[i]);
            targets.push(b.rewards[i] + discount * next_q);
        }

        // Huber loss of Q_θ(s, a) − y, its gradient with respect to the network's outputs.
        self.online
            .forward(isa, &self.params, observations, size, &mut self.trace);
        let q = QValues::new(&self.online, self.trace.output(), dueling);
        self.grad_output.clear();
        self.grad_output.resize(size * stride, 0.0);
        let (mut loss, mut q_sum) = (0.0f32, 0.0f32);
        let inv_n = 1.0 / size as f32;
        for (r, (i, y)) in rows.zip(&targets).enumerate() {
            let action = b.actions[i] as usize;
            let value = q.at(r, action);
            let d = value - y;
            let quadratic = d.abs().min(1.0);
            loss += quadratic * (d.abs() - 0.5 * quadratic);
            q_sum += value;
            let slope = inv_n * d.clamp(-1.0, 1.0);
            let g = &mut self.grad_output[r * stride..][..stride];
            if dueling {
                // Q_a = V + A_a − mean(A).
                g[0] = slope;
                let share = slope / self.actions as f32;
                for (a, g) in g[1..=self.actions].iter_mut().enumerate() {
                    *g = if a == action { slope - share } else { -share };
                }
            } else {
                g[action] = slope;
            }
        }
        self.losses.push(loss * inv_n);
        self.q_means.push(q_sum * inv_n);
        let (online, trace) = (&self.online, &mut self.trace);
        let (params, grad_output) = (&self.params, &self.grad_output);
        online.backward(
            isa,
            params,
            observations,
            trace,
            grad_output,
            &mut self.grads,
        );
    }
}

/// Q-values read from a network's last outputs: the outputs themselves, or with a dueling
/// head `[V, A_1 .. A_n]`, `V + A_a − mean(A)`.
struct QValues<'a> {
    outputs: &'a [f32],
    stride: usize,
    width: usize,
    dueling: bool,
}

impl<'a> QValues<'a> {
    /// `outputs`: rows of `net`'s outputs, as in [`Trace::output`].
    fn new(net: &FusedMlp, outputs: &'a [f32], dueling: bool) -> Self {
        Self {
            outputs,
            stride: net.output_stride(),
            width: net.output_size(),
            dueling,
        }
    }

    fn at(&self, row: usize, action: usize) -> f32 {
        let out = &self.outputs[row * self.stride..][..self.width];
        if !self.dueling {
            return out[action];
        }
        let mean = out[1..].iter().sum::<f32>() / (self.width - 1) as f32;
        out[0] + out[1 + action] - mean
    }
}

/// The first action of the largest Q-value in `row`.
fn argmax_q(q: &QValues, row: usize, actions: usize) -> usize {
    (1..actions).fold(0, |best, a| {
        if q.at(row, a) > q.at(row, best) {
            a
        } else {
            best
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Through Burn
// ---------------------------------------------------------------------------------------------

/// The networks as Burn modules, the phase's minibatches uploaded in one go.
pub(super) struct BurnLearner {
    phase: PhaseBatch,
    q_network: Mlp,
    target_network: Mlp,
    /// Kept on the device until the phase ends: one read, not one per gradient step.
    losses: Vec<Tensor<1>>,
    q_means: Vec<Tensor<1>>,
}

impl BurnLearner {
    fn step(&mut self, j: usize, config: &DqnConfig, adam: &mut Adam) -> Result<(), AgentError> {
        let (grads, loss, q) = self.gradients(j, config);
        self.q_network = adam.step(config.learning_rate, self.q_network.clone(), grads)?;
        self.losses.push(loss);
        self.q_means.push(q.mean());
        Ok(())
    }

    /// The gradients of gradient step `j`, its loss and the Q-values of the actions taken.
    fn gradients(&self, j: usize, config: &DqnConfig) -> (GradientsParams, Tensor<1>, Tensor<2>) {
        let (size, dueling, phase) = (config.batch_size, config.dueling, &self.phase);
        let rows = |t: &Tensor<2>| t.clone().narrow(0, j * size, size);
        // y = r + γ (1 − terminated) Q_θ⁻(s', a*), without gradients.
        let next_observations = rows(&phase.next_observations);
        let next_q = q_values(&self.target_network, next_observations.clone(), dueling);
        let next_q = if config.double_q {
            let online = self.q_network.valid();
            let best = q_values(&online, next_observations, dueling).argmax(1);
            next_q.gather(1, best)
        } else {
            next_q.max_dim(1)
        };
        let y = rows(&phase.rewards) + rows(&phase.discounts) * next_q;
        // Huber loss of Q_θ(s, a) − y, one Adam step.
        let actions = phase.actions.clone().narrow(0, j * size, size);
        let q = q_values(&self.q_network, rows(&phase.observations), dueling).gather(1, actions);
        let loss = huber(q.clone() - y.autodiff()).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &self.q_network);
        (grads, loss.inner(), q.inner())
    }

    fn finish(self) -> Result<(Mlp, PhaseStats), AgentError> {
        let stats = PhaseStats {
            losses: read_f32(Tensor::cat(self.losses, 0))?,
            q_means: read_f32(Tensor::cat(self.q_means, 0))?,
        };
        Ok((self.q_network, stats))
    }
}

/// A learning phase's minibatches on the device, one after another: the observations (and
/// actions) on the autodiff device, the rest on the plain one.
struct PhaseBatch {
    observations: Tensor<2>,
    actions: Tensor<2, Int>,
    next_observations: Tensor<2>,
    rewards: Tensor<2>,
    /// `γ (1 − terminated)`.
    discounts: Tensor<2>,
}

impl PhaseBatch {
    fn upload(batch: &ReplayBatch, gamma: f64, device: &Device, plain: &Device) -> Self {
        let (n, k) = (batch.len(), batch.observations.len() / batch.len().max(1));
        let column = |data: Vec<f32>| Tensor::<2>::from_data(TensorData::new(data, [n, 1]), plain);
        let actions: Vec<i64> = batch.actions.iter().map(|&a| a as i64).collect();
        Self {
            observations: Tensor::from_data(
                TensorData::new(batch.observations.clone(), [n, k]),
                device,
            ),
            actions: Tensor::from_data(TensorData::new(actions, [n, 1]), device),
            next_observations: Tensor::from_data(
                TensorData::new(batch.next_observations.clone(), [n, k]),
                plain,
            ),
            rewards: column(batch.rewards.clone()),
            discounts: column(
                batch
                    .terminated
                    .iter()
                    .map(|t| gamma as f32 * (1.0 - t))
                    .collect(),
            ),
        }
    }
}

/// Q-values of a batch of observations; with a dueling head the network's outputs are
/// `[V, A_1 .. A_n]` and `Q = V + A - mean(A)`.
fn q_values(net: &Mlp, obs: Tensor<2>, dueling: bool) -> Tensor<2> {
    let out = net.forward(obs);
    if !dueling {
        return out;
    }
    let actions = out.dims()[1] - 1;
    let value = out.clone().narrow(1, 0, 1);
    let advantage = out.narrow(1, 1, actions);
    value + advantage.clone() - advantage.mean_dim(1)
}

/// Huber loss with threshold 1, elementwise (PyTorch's `smooth_l1_loss`, which SB3 uses):
/// `d² / 2` where `|d| < 1`, `|d| - 1/2` elsewhere.
fn huber(d: Tensor<2>) -> Tensor<2> {
    let abs = d.abs();
    let quadratic = abs.clone().clamp_max(1.0);
    quadratic.clone() * (abs - quadratic.mul_scalar(0.5))
}

#[cfg(test)]
mod tests {
    use ratchet_env::Rng;

    use super::*;
    use crate::fused::testing::{assert_gradients_match, burn_gradients};
    use crate::network::{Activation, MlpConfig};
    use crate::optim::AdamConfig;

    #[test]
    fn host_gradients_match_burns_autodiff() {
        let device = crate::device(crate::DeviceKind::Cpu).unwrap().autodiff();
        let plain = device.clone().without_autodiff();
        let mut rng = Rng::seed_from(6);
        let (k, actions, size) = (5, 3, 32);
        for (double_q, dueling) in [(true, false), (false, false), (true, true)] {
            let config = DqnConfig {
                double_q,
                dueling,
                batch_size: size,
                gradient_steps: 2,
                ..DqnConfig::default()
            };
            let outputs = if dueling { actions + 1 } else { actions };
            let net_config =
                MlpConfig::new(k, vec![48, 40], outputs).with_activation(Activation::Relu);
            let q_network = Mlp::new(&net_config, &device, &mut rng);
            let target_network = Mlp::new(&net_config, &device, &mut rng).valid();
            let n = 2 * size;
            let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
            let batch = ReplayBatch {
                observations: draw(n * k),
                next_observations: draw(n * k),
                actions: (0..n).map(|i| (i % actions) as u32).collect(),
                rewards: draw(n),
                terminated: (0..n).map(|i| (i % 5 == 0) as u8 as f32).collect(),
            };
            let burn = BurnLearner {
                phase: PhaseBatch::upload(&batch, config.gamma, &device, &plain),
                q_network: q_network.clone(),
                target_network: target_network.clone(),
                losses: Vec::new(),
                q_means: Vec::new(),
            };
            let mut adam = Adam::new(AdamConfig::default());
            let mut host =
                HostLearner::new(&config, &batch, &q_network, &target_network, &mut adam).unwrap();
            for j in 0..2 {
                let (grads, loss, _) = burn.gradients(j, &config);
                let want = burn_gradients(&q_network, grads);
                host.gradients(j, &config);
                let what = format!("double {double_q}, dueling {dueling}, step {j}");
                assert_gradients_match(&host.grads, &want, &what);
                let loss = read_f32(loss).unwrap()[0];
                assert!(
                    (host.losses[j] - loss).abs() <= 1e-5 * loss.abs(),
                    "{what}: loss"
                );
            }
        }
    }
}
