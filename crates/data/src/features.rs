//! Computing a [`FeatureFrame`] from bars.

use rayon::prelude::*;

use crate::config::FeatureConfig;
use crate::{Bars, CrossSection, DataError, FeatureStream, OutsideSources};

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
/// This pushes every bar through a [`FeatureStream`] and collects the rows it returns, so the
/// batch features are exactly, bit for bit, what a stream computes live. Every value at row `r`
/// depends on bars `0..=first_bar + r` only (tested as a property). Errors when the config is
/// invalid, a bar is malformed (see [`FeatureStream::push`]), columns have unequal lengths or
/// there are not more bars than the warm-up needs. Cross-sectional features see the bars as a
/// universe of one (see [`compute_universe_features`]).
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
    if cfg.cross_sectional().is_some() || !cfg.external.is_empty() {
        let outside = OutsideSources::default();
        let mut frames =
            compute_universe_features(&[("", bars)], cfg, &outside).map_err(|e| match e {
                DataError::InSymbol { source, .. } => *source,
                other => other,
            })?;
        return Ok(frames.remove(0));
    }
    let mut stream = FeatureStream::new(cfg)?;
    bars.check_lengths().map_err(DataError::Features)?;
    let mut values =
        Vec::with_capacity(bars.len().saturating_sub(cfg.warm_up()) * cfg.column_names().len());
    for t in 0..bars.len() {
        if let Some(row) = stream.push(&bars.bar(t))? {
            values.extend_from_slice(row);
        }
    }
    frame_of(bars, cfg, values)
}

/// The features of every member of a universe (`(symbol, bars)`, sorted by symbol), one frame
/// per member: [`compute_features`] of each, with the cross-sectional features computed from
/// all of them as a [`CrossSection`] does live (bars in time order across the members; ties in
/// member order, which changes no value), and the outside features joined from `outside` (the
/// config's sources, loaded; each symbol's rows). The cross-sectional values are computed
/// first, in one pass over every bar; then each member's stream runs in parallel. Errors name
/// the symbol; a source with no row known at a symbol's first bar is one.
pub fn compute_universe_features(
    members: &[(&str, &Bars)],
    cfg: &FeatureConfig,
    outside: &OutsideSources,
) -> Result<Vec<FeatureFrame>, DataError> {
    let in_symbol = |m: usize| {
        move |e: DataError| DataError::InSymbol {
            symbol: members[m].0.to_string(),
            source: Box::new(e),
        }
    };
    for (m, (_, bars)) in members.iter().enumerate() {
        bars.check_lengths()
            .map_err(DataError::Features)
            .map_err(in_symbol(m))?;
    }
    cfg.validate()?;
    outside.check_fits(cfg)?;
    for (m, (symbol, bars)) in members.iter().enumerate() {
        if let Some(&first) = bars.timestamps.first() {
            outside.check_covers(symbol, first).map_err(in_symbol(m))?;
        }
    }
    let across = CrossSection::values_of(members, &cfg.features);
    let per_bar = cfg
        .features
        .iter()
        .filter(|f| f.horizon().is_some())
        .count();
    members
        .par_iter()
        .zip(across)
        .map(|((symbol, bars), across)| {
            let mut stream = FeatureStream::new(cfg)?;
            let series = outside.series(symbol);
            let mut values = Vec::with_capacity(
                bars.len().saturating_sub(cfg.warm_up()) * cfg.column_names().len(),
            );
            for t in 0..bars.len() {
                let computed = &across[t * per_bar..(t + 1) * per_bar];
                if let Some(row) = stream.push_computed(&bars.bar(t), computed, &series)? {
                    values.extend_from_slice(row);
                }
            }
            frame_of(bars, cfg, values)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .enumerate()
        // In member order: the error named is the first failing symbol's, whichever thread
        // failed first.
        .map(|(m, frame)| frame.map_err(in_symbol(m)))
        .collect()
}

/// The frame of `bars` from the rows their stream returned: rows have no gaps and end at the
/// last bar (the warm-up, and bars before every outside value is there, have none).
fn frame_of(bars: &Bars, cfg: &FeatureConfig, values: Vec<f32>) -> Result<FeatureFrame, DataError> {
    let (n, width) = (bars.len(), cfg.column_names().len());
    let rows = values.len() / width.max(1);
    let first_bar = if rows == 0 { cfg.warm_up() } else { n - rows };
    if rows == 0 {
        return Err(DataError::Features(format!(
            "{n} bars are too few: this feature config drops the first {first_bar} as warm-up and needs at least one more; use more data, shorter indicator windows or a shorter normalization window"
        )));
    }
    Ok(FeatureFrame {
        names: cfg.column_names(),
        values,
        first_bar,
        timestamps: bars.timestamps[first_bar..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FeatureSpec, Normalization};

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
            external: Vec::new(),
            feast: Vec::new(),
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
        // EMA seeded with the mean of the first `span` closes, by hand.
        let ema = |span: usize, t: usize| {
            let alpha = 2.0 / (span as f64 + 1.0);
            let seed = close[..span].iter().sum::<f64>() / span as f64;
            close[span..=t]
                .iter()
                .fold(seed, |v, &c| v + alpha * (c - v))
        };
        let t = f.first_bar + 10;
        let (fast, slow) = (ema(3, t), ema(6, t));
        assert!((line[10] as f64 - (fast - slow) / slow).abs() < 1e-6);
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
