//! What the data benches share: a small seeded generator for synthetic bars.

/// Uniform draws in `[0, 1)` from a 64-bit linear congruential generator with a fixed seed:
/// the same bars on every run, with no dependency for it.
pub fn uniform() -> impl FnMut() -> f64 {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}
