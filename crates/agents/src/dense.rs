//! One fully connected layer evaluated on plain `f32` slices, with hand-vectorised kernels
//! for AVX-512 and AVX2 chosen at run time and a portable loop elsewhere.
//!
//! Every kernel computes each output as its bias plus its inputs' products added in input
//! order, each product rounded before the addition (never a fused multiply-add), so all of
//! them give the same bits: a result does not depend on the CPU that computed it.

use crate::isa::Isa;
use crate::network::Activation;

/// Block of outputs kept in registers while a layer's inputs stream past: 4 AVX-512 or 8
/// AVX2 registers of independent sums.
const WIDE: usize = 64;
/// The narrow block for what is left (and the padding unit): one AVX2 register.
const LANES: usize = 8;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dense {
    pub(crate) inputs: usize,
    pub(crate) outputs: usize,
    /// Row length of `weight` and length of `bias`: `outputs` rounded up to [`LANES`], the
    /// extra columns zero, so that every output block is whole.
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
        let stride = outputs.div_ceil(LANES) * LANES;
        let mut padded = vec![0.0; inputs * stride];
        for (row, w) in padded
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
            weight: padded,
            bias: padded_bias,
        }
    }

    /// `y[..stride] = activation(bias + x W)`, the padding columns included (they hold 0 or
    /// the activation of 0). `x` has `inputs` values.
    pub(crate) fn apply(&self, isa: Isa, x: &[f32], y: &mut [f32], activation: Option<Activation>) {
        assert_eq!(x.len(), self.inputs, "layer input length");
        let y = &mut y[..self.stride];
        let mut j = 0;
        while j + WIDE <= self.stride {
            let out: &mut [f32; WIDE] = (&mut y[j..j + WIDE]).try_into().expect("whole block");
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::detect` found AVX-512F on this CPU.
                Isa::Avx512 => unsafe {
                    x86::wide_avx512(x, &self.weight, self.stride, j, &self.bias, out)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::detect` found AVX2 on this CPU.
                Isa::Avx2 => unsafe {
                    x86::wide_avx2(x, &self.weight, self.stride, j, &self.bias, out)
                },
                Isa::Portable => self.block(x, j, out),
            }
            j += WIDE;
        }
        while j < self.stride {
            let out: &mut [f32; LANES] = (&mut y[j..j + LANES]).try_into().expect("whole block");
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F and AVX2 machines both have AVX.
                Isa::Avx512 | Isa::Avx2 => unsafe {
                    x86::lanes_avx(x, &self.weight, self.stride, j, &self.bias, out)
                },
                Isa::Portable => self.block(x, j, out),
            }
            j += LANES;
        }
        if let Some(f) = activation {
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx512 => unsafe { x86::activate_avx512(f, y) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => unsafe { x86::activate_avx2(f, y) },
                Isa::Portable => f.apply(y),
            }
        }
    }

    /// The portable kernel for outputs `j..j + B`.
    fn block<const B: usize>(&self, x: &[f32], j: usize, out: &mut [f32; B]) {
        out.copy_from_slice(&self.bias[j..j + B]);
        for (xi, row) in x.iter().zip(self.weight.chunks_exact(self.stride)) {
            for (o, w) in out.iter_mut().zip(&row[j..j + B]) {
                *o += xi * w;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, WIDE};
    use crate::network::Activation;

    /// Panics unless every load below stays inside `weight` and `bias`.
    fn check_bounds(
        x: &[f32],
        weight: &[f32],
        stride: usize,
        j: usize,
        bias: &[f32],
        block: usize,
    ) {
        assert!(
            j + block <= stride && bias.len() >= stride,
            "block inside the layer"
        );
        assert!(
            x.len() * stride <= weight.len(),
            "rows inside the weight matrix"
        );
    }

    /// Outputs `j..j + 64` in four 16-lane registers.
    #[target_feature(enable = "avx512f")]
    pub(super) fn wide_avx512(
        x: &[f32],
        weight: &[f32],
        stride: usize,
        j: usize,
        bias: &[f32],
        out: &mut [f32; WIDE],
    ) {
        check_bounds(x, weight, stride, j, bias, WIDE);
        // SAFETY: `check_bounds` keeps every 16-float load within `bias[j..j + 64]` and
        // `weight[i * stride + j..][..64]` for `i < x.len()`; the stores fill `out`.
        unsafe {
            let b = bias.as_ptr().add(j);
            let mut acc = [0, 16, 32, 48].map(|k| _mm512_loadu_ps(b.add(k)));
            for (i, &xi) in x.iter().enumerate() {
                let row = weight.as_ptr().add(i * stride + j);
                let xv = _mm512_set1_ps(xi);
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_add_ps(*a, _mm512_mul_ps(xv, _mm512_loadu_ps(row.add(16 * k))));
                }
            }
            for (k, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * k), *a);
            }
        }
    }

    /// Outputs `j..j + 64` in eight 8-lane registers.
    #[target_feature(enable = "avx2")]
    pub(super) fn wide_avx2(
        x: &[f32],
        weight: &[f32],
        stride: usize,
        j: usize,
        bias: &[f32],
        out: &mut [f32; WIDE],
    ) {
        check_bounds(x, weight, stride, j, bias, WIDE);
        // SAFETY: as in `wide_avx512`, with 8-float loads.
        unsafe {
            let b = bias.as_ptr().add(j);
            let mut acc = [0, 8, 16, 24, 32, 40, 48, 56].map(|k| _mm256_loadu_ps(b.add(k)));
            for (i, &xi) in x.iter().enumerate() {
                let row = weight.as_ptr().add(i * stride + j);
                let xv = _mm256_set1_ps(xi);
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(xv, _mm256_loadu_ps(row.add(8 * k))));
                }
            }
            for (k, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * k), *a);
            }
        }
    }

    /// Outputs `j..j + 8` in one register.
    #[target_feature(enable = "avx")]
    pub(super) fn lanes_avx(
        x: &[f32],
        weight: &[f32],
        stride: usize,
        j: usize,
        bias: &[f32],
        out: &mut [f32; LANES],
    ) {
        check_bounds(x, weight, stride, j, bias, LANES);
        // SAFETY: as in `wide_avx512`, one 8-float load per row.
        unsafe {
            let mut acc = _mm256_loadu_ps(bias.as_ptr().add(j));
            for (i, &xi) in x.iter().enumerate() {
                let w = _mm256_loadu_ps(weight.as_ptr().add(i * stride + j));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(xi), w));
            }
            _mm256_storeu_ps(out.as_mut_ptr(), acc);
        }
    }

    /// The activation, auto-vectorised for AVX-512.
    #[target_feature(enable = "avx512f")]
    pub(super) fn activate_avx512(f: Activation, xs: &mut [f32]) {
        f.apply(xs)
    }

    /// The activation, auto-vectorised for AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) fn activate_avx2(f: Activation, xs: &mut [f32]) {
        f.apply(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                for isa in Isa::available() {
                    let mut y = vec![f32::NAN; layer.stride];
                    layer.apply(isa, &x, &mut y, activation);
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
