//! The equal-weight portfolio of a universe's per-instrument sleeves: at each timestamp, the
//! mean of the returns of the instruments trading then (an instrument with no bar at that
//! moment is not in the mean: nothing is forward-filled).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::frequency::Frequency;
use crate::metrics::deepest_drawdown_depth;
use crate::moments::Moments;
use crate::{Backtest, PriceSeries};

/// One instrument's per-bar returns: `returns[i]` is earned over the bar that ends at
/// `timestamps[i]`.
pub struct Sleeve<'a> {
    pub timestamps: &'a [i64],
    pub returns: &'a [f64],
}

/// The portfolio's returns, one per timestamp at which any sleeve has a return.
#[derive(Clone, Debug, PartialEq)]
pub struct EqualWeight {
    pub timestamps: Vec<i64>,
    pub returns: Vec<f64>,
}

impl EqualWeight {
    pub fn of(sleeves: &[Sleeve]) -> Self {
        let mut sums: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
        for sleeve in sleeves {
            for (&t, &r) in sleeve.timestamps.iter().zip(sleeve.returns) {
                let entry = sums.entry(t).or_insert((0.0, 0));
                entry.0 += r;
                entry.1 += 1;
            }
        }
        let (timestamps, returns) = sums
            .into_iter()
            .map(|(t, (sum, n))| (t, sum / f64::from(n)))
            .unzip();
        EqualWeight {
            timestamps,
            returns,
        }
    }

    /// The two equal-weight portfolios of per-instrument backtests (each over its own
    /// prices): the strategy's, and buy and hold's.
    pub fn of_backtests<'a>(
        runs: impl IntoIterator<Item = (&'a PriceSeries, &'a Backtest)> + Clone,
    ) -> (EqualWeight, EqualWeight) {
        let of = |returns: fn(&Backtest) -> &[f64]| {
            let sleeves: Vec<Sleeve> = runs
                .clone()
                .into_iter()
                .map(|(prices, backtest)| Sleeve {
                    timestamps: &prices.timestamps()[1..],
                    returns: &returns(backtest)[1..],
                })
                .collect();
            EqualWeight::of(&sleeves)
        };
        (of(|b| &b.strategy.returns), of(|b| &b.buy_and_hold.returns))
    }

    /// Headline figures of the series, annualised at the frequency of its timestamps.
    pub fn metrics(&self) -> PortfolioMetrics {
        let periods_per_year = if self.timestamps.len() >= 2 {
            Frequency::infer(&self.timestamps).periods_per_year
        } else {
            f64::NAN
        };
        let mut equity = Vec::with_capacity(self.returns.len() + 1);
        equity.push(1.0);
        for r in &self.returns {
            let last = equity[equity.len() - 1];
            equity.push(last * (1.0 + r));
        }
        let moments = Moments::of(&self.returns);
        let n = self.returns.len() as f64;
        let stdev = (n > 1.0).then(|| (moments.m2 / (n - 1.0)).sqrt());
        let annualise = periods_per_year.sqrt();
        PortfolioMetrics {
            total_return: equity[equity.len() - 1] - 1.0,
            sharpe: stdev
                .filter(|s| *s > 0.0)
                .map(|s| moments.mean / s * annualise)
                .filter(|s| s.is_finite()),
            annual_volatility: stdev.map(|s| s * annualise).filter(|v| v.is_finite()),
            max_drawdown: deepest_drawdown_depth(&equity),
            periods_per_year,
        }
    }
}

/// The figures a universe reports for its pooled portfolio (as one instrument's
/// [`crate::Metrics`] define them).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PortfolioMetrics {
    pub total_return: f64,
    pub sharpe: Option<f64>,
    pub annual_volatility: Option<f64>,
    pub max_drawdown: f64,
    pub periods_per_year: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_is_taken_over_the_instruments_trading_at_each_moment() {
        let a = Sleeve {
            timestamps: &[1, 2, 3],
            returns: &[0.01, 0.02, -0.01],
        };
        let b = Sleeve {
            timestamps: &[2, 4],
            returns: &[0.04, 0.03],
        };
        let pooled = EqualWeight::of(&[a, b]);
        assert_eq!(pooled.timestamps, [1, 2, 3, 4]);
        assert_eq!(pooled.returns, [0.01, (0.02 + 0.04) / 2.0, -0.01, 0.03]);
        let m = pooled.metrics();
        assert_eq!(m.total_return, 1.01 * 1.03 * 0.99 * 1.03 - 1.0);
        assert!((m.max_drawdown - 0.01).abs() < 1e-12, "{}", m.max_drawdown);
    }
}
