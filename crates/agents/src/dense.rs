//! One fully connected layer evaluated on one row of plain `f32` values by the
//! [`matmul_row`](crate::matmul::matmul_row) kernel, compiled for the vector instructions of
//! the [`Isa::run`](crate::isa::Isa::run) call it is inlined into.
//!
//! Every output is its bias plus its inputs' products added in input order, each product
//! rounded before the addition (never a fused multiply-add), so a result does not depend on
//! the CPU that computed it.

use crate::isa::Isa;
use crate::matmul::{Matrix, matmul_row, padded};
use crate::network::Activation;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dense {
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
    /// Row length of `weight` and length of `bias`: `outputs` rounded up to whole vector
    /// lanes, the extra columns zero.
    pub(crate) stride: usize,
    /// `[inputs, stride]`, row-major (Burn's layout, padded): row `i` holds input `i`'s
    /// weights.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// `weight` is `[inputs, outputs]` row-major, `bias` `[outputs]`.
    pub(crate) fn new(inputs: usize, outputs: usize, weight: &[f32], bias: &[f32]) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight length");
        assert_eq!(bias.len(), outputs, "bias length");
        let stride = padded(outputs);
        let mut padded_weight = vec![0.0; inputs * stride];
        for (row, w) in padded_weight
            .chunks_exact_mut(stride)
            .zip(weight.chunks_exact(outputs))
        {
            row[..outputs].copy_from_slice(w);
        }
        let mut padded_bias = vec![0.0; stride];
        padded_bias[..outputs].copy_from_slice(bias);
        Self {
            inputs,
            outputs,
            stride,
            weight: padded_weight,
            bias: padded_bias,
        }
    }

    /// `y[..stride] = activation(bias + x W)`, the padding columns included (they hold 0 or
    /// the activation of 0). `x` has `inputs` values. Inlined into its caller's
    /// [`Isa::run`](crate::isa::Isa::run) closure, which sets the instructions it is compiled
    /// for.
    #[inline(always)]
    pub(crate) fn apply(&self, isa: Isa, x: &[f32], y: &mut [f32], activation: Option<Activation>) {
        assert_eq!(x.len(), self.inputs, "layer input length");
        let y = &mut y[..self.stride];
        let weight = Matrix::dense(&self.weight, self.inputs, self.stride);
        matmul_row(isa, x, weight, &self.bias, y);
        if let Some(f) = activation {
            f.apply(y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::Arithmetic;
    use ratchet_env::Rng;

    #[test]
    fn every_kernel_gives_the_bits_of_the_plain_loop() {
        let mut rng = Rng::seed_from(5);
        for (inputs, outputs) in [
            (1, 1),
            (3, 8),
            (112, 64),
            (64, 3),
            (7, 65),
            (256, 256),
            (9, 200),
        ] {
            let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
            let (weight, bias, x) = (draw(inputs * outputs), draw(outputs), draw(inputs));
            let layer = Dense::new(inputs, outputs, &weight, &bias);
            for activation in [None, Some(Activation::Tanh), Some(Activation::Relu)] {
                let mut want = bias.clone();
                for (xi, row) in x.iter().zip(weight.chunks_exact(outputs)) {
                    for (yj, wij) in want.iter_mut().zip(row) {
                        *yj += xi * wij;
                    }
                }
                if let Some(f) = activation {
                    f.apply(&mut want);
                }
                for isa in Isa::available(Arithmetic::Exact) {
                    let mut y = vec![f32::NAN; layer.stride];
                    isa.run(
                        #[inline(always)]
                        || layer.apply(isa, &x, &mut y, activation),
                    );
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&y[..outputs]),
                        bits(&want),
                        "{inputs}x{outputs} {isa:?} {activation:?}"
                    );
                }
            }
        }
    }
}
