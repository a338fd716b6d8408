//! Performance figures of a [`Simulation`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::prices::{PriceSeries, to_datetime};
use crate::simulate::Simulation;

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

    /// The metrics in table order, for reports and for logging to a tracking server.
    pub fn rows(&self) -> [MetricRow; 16] {
        use MetricKind::*;
        let row = |key, label, kind, value| MetricRow {
            key,
            label,
            kind,
            value,
        };
        [
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
            row("years", "Years", Ratio, Some(self.years)),
        ]
    }
}

/// `a / b`, or `None` where `b` is missing or zero.
fn ratio(a: f64, b: Option<f64>) -> Option<f64> {
    b.filter(|&b| b > 0.0).map(|b| a / b)
}

/// Sum of `f(x)` with four independent accumulators, so that the additions pipeline and
/// vectorise (a single running sum is one long dependency chain).
#[inline]
fn sum(xs: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0; 4];
    let chunks = xs.chunks_exact(4);
    let rest: f64 = chunks.remainder().iter().map(|&x| f(x)).sum();
    for c in chunks {
        for k in 0..4 {
            acc[k] += f(c[k]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest
}

/// Mean, sum of squared deviations and sum of squared losses of the returns.
struct Moments {
    mean: f64,
    m2: f64,
    downside: f64,
}

impl Moments {
    /// Two passes over each cache-sized block (its mean, then the deviations from it),
    /// blocks merged with Chan et al.'s pairwise update: the accuracy of a two-pass
    /// variance at the memory traffic of one pass.
    fn of(returns: &[f64]) -> Self {
        const BLOCK: usize = 2048;
        let (mut count, mut mean, mut m2, mut downside) = (0.0, 0.0, 0.0, 0.0);
        for block in returns.chunks(BLOCK) {
            let k = block.len() as f64;
            let block_mean = sum(block, |r| r) / k;
            let block_m2 = sum(block, |r| (r - block_mean) * (r - block_mean));
            downside += sum(block, |r| r.min(0.0) * r.min(0.0));
            let total = count + k;
            let delta = block_mean - mean;
            mean += delta * k / total;
            m2 += block_m2 + delta * delta * count * k / total;
            count = total;
        }
        Self { mean, m2, downside }
    }
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
