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
                Isa::Avx512 => unsafe { x86::wide_avx512(self, x, j, out) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::detect` found AVX2 on this CPU.
                Isa::Avx2 => unsafe { x86::wide_avx2(self, x, j, out) },
                Isa::Portable => self.block(x, j, out),
            }
            j += WIDE;
        }
        while j < self.stride {
            let out: &mut [f32; LANES] = (&mut y[j..j + LANES]).try_into().expect("whole block");
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F and AVX2 machines both have AVX.
                Isa::Avx512 | Isa::Avx2 => unsafe { x86::lanes_avx(self, x, j, out) },
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

    use super::{Dense, LANES, WIDE};
    use crate::network::Activation;

    /// One vector register of f32 lanes and the four operations the kernel needs.
    trait Register: Copy {
        const LANES: usize;
        /// # Safety
        /// `p` points to `LANES` readable floats, and the CPU has the instruction set.
        unsafe fn load(p: *const f32) -> Self;
        /// # Safety
        /// `p` points to `LANES` writable floats, and the CPU has the instruction set.
        unsafe fn store(self, p: *mut f32);
        /// `self + x * w`: the product rounded, then the sum (two roundings, no FMA).
        /// # Safety
        /// The CPU has the instruction set.
        unsafe fn add_product(self, x: f32, w: Self) -> Self;
    }

    impl Register for __m512 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn add_product(self, x: f32, w: Self) -> Self {
            unsafe { _mm512_add_ps(self, _mm512_mul_ps(_mm512_set1_ps(x), w)) }
        }
    }

    impl Register for __m256 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self) }
        }
        #[inline(always)]
        unsafe fn add_product(self, x: f32, w: Self) -> Self {
            unsafe { _mm256_add_ps(self, _mm256_mul_ps(_mm256_set1_ps(x), w)) }
        }
    }

    /// Outputs `j..j + N * R::LANES` held in `N` registers while the rows stream past.
    ///
    /// # Safety
    /// The CPU has `R`'s instruction set.
    #[inline(always)]
    unsafe fn block<R: Register, const N: usize>(
        layer: &Dense,
        x: &[f32],
        j: usize,
        out: &mut [f32],
    ) {
        let Dense {
            weight,
            bias,
            stride,
            ..
        } = layer;
        let (width, stride) = (N * R::LANES, *stride);
        assert!(
            j + width <= stride && bias.len() >= stride,
            "block inside the layer"
        );
        assert!(
            x.len() * stride <= weight.len() && out.len() == width,
            "rows and output"
        );
        // SAFETY: the asserts keep every load within `bias[j..j + width]` and
        // `weight[i * stride + j..][..width]` for `i < x.len()`, and the stores within `out`.
        unsafe {
            let b = bias.as_ptr().add(j);
            let mut acc: [R; N] = std::array::from_fn(|k| R::load(b.add(k * R::LANES)));
            for (i, &xi) in x.iter().enumerate() {
                let row = weight.as_ptr().add(i * stride + j);
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = a.add_product(xi, R::load(row.add(k * R::LANES)));
                }
            }
            for (k, a) in acc.into_iter().enumerate() {
                a.store(out.as_mut_ptr().add(k * R::LANES));
            }
        }
    }

    /// Outputs `j..j + 64` in four AVX-512 registers.
    #[target_feature(enable = "avx512f")]
    pub(super) fn wide_avx512(layer: &Dense, x: &[f32], j: usize, out: &mut [f32; WIDE]) {
        // SAFETY: this function only runs where AVX-512F is enabled.
        unsafe { block::<__m512, 4>(layer, x, j, out) }
    }

    /// Outputs `j..j + 64` in eight AVX2 registers.
    #[target_feature(enable = "avx2")]
    pub(super) fn wide_avx2(layer: &Dense, x: &[f32], j: usize, out: &mut [f32; WIDE]) {
        // SAFETY: this function only runs where AVX2 is enabled.
        unsafe { block::<__m256, 8>(layer, x, j, out) }
    }

    /// Outputs `j..j + 8` in one register.
    #[target_feature(enable = "avx")]
    pub(super) fn lanes_avx(layer: &Dense, x: &[f32], j: usize, out: &mut [f32; LANES]) {
        // SAFETY: this function only runs where AVX is enabled.
        unsafe { block::<__m256, 1>(layer, x, j, out) }
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
