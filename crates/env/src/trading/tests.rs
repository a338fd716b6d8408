use super::*;

/// Distance in units in the last place.
fn ulps(a: f64, b: f64) -> u64 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
}

#[test]
fn log_factor_agrees_with_the_library_logarithm() {
    let mut rng = Rng::seed_from(17);
    let mut worst = 0;
    for i in 0..1_000_000 {
        // Small and large moves, across the switch to the library path at +-6.25%.
        let scale = [1e-6, 1e-3, 0.02, 0.0625, 0.5][i % 5];
        let f = 1.0 + scale * (2.0 * rng.next_f64() - 1.0);
        let (got, want) = (log_factor(f), f.ln());
        worst = worst.max(ulps(got, want));
        assert_eq!(got as f32, want as f32, "ln({f})");
    }
    assert!(worst <= 2, "worst error {worst} ulps");
    assert_eq!(log_factor(1.0), 0.0);
    assert_eq!(log_factor(0.0), BANKRUPTCY_LOG_RETURN);
    assert_eq!(log_factor(1e-300), BANKRUPTCY_LOG_RETURN);
    assert_eq!(log_factor(3.0), 3f64.ln());
}
