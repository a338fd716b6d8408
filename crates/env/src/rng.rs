//! A small, fast, serialisable random number generator.
//!
//! Every random draw in Ratchet (weight initialisation aside, which happens once
//! from the seed) goes through [`Rng`], because its whole state is four `u64`s that
//! can be written to a checkpoint and read back: a resumed run draws exactly the
//! numbers the uninterrupted run would have drawn.
//!
//! The generator is `rand_xoshiro`'s xoshiro256++ seeded through SplitMix64, and the
//! uniform floats are `rand`'s. Three samplers stay here because checkpoints pin their
//! bits and `rand`'s counterparts draw differently: [`Rng::below`] (Lemire's method; `rand`'s
//! ranges use another), [`Rng::normal`] (Box–Muller; `rand_distr`'s is a ziggurat) and
//! [`Rng::shuffle`], which is built on `below`. Changing any of them would change every
//! seeded run and make saved runs continue differently.
//!
//! ```
//! use ratchet_env::Rng;
//! let mut a = Rng::seed_from(7);
//! let saved = a.state();
//! let x = a.next_f64();
//! let mut b = Rng::from_state(saved);
//! assert_eq!(x, b.next_f64());
//! ```

use rand::{Rng as _, RngExt as _, SeedableRng as _};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// The complete state of an [`Rng`]; restoring it reproduces the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState(pub [u64; 4]);

/// xoshiro256++: 256 bits of state, period 2^256 - 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    /// A generator whose stream is fixed by `seed`.
    pub fn seed_from(seed: u64) -> Self {
        Self(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// An independent stream derived from this generator (advances `self`).
    pub fn fork(&mut self) -> Self {
        Self::seed_from(self.next_u64())
    }

    pub fn state(&self) -> RngState {
        let bytes = self.0.state();
        RngState(std::array::from_fn(|i| {
            u64::from_le_bytes(std::array::from_fn(|j| bytes[8 * i + j]))
        }))
    }

    /// The generator at `state`. (An all-zero state, xoshiro's one fixed point, becomes
    /// the stream of seed 0.)
    pub fn from_state(state: RngState) -> Self {
        let mut bytes = [0u8; 32];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(state.0) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Self(Xoshiro256PlusPlus::from_seed(bytes))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        self.0.random()
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    #[inline]
    pub fn next_f32(&mut self) -> f32 {
        self.0.random()
    }

    /// Uniform in `[low, high)`.
    #[inline]
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// Uniform integer in `[0, n)`, without modulo bias (Lemire's method). `n` must be > 0.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below needs n > 0");
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as u64
    }

    /// Standard normal draw (Box–Muller; no cached spare, so the state stays four words).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_state_round_trips() {
        let mut a = Rng::seed_from(42);
        let mut b = Rng::seed_from(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let saved = a.state();
        let expected: Vec<u64> = (0..10).map(|_| a.next_u64()).collect();
        let mut c = Rng::from_state(saved);
        let got: Vec<u64> = (0..10).map(|_| c.next_u64()).collect();
        assert_eq!(expected, got);
        assert_ne!(Rng::seed_from(1).next_u64(), Rng::seed_from(2).next_u64());
    }

    /// The streams every saved run depends on: the first draws of seeds 42 and 0, and
    /// the floats taken from them.
    #[test]
    fn streams_are_the_ones_saved_runs_were_made_with() {
        let mut r = Rng::seed_from(42);
        assert_eq!(
            [r.next_u64(), r.next_u64(), r.next_u64()],
            [
                0xd076_4d4f_4476_689f,
                0x519e_4174_576f_3791,
                0xfbe0_7cfb_0c24_ed8c
            ]
        );
        assert_eq!(Rng::seed_from(0).next_u64(), 0x5317_5d61_490b_23df);
        assert_eq!(Rng::from_state(RngState([0; 4])), Rng::seed_from(0));
        let mut r = Rng::seed_from(42);
        assert_eq!(
            r.next_f64(),
            (0xd076_4d4f_4476_689f_u64 >> 11) as f64 / (1u64 << 53) as f64
        );
        assert_eq!(
            r.next_f32(),
            (0x519e_4174_576f_3791_u64 >> 40) as f32 / (1u32 << 24) as f32
        );
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::seed_from(3);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[r.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
    }

    #[test]
    fn uniform_and_normal_have_the_right_moments() {
        let mut r = Rng::seed_from(9);
        let n = 200_000;
        let mean_u: f64 = (0..n).map(|_| r.next_f64()).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01);
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
