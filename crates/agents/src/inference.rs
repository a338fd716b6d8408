//! Burn-free inference: the weights of an [`Mlp`] copied into plain `f32` vectors.
//!
//! Used wherever a network is evaluated one observation at a time (rollouts, epsilon-greedy
//! exploration, backtests, serving): the default trading network (112x64x64x3) costs a few
//! hundred nanoseconds per observation here, against tens of microseconds of tensor dispatch
//! for the same work through Burn.
//!
//! ```
//! use ratchet_agents::{Arithmetic, InferenceMlp, Mlp, MlpConfig, argmax, device, DeviceKind};
//! use ratchet_env::Rng;
//!
//! let net = Mlp::new(&MlpConfig::new(4, vec![16], 2), &device(DeviceKind::Cpu).unwrap(), &mut Rng::seed_from(3));
//! let policy = InferenceMlp::from_mlp(&net, Arithmetic::Exact).unwrap();
//! let mut logits = [0.0f32; 2];
//! policy.forward(&[0.1, 0.0, -0.2, 0.3], &mut logits);
//! let action = argmax(&logits);
//! assert!(action < 2);
//! ```

use ratchet_env::{Env, Rng};

use crate::AgentError;
use crate::dense::Dense;
use crate::isa::{Arithmetic, Isa};
use crate::network::{Activation, Mlp};
use crate::state::{NamedTensor, join, module_tensors};

/// Layers up to this wide (padded) are evaluated without touching the heap.
const STACK_WIDTH: usize = 256;

/// An MLP evaluated on plain `f32` slices by [`Dense`] layers (AVX-512, AVX2 or portable,
/// picked at run time, the same bits from each); no allocation per call for layers up to 256
/// units wide.
#[derive(Clone, Debug, PartialEq)]
pub struct InferenceMlp {
    layers: Vec<Dense>,
    activation: Activation,
    arithmetic: Arithmetic,
}

impl InferenceMlp {
    /// Copies the weights out of `mlp` (one read per parameter tensor; fails only if the device
    /// cannot be read).
    pub fn from_mlp(mlp: &Mlp, arithmetic: Arithmetic) -> Result<Self, AgentError> {
        Self::from_tensors(&module_tensors(mlp, "")?, "", mlp.activation, arithmetic)
    }

    /// Builds the network from tensors named `{prefix}.layers.{i}.weight` / `.bias` (the names
    /// [`module_tensors`] gives an [`Mlp`]); `prefix` may be empty. `arithmetic` is the one
    /// the network was trained with: the same bits as the training pass.
    pub fn from_tensors(
        tensors: &[NamedTensor],
        prefix: &str,
        activation: Activation,
        arithmetic: Arithmetic,
    ) -> Result<Self, AgentError> {
        let find = |name: String| tensors.iter().find(|t| t.name == name);
        let mut layers = Vec::new();
        while let Some(w) = find(join(prefix, &format!("layers.{}.weight", layers.len()))) {
            let i = layers.len();
            let bias_name = join(prefix, &format!("layers.{i}.bias"));
            let b = find(bias_name.clone())
                .ok_or_else(|| AgentError::State(format!("missing tensor '{bias_name}'")))?;
            let [inputs, outputs] = w.shape[..] else {
                return Err(AgentError::State(format!(
                    "tensor '{}' has shape {:?}, expected a matrix",
                    w.name, w.shape
                )));
            };
            if b.shape != [outputs] {
                return Err(AgentError::State(format!(
                    "tensor '{}' has shape {:?}, expected [{outputs}]",
                    b.name, b.shape
                )));
            }
            if let Some(prev) = layers.last().map(|l: &Dense| l.outputs)
                && prev != inputs
            {
                return Err(AgentError::State(format!(
                    "tensor '{}' takes {inputs} inputs but the previous layer gives {prev}",
                    w.name
                )));
            }
            layers.push(Dense::new(inputs, outputs, &w.data, &b.data));
        }
        if layers.is_empty() {
            return Err(AgentError::State(format!(
                "no tensor named '{}'",
                join(prefix, "layers.0.weight")
            )));
        }
        Ok(Self {
            layers,
            activation,
            arithmetic,
        })
    }

    pub fn input_size(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn output_size(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// Evaluates one observation (`input_size()` floats) into `out` (`output_size()` floats):
    /// a few hundred nanoseconds for the default trading network (112x64x64x3).
    pub fn forward(&self, obs: &[f32], out: &mut [f32]) {
        self.forward_batch(obs, 1, out);
    }

    /// Evaluates `n` observations stored one after another; writes `n * output_size()` floats.
    pub fn forward_batch(&self, obs: &[f32], n: usize, out: &mut [f32]) {
        self.forward_with(Isa::detect(self.arithmetic), obs, n, out);
    }

    /// [`forward_batch`](Self::forward_batch) compiled for `isa`: every layer of every row in
    /// one [`Isa::run`] call, each row on its own (the same bits as the training pass over a
    /// whole minibatch, tested).
    pub(crate) fn forward_with(&self, isa: Isa, obs: &[f32], n: usize, out: &mut [f32]) {
        assert_eq!(obs.len(), n * self.input_size(), "observation length");
        assert_eq!(out.len(), n * self.output_size(), "output length");
        let width = self.layers.iter().map(|l| l.stride).max().unwrap_or(0);
        let mut stack = [0.0f32; 2 * STACK_WIDTH];
        let mut heap = Vec::new();
        let scratch = if width <= STACK_WIDTH {
            &mut stack[..2 * width]
        } else {
            heap.resize(2 * width, 0.0);
            &mut heap[..]
        };
        let (mut a, mut b) = scratch.split_at_mut(width);
        let last = self.layers.len() - 1;
        let rows = obs
            .chunks_exact(self.input_size())
            .zip(out.chunks_exact_mut(self.output_size()));
        isa.run(
            #[inline(always)]
            || {
                for (x, y) in rows {
                    for (i, layer) in self.layers.iter().enumerate() {
                        let input: &[f32] = if i == 0 { x } else { &a[..layer.inputs] };
                        let activation = (i < last).then_some(self.activation);
                        layer.apply(isa, input, b, activation);
                        std::mem::swap(&mut a, &mut b);
                    }
                    y.copy_from_slice(&a[..y.len()]);
                }
            },
        )
    }
}

/// Index of the largest value (the first one on ties); 0 for an empty slice.
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Mean return of `episodes` greedy episodes of `policy` (argmax of its outputs) in `env`,
/// episode starts drawn from `rng`: the evaluation rl-zoo runs on CartPole.
pub fn greedy_return(
    policy: &InferenceMlp,
    env: &mut impl Env,
    episodes: usize,
    rng: &mut Rng,
) -> f64 {
    let mut obs = vec![0.0f32; env.observation_size()];
    let mut out = vec![0.0f32; policy.output_size()];
    let mut total = 0.0;
    for _ in 0..episodes {
        env.reset(rng, &mut obs);
        loop {
            policy.forward(&obs, &mut out);
            let step = env.step(argmax(&out), &mut obs);
            total += step.reward as f64;
            if step.done() {
                break;
            }
        }
    }
    total / episodes.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::{flatten, random_layers};
    use crate::fused::{FusedMlp, Trace};
    use ratchet_env::Rng;

    /// The plain loop the kernels must equal bit for bit: bias, then each input's product
    /// added in order.
    fn reference(tensors: &[NamedTensor], activation: Activation, x: &[f32]) -> Vec<f32> {
        let mut x = x.to_vec();
        let layers = tensors.len() / 2;
        for l in 0..layers {
            let (w, b) = (&tensors[2 * l], &tensors[2 * l + 1]);
            let outputs = w.shape[1];
            let mut y = b.data.to_vec();
            for (xi, row) in x.iter().zip(w.data.chunks_exact(outputs)) {
                for (yj, wij) in y.iter_mut().zip(row) {
                    *yj += xi * wij;
                }
            }
            if l + 1 < layers {
                activation.apply(&mut y);
            }
            x = y;
        }
        x
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_width_matches_the_plain_loop_bit_for_bit() {
        let mut rng = Rng::seed_from(11);
        // Widths below, at and beyond the 8- and 64-wide blocks, and past the stack scratch.
        for sizes in [
            vec![3, 1],
            vec![112, 64, 64, 3],
            vec![4, 256, 256, 2],
            vec![7, 65, 130, 9],
            vec![5, 300, 17],
        ] {
            for activation in [Activation::Tanh, Activation::Relu] {
                let tensors = random_layers(&sizes, &mut rng);
                let net = InferenceMlp::from_tensors(&tensors, "", activation, Arithmetic::Exact)
                    .unwrap();
                let n = 5;
                let obs: Vec<f32> = (0..n * sizes[0]).map(|_| rng.normal() as f32).collect();
                let mut out = vec![0.0; n * net.output_size()];
                net.forward_batch(&obs, n, &mut out);
                for (x, y) in obs.chunks(sizes[0]).zip(out.chunks(net.output_size())) {
                    let want = reference(&tensors, activation, x);
                    assert_eq!(bits(y), bits(&want), "{sizes:?} {activation:?}");
                }
            }
        }
    }

    /// One observation at a time (`forward`: backtests, `ratchet serve`, rollouts) gives the
    /// bits of the training pass over a whole minibatch (the blocked kernel), on every
    /// instruction set: the network that acts is exactly the one that is trained.
    #[test]
    fn one_row_gives_the_bits_of_the_minibatch_pass() {
        let mut rng = Rng::seed_from(12);
        for sizes in [
            vec![112, 64, 64, 3],
            vec![4, 64, 64, 2],
            vec![7, 65, 130, 9],
            vec![4, 256, 256, 2],
        ] {
            for activation in [Activation::Tanh, Activation::Relu] {
                let tensors = random_layers(&sizes, &mut rng);
                let net = InferenceMlp::from_tensors(&tensors, "", activation, Arithmetic::Exact)
                    .unwrap();
                let (layout, params) = flatten(&tensors);
                let mut fused = FusedMlp::new(&layout, "", activation).unwrap();
                fused.load(&params);
                let rows = 9;
                let obs: Vec<f32> = (0..rows * sizes[0]).map(|_| rng.normal() as f32).collect();
                let (n, stride) = (net.output_size(), fused.output_stride());
                let mut trace = Trace::default();
                let isas = [Arithmetic::Exact, Arithmetic::Fma]
                    .into_iter()
                    .flat_map(Isa::available);
                for isa in isas {
                    fused.forward(isa, &params, &obs, rows, &mut trace);
                    for (r, x) in obs.chunks_exact(sizes[0]).enumerate() {
                        let mut y = vec![f32::NAN; n];
                        net.forward_with(isa, x, 1, &mut y);
                        let want = &trace.output()[r * stride..][..n];
                        assert_eq!(
                            bits(&y),
                            bits(want),
                            "{sizes:?} {activation:?} {isa:?} row {r}"
                        );
                    }
                }
            }
        }
    }
}
