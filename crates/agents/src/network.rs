//! The multi-layer perceptron every agent is built from, as a plain Burn module.
//!
//! Weights are initialised from [`ratchet_env::Rng`] rather than Burn's generator, so a network
//! depends only on its seed (not on the backend, nor on other threads drawing from a global
//! generator): orthogonal matrices scaled by a gain, zero biases, as Stable-Baselines3 does.
//!
//! ```
//! use ratchet_agents::{Activation, Mlp, MlpConfig, device, DeviceKind};
//! use ratchet_env::Rng;
//! use burn::tensor::Tensor;
//!
//! let dev = device(DeviceKind::Cpu).unwrap();
//! let config = MlpConfig::new(4, vec![64, 64], 2);
//! let net = Mlp::new(&config, &dev, &mut Rng::seed_from(0));
//! let out = net.forward(Tensor::<2>::zeros([8, 4], &dev));
//! assert_eq!(out.dims(), [8, 2]);
//! ```

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData, activation};
use ratchet_env::Rng;
use serde::{Deserialize, Serialize};

use crate::isa::Isa;

/// The non-linearity between hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Stable-Baselines3's default for PPO.
    #[default]
    Tanh,
    /// Stable-Baselines3's default for DQN.
    Relu,
}

impl Activation {
    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Tanh => tanh_tensor(x),
            Activation::Relu => activation::relu(x),
        }
    }

    /// The same function applied in place to plain numbers (used by [`crate::InferenceMlp`]),
    /// bit for bit what the Burn network computes on the CPU, so that rollouts see exactly the
    /// network the update trains.
    #[inline(always)]
    pub fn apply(self, xs: &mut [f32]) {
        match self {
            Activation::Tanh => xs.iter_mut().for_each(|x| *x = tanh(*x)),
            Activation::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
        }
    }

    /// [`Activation::apply`] compiled for `isa`: the same bits, vectorised.
    pub(crate) fn apply_vectorised(self, isa: Isa, xs: &mut [f32]) {
        isa.run(
            #[inline(always)]
            || self.apply(xs),
        )
    }

    /// Turns `grads`, the gradients with respect to this activation's outputs `ys`, into those
    /// with respect to its inputs: times `1 - y^2` for tanh (the slope [`tanh_tensor`] attaches
    /// in Burn), zero where the output is not positive for ReLU. Compiled for `isa`.
    pub(crate) fn backward_vectorised(self, isa: Isa, ys: &[f32], grads: &mut [f32]) {
        let pairs = grads.iter_mut().zip(ys);
        isa.run(
            #[inline(always)]
            || match self {
                Activation::Tanh => pairs.for_each(|(g, y)| *g *= 1.0 - y * y),
                Activation::Relu => pairs.for_each(|(g, &y)| *g = if y > 0.0 { *g } else { 0.0 }),
            },
        )
    }
}

/// `tanh` as a ratio of two odd/even polynomials (a minimax fit on [-7.9, 7.9], beyond which
/// tanh rounds to +-1 in f32), without branches so that the compiler vectorises loops over it.
/// Within 8 ulp of the exact value (4e-7 at most, near +-1). Burn's CPU backend evaluates `tanh` with libm's scalar
/// `tanhf` and, in the backward pass, evaluates it again; on a 64x64 network that made
/// activations half the cost of a PPO update.
#[inline]
pub(crate) fn tanh(x: f32) -> f32 {
    const LIMIT: f32 = 7.905_311;
    let x = x.clamp(-LIMIT, LIMIT); // a NaN stays NaN
    let x2 = x * x;
    let p = x
        * (4.893_524_6e-3
            + x2 * (6.372_619_3e-4
                + x2 * (1.485_722_4e-5
                    + x2 * (5.122_297e-8
                        + x2 * (-8.604_672e-11 + x2 * (2.000_188e-13 + x2 * -2.760_768_5e-16))))));
    let q = 4.893_525e-3 + x2 * (2.268_434_6e-3 + x2 * (1.185_347_1e-4 + x2 * 1.198_258_4e-6));
    p / q
}

/// tanh on a Burn tensor, with its derivative `1 - tanh^2` supplied from the forward pass.
///
/// The value `y` is computed once, off the autodiff graph, and attached as `(x - x') d + y`,
/// where `x'` is `x` as a constant and `d = 1 - y^2`: the forward value is exactly `y`, and the
/// gradient flowing back to `x` is exactly `d`. On the CPU backend `y` comes from [`tanh`] over
/// the tensor's memory; elsewhere (a GPU) from `2 sigmoid(2x) - 1` on the device, so nothing
/// leaves it.
fn tanh_tensor<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let constant = x.clone().inner();
    let device = x.device();
    let (y, slope) = if device == Device::flex() {
        let dims = constant.dims();
        let mut y = constant
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .expect("a float tensor holds f32 on the CPU backend");
        Activation::Tanh.apply(&mut y);
        let slope: Vec<f32> = y.iter().map(|y| 1.0 - y * y).collect();
        let plain = device.clone().without_autodiff();
        (
            Tensor::<D>::from_data(TensorData::new(y, dims), &plain),
            Tensor::<D>::from_data(TensorData::new(slope, dims), &plain),
        )
    } else {
        let y = activation::sigmoid(constant.clone().mul_scalar(2.0))
            .mul_scalar(2.0)
            .sub_scalar(1.0);
        let slope = y.clone().square().neg().add_scalar(1.0);
        (y, slope)
    };
    if !x.is_tracked() {
        return if x.is_autodiff() { y.autodiff() } else { y };
    }
    (x - constant.autodiff()) * slope.autodiff() + y.autodiff()
}

/// Shape and initialisation of an [`Mlp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    pub input: usize,
    /// Widths of the hidden layers, e.g. `[64, 64]`.
    pub hidden: Vec<usize>,
    pub output: usize,
    pub activation: Activation,
    /// Gain of the orthogonal initialisation of hidden layers (SB3: `sqrt(2)`).
    pub hidden_gain: f64,
    /// Gain of the output layer (SB3: `0.01` for policy logits, `1` for values and Q-values).
    pub output_gain: f64,
}

impl MlpConfig {
    /// Tanh layers, hidden gain `sqrt(2)`, output gain 1.
    pub fn new(input: usize, hidden: Vec<usize>, output: usize) -> Self {
        Self {
            input,
            hidden,
            output,
            activation: Activation::Tanh,
            hidden_gain: std::f64::consts::SQRT_2,
            output_gain: 1.0,
        }
    }

    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    pub fn with_output_gain(mut self, gain: f64) -> Self {
        self.output_gain = gain;
        self
    }

    /// `[input, hidden.., output]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = Vec::with_capacity(self.hidden.len() + 2);
        w.push(self.input);
        w.extend(&self.hidden);
        w.push(self.output);
        w
    }
}

/// Fully connected layers with an activation between them (none after the last).
///
/// Parameter paths are `layers.{i}.weight` (shape `[in, out]`, Burn's layout, the transpose of
/// PyTorch's) and `layers.{i}.bias`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
    #[module(skip)]
    pub activation: Activation,
}

impl Mlp {
    /// Builds the network on `device` with weights drawn from `rng`.
    pub fn new(config: &MlpConfig, device: &Device, rng: &mut Rng) -> Self {
        let widths = config.widths();
        let last = widths.len() - 2;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let gain = if i == last {
                    config.output_gain
                } else {
                    config.hidden_gain
                };
                let weight = orthogonal(w[0], w[1], gain, rng);
                Linear {
                    weight: Param::from_data(TensorData::new(weight, [w[0], w[1]]), device),
                    bias: Some(Param::from_data(
                        TensorData::new(vec![0.0f32; w[1]], [w[1]]),
                        device,
                    )),
                }
            })
            .collect();
        Self {
            layers,
            activation: config.activation,
        }
    }

    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.activation.forward(x);
            }
        }
        x
    }

    pub fn input_size(&self) -> usize {
        self.layers[0].weight.val().dims()[0]
    }

    pub fn output_size(&self) -> usize {
        self.layers[self.layers.len() - 1].weight.val().dims()[1]
    }
}

/// A `rows x cols` matrix (row-major) with orthonormal columns (or rows, if wider than tall)
/// times `gain`: Gram–Schmidt on a standard normal matrix, which is what QR with the sign
/// correction of `torch.nn.init.orthogonal_` computes.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let (n, k) = (rows.max(cols), rows.min(cols));
    // k vectors of length n, orthonormalised in turn.
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(k);
    while q.len() < k {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        for _ in 0..2 {
            // Re-orthogonalising once more keeps the columns orthogonal to f64 precision.
            for u in &q {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-12 {
            v.iter_mut().for_each(|a| *a /= norm);
            q.push(v);
        }
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Tall: column c is q[c]; wide: row r is q[r].
            let x = if rows >= cols { q[c][r] } else { q[r][c] };
            out[r * cols + c] = (gain * x) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_within_8_ulp_and_saturates_cleanly() {
        let mut worst = 0.0f64;
        let mut x = -20.0f32;
        while x <= 20.0 {
            let exact = (x as f64).tanh();
            let got = tanh(x) as f64;
            let ulp = (exact.abs() as f32).max(f32::MIN_POSITIVE);
            let ulp = (f32::from_bits(ulp.to_bits() + 1) - ulp) as f64;
            worst = worst.max((got - exact).abs() / ulp);
            x += 0.000_97;
        }
        assert!(worst <= 8.0, "worst error {worst} ulp");
        assert_eq!(tanh(0.0), 0.0);
        assert!((tanh(1e-30) / 1e-30 - 1.0).abs() < 1e-6);
        assert_eq!((tanh(100.0), tanh(-1e30)), (1.0, -1.0));
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn orthogonal_columns_or_rows_are_orthonormal_times_gain() {
        let mut rng = Rng::seed_from(1);
        for (r, c) in [(4, 64), (64, 64), (64, 2)] {
            let w = orthogonal(r, c, 2.0, &mut rng);
            let k = r.min(c);
            for a in 0..k {
                for b in 0..k {
                    let dot: f64 = if r >= c {
                        (0..r)
                            .map(|i| w[i * c + a] as f64 * w[i * c + b] as f64)
                            .sum()
                    } else {
                        (0..c)
                            .map(|j| w[a * c + j] as f64 * w[b * c + j] as f64)
                            .sum()
                    };
                    let expected = if a == b { 4.0 } else { 0.0 };
                    assert!((dot - expected).abs() < 1e-4, "{r}x{c} ({a},{b}): {dot}");
                }
            }
        }
    }
}
