//! Training small networks on the CPU without Burn: an [`Mlp`](crate::Mlp)'s forward and
//! backward passes over a whole minibatch as a few calls of the [`matmul`] kernel on plain
//! `f32` buffers.
//!
//! Why: on the networks these agents train on the CPU (64x64 for PPO, 256x256 for rl-zoo's
//! DQN), a minibatch is a few MFLOP, and Burn's autodiff spends far more than that on building
//! and walking its graph, dispatching each small operation and allocating its result. Here a
//! PPO minibatch (actor and critic, forward and backward) is ~30 µs and the matrix products run
//! near the cores' peak. The parameters stay flat, in [`Adam`](crate::Adam)'s layout, so an
//! optimizer step is one loop, and are written back to the Burn module once per update.
//!
//! The forward pass computes every output exactly as [`InferenceMlp`](crate::InferenceMlp)
//! does (the same sums in the same order, the same activation), so rollouts act with the very
//! function that is trained; gradients agree with Burn's to rounding (see the tests), and are
//! the same bits run to run and on every instruction set.

use crate::AgentError;
use crate::isa::{Arithmetic, Isa};
use crate::matmul::{Matrix, column_sums, matmul, matmul_transposed, padded, transpose};
use crate::network::Activation;

/// Networks whose layers are all at most this wide train here when the device is the CPU.
/// Beyond it a weight matrix no longer fits in a core's L2 cache next to its transpose, and
/// Burn's packed, multi-threaded products win.
pub(crate) const MAX_WIDTH: usize = 512;

/// Whether a network of these layer widths (`[input, hidden.., output]`) trains here.
pub(crate) fn fits(widths: &[usize]) -> bool {
    widths.iter().all(|&w| w <= MAX_WIDTH)
}

/// One layer's shape and the place of its parameters in the flat vector.
#[derive(Clone, Debug)]
struct Layer {
    inputs: usize,
    outputs: usize,
    /// `outputs` padded to whole vector lanes: the row length of activations and gradients.
    stride: usize,
    /// Offsets of the weight (`[inputs, outputs]`, row-major) and of the bias (`[outputs]`).
    weight: usize,
    bias: usize,
    input_gradient: InputGradient,
}

/// How the backward pass computes a layer's input gradient `dx = dz W^T`. The kernel reads
/// the right operand by rows, so one side needs a transpose.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InputGradient {
    /// The first layer: its input gradient is never needed.
    None,
    /// `dz` times a transposed copy of `W`, made when the parameters are loaded.
    TransposedWeight,
    /// `dx^T = W dz^T`: the minibatch's `dz` and `dx^T` are transposed instead, for a weight
    /// larger than both of them (DQN's 256x256: two 64x256 transposes of gradients still in
    /// cache, instead of a 256x256 copy written after every optimizer step and read back from
    /// L3, ~6% of the time).
    TransposedGradients,
}

/// The minibatch rows that [`InputGradient`] is chosen for: both agents' default.
const MINIBATCH_ROWS: usize = 64;

/// The layers of one MLP within a flat parameter vector, with the padded and transposed
/// copies of weights that the kernel reads.
#[derive(Clone, Debug)]
pub(crate) struct FusedMlp {
    layers: Vec<Layer>,
    activation: Activation,
    /// Per layer with padding columns (`stride > outputs`): weight `[inputs, stride]` and
    /// bias `[stride]`, zero-padded; empty for the other layers, which are read from the
    /// parameter vector itself. Per [`InputGradient::TransposedWeight`] layer: the transposed
    /// weight `[outputs, padded(inputs)]`. Refreshed by [`FusedMlp::load`].
    weights: Vec<Vec<f32>>,
    biases: Vec<Vec<f32>>,
    transposed: Vec<Vec<f32>>,
}

/// A forward pass's activations, kept for the backward pass, and the backward pass's scratch;
/// reused from one minibatch to the next.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trace {
    rows: usize,
    /// Per layer: `[rows, stride]`, after the activation for hidden layers.
    outputs: Vec<Vec<f32>>,
    /// Gradients with respect to a layer's output and input, swapped layer by layer.
    grad_out: Vec<f32>,
    grad_in: Vec<f32>,
    /// A layer's weight gradient, padded.
    weight_grad: Vec<f32>,
    /// [`InputGradient::TransposedGradients`]: `dz^T` and `dx^T`, `[_, padded(rows)]`.
    grad_out_t: Vec<f32>,
    grad_in_t: Vec<f32>,
}

impl Trace {
    /// The network's output of the last forward pass: `rows` rows of `stride` values.
    pub(crate) fn output(&self) -> &[f32] {
        self.outputs.last().map_or(&[], |o| &o[..])
    }
}

impl FusedMlp {
    /// The network whose parameters are named `{prefix}layers.{i}.weight` / `.bias` in
    /// `layout` (paths and shapes in flat order, as [`Adam`](crate::Adam) lists them);
    /// `prefix` is empty or ends in a dot.
    pub(crate) fn new(
        layout: &[(String, Vec<usize>)],
        prefix: &str,
        activation: Activation,
    ) -> Result<Self, AgentError> {
        let mut offsets = Vec::with_capacity(layout.len());
        let mut offset = 0;
        for (path, shape) in layout {
            offsets.push((path.as_str(), shape.as_slice(), offset));
            offset += shape.iter().product::<usize>();
        }
        let find = |name: String| offsets.iter().find(|(p, _, _)| *p == name).copied();
        let mut layers = Vec::new();
        while let Some((_, shape, weight)) = find(format!("{prefix}layers.{}.weight", layers.len()))
        {
            let bias_name = format!("{prefix}layers.{}.bias", layers.len());
            let (&[inputs, outputs], Some((_, &[bias_len], bias))) = (shape, find(bias_name))
            else {
                return Err(AgentError::State(format!(
                    "the network under '{prefix}' is not a stack of dense layers"
                )));
            };
            if bias_len != outputs {
                return Err(AgentError::State(format!(
                    "layer {} of '{prefix}' has {outputs} outputs and {bias_len} biases",
                    layers.len()
                )));
            }
            let input_gradient = match layers.len() {
                0 => InputGradient::None,
                _ if inputs * outputs > MINIBATCH_ROWS * (inputs + outputs) => {
                    InputGradient::TransposedGradients
                }
                _ => InputGradient::TransposedWeight,
            };
            layers.push(Layer {
                inputs,
                outputs,
                stride: padded(outputs),
                weight,
                bias,
                input_gradient,
            });
        }
        if layers.is_empty() {
            return Err(AgentError::State(format!(
                "no parameter named '{prefix}layers.0.weight'"
            )));
        }
        let zeros = |n: usize| vec![0.0f32; n];
        let padded_only = |l: &Layer, n: usize| zeros(if l.stride > l.outputs { n } else { 0 });
        Ok(Self {
            weights: layers
                .iter()
                .map(|l| padded_only(l, l.inputs * l.stride))
                .collect(),
            biases: layers.iter().map(|l| padded_only(l, l.stride)).collect(),
            transposed: layers
                .iter()
                .map(|l| match l.input_gradient {
                    InputGradient::TransposedWeight => zeros(l.outputs * padded(l.inputs)),
                    _ => Vec::new(),
                })
                .collect(),
            layers,
            activation,
        })
    }

    pub(crate) fn input_size(&self) -> usize {
        self.layers[0].inputs
    }

    pub(crate) fn output_size(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// Row length of [`Trace::output`] (the output size padded to whole lanes).
    pub(crate) fn output_stride(&self) -> usize {
        self.layers[self.layers.len() - 1].stride
    }

    /// Takes the current parameters from the flat vector: the vector that
    /// [`FusedMlp::forward`] is then given.
    pub(crate) fn load(&mut self, params: &[f32]) {
        // A copy, exact on any instruction set: the fastest one is used.
        let isa = Isa::detect(Arithmetic::Exact);
        for (i, l) in self.layers.iter().enumerate() {
            let weight = &params[l.weight..l.weight + l.inputs * l.outputs];
            if l.stride > l.outputs {
                for (row, w) in self.weights[i]
                    .chunks_exact_mut(l.stride)
                    .zip(weight.chunks_exact(l.outputs))
                {
                    row[..l.outputs].copy_from_slice(w);
                }
                self.biases[i][..l.outputs].copy_from_slice(&params[l.bias..l.bias + l.outputs]);
            }
            let weight = Matrix {
                data: weight,
                rows: l.inputs,
                cols: l.outputs,
                stride: l.outputs,
            };
            if l.input_gradient == InputGradient::TransposedWeight {
                transpose(isa, weight, &mut self.transposed[i], padded(l.inputs));
            }
        }
    }

    /// Layer `i`'s weight (`[inputs, stride]`, the padding columns zero) and bias
    /// (`[stride]`): the padded copies, or in place in `params` for a layer without padding
    /// (a 256x256 weight copied per gradient step was 2–3% of DQN's time).
    fn parameters<'p>(&'p self, i: usize, params: &'p [f32]) -> (Matrix<'p>, &'p [f32]) {
        let l = &self.layers[i];
        let (weight, bias) = match l.stride > l.outputs {
            true => (&self.weights[i][..], &self.biases[i][..]),
            false => (
                &params[l.weight..l.weight + l.inputs * l.outputs],
                &params[l.bias..l.bias + l.outputs],
            ),
        };
        (Matrix::dense(weight, l.inputs, l.stride), bias)
    }

    /// Evaluates `rows` inputs (`x`, one after another) and keeps the activations in `trace`;
    /// the result is [`Trace::output`]. `params` is the vector last given to
    /// [`FusedMlp::load`].
    pub(crate) fn forward(
        &self,
        isa: Isa,
        params: &[f32],
        x: &[f32],
        rows: usize,
        trace: &mut Trace,
    ) {
        assert_eq!(x.len(), rows * self.input_size(), "input length");
        trace.rows = rows;
        trace.outputs.resize_with(self.layers.len(), Vec::new);
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let (before, after) = trace.outputs.split_at_mut(i);
            let out = &mut after[0];
            out.resize(rows * l.stride, 0.0);
            let input = match i {
                0 => Matrix::dense(x, rows, l.inputs),
                _ => Matrix::dense(&before[i - 1], rows, self.layers[i - 1].stride),
            };
            let (weight, bias) = self.parameters(i, params);
            matmul(
                isa,
                input.columns(l.inputs),
                weight,
                Some(bias),
                out,
                l.stride,
            );
            if i < last {
                self.activation.apply_vectorised(isa, out);
            }
        }
    }

    /// Back-propagates `grad_output` (`[rows, output_stride]`, the loss's gradient with
    /// respect to the last forward pass's output; padding columns are ignored) through the
    /// network, writing the parameters' gradients into their places in `grads`. `params` is
    /// the vector of the forward pass.
    pub(crate) fn backward(
        &self,
        isa: Isa,
        params: &[f32],
        x: &[f32],
        trace: &mut Trace,
        grad_output: &[f32],
        grads: &mut [f32],
    ) {
        let rows = trace.rows;
        assert_eq!(x.len(), rows * self.input_size(), "input length");
        let Trace {
            outputs,
            grad_out,
            grad_in,
            weight_grad,
            grad_out_t,
            grad_in_t,
            ..
        } = trace;
        grad_out.clear();
        grad_out.extend_from_slice(&grad_output[..rows * self.output_stride()]);
        for (i, l) in self.layers.iter().enumerate().rev() {
            let dz = Matrix::dense(grad_out, rows, l.stride);
            let input = match i {
                0 => Matrix::dense(x, rows, l.inputs),
                _ => Matrix::dense(&outputs[i - 1], rows, self.layers[i - 1].stride),
            };
            // dW = x^T dz, summed over the rows in order; straight into `grads` when the
            // weight has no padding columns.
            let x = input.columns(l.inputs);
            let weight = &mut grads[l.weight..l.weight + l.inputs * l.outputs];
            if l.stride == l.outputs {
                matmul_transposed(isa, x, dz, None, weight, l.stride);
            } else {
                weight_grad.resize(l.inputs * l.stride, 0.0);
                matmul_transposed(isa, x, dz, None, weight_grad, l.stride);
                for (g, w) in weight
                    .chunks_exact_mut(l.outputs)
                    .zip(weight_grad.chunks_exact(l.stride))
                {
                    g.copy_from_slice(&w[..l.outputs]);
                }
            }
            // db = the rows' sum, in row order (in the weight gradient's scratch).
            weight_grad.resize(weight_grad.len().max(l.stride), 0.0);
            let bias_grad = &mut weight_grad[..l.stride];
            column_sums(isa, dz, bias_grad);
            grads[l.bias..l.bias + l.outputs].copy_from_slice(&bias_grad[..l.outputs]);
            if i == 0 {
                break;
            }
            // dx = dz W^T, then through the previous layer's activation.
            let in_stride = padded(l.inputs);
            grad_in.resize(rows * in_stride, 0.0);
            let dz = dz.columns(l.outputs);
            if l.input_gradient == InputGradient::TransposedWeight {
                let wt = Matrix::dense(&self.transposed[i], l.outputs, in_stride);
                matmul(isa, dz, wt, None, grad_in, in_stride);
            } else {
                // dx^T = W dz^T, with each sum in the same order (and each product the same)
                // as dz W^T's: the same bits.
                let cols = padded(rows);
                grad_out_t.resize(l.outputs * cols, 0.0);
                transpose(isa, dz, grad_out_t, cols);
                for padding in grad_out_t.chunks_exact_mut(cols) {
                    padding[rows..].fill(0.0);
                }
                grad_in_t.resize(l.inputs * cols, 0.0);
                let (weight, _) = self.parameters(i, params);
                let dz_t = Matrix::dense(grad_out_t, l.outputs, cols);
                matmul(isa, weight.columns(l.outputs), dz_t, None, grad_in_t, cols);
                let dx_t = Matrix::dense(grad_in_t, l.inputs, cols).columns(rows);
                transpose(isa, dx_t, grad_in, in_stride);
                for padding in grad_in.chunks_exact_mut(in_stride) {
                    padding[l.inputs..].fill(0.0);
                }
            }
            self.activation
                .backward_vectorised(isa, &outputs[i - 1], grad_in);
            std::mem::swap(grad_out, grad_in);
        }
    }
}

/// What the host gradients are tested against.
#[cfg(test)]
pub(crate) mod testing {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::GradientsParams;
    use burn::tensor::Tensor;
    use ratchet_env::Rng;

    use crate::state::{NamedTensor, module_tensors, read_f32};

    /// Dense layers of these widths (`[input, hidden.., output]`) named as an
    /// [`Mlp`](crate::Mlp)'s, with normal weights and biases scaled by 0.3.
    pub(crate) fn random_layers(sizes: &[usize], rng: &mut Rng) -> Vec<NamedTensor<'static>> {
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32 * 0.3).collect() };
        let mut tensors = Vec::new();
        for (i, io) in sizes.windows(2).enumerate() {
            let weight = draw(io[0] * io[1]);
            tensors.push(NamedTensor::new(
                format!("layers.{i}.weight"),
                vec![io[0], io[1]],
                weight,
            ));
            tensors.push(NamedTensor::new(
                format!("layers.{i}.bias"),
                vec![io[1]],
                draw(io[1]),
            ));
        }
        tensors
    }

    /// The layout [`FusedMlp::new`](super::FusedMlp::new) takes (paths and shapes) and the
    /// flat parameter vector of `tensors`.
    pub(crate) fn flatten(tensors: &[NamedTensor]) -> (Vec<(String, Vec<usize>)>, Vec<f32>) {
        let layout = tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        let params = tensors
            .iter()
            .flat_map(|t| t.data.iter().copied())
            .collect();
        (layout, params)
    }

    /// Each parameter's gradient from Burn's autodiff, with its path, in visiting order.
    pub(crate) fn burn_gradients<M: Module>(
        module: &M,
        grads: GradientsParams,
    ) -> Vec<(String, Vec<f32>)> {
        struct Collect(GradientsParams, Vec<Vec<f32>>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let g = self
                    .0
                    .remove::<D>(param.id)
                    .expect("every parameter has a gradient");
                self.1.push(read_f32(g).unwrap());
            }
        }
        let mut collect = Collect(grads, Vec::new());
        module.visit(&mut collect);
        let names = module_tensors(module, "")
            .unwrap()
            .into_iter()
            .map(|t| t.name);
        names.zip(collect.1).collect()
    }

    /// Asserts that `host` (gradients flat in visiting order) matches `burn` to rounding:
    /// within `2e-5` of each tensor's largest gradient.
    pub(crate) fn assert_gradients_match(host: &[f32], burn: &[(String, Vec<f32>)], what: &str) {
        let mut offset = 0;
        for (name, want) in burn {
            let got = &host[offset..offset + want.len()];
            offset += want.len();
            let scale = want.iter().fold(1e-3f32, |m, g| m.max(g.abs()));
            for (g, b) in got.iter().zip(want) {
                assert!(
                    (g - b).abs() <= 2e-5 * scale,
                    "{what} {name}: host {g}, Burn {b}"
                );
            }
        }
        assert_eq!(offset, host.len(), "{what}: every parameter compared");
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;
    use burn::tensor::{Tensor, TensorData};
    use ratchet_env::Rng;

    use super::testing::{assert_gradients_match, burn_gradients, flatten, random_layers};
    use super::*;
    use crate::network::{Mlp, MlpConfig};
    use crate::state::module_tensors;

    /// Both ways of computing an input gradient give the same bits, for minibatches that do
    /// and do not fill whole vector lanes.
    #[test]
    fn input_gradients_by_either_transpose_are_the_same_bits() {
        let mut rng = Rng::seed_from(12);
        let (layout, params) = flatten(&random_layers(&[9, 256, 200, 3], &mut rng));
        let total = params.len();
        let mut by_gradients = FusedMlp::new(&layout, "", Activation::Relu).unwrap();
        let routes =
            |net: &FusedMlp| -> Vec<_> { net.layers.iter().map(|l| l.input_gradient).collect() };
        let want: Vec<_> = vec![
            InputGradient::None,
            InputGradient::TransposedGradients,
            InputGradient::TransposedWeight,
        ];
        assert_eq!(routes(&by_gradients), want);
        let mut by_weight = by_gradients.clone();
        by_weight.layers[1].input_gradient = InputGradient::TransposedWeight;
        by_weight.transposed[1] = vec![0.0; 200 * 256];
        by_gradients.load(&params);
        by_weight.load(&params);
        for rows in [13, 64, 70] {
            let x: Vec<f32> = (0..rows * 9).map(|_| rng.normal() as f32).collect();
            let stride = by_weight.output_stride();
            let grad_output: Vec<f32> = (0..rows * stride).map(|_| rng.normal() as f32).collect();
            for isa in Isa::available(Arithmetic::Exact) {
                let mut grads = [vec![f32::NAN; total], vec![f32::NAN; total]];
                for (net, grads) in [&by_gradients, &by_weight].into_iter().zip(&mut grads) {
                    let mut trace = Trace::default();
                    net.forward(isa, &params, &x, rows, &mut trace);
                    net.backward(isa, &params, &x, &mut trace, &grad_output, grads);
                }
                let bits = |v: &[f32]| v.iter().map(|g| g.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&grads[0]), bits(&grads[1]), "{rows} rows, {isa:?}");
            }
        }
    }

    /// Gradients of `sum(output * weights)` through Burn's autodiff and through the fused
    /// passes agree to rounding, for both activations and widths that need padding.
    #[test]
    fn gradients_match_burns_autodiff() {
        let device = crate::device(crate::DeviceKind::Cpu).unwrap().autodiff();
        let mut rng = Rng::seed_from(4);
        for (widths, activation) in [
            (vec![4, 64, 64, 2], Activation::Tanh),
            (vec![5, 37, 3], Activation::Relu),
            (vec![112, 256, 256, 3], Activation::Relu),
        ] {
            let last = widths.len() - 1;
            let config = MlpConfig::new(widths[0], widths[1..last].to_vec(), widths[last])
                .with_activation(activation);
            let net = Mlp::new(&config, &device, &mut rng);
            let rows = 13;
            let (k, n) = (config.input, config.output);
            let x: Vec<f32> = (0..rows * k).map(|_| rng.normal() as f32).collect();
            let w: Vec<f32> = (0..rows * n).map(|_| rng.normal() as f32).collect();

            let out = net.forward(Tensor::from_data(
                TensorData::new(x.clone(), [rows, k]),
                &device,
            ));
            let weights = Tensor::<2>::from_data(TensorData::new(w.clone(), [rows, n]), &device);
            let grads = GradientsParams::from_grads((out * weights).sum().backward(), &net);
            let burn = burn_gradients(&net, grads);

            let (layout, params) = flatten(&module_tensors(&net, "").unwrap());
            let mut fused = FusedMlp::new(&layout, "", activation).unwrap();
            fused.load(&params);
            let mut trace = Trace::default();
            for isa in Isa::available(Arithmetic::Exact) {
                fused.forward(isa, &params, &x, rows, &mut trace);
                let stride = fused.output_stride();
                let mut grad_output = vec![0.0f32; rows * stride];
                for (g, w) in grad_output.chunks_exact_mut(stride).zip(w.chunks_exact(n)) {
                    g[..n].copy_from_slice(w);
                }
                let mut grads = vec![f32::NAN; params.len()];
                fused.backward(isa, &params, &x, &mut trace, &grad_output, &mut grads);
                assert_gradients_match(&grads, &burn, &format!("{widths:?} {isa:?}"));
            }
        }
    }
}
