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
//! - [`SharpeEstimate`], [`Trials`], [`probability_of_backtest_overfitting`]: how far a
//!   Sharpe ratio can be trusted — its standard error, the probabilistic and deflated Sharpe
//!   ratios, the probability of backtest overfitting of a selection among trials;
//! - [`write_reports`]: `report.json`, `report.md` and a self-contained `report.html`,
//!   flagging look-ahead leakage when the range overlaps the model's training range;
//! - [`report::Page`]: the layout of every Ratchet HTML report, for other crates' pages.
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
mod market_policy;
mod metrics;
mod moments;
mod portfolio;
mod prices;
pub mod report;
mod signal;
mod simulate;
mod stats;

pub use error::BacktestError;
pub use frequency::{ALL_DAYS, Frequency, WEEKDAY_TRADING_DAYS};
pub use market_policy::MarketPolicy;
pub use metrics::{MetricKind, MetricRow, Metrics};
pub use portfolio::{EqualWeight, PortfolioMetrics, Sleeve};
pub use prices::PriceSeries;
pub use report::{
    MonthlyReturn, Report, ReportInput, ReportMetadata, ReportPaths, TimeRange, TradeRecord,
    leakage_warning, write_reports,
};
pub use signal::{sma_crossover, sma_crossover_into};
pub use simulate::{Holding, Policy, Side, Simulation, Trade, simulate_policy, simulate_positions};
pub use stats::{
    MAX_PARTITIONS, Overfitting, SharpeEstimate, Trials, probability_of_backtest_overfitting,
};

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
    /// The trials the strategy was selected from, when known ([`Backtest::with_trials`]).
    pub trials: Option<Trials>,
}

impl Backtest {
    /// Adds buy-and-hold and the metrics of both to `strategy`, a simulation over `prices`,
    /// with the strategy's probabilistic Sharpe ratio against buy-and-hold's Sharpe ratio.
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
        let buy_and_hold_metrics = Metrics::compute(prices, &buy_and_hold, ppy);
        let mut strategy_metrics = Metrics::compute(prices, &strategy, ppy);
        strategy_metrics.probabilistic_sharpe_vs_buy_and_hold =
            buy_and_hold_metrics.sharpe.and_then(|hold| {
                let estimate = strategy_metrics.sharpe_estimate(ppy)?;
                estimate.probabilistic(hold / ppy.sqrt())
            });
        Ok(Self {
            strategy_metrics,
            buy_and_hold_metrics,
            frequency,
            strategy,
            buy_and_hold,
            trials: None,
        })
    }

    /// Records that the strategy is the one selected from `trials` and adds its deflated
    /// Sharpe ratio to its metrics (and so to its reports).
    ///
    /// ```
    /// # use ratchet_backtest::{Backtest, Frequency, PriceSeries, Trials, simulate_positions};
    /// # let close: Vec<f64> = (0..300).map(|i| 100.0 + 10.0 * (i as f64 / 20.0).sin()).collect();
    /// # let prices = PriceSeries::new((0..300).map(|i| i * 86_400_000).collect(), close.clone(), close)?;
    /// # let sim = simulate_positions(&prices, &vec![1.0; 300], Default::default())?;
    /// let backtest = Backtest::new(&prices, sim, Frequency::fixed(252.0))?;
    /// // The best of 40 trials, whose annualised Sharpe ratios had a variance of 0.25:
    /// let per_period_variance = 0.25 / 252.0;
    /// let backtest = backtest.with_trials(Trials::new(40, per_period_variance)?);
    /// assert!(backtest.strategy_metrics.deflated_sharpe.is_some());
    /// # Ok::<(), ratchet_backtest::BacktestError>(())
    /// ```
    pub fn with_trials(mut self, trials: Trials) -> Self {
        self.strategy_metrics
            .deflate(&trials, self.frequency.periods_per_year);
        self.trials = Some(trials);
        self
    }
}
