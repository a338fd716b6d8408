//! Backtests for Ratchet: positions in, an equity curve, metrics and reports out.
//!
//! Every simulation uses the one fill and cost rule of [`ratchet_env::execution`], the rule
//! the agents trained under: a position decided at bar `t`'s close fills at bar `t + 1`'s
//! open, paying commission and slippage on the change.
//!
//! - [`simulate_positions`]: the fast path for a precomputed position series (a signal);
//! - [`simulate_policy`]: a [`Policy`] deciding bar by bar from what it holds;
//! - [`Backtest`]: a simulation next to buy-and-hold on the same bars, with [`Metrics`]
//!   annualised by the inferred [`Frequency`];
//! - [`write_reports`]: `report.json`, `report.md` and a self-contained `report.html`,
//!   flagging look-ahead leakage when the range overlaps the model's training range.
//!
//! ```
//! use ratchet_backtest::{Backtest, Frequency, PriceSeries, sma_crossover, simulate_positions};
//! use ratchet_env::execution::Costs;
//!
//! let day = 86_400_000;
//! let close: Vec<f64> = (0..300).map(|i| 100.0 + 10.0 * (i as f64 / 20.0).sin()).collect();
//! let open = close.clone();
//! let timestamps = (0..300).map(|i| i * day).collect();
//! let prices = PriceSeries::new(timestamps, open, close)?;
//!
//! let positions = sma_crossover(prices.close(), 5, 20)?;
//! let sim = simulate_positions(&prices, &positions, Costs::default())?;
//! let backtest = Backtest::new(&prices, sim, Frequency::infer(prices.timestamps()))?;
//! assert_eq!(backtest.frequency.periods_per_year, 365.0); // bars on every day of the week
//! assert!(backtest.strategy_metrics.trades > 0);
//! # Ok::<(), ratchet_backtest::BacktestError>(())
//! ```

mod error;
mod frequency;
mod metrics;
mod prices;
mod report;
mod signal;
mod simulate;

pub use error::BacktestError;
pub use frequency::{ALL_DAYS, Frequency, WEEKDAY_TRADING_DAYS};
pub use metrics::{MetricKind, MetricRow, Metrics};
pub use prices::PriceSeries;
pub use report::{
    MonthlyReturn, Report, ReportInput, ReportMetadata, ReportPaths, TimeRange, TradeRecord,
    leakage_warning, write_reports,
};
pub use signal::{sma_crossover, sma_crossover_into};
pub use simulate::{Policy, Side, Simulation, Trade, simulate_policy, simulate_positions};

/// A strategy's simulation and metrics next to buy-and-hold's on the same bars.
///
/// Buy-and-hold goes through the same simulator: long one unit decided at the first close,
/// so bought at the second bar's open (the first possible fill) paying the entry cost, and
/// held to the last close.
#[derive(Clone, Debug, PartialEq)]
pub struct Backtest {
    pub frequency: Frequency,
    pub strategy: Simulation,
    pub strategy_metrics: Metrics,
    pub buy_and_hold: Simulation,
    pub buy_and_hold_metrics: Metrics,
}

impl Backtest {
    /// Adds buy-and-hold and the metrics of both to `strategy`, a simulation over `prices`.
    pub fn new(
        prices: &PriceSeries,
        strategy: Simulation,
        frequency: Frequency,
    ) -> Result<Self, BacktestError> {
        if strategy.equity.len() != prices.len() {
            return Err(BacktestError::Input(format!(
                "the simulation covers {} bars but the prices {}; pass the series it ran on",
                strategy.equity.len(),
                prices.len()
            )));
        }
        let ppy = frequency.periods_per_year;
        if !(ppy.is_finite() && ppy > 0.0) {
            return Err(BacktestError::Input(format!(
                "periods per year is {ppy}; it must be finite and positive"
            )));
        }
        let buy_and_hold = simulate_policy(prices, &mut |_, _, _| 1.0, strategy.costs)?;
        Ok(Self {
            strategy_metrics: Metrics::compute(prices, &strategy, ppy),
            buy_and_hold_metrics: Metrics::compute(prices, &buy_and_hold, ppy),
            frequency,
            strategy,
            buy_and_hold,
        })
    }
}
