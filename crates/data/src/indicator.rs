//! The indicators: the one implementation of each feature, updated bar by bar. A
//! [`FeatureStream`](crate::FeatureStream) holds one per feature of its config; batch features
//! ([`compute_features`](crate::compute_features)) run the same stream over every bar.

use serde::{Deserialize, Serialize};

use crate::Bar;
use crate::config::FeatureSpec;
use crate::rolling::{Lagged, RollingMeanStd, SmoothedAverage, Smoothing, zscore};

/// The running state of one [`FeatureSpec`]: the one implementation of that feature, updated
/// bar by bar by a [`FeatureStream`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Indicator {
    SimpleReturn(Lagged),
    LogReturn(Lagged),
    SmaRatio {
        fast: RollingMeanStd,
        slow: RollingMeanStd,
    },
    EmaRatio {
        fast: SmoothedAverage,
        slow: SmoothedAverage,
    },
    Rsi {
        gain: SmoothedAverage,
        loss: SmoothedAverage,
    },
    Macd {
        fast: SmoothedAverage,
        slow: SmoothedAverage,
        signal: SmoothedAverage,
    },
    Volatility(RollingMeanStd),
    Atr(SmoothedAverage),
    ZscoreClose(RollingMeanStd),
    ZscoreVolume(RollingMeanStd),
    /// A cross-sectional feature's own k-bar log return, which the stream turns into the
    /// feature with its [`CrossSection`](crate::CrossSection).
    OwnReturn(Lagged),
}

impl Indicator {
    pub(crate) fn new(spec: &FeatureSpec) -> Self {
        use Smoothing::{Exponential, Wilder};
        match *spec {
            FeatureSpec::SimpleReturn { k } => Indicator::SimpleReturn(Lagged::new(k)),
            FeatureSpec::LogReturn { k } => Indicator::LogReturn(Lagged::new(k)),
            FeatureSpec::SmaRatio { fast, slow } => Indicator::SmaRatio {
                fast: RollingMeanStd::new(fast),
                slow: RollingMeanStd::new(slow),
            },
            FeatureSpec::EmaRatio { fast, slow } => Indicator::EmaRatio {
                fast: SmoothedAverage::new(Exponential, fast),
                slow: SmoothedAverage::new(Exponential, slow),
            },
            FeatureSpec::Rsi { period } => Indicator::Rsi {
                gain: SmoothedAverage::new(Wilder, period),
                loss: SmoothedAverage::new(Wilder, period),
            },
            FeatureSpec::Macd { fast, slow, signal } => Indicator::Macd {
                fast: SmoothedAverage::new(Exponential, fast),
                slow: SmoothedAverage::new(Exponential, slow),
                signal: SmoothedAverage::new(Exponential, signal),
            },
            FeatureSpec::Volatility { window } => {
                Indicator::Volatility(RollingMeanStd::new(window))
            }
            FeatureSpec::Atr { period } => Indicator::Atr(SmoothedAverage::new(Wilder, period)),
            FeatureSpec::ZscoreClose { window } => {
                Indicator::ZscoreClose(RollingMeanStd::new(window))
            }
            FeatureSpec::ZscoreVolume { window } => {
                Indicator::ZscoreVolume(RollingMeanStd::new(window))
            }
            FeatureSpec::UniverseReturn { k }
            | FeatureSpec::ReturnRank { k }
            | FeatureSpec::ExcessReturn { k } => Indicator::OwnReturn(Lagged::new(k)),
        }
    }

    /// Number of columns (as [`FeatureSpec::column_names`]).
    pub(crate) fn width(&self) -> usize {
        match self {
            Indicator::Macd { .. } => 3,
            _ => 1,
        }
    }

    /// Takes the next bar (`previous_close`: the close of the bar before it, `None` for the
    /// first) and writes this feature's values at that bar to `out`, NaN while warming up.
    pub(crate) fn update(&mut self, bar: &Bar, previous_close: Option<f64>, out: &mut [f64]) {
        let c = bar.close;
        // Both averages of a ratio see every bar, even while the other is still warming up.
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a / b - 1.0,
            _ => f64::NAN,
        };
        let mean = |m: Option<(f64, f64)>| m.map(|(mean, _)| mean);
        let value = match self {
            Indicator::SimpleReturn(lagged) => lagged.push(c).map_or(f64::NAN, |old| c / old - 1.0),
            Indicator::LogReturn(lagged) | Indicator::OwnReturn(lagged) => {
                lagged.push(c).map_or(f64::NAN, |old| (c / old).ln())
            }
            Indicator::SmaRatio { fast, slow } => ratio(mean(fast.push(c)), mean(slow.push(c))),
            Indicator::EmaRatio { fast, slow } => ratio(fast.push(c), slow.push(c)),
            Indicator::Rsi { gain, loss } => previous_close.map_or(f64::NAN, |previous| {
                let d = c - previous;
                match (gain.push(d.max(0.0)), loss.push((-d).max(0.0))) {
                    (Some(g), Some(l)) if g + l > 0.0 => g / (g + l),
                    (Some(g), Some(_)) if !g.is_nan() => 0.5,
                    _ => f64::NAN,
                }
            }),
            Indicator::Macd { fast, slow, signal } => {
                // (EMA_fast - EMA_slow) / EMA_slow = EMA_fast / EMA_slow - 1; the signal line
                // averages the line from the first bar it is defined.
                let values = match (fast.push(c), slow.push(c)) {
                    (Some(a), Some(b)) => {
                        let line = a / b - 1.0;
                        signal
                            .push(line)
                            .map_or([line, f64::NAN, f64::NAN], |s| [line, s, line - s])
                    }
                    _ => [f64::NAN; 3],
                };
                for (o, v) in out.iter_mut().zip(values) {
                    *o = v;
                }
                return;
            }
            Indicator::Volatility(returns) => previous_close
                .and_then(|previous| returns.push((c / previous).ln()))
                .map_or(f64::NAN, |(_, std)| std),
            Indicator::Atr(average) => previous_close
                .and_then(|previous| {
                    let true_range = (bar.high - bar.low)
                        .max((bar.high - previous).abs())
                        .max((bar.low - previous).abs());
                    average.push(true_range)
                })
                .map_or(f64::NAN, |atr| atr / c),
            Indicator::ZscoreClose(closes) => closes
                .push(c)
                .map_or(f64::NAN, |(mean, std)| zscore(c, mean, std)),
            Indicator::ZscoreVolume(volumes) => volumes
                .push(bar.volume)
                .map_or(f64::NAN, |(mean, std)| zscore(bar.volume, mean, std)),
        };
        out.fill(value);
    }
}
