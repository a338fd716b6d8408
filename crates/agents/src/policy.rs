//! Burn-free inference: the weights of an [`Mlp`] copied into plain `f32` vectors.
//!
//! Used wherever a network is evaluated one observation at a time (rollouts, epsilon-greedy
//! exploration, backtests): a 64x64 MLP costs about a microsecond here, against tens of
//! microseconds of tensor dispatch for the same work through Burn.
//!
//! ```
//! use ratchet_agents::{InferenceMlp, Mlp, MlpConfig, argmax, device, DeviceKind};
//! use ratchet_env::Rng;
//!
//! let net = Mlp::new(&MlpConfig::new(4, vec![16], 2), &device(DeviceKind::Cpu).unwrap(), &mut Rng::seed_from(3));
//! let policy = InferenceMlp::from_mlp(&net).unwrap();
//! let mut logits = [0.0f32; 2];
//! policy.forward(&[0.1, 0.0, -0.2, 0.3], &mut logits);
//! let action = argmax(&logits);
//! assert!(action < 2);
//! ```

use crate::AgentError;
use crate::network::{Activation, Mlp};
use crate::state::{NamedTensor, join, module_tensors};

#[derive(Clone, Debug, PartialEq)]
struct Dense {
    inputs: usize,
    outputs: usize,
    /// `[inputs, outputs]`, row-major (Burn's layout): row `i` holds input `i`'s weights.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// An MLP evaluated with plain loops over `f32` slices; no allocation per observation beyond
/// two scratch vectors per batch.
#[derive(Clone, Debug, PartialEq)]
pub struct InferenceMlp {
    layers: Vec<Dense>,
    activation: Activation,
}

impl InferenceMlp {
    /// Copies the weights out of `mlp` (one read per parameter tensor; fails only if the device
    /// cannot be read).
    pub fn from_mlp(mlp: &Mlp) -> Result<Self, AgentError> {
        Self::from_tensors(&module_tensors(mlp, "")?, "", mlp.activation)
    }

    /// Builds the network from tensors named `{prefix}.layers.{i}.weight` / `.bias` (the names
    /// [`module_tensors`] gives an [`Mlp`]); `prefix` may be empty.
    pub fn from_tensors(
        tensors: &[NamedTensor],
        prefix: &str,
        activation: Activation,
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
            layers.push(Dense {
                inputs,
                outputs,
                weight: w.data.clone(),
                bias: b.data.clone(),
            });
        }
        if layers.is_empty() {
            return Err(AgentError::State(format!(
                "no tensor named '{}'",
                join(prefix, "layers.0.weight")
            )));
        }
        Ok(Self { layers, activation })
    }

    pub fn input_size(&self) -> usize {
        self.layers[0].inputs
    }

    pub fn output_size(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// Evaluates one observation (`input_size()` floats) into `out` (`output_size()` floats).
    pub fn forward(&self, obs: &[f32], out: &mut [f32]) {
        self.forward_batch(obs, 1, out);
    }

    /// Evaluates `n` observations stored one after another; writes `n * output_size()` floats.
    pub fn forward_batch(&self, obs: &[f32], n: usize, out: &mut [f32]) {
        assert_eq!(obs.len(), n * self.input_size(), "observation length");
        assert_eq!(out.len(), n * self.output_size(), "output length");
        let width = self.layers.iter().map(|l| l.outputs).max().unwrap_or(0);
        let mut a = vec![0.0f32; width];
        let mut b = vec![0.0f32; width];
        let last = self.layers.len() - 1;
        for s in 0..n {
            let x = &obs[s * self.input_size()..(s + 1) * self.input_size()];
            for (i, layer) in self.layers.iter().enumerate() {
                let input: &[f32] = if i == 0 { x } else { &a[..layer.inputs] };
                let y = if i == last {
                    &mut out[s * layer.outputs..(s + 1) * layer.outputs]
                } else {
                    &mut b[..layer.outputs]
                };
                y.copy_from_slice(&layer.bias);
                for (xi, row) in input.iter().zip(layer.weight.chunks_exact(layer.outputs)) {
                    for (yj, wij) in y.iter_mut().zip(row) {
                        *yj += xi * wij;
                    }
                }
                if i < last {
                    self.activation.apply(y);
                    std::mem::swap(&mut a, &mut b);
                }
            }
        }
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
