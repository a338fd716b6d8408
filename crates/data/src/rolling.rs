//! O(n) rolling statistics and moving averages, all strictly causal: the value at index `t`
//! depends on inputs at indices `<= t` only, and on nothing else (not even on the series length).

/// Rolling mean and population standard deviation of the last `w` values, for each index `t`
/// from `start + w - 1` on; `f(t, mean, std)` receives them. Values before `start` are ignored.
///
/// Running sums are taken around a shift (a recent value) and recomputed exactly from the window
/// every `w` steps, so rounding error neither accumulates over long series nor cancels
/// catastrophically when the values are large compared with their spread.
pub(crate) fn rolling_mean_std(
    x: &[f64],
    start: usize,
    w: usize,
    mut f: impl FnMut(usize, f64, f64),
) {
    debug_assert!(w >= 1);
    let n = x.len();
    if start >= n {
        return;
    }
    let inv_w = 1.0 / w as f64;
    let (mut shift, mut sum, mut sum_sq) = (x[start], 0.0f64, 0.0f64);
    for t in start..n {
        if (t - start).is_multiple_of(w) && t >= start + w {
            // Exact recomputation over the window ending at t.
            shift = x[t];
            sum = 0.0;
            sum_sq = 0.0;
            for &v in &x[t + 1 - w..=t] {
                let d = v - shift;
                sum += d;
                sum_sq += d * d;
            }
        } else {
            let d = x[t] - shift;
            sum += d;
            sum_sq += d * d;
            if t >= start + w {
                let old = x[t - w] - shift;
                sum -= old;
                sum_sq -= old * old;
            }
        }
        if t + 1 >= start + w {
            let mean_d = sum * inv_w;
            let var = (sum_sq * inv_w - mean_d * mean_d).max(0.0);
            f(t, shift + mean_d, var.sqrt());
        }
    }
}

/// `(x - mean) / std` of the last `w` values; 0 when the window is (numerically) constant.
pub(crate) fn zscore(value: f64, mean: f64, std: f64) -> f64 {
    // A spread below ~1e-12 of the level is rounding noise, not variation.
    if std <= 1e-12 * mean.abs().max(value.abs()) || std == 0.0 {
        0.0
    } else {
        (value - mean) / std
    }
}

/// Simple moving average of the last `w` values, defined from index `w - 1`; NaN before.
pub(crate) fn sma(x: &[f64], w: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    rolling_mean_std(x, 0, w, |t, mean, _| out[t] = mean);
    out
}

/// Exponential moving average with `alpha = 2 / (span + 1)`, seeded with the SMA of the first
/// `span` values of `x[start..]`: defined from `start + span - 1`, NaN before.
pub(crate) fn ema(x: &[f64], start: usize, span: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    let seed_end = start + span - 1;
    if seed_end >= x.len() {
        return out;
    }
    let alpha = 2.0 / (span as f64 + 1.0);
    let mut value = x[start..=seed_end].iter().sum::<f64>() / span as f64;
    out[seed_end] = value;
    for t in seed_end + 1..x.len() {
        value += alpha * (x[t] - value);
        out[t] = value;
    }
    out
}

/// Wilder's smoothing (alpha = 1/period) of `x[start..]`, seeded with the mean of its first
/// `period` values: defined from `start + period - 1`, NaN before.
pub(crate) fn wilder(x: &[f64], start: usize, period: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    let seed_end = start + period - 1;
    if seed_end >= x.len() {
        return out;
    }
    let p = period as f64;
    let mut value = x[start..=seed_end].iter().sum::<f64>() / p;
    out[seed_end] = value;
    for t in seed_end + 1..x.len() {
        value = (value * (p - 1.0) + x[t]) / p;
        out[t] = value;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two-pass reference, summing differences from the first value to stay exact at large levels.
    fn naive_mean_std(x: &[f64]) -> (f64, f64) {
        let m = x[0] + x.iter().map(|v| v - x[0]).sum::<f64>() / x.len() as f64;
        let v = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / x.len() as f64;
        (m, v.sqrt())
    }

    #[test]
    fn rolling_matches_naive_over_long_series() {
        // Large level, small spread, long series: the cases that break plain running sums.
        let x: Vec<f64> = (0..50_000)
            .map(|i| 1.0e6 + ((i * 7919) % 1000) as f64 * 1e-3)
            .collect();
        for (start, w) in [(0, 1), (0, 2), (3, 20), (17, 100)] {
            let mut seen = 0;
            rolling_mean_std(&x, start, w, |t, mean, std| {
                let (m, s) = naive_mean_std(&x[t + 1 - w..=t]);
                assert!((mean - m).abs() < 1e-9, "w={w} t={t}: {mean} vs {m}");
                assert!((std - s).abs() < 1e-7, "w={w} t={t}: {std} vs {s}");
                assert!(t + 1 >= start + w);
                seen += 1;
            });
            assert_eq!(seen, x.len() - (start + w - 1));
        }
    }

    #[test]
    fn moving_averages() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let s = sma(&x, 2);
        assert!(s[0].is_nan());
        assert_eq!(&s[1..], &[1.5, 2.5, 3.5, 4.5]);
        let e = ema(&x, 0, 3);
        assert!(e[1].is_nan());
        assert_eq!(e[2], 2.0);
        assert_eq!(e[3], 2.0 + 0.5 * (4.0 - 2.0));
        let w = wilder(&x, 1, 2);
        assert!(w[1].is_nan());
        assert_eq!(w[2], 2.5);
        assert_eq!(w[3], (2.5 + 4.0) / 2.0);
    }

    #[test]
    fn zscore_of_constant_is_zero() {
        assert_eq!(zscore(5.0, 5.0, 0.0), 0.0);
        assert_eq!(zscore(1e6, 1e6, 1e-9), 0.0);
        assert_eq!(zscore(3.0, 1.0, 2.0), 1.0);
    }
}
