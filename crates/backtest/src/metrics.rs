//! Performance figures of a [`Simulation`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::moments::Moments;
use crate::prices::{PriceSeries, to_datetime};
use crate::simulate::Simulation;
use crate::stats::{SharpeEstimate, Trials};

const DAY_MS: f64 = 86_400_000.0;

/// Performance of one simulation. `r_1 .. r_N` are its per-bar returns (`N = bars - 1`),
/// `ppy` the periods per year, `years = N / ppy`; ratios use a zero risk-free rate.
/// Figures that are undefined on the data (a ratio over zero) are `None` (`null` in JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Bars in the range (one more than the returns).
    pub bars: usize,
    /// `N / ppy`.
    pub years: f64,
    /// `equity_last / equity_first - 1`.
    pub total_return: f64,
    /// `(equity_last / equity_first)^(1 / years) - 1`.
    pub cagr: Option<f64>,
    /// Sample standard deviation of the returns (N - 1 in the denominator) times `sqrt(ppy)`.
    pub annual_volatility: Option<f64>,
    /// `mean(r) / stdev(r) * sqrt(ppy)`.
    pub sharpe: Option<f64>,
    /// Standard error of `sharpe` ([`SharpeEstimate::standard_error`] times `sqrt(ppy)`).
    pub sharpe_standard_error: Option<f64>,
    /// Probabilistic Sharpe ratio against 0: the probability that the true Sharpe ratio
    /// is positive ([`SharpeEstimate::probabilistic`]).
    pub probabilistic_sharpe: Option<f64>,
    /// Probabilistic Sharpe ratio against buy-and-hold's Sharpe ratio on the same bars
    /// (set by [`crate::Backtest::new`] for the strategy; `None` for buy-and-hold itself).
    pub probabilistic_sharpe_vs_buy_and_hold: Option<f64>,
    /// Deflated Sharpe ratio, present only when the strategy was selected from a known
    /// number of trials ([`crate::Backtest::with_trials`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deflated_sharpe: Option<f64>,
    /// Skewness of the returns, `m3 / m2^1.5` ([`SharpeEstimate::skewness`]).
    pub skewness: Option<f64>,
    /// Kurtosis of the returns, `m4 / m2^2`, 3 for normal returns ([`SharpeEstimate::kurtosis`]).
    pub kurtosis: Option<f64>,
    /// `mean(r) / sqrt(sum(min(r, 0)^2) / N) * sqrt(ppy)`.
    pub sortino: Option<f64>,
    /// `cagr / max_drawdown`.
    pub calmar: Option<f64>,
    /// Largest fall from a running peak of equity, as a positive fraction of that peak.
    pub max_drawdown: f64,
    /// Bars from the peak before the deepest drawdown until equity is back at that peak
    /// (or until the last bar if it never is).
    pub max_drawdown_duration_bars: usize,
    /// The same span in calendar days.
    pub max_drawdown_duration_days: f64,
    pub max_drawdown_peak: DateTime<Utc>,
    pub max_drawdown_trough: DateTime<Utc>,
    /// Whether equity regained the peak before the end.
    pub max_drawdown_recovered: bool,
    /// Share of trades with a positive pnl (the trade still open at the end included,
    /// valued at the last close).
    pub win_rate: Option<f64>,
    /// Sum of winning trades' pnl over the absolute sum of losing trades' pnl.
    pub profit_factor: Option<f64>,
    pub trades: usize,
    /// Total position traded, `sum |position[t] - position[t-1]|`, in units of equity.
    pub turnover: f64,
    /// `turnover / years`.
    pub annual_turnover: Option<f64>,
    /// Share of bar sessions with a non-zero position.
    pub exposure: f64,
}

/// How a metric reads, for tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A fraction shown as a percentage.
    Percent,
    /// A plain ratio.
    Ratio,
    /// A whole number.
    Count,
    /// Calendar days.
    Days,
}

/// One row of a metrics table: the key used in JSON and MLflow, a label, how to format it,
/// and the value (`None` when undefined).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricRow {
    pub key: &'static str,
    pub label: &'static str,
    pub kind: MetricKind,
    pub value: Option<f64>,
}

impl Metrics {
    /// Computes every metric of `sim`, a simulation over `prices`, annualised with
    /// `periods_per_year` (see [`crate::Frequency`]).
    pub fn compute(prices: &PriceSeries, sim: &Simulation, periods_per_year: f64) -> Self {
        let equity = &sim.equity;
        let n = equity.len();
        let returns = &sim.returns[1..];
        let count = returns.len() as f64;
        let years = count / periods_per_year;
        let growth = equity[n - 1] / equity[0];

        let moments = Moments::of(returns);
        let estimate = SharpeEstimate::with_moments(returns.len(), &moments).ok();
        let mean = moments.mean;
        let variance = (n > 2).then(|| moments.m2 / (count - 1.0));
        let downside = (moments.downside / count).sqrt();
        let annualise = periods_per_year.sqrt();
        let stdev = variance.map(f64::sqrt);

        let cagr = (years > 0.0).then(|| growth.powf(1.0 / years) - 1.0);
        let drawdown = deepest_drawdown(equity);
        let ts = prices.timestamps();

        let (mut wins, mut gains, mut losses) = (0usize, 0.0, 0.0);
        for trade in &sim.trades {
            if trade.pnl > 0.0 {
                wins += 1;
                gains += trade.pnl;
            } else {
                losses -= trade.pnl;
            }
        }
        let trades = sim.trades.len();
        let (turnover, exposed) = turnover_and_exposure(&sim.positions);

        Self {
            bars: n,
            years,
            total_return: growth - 1.0,
            cagr,
            annual_volatility: stdev.map(|s| s * annualise),
            sharpe: ratio(mean, stdev).map(|s| s * annualise),
            sharpe_standard_error: estimate
                .and_then(|e| e.standard_error())
                .map(|se| se * annualise),
            probabilistic_sharpe: estimate.and_then(|e| e.probabilistic(0.0)),
            probabilistic_sharpe_vs_buy_and_hold: None,
            deflated_sharpe: None,
            skewness: estimate.map(|e| e.skewness),
            kurtosis: estimate.map(|e| e.kurtosis),
            sortino: ratio(mean, Some(downside)).map(|s| s * annualise),
            calmar: cagr.and_then(|c| ratio(c, Some(drawdown.depth))),
            max_drawdown: drawdown.depth,
            max_drawdown_duration_bars: drawdown.end - drawdown.peak,
            max_drawdown_duration_days: (ts[drawdown.end] - ts[drawdown.peak]) as f64 / DAY_MS,
            max_drawdown_peak: to_datetime(ts[drawdown.peak]),
            max_drawdown_trough: to_datetime(ts[drawdown.trough]),
            max_drawdown_recovered: drawdown.recovered,
            win_rate: (trades > 0).then(|| wins as f64 / trades as f64),
            profit_factor: ratio(gains, Some(losses)),
            trades,
            turnover,
            annual_turnover: (years > 0.0).then(|| turnover / years),
            exposure: exposed / count,
        }
    }

    /// The Sharpe ratio's estimate per period, as [`SharpeEstimate`]'s statistics take it,
    /// from the annualised figures and the `periods_per_year` they were computed with;
    /// `None` where the Sharpe ratio is undefined.
    pub fn sharpe_estimate(&self, periods_per_year: f64) -> Option<SharpeEstimate> {
        Some(SharpeEstimate {
            sharpe: self.sharpe? / periods_per_year.sqrt(),
            observations: self.bars.saturating_sub(1),
            skewness: self.skewness?,
            kurtosis: self.kurtosis?,
        })
    }

    /// Sets [`Metrics::deflated_sharpe`] for a strategy selected from `trials`.
    pub fn deflate(&mut self, trials: &Trials, periods_per_year: f64) {
        self.deflated_sharpe = self
            .sharpe_estimate(periods_per_year)
            .and_then(|e| e.deflated(trials));
    }

    /// The metrics in table order, for reports and for logging to a tracking server. The
    /// deflated Sharpe ratio is listed only where it was computed.
    pub fn rows(&self) -> Vec<MetricRow> {
        use MetricKind::*;
        let row = |key, label, kind, value| MetricRow {
            key,
            label,
            kind,
            value,
        };
        let mut rows = vec![
            row(
                "total_return",
                "Total return",
                Percent,
                Some(self.total_return),
            ),
            row("cagr", "CAGR", Percent, self.cagr),
            row(
                "annual_volatility",
                "Annualised volatility",
                Percent,
                self.annual_volatility,
            ),
            row("sharpe", "Sharpe ratio", Ratio, self.sharpe),
            row(
                "sharpe_standard_error",
                "Sharpe standard error",
                Ratio,
                self.sharpe_standard_error,
            ),
            row(
                "probabilistic_sharpe",
                "Probabilistic Sharpe (vs 0)",
                Percent,
                self.probabilistic_sharpe,
            ),
            row(
                "probabilistic_sharpe_vs_buy_and_hold",
                "Probabilistic Sharpe (vs buy and hold)",
                Percent,
                self.probabilistic_sharpe_vs_buy_and_hold,
            ),
            row(
                "deflated_sharpe",
                "Deflated Sharpe",
                Percent,
                self.deflated_sharpe,
            ),
            row("sortino", "Sortino ratio", Ratio, self.sortino),
            row("calmar", "Calmar ratio", Ratio, self.calmar),
            row(
                "max_drawdown",
                "Max drawdown",
                Percent,
                Some(self.max_drawdown),
            ),
            row(
                "max_drawdown_duration_bars",
                "Max drawdown duration (bars)",
                Count,
                Some(self.max_drawdown_duration_bars as f64),
            ),
            row(
                "max_drawdown_duration_days",
                "Max drawdown duration (days)",
                Days,
                Some(self.max_drawdown_duration_days),
            ),
            row("win_rate", "Win rate", Percent, self.win_rate),
            row("profit_factor", "Profit factor", Ratio, self.profit_factor),
            row("trades", "Trades", Count, Some(self.trades as f64)),
            row(
                "turnover",
                "Turnover (x equity)",
                Ratio,
                Some(self.turnover),
            ),
            row(
                "annual_turnover",
                "Turnover per year",
                Ratio,
                self.annual_turnover,
            ),
            row("exposure", "Exposure", Percent, Some(self.exposure)),
            row("skewness", "Skewness of returns", Ratio, self.skewness),
            row("kurtosis", "Kurtosis of returns", Ratio, self.kurtosis),
            row("years", "Years", Ratio, Some(self.years)),
        ];
        rows.retain(|r| r.key != "deflated_sharpe" || r.value.is_some());
        rows
    }
}

/// `a / b`, or `None` where `b` is missing or zero.
fn ratio(a: f64, b: Option<f64>) -> Option<f64> {
    b.filter(|&b| b > 0.0).map(|b| a / b)
}

/// `sum |position[t] - position[t-1]|` and the number of bars `t >= 1` holding a position,
/// in one vectorised pass.
fn turnover_and_exposure(positions: &[f64]) -> (f64, f64) {
    let (before, after) = (&positions[..positions.len() - 1], &positions[1..]);
    let (mut traded, mut held) = ([0.0; 4], [0.0; 4]);
    let (pairs_before, pairs_after) = (before.chunks_exact(4), after.chunks_exact(4));
    let (mut rest_traded, mut rest_held) = (0.0, 0.0);
    for (&a, &b) in pairs_before.remainder().iter().zip(pairs_after.remainder()) {
        rest_traded += (b - a).abs();
        rest_held += f64::from(u8::from(b != 0.0));
    }
    for (a, b) in pairs_before.zip(pairs_after) {
        for k in 0..4 {
            traded[k] += (b[k] - a[k]).abs();
            held[k] += f64::from(u8::from(b[k] != 0.0));
        }
    }
    let total = |acc: [f64; 4], rest: f64| (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest;
    (total(traded, rest_traded), total(held, rest_held))
}

/// The deepest drawdown of an equity curve: bars of its peak, trough and recovery (or the
/// last bar when it never recovered).
#[derive(Debug)]
struct Drawdown {
    depth: f64,
    peak: usize,
    trough: usize,
    end: usize,
    recovered: bool,
}

fn deepest_drawdown(equity: &[f64]) -> Drawdown {
    let (mut peak, mut peak_value) = (0, equity[0]);
    let (mut worst_ratio, mut worst_peak, mut trough) = (1.0, 0, 0);
    for (t, &e) in equity.iter().enumerate() {
        if e >= peak_value {
            peak = t;
            peak_value = e;
        } else if e < worst_ratio * peak_value {
            worst_ratio = e / peak_value;
            worst_peak = peak;
            trough = t;
        }
    }
    let recovery = equity[trough..]
        .iter()
        .position(|&e| e >= equity[worst_peak])
        .map(|k| trough + k);
    Drawdown {
        depth: 1.0 - worst_ratio,
        peak: worst_peak,
        trough,
        end: recovery.unwrap_or(equity.len() - 1),
        recovered: recovery.is_some(),
    }
}

/// The depth of the deepest drawdown of an equity curve, as a positive fraction.
pub(crate) fn deepest_drawdown_depth(equity: &[f64]) -> f64 {
    deepest_drawdown(equity).depth
}

/// `equity[t] / max(equity[..=t]) - 1` for every bar: the underwater curve (0 at a peak).
pub(crate) fn underwater(equity: &[f64]) -> Vec<f64> {
    let mut peak = f64::MIN;
    equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            if peak > 0.0 { e / peak - 1.0 } else { 0.0 }
        })
        .collect()
}
