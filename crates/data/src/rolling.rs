//! Online rolling statistics and moving averages: each takes one value at a time and answers
//! from the values pushed so far, so they are causal by construction. They hold only what the
//! next answer needs (a window of recent values, running sums) and are serialisable, so a
//! [`FeatureStream`](crate::FeatureStream) can be snapshotted mid-stream.
//!
//! Their `f64` state serialises as exact text (see [`exact_f64`](crate::exact_f64)). Nothing here
//! panics on any state, including one deserialised from a tampered snapshot: such a state gives
//! wrong numbers, never a crash.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Rolling mean and population standard deviation of the last `window` values pushed.
///
/// Running sums are taken around a shift (a recent value) and recomputed exactly from the window
/// every `window` values, so rounding error neither accumulates over long series nor cancels
/// catastrophically when the values are large compared with their spread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RollingMeanStd {
    window: usize,
    /// The last `window` values, oldest first.
    #[serde(with = "crate::exact_f64::deque")]
    recent: VecDeque<f64>,
    /// Values pushed so far modulo `window`: the sums are recomputed when it comes round to 0.
    phase: usize,
    #[serde(with = "crate::exact_f64")]
    shift: f64,
    #[serde(with = "crate::exact_f64")]
    sum: f64,
    #[serde(with = "crate::exact_f64")]
    sum_sq: f64,
}

impl RollingMeanStd {
    pub(crate) fn new(window: usize) -> Self {
        RollingMeanStd {
            window,
            recent: VecDeque::new(),
            phase: 0,
            shift: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    /// Adds `x`; returns `(mean, std)` of the last `window` values once there are that many.
    pub(crate) fn push(&mut self, x: f64) -> Option<(f64, f64)> {
        let w = self.window;
        let was_full = self.recent.len() >= w;
        if self.recent.is_empty() {
            self.shift = x;
        }
        self.recent.push_back(x);
        let dropped = if self.recent.len() > w {
            self.recent.pop_front()
        } else {
            None
        };
        let recompute = was_full && self.phase == 0;
        // A counter rather than a remainder: an integer division per value was measurable.
        self.phase += 1;
        if self.phase >= w {
            self.phase = 0;
        }
        if recompute {
            // Exact recomputation over the window ending at x.
            self.shift = x;
            self.sum = 0.0;
            self.sum_sq = 0.0;
            for &v in &self.recent {
                let d = v - self.shift;
                self.sum += d;
                self.sum_sq += d * d;
            }
        } else {
            let d = x - self.shift;
            self.sum += d;
            self.sum_sq += d * d;
            if let Some(old) = dropped {
                let old = old - self.shift;
                self.sum -= old;
                self.sum_sq -= old * old;
            }
        }
        if self.recent.len() < w {
            return None;
        }
        let inv_w = 1.0 / w as f64;
        let mean_d = self.sum * inv_w;
        let var = (self.sum_sq * inv_w - mean_d * mean_d).max(0.0);
        Some((self.shift + mean_d, var.sqrt()))
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

/// How a [`SmoothedAverage`] moves towards each new value after its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Smoothing {
    /// Exponential moving average, `alpha = 2 / (span + 1)`.
    Exponential,
    /// Wilder's smoothing, `alpha = 1 / span`.
    Wilder,
}

/// An exponential or Wilder moving average seeded with the plain mean of its first `span`
/// values: defined from the `span`-th value pushed on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SmoothedAverage {
    smoothing: Smoothing,
    span: usize,
    /// Values pushed so far, counted up to `span`.
    seeded: usize,
    /// The sum of the seed values while seeding, then the average.
    #[serde(with = "crate::exact_f64")]
    value: f64,
}

impl SmoothedAverage {
    pub(crate) fn new(smoothing: Smoothing, span: usize) -> Self {
        SmoothedAverage {
            smoothing,
            span,
            seeded: 0,
            // `Iterator::sum`'s starting value for floats, so the seed is bit for bit
            // `seed_values.iter().sum::<f64>() / span` (a sum of negative zeros stays -0.0).
            value: -0.0,
        }
    }

    /// Adds `x`; returns the average once `span` values have been pushed.
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        let n = self.span as f64;
        if self.seeded < self.span {
            self.value += x;
            self.seeded += 1;
            if self.seeded < self.span {
                return None;
            }
            self.value /= n;
        } else {
            match self.smoothing {
                Smoothing::Exponential => self.value += 2.0 / (n + 1.0) * (x - self.value),
                Smoothing::Wilder => self.value = (self.value * (n - 1.0) + x) / n,
            }
        }
        Some(self.value)
    }
}

/// The value pushed `lag` pushes ago.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Lagged {
    lag: usize,
    /// The last `lag + 1` values, oldest first.
    #[serde(with = "crate::exact_f64::deque")]
    recent: VecDeque<f64>,
}

impl Lagged {
    pub(crate) fn new(lag: usize) -> Self {
        Lagged {
            lag,
            recent: VecDeque::new(),
        }
    }

    /// Adds `x`; returns the value pushed `lag` pushes before it, once there is one.
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        self.recent.push_back(x);
        let full = self.lag.saturating_add(1);
        if self.recent.len() > full {
            self.recent.pop_front();
        }
        if self.recent.len() == full {
            self.recent.front().copied()
        } else {
            None
        }
    }
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
        for w in [1, 2, 20, 100] {
            let mut rolling = RollingMeanStd::new(w);
            let mut seen = 0;
            for (t, &v) in x.iter().enumerate() {
                let Some((mean, std)) = rolling.push(v) else {
                    assert!(t + 1 < w);
                    continue;
                };
                let (m, s) = naive_mean_std(&x[t + 1 - w..=t]);
                assert!((mean - m).abs() < 1e-9, "w={w} t={t}: {mean} vs {m}");
                assert!((std - s).abs() < 1e-7, "w={w} t={t}: {std} vs {s}");
                seen += 1;
            }
            assert_eq!(seen, x.len() + 1 - w);
        }
    }

    #[test]
    fn moving_averages() {
        let push_all = |mut avg: SmoothedAverage, x: &[f64]| -> Vec<Option<f64>> {
            x.iter().map(|&v| avg.push(v)).collect()
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut sma = RollingMeanStd::new(2);
        let means: Vec<_> = x.iter().map(|&v| sma.push(v).map(|(m, _)| m)).collect();
        assert_eq!(means, [None, Some(1.5), Some(2.5), Some(3.5), Some(4.5)]);
        let ema = push_all(SmoothedAverage::new(Smoothing::Exponential, 3), &x);
        assert_eq!(
            ema[..4],
            [None, None, Some(2.0), Some(2.0 + 0.5 * (4.0 - 2.0))]
        );
        let wilder = push_all(SmoothedAverage::new(Smoothing::Wilder, 2), &x[1..]);
        assert_eq!(wilder[..3], [None, Some(2.5), Some((2.5 + 4.0) / 2.0)]);
    }

    #[test]
    fn seed_is_the_mean_iterator_sum_gives() {
        for x in [[-0.0, -0.0], [0.0, -0.0], [-0.0, 0.0], [0.1, 0.2]] {
            let mut avg = SmoothedAverage::new(Smoothing::Wilder, 2);
            avg.push(x[0]);
            let seed = avg.push(x[1]).unwrap();
            assert_eq!(seed.to_bits(), (x.iter().sum::<f64>() / 2.0).to_bits());
        }
    }

    #[test]
    fn lagged_values() {
        let mut lag = Lagged::new(2);
        let out: Vec<_> = [1.0, 2.0, 3.0, 4.0].iter().map(|&v| lag.push(v)).collect();
        assert_eq!(out, [None, None, Some(1.0), Some(2.0)]);
    }

    #[test]
    fn zscore_of_constant_is_zero() {
        assert_eq!(zscore(5.0, 5.0, 0.0), 0.0);
        assert_eq!(zscore(1e6, 1e6, 1e-9), 0.0);
        assert_eq!(zscore(3.0, 1.0, 2.0), 1.0);
    }
}
