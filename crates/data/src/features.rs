//! Computing a [`FeatureFrame`] from bars.

use crate::config::{FeatureConfig, FeatureSpec, Normalization};
use crate::rolling::{ema, rolling_mean_std, sma, wilder, zscore};
use crate::timestamp::format_timestamp;
use crate::{Bars, DataError};

/// Materialised features aligned with the bars they came from.
///
/// Row `r` holds the features of bar `first_bar + r`, computed from that bar and earlier ones
/// only. The first `first_bar` bars (indicator and normalisation warm-up) have no row.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureFrame {
    /// Column names, as [`FeatureConfig::column_names`].
    pub names: Vec<String>,
    /// Row-major values, `rows() * width()` of them, all finite.
    pub values: Vec<f32>,
    /// Index in the input [`Bars`] of row 0 (= number of warm-up bars dropped).
    pub first_bar: usize,
    /// Timestamp of each row's bar (epoch milliseconds, UTC).
    pub timestamps: Vec<i64>,
}

impl FeatureFrame {
    /// Number of rows (bars with features).
    pub fn rows(&self) -> usize {
        self.timestamps.len()
    }

    /// Number of feature columns.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// The features of row `i`. Panics if `i >= rows()`.
    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.values[i * w..(i + 1) * w]
    }

    /// A copy of one column by name, or `None` if there is no such column.
    pub fn column(&self, name: &str) -> Option<Vec<f32>> {
        let c = self.names.iter().position(|n| n == name)?;
        Some(
            self.values
                .iter()
                .skip(c)
                .step_by(self.width())
                .copied()
                .collect(),
        )
    }

    /// The index in the input bars of row `i` (`first_bar + i`).
    pub fn bar_index(&self, i: usize) -> usize {
        self.first_bar + i
    }
}

/// Computes the configured features over `bars`, normalises them and drops the warm-up rows.
///
/// Every value at row `r` depends on bars `0..=first_bar + r` only (tested as a property). Errors
/// when the config is invalid, the bars are malformed (unequal lengths, non-finite or
/// non-positive prices) or there are not more bars than the warm-up needs.
///
/// ```
/// use ratchet_data::{compute_features, Bars, FeatureConfig};
/// let n = 500;
/// let close: Vec<f64> = (0..n).map(|i| 100.0 + (i as f64 * 0.1).sin()).collect();
/// let bars = Bars {
///     timestamps: (0..n as i64).map(|i| i * 86_400_000).collect(),
///     open: close.clone(),
///     high: close.iter().map(|c| c + 0.5).collect(),
///     low: close.iter().map(|c| c - 0.5).collect(),
///     close,
///     volume: vec![1000.0; n],
/// };
/// let cfg = FeatureConfig::default();
/// let frame = compute_features(&bars, &cfg)?;
/// assert_eq!(frame.first_bar, cfg.warm_up());
/// assert_eq!(frame.rows(), n - frame.first_bar);
/// assert_eq!(frame.width(), 11);
/// # Ok::<(), ratchet_data::DataError>(())
/// ```
pub fn compute_features(bars: &Bars, cfg: &FeatureConfig) -> Result<FeatureFrame, DataError> {
    cfg.validate()?;
    bars.check_lengths().map_err(DataError::Features)?;
    check_bars(bars)?;
    let n = bars.len();
    let first_bar = cfg.warm_up();
    if n <= first_bar {
        return Err(DataError::Features(format!(
            "{n} bars are too few: this feature config drops the first {first_bar} as warm-up and needs at least one more; use more data, shorter indicator windows or a shorter normalization window"
        )));
    }

    let mut columns: Vec<Vec<f64>> = Vec::with_capacity(cfg.column_names().len());
    for spec in &cfg.features {
        columns.extend(compute_spec(bars, spec));
    }
    let indicator_start = cfg
        .features
        .iter()
        .map(FeatureSpec::warm_up)
        .max()
        .unwrap_or(0);
    if let Normalization::RollingZscore { window } = cfg.normalization {
        for col in &mut columns {
            let mut normalised = vec![f64::NAN; n];
            rolling_mean_std(col, indicator_start, window, |t, mean, std| {
                normalised[t] = zscore(col[t], mean, std);
            });
            *col = normalised;
        }
    }

    let names = cfg.column_names();
    let width = names.len();
    let rows = n - first_bar;
    let mut values = Vec::with_capacity(rows * width);
    for t in first_bar..n {
        for col in &columns {
            values.push(col[t] as f32);
        }
    }
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        let t = first_bar + pos / width;
        return Err(DataError::Features(format!(
            "feature {} is not finite at bar {t} ({}); the bars there are extreme, check the data",
            names[pos % width],
            format_timestamp(bars.timestamps[t])
        )));
    }
    Ok(FeatureFrame {
        names,
        values,
        first_bar,
        timestamps: bars.timestamps[first_bar..].to_vec(),
    })
}

/// Bars built in code (not by `load_bars`) get the checks the features rely on.
fn check_bars(bars: &Bars) -> Result<(), DataError> {
    for (name, col) in [
        ("open", &bars.open),
        ("high", &bars.high),
        ("low", &bars.low),
        ("close", &bars.close),
    ] {
        if let Some(t) = col.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(DataError::Features(format!(
                "bar {t} has {name} {}; prices must be finite and positive (load data with load_bars to validate it)",
                col[t]
            )));
        }
    }
    if let Some(t) = bars
        .volume
        .iter()
        .position(|v| !(v.is_finite() && *v >= 0.0))
    {
        return Err(DataError::Features(format!(
            "bar {t} has volume {}; volume must be finite and non-negative",
            bars.volume[t]
        )));
    }
    Ok(())
}

/// The column(s) of one feature over all bars; NaN during its warm-up.
fn compute_spec(bars: &Bars, spec: &FeatureSpec) -> Vec<Vec<f64>> {
    let c = &bars.close;
    let n = c.len();
    let lagged = |k: usize, f: fn(f64) -> f64| -> Vec<f64> {
        (0..n)
            .map(|t| if t >= k { f(c[t] / c[t - k]) } else { f64::NAN })
            .collect()
    };
    let ratio =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a / b - 1.0).collect() };
    match *spec {
        FeatureSpec::SimpleReturn { k } => vec![lagged(k, |r| r - 1.0)],
        FeatureSpec::LogReturn { k } => vec![lagged(k, f64::ln)],
        FeatureSpec::SmaRatio { fast, slow } => vec![ratio(&sma(c, fast), &sma(c, slow))],
        FeatureSpec::EmaRatio { fast, slow } => vec![ratio(&ema(c, 0, fast), &ema(c, 0, slow))],
        FeatureSpec::Rsi { period } => {
            let mut gains = vec![f64::NAN; n];
            let mut losses = vec![f64::NAN; n];
            for t in 1..n {
                let d = c[t] - c[t - 1];
                gains[t] = d.max(0.0);
                losses[t] = (-d).max(0.0);
            }
            let avg_gain = wilder(&gains, 1, period);
            let avg_loss = wilder(&losses, 1, period);
            vec![
                avg_gain
                    .iter()
                    .zip(&avg_loss)
                    .map(|(&g, &l)| {
                        if g + l > 0.0 {
                            g / (g + l)
                        } else if g.is_nan() {
                            f64::NAN
                        } else {
                            0.5
                        }
                    })
                    .collect(),
            ]
        }
        FeatureSpec::Macd { fast, slow, signal } => {
            // (EMA_fast - EMA_slow) / EMA_slow = EMA_fast / EMA_slow - 1
            let line = ratio(&ema(c, 0, fast), &ema(c, 0, slow));
            let signal_line = ema(&line, slow - 1, signal);
            let hist = line.iter().zip(&signal_line).map(|(l, s)| l - s).collect();
            vec![line, signal_line, hist]
        }
        FeatureSpec::Volatility { window } => {
            let mut returns = vec![f64::NAN; n];
            for t in 1..n {
                returns[t] = (c[t] / c[t - 1]).ln();
            }
            let mut out = vec![f64::NAN; n];
            rolling_mean_std(&returns, 1, window, |t, _, std| out[t] = std);
            vec![out]
        }
        FeatureSpec::Atr { period } => {
            let (h, l) = (&bars.high, &bars.low);
            let mut true_range = vec![f64::NAN; n];
            for t in 1..n {
                true_range[t] = (h[t] - l[t])
                    .max((h[t] - c[t - 1]).abs())
                    .max((l[t] - c[t - 1]).abs());
            }
            let atr = wilder(&true_range, 1, period);
            vec![atr.iter().zip(c).map(|(a, c)| a / c).collect()]
        }
        FeatureSpec::ZscoreClose { window } => vec![rolling_zscore(c, window)],
        FeatureSpec::ZscoreVolume { window } => vec![rolling_zscore(&bars.volume, window)],
    }
}

fn rolling_zscore(x: &[f64], window: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    rolling_mean_std(x, 0, window, |t, mean, std| {
        out[t] = zscore(x[t], mean, std)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(close: &[f64]) -> Bars {
        Bars {
            timestamps: (0..close.len() as i64).collect(),
            open: close.to_vec(),
            high: close.iter().map(|c| c * 1.01).collect(),
            low: close.iter().map(|c| c * 0.99).collect(),
            close: close.to_vec(),
            volume: (0..close.len()).map(|i| (i % 7) as f64).collect(),
        }
    }

    fn raw(spec: FeatureSpec) -> FeatureConfig {
        FeatureConfig {
            window: 1,
            normalization: Normalization::None,
            features: vec![spec],
        }
    }

    #[test]
    fn returns_by_hand() {
        let b = bars(&[100.0, 110.0, 121.0, 108.9]);
        let f = compute_features(&b, &raw(FeatureSpec::SimpleReturn { k: 1 })).unwrap();
        assert_eq!(f.first_bar, 1);
        let expected = [0.1f32, 0.1, -0.1];
        for (v, e) in f.values.iter().zip(expected) {
            assert!((v - e).abs() < 1e-6);
        }
        let f = compute_features(&b, &raw(FeatureSpec::LogReturn { k: 2 })).unwrap();
        assert_eq!(f.first_bar, 2);
        assert!((f.values[0] - 1.21f32.ln()).abs() < 1e-6);
        assert_eq!(f.timestamps, vec![2, 3]);
    }

    #[test]
    fn rsi_extremes_and_wilder() {
        let up: Vec<f64> = (1..=20).map(f64::from).collect();
        let f = compute_features(&bars(&up), &raw(FeatureSpec::Rsi { period: 5 })).unwrap();
        assert!(f.values.iter().all(|&v| v == 1.0));
        let flat = vec![5.0; 20];
        let f = compute_features(&bars(&flat), &raw(FeatureSpec::Rsi { period: 5 })).unwrap();
        assert!(f.values.iter().all(|&v| v == 0.5));
        // Changes +2, -1, +2, -1 with period 2: first average gain 1, loss 0.5 -> RSI 2/3.
        let f = compute_features(
            &bars(&[10.0, 12.0, 11.0, 13.0, 12.0]),
            &raw(FeatureSpec::Rsi { period: 2 }),
        )
        .unwrap();
        assert!((f.values[0] - 2.0 / 3.0).abs() < 1e-6);
        // Next: gain (1*1+2)/2 = 1.5, loss (0.5*1+0)/2 = 0.25.
        assert!((f.values[1] - 1.5 / 1.75).abs() < 1e-6);
    }

    #[test]
    fn macd_columns_and_warm_up() {
        let close: Vec<f64> = (0..60)
            .map(|i| 50.0 + (i as f64 * 0.3).sin() * 3.0)
            .collect();
        let spec = FeatureSpec::Macd {
            fast: 3,
            slow: 6,
            signal: 4,
        };
        let f = compute_features(&bars(&close), &raw(spec)).unwrap();
        assert_eq!(f.first_bar, 5 + 3);
        assert_eq!(f.width(), 3);
        let line = f.column("macd_3_6_4_line").unwrap();
        let signal = f.column("macd_3_6_4_signal").unwrap();
        let hist = f.column("macd_3_6_4_hist").unwrap();
        for i in 0..f.rows() {
            assert!((line[i] - signal[i] - hist[i]).abs() < 1e-6);
        }
        let fast = ema(&close, 0, 3);
        let slow = ema(&close, 0, 6);
        let t = f.first_bar + 10;
        assert!((line[10] as f64 - (fast[t] - slow[t]) / slow[t]).abs() < 1e-6);
    }

    #[test]
    fn volatility_and_atr_by_hand() {
        let close = [100.0, 101.0, 99.0, 102.0];
        let f =
            compute_features(&bars(&close), &raw(FeatureSpec::Volatility { window: 3 })).unwrap();
        let r: Vec<f64> = (1..4).map(|t| (close[t] / close[t - 1]).ln()).collect();
        let m = r.iter().sum::<f64>() / 3.0;
        let sd = (r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 3.0).sqrt();
        assert_eq!(f.first_bar, 3);
        assert!((f.values[0] as f64 - sd).abs() < 1e-7);

        let b = bars(&close);
        let f = compute_features(&b, &raw(FeatureSpec::Atr { period: 2 })).unwrap();
        let tr = |t: usize| {
            (b.high[t] - b.low[t])
                .max((b.high[t] - close[t - 1]).abs())
                .max((b.low[t] - close[t - 1]).abs())
        };
        let atr2 = (tr(1) + tr(2)) / 2.0;
        let atr3 = (atr2 + tr(3)) / 2.0;
        assert!((f.values[0] as f64 - atr2 / close[2]).abs() < 1e-7);
        assert!((f.values[1] as f64 - atr3 / close[3]).abs() < 1e-7);
    }

    #[test]
    fn normalisation_has_no_nan_on_constant_input() {
        let flat = vec![7.0; 300];
        let frame = compute_features(&bars(&flat), &FeatureConfig::default()).unwrap();
        assert!(frame.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn too_few_bars_and_bad_bars_are_errors() {
        let err = compute_features(&bars(&[1.0; 50]), &FeatureConfig::default()).unwrap_err();
        assert!(err.to_string().contains("too few"), "{err}");
        let mut b = bars(&[1.0; 200]);
        b.close[3] = f64::NAN;
        let err = compute_features(&b, &raw(FeatureSpec::LogReturn { k: 1 })).unwrap_err();
        assert!(err.to_string().contains("bar 3"), "{err}");
        b.close.pop();
        assert!(compute_features(&b, &raw(FeatureSpec::LogReturn { k: 1 })).is_err());
    }
}
