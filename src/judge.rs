//! Judging a policy: a greedy backtest over a range of the market data (trading), or
//! greedy episodes (CartPole). Training judges on the validation range only (during and at
//! the end of training); the test range is read by `ratchet backtest` and
//! `ratchet sweep --final-test`, which count it as a look.

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::Result;
use serde::Serialize;

use ratchet_agents::{Agent, InferenceMlp, TradingPolicy, greedy_return};
use ratchet_backtest::{
    Backtest, EqualWeight, Frequency, MarketPolicy, PriceSeries, simulate_policy,
};
use ratchet_config::{EnvKind, TrainConfig};
use ratchet_env::{CartPole, Rng, TradingConfig};

use crate::market::Market;
use crate::universe::{TrainingData, Universe};

/// Greedy CartPole episodes run after training.
const CARTPOLE_EPISODES: usize = 10;

/// What training reports about the new version (logged as `val/*` metrics and kept in the
/// version's metadata).
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// `validation range backtest` or `greedy episodes`.
    pub kind: String,
    /// Dates of the backtest range, or empty.
    pub range: Option<(String, String)>,
    pub metrics: BTreeMap<String, f64>,
    /// The strategy's per-bar returns over the range (the first bar's, always 0, left out):
    /// uploaded as `val/returns.json` for the sweep's deflated Sharpe ratio and PBO.
    #[serde(skip)]
    pub returns: Option<Vec<f64>>,
}

impl Evaluation {
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![match &self.range {
            Some((a, b)) => format!("{} {a} .. {b}", self.kind),
            None => self.kind.clone(),
        }];
        let keys = [
            ("total_return", "total return"),
            ("buy_and_hold_total_return", "buy & hold"),
            ("sharpe", "sharpe"),
            ("max_drawdown", "max drawdown"),
            ("trades", "trades"),
            ("mean_return", "mean return"),
        ];
        for (key, label) in keys {
            if let Some(v) = self.metrics.get(key) {
                let value = crate::output::figure(key, Some(*v));
                lines.push(format!("  {label:<13}{value}"));
            }
        }
        lines
    }
}

/// The greedy policy of `agent` on the validation range (trading), or in greedy CartPole
/// episodes. Never reads a bar of the test range: the last decision is taken at the
/// validation range's second-to-last bar and filled at its last bar's open.
pub fn validation(
    config: &TrainConfig,
    data: Option<&TrainingData>,
    agent: &dyn Agent,
) -> Result<Evaluation> {
    match data {
        None => Ok(cartpole(&agent.policy(), config.run.seed)),
        Some(TrainingData::Instrument(market)) => {
            let val = &market.splits.validation;
            let policy = config.trading_policy_of(agent.policy())?;
            let (_, backtest) = policy_backtest(market, &config.trading, policy, val.range())?;
            Ok(Evaluation {
                kind: "validation range backtest".into(),
                range: Some((val.first_date.clone(), val.last_date.clone())),
                metrics: headline(&backtest),
                returns: Some(backtest.strategy.returns[1..].to_vec()),
            })
        }
        Some(TrainingData::Universe(universe)) => universe_validation(config, universe, || {
            Ok(config.trading_policy_of(agent.policy())?)
        }),
    }
}

/// Every instrument of a universe on its own validation range (its figures under
/// `SYMBOL/…`), and their equal-weight portfolio, whose figures are the unprefixed ones
/// (`sharpe` is the portfolio's) and whose returns are the evaluation's. `policy` makes the
/// policy judged (one per instrument: a policy holds its own scratch space).
pub fn universe_validation(
    config: &TrainConfig,
    universe: &Universe,
    policy: impl Fn() -> Result<TradingPolicy>,
) -> Result<Evaluation> {
    let mut runs = Vec::with_capacity(universe.members.len());
    for member in &universe.members {
        let val = member.market.splits.validation.range();
        let (prices, backtest) = policy_backtest(&member.market, &config.trading, policy()?, val)?;
        runs.push((member.symbol.clone(), prices, backtest));
    }
    let (metrics, strategy, _) = universe_figures(&runs);
    let dates = universe.members.iter().map(|m| &m.market.splits.validation);
    let first = dates.clone().map(|v| v.first_date.clone()).min();
    let last = dates.map(|v| v.last_date.clone()).max();
    Ok(Evaluation {
        kind: format!(
            "validation range backtest, equal-weight portfolio of {} symbols",
            universe.members.len()
        ),
        range: first.zip(last),
        metrics,
        returns: Some(strategy.returns),
    })
}

/// A universe's figures from each symbol's backtest: the symbol's under `SYMBOL/…`, and the
/// equal-weight portfolio's unprefixed (`sharpe` is the portfolio's, `trades` the sum); and
/// the two portfolios, the strategy's and buy and hold's.
pub fn universe_figures(
    runs: &[(String, PriceSeries, Backtest)],
) -> (BTreeMap<String, f64>, EqualWeight, EqualWeight) {
    let mut metrics = BTreeMap::new();
    let mut trades = 0.0;
    for (symbol, _, backtest) in runs {
        for (key, value) in headline(backtest) {
            if key == "trades" {
                trades += value;
            }
            metrics.insert(format!("{symbol}/{key}"), value);
        }
    }
    let (strategy, held) = EqualWeight::of_backtests(runs.iter().map(|(_, p, b)| (p, b)));
    let (s, h) = (strategy.metrics(), held.metrics());
    metrics.insert("total_return".into(), s.total_return);
    metrics.insert("max_drawdown".into(), s.max_drawdown);
    metrics.insert("trades".into(), trades);
    metrics.insert("buy_and_hold_total_return".into(), h.total_return);
    metrics.insert("periods_per_year".into(), s.periods_per_year);
    metrics.insert("symbols".into(), runs.len() as f64);
    for (key, value) in [
        ("sharpe", s.sharpe),
        ("annual_volatility", s.annual_volatility),
        ("buy_and_hold_sharpe", h.sharpe),
    ] {
        if let Some(value) = value {
            metrics.insert(key.into(), value);
        }
    }
    (metrics, strategy, held)
}

/// Runs `policy` greedily over feature rows `range`. The first decision is taken at the first
/// row of `range`; its observation window reaches back before it (past data, not leakage)
/// when the range starts late enough, otherwise decisions start once a full window exists.
pub fn policy_backtest(
    market: &Market,
    trading: &TradingConfig,
    policy: TradingPolicy,
    range: Range<usize>,
) -> Result<(PriceSeries, Backtest)> {
    let start = range.start.max(trading.window - 1);
    anyhow::ensure!(
        range.end > start + 1,
        "the backtest range holds {} bars after the {}-bar observation window; it needs at least 2",
        range.end.saturating_sub(start),
        trading.window
    );
    let prices = market.prices(start..range.end)?;
    let mut net = MarketPolicy::new(policy, &market.data, start, trading.window)?;
    let sim = simulate_policy(&prices, &mut net, trading.costs)?;
    let backtest = Backtest::new(&prices, sim, Frequency::infer(prices.timestamps()))?;
    Ok((prices, backtest))
}

/// Every figure [`headline`] can hold (those a backtest leaves undefined are left out), as
/// training logs them under `val/`.
pub const TRADING_METRICS: [&str; 15] = [
    "annual_volatility",
    "buy_and_hold_sharpe",
    "buy_and_hold_total_return",
    "cagr",
    "calmar",
    "exposure",
    "max_drawdown",
    "periods_per_year",
    "profit_factor",
    "sharpe",
    "sortino",
    "total_return",
    "trades",
    "turnover",
    "win_rate",
];

/// The figure of greedy CartPole episodes.
pub const CARTPOLE_METRICS: [&str; 1] = ["mean_return"];

/// The metrics a run in `env` logs for its registered state: `val/` and a figure.
pub fn validation_metrics(env: EnvKind) -> Vec<String> {
    let figures = match env {
        EnvKind::Trading => TRADING_METRICS.as_slice(),
        EnvKind::Cartpole => CARTPOLE_METRICS.as_slice(),
    };
    figures.iter().map(|f| format!("val/{f}")).collect()
}

/// The figures printed after training and logged to the run.
pub fn headline(b: &Backtest) -> BTreeMap<String, f64> {
    let s = &b.strategy_metrics;
    let h = &b.buy_and_hold_metrics;
    let mut m = BTreeMap::new();
    m.insert("total_return".into(), s.total_return);
    m.insert("max_drawdown".into(), s.max_drawdown);
    m.insert("trades".into(), s.trades as f64);
    m.insert("exposure".into(), s.exposure);
    m.insert("turnover".into(), s.turnover);
    m.insert("buy_and_hold_total_return".into(), h.total_return);
    m.insert("periods_per_year".into(), b.frequency.periods_per_year);
    for (k, v) in [
        ("cagr", s.cagr),
        ("sharpe", s.sharpe),
        ("sortino", s.sortino),
        ("calmar", s.calmar),
        ("annual_volatility", s.annual_volatility),
        ("win_rate", s.win_rate),
        ("profit_factor", s.profit_factor),
        ("buy_and_hold_sharpe", h.sharpe),
    ] {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            m.insert(k.into(), v);
        }
    }
    m
}

/// Mean return of greedy CartPole episodes with starts drawn from `seed`.
fn cartpole(policy: &InferenceMlp, seed: u64) -> Evaluation {
    let mut rng = Rng::seed_from(seed ^ 0x5EED_E7A1);
    let mean = greedy_return(
        policy,
        &mut CartPole::default(),
        CARTPOLE_EPISODES,
        &mut rng,
    );
    let mut metrics = BTreeMap::new();
    metrics.insert("mean_return".into(), mean);
    Evaluation {
        kind: format!("{CARTPOLE_EPISODES} greedy episodes"),
        range: None,
        metrics,
        returns: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trading_metrics_name_every_headline_figure() {
        let prices = PriceSeries::new(
            (0..6).map(|d| d * 86_400_000).collect(),
            vec![10.0, 11.0, 10.5, 12.0, 11.0, 10.0],
            vec![11.0, 10.5, 12.0, 11.0, 13.0, 12.5],
        )
        .unwrap();
        // Long on odd bars, flat on even ones: a winning and a losing trade, every figure
        // defined.
        let mut policy = |bar: usize, _: f64, _: f64| (bar % 2) as f64;
        let sim = simulate_policy(&prices, &mut policy, Default::default()).unwrap();
        let backtest = Backtest::new(&prices, sim, Frequency::infer(prices.timestamps())).unwrap();
        let keys: Vec<String> = headline(&backtest).into_keys().collect();
        assert_eq!(keys, TRADING_METRICS.map(String::from));
    }
}
