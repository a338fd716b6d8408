//! `ratchet backtest` of a universe version: every symbol on its own range (its test range,
//! or the dates given), one report for all of them with their equal-weight portfolio.

use anyhow::{Context, Result, bail};
use ratchet_backtest::report::{SymbolRun, write_universe_reports};
use ratchet_config::TrainConfig;
use ratchet_registry::{NamedTensor, Registry};

use super::{BacktestOutput, parse_date};
use crate::checkpoint::{self, LoadedVersion};
use crate::cli::BacktestArgs;
use crate::judge::{policy_backtest, universe_figures};
use crate::universe::Universe;

pub fn backtest(
    registry: &Registry,
    args: &BacktestArgs,
    version: &LoadedVersion,
    weights: &[NamedTensor],
    mut config: TrainConfig,
) -> Result<(BacktestOutput, Vec<String>)> {
    if args.data.is_some() {
        bail!(
            "{} is a universe version: its data are the [data] files it recorded ({}); --data \
             names one instrument",
            version.uri,
            config.data.files.join(", ")
        );
    }
    let universe =
        Universe::prepare_recorded(&config, &version.metadata.training.data, &version.uri)?;
    config.trading.window = config.features.window;
    let bound =
        |d: &Option<String>, end: bool| d.as_deref().map(|d| parse_date(d, end)).transpose();
    let (from, to) = (bound(&args.from, false)?, bound(&args.to, true)?);
    let mut runs = Vec::with_capacity(universe.members.len());
    for member in &universe.members {
        let market = &member.market;
        let range = match (from, to) {
            (None, None) => market
                .test_range()
                .with_context(|| format!("{} has no bars to backtest by default", version.uri))?
                .range(),
            (from, to) => {
                let ts = &market.frame.timestamps;
                let start = from.map_or(0, |f| ts.partition_point(|&t| t < f));
                let end = to.map_or(ts.len(), |l| ts.partition_point(|&t| t <= l));
                if end <= start + 1 {
                    continue; // No decision to take in this symbol's bars between the dates.
                }
                start..end
            }
        };
        let policy = config
            .trading_policy(weights)
            .with_context(|| format!("loading the weights of {}", version.uri))?;
        let (prices, backtest) = policy_backtest(market, &config.trading, policy, range)
            .with_context(|| format!("symbol {}", member.symbol))?;
        runs.push((member.symbol.clone(), prices, backtest));
    }
    if runs.is_empty() {
        bail!(
            "no symbol of {} has 2 bars between the dates given",
            version.uri
        );
    }
    let symbol_runs: Vec<SymbolRun> = runs
        .iter()
        .map(|(symbol, prices, backtest)| SymbolRun {
            symbol,
            prices,
            backtest,
        })
        .collect();
    let metadata = super::report_metadata(
        version,
        &config,
        config.data.files.join(", "),
        ("symbols", runs.len().to_string()),
    );
    let out = super::report_dir(args, version);
    // The figures training logs as val/*, over these ranges.
    let (metrics, strategy, held) = universe_figures(&runs);
    let (report, paths) = write_universe_reports(&out, &symbol_runs, (&strategy, &held), &metadata)
        .with_context(|| format!("writing reports to {}", out.display()))?;
    let p = &report.portfolio;
    super::log_to_run(registry, version, &metrics, from.is_none() && to.is_none())?;

    // One look at the test range for the whole universe, when any symbol's range reaches it.
    let reaches_test = universe
        .members
        .iter()
        .zip(&runs)
        .any(|(member, (_, prices, _))| {
            let Some(test) = &member.market.splits.test else {
                return false;
            };
            let (first, last) = (
                prices.timestamps()[0],
                prices.timestamps()[prices.len() - 1],
            );
            let ts = &member.market.frame.timestamps;
            first <= ts[test.end - 1] && last >= ts[test.start]
        });
    let test_looks = if reaches_test {
        let looks = registry
            .record_test_look(&checkpoint::parse_ref(&version.uri)?)
            .with_context(|| format!("counting the test look of {}", version.uri))?;
        eprintln!(
            "note: this backtest reaches the test ranges of {}: test looks {looks}",
            version.uri
        );
        Some(looks)
    } else {
        None
    };
    let first = report.symbols.iter().map(|r| r.first).min().expect("a run");
    let last = report.symbols.iter().map(|r| r.last).max().expect("a run");
    let mut lines = vec![
        format!(
            "backtest of {} over {} symbols, {} .. {}",
            version.uri,
            runs.len(),
            first.format("%Y-%m-%d %H:%M"),
            last.format("%Y-%m-%d %H:%M"),
        ),
        format!(
            "  portfolio total return {:+.2}%   buy & hold {:+.2}%",
            p.total_return * 100.0,
            report.buy_and_hold.total_return * 100.0
        ),
        format!(
            "  portfolio sharpe       {}   buy & hold {}",
            super::opt(p.sharpe),
            super::opt(report.buy_and_hold.sharpe)
        ),
        format!("  portfolio max drawdown {:.2}%", p.max_drawdown * 100.0),
    ];
    for row in &report.symbols {
        lines.push(format!(
            "  {:<12} return {:+.2}%  sharpe {}  trades {}",
            row.symbol,
            row.total_return * 100.0,
            super::opt(row.sharpe),
            row.trades
        ));
    }
    if let Some(looks) = test_looks {
        lines.push(format!("  test looks        {looks} (this one included)"));
    }
    let reports = vec![paths.json, paths.markdown, paths.html];
    lines.push(format!("reports: {}", out.display()));
    for path in &reports {
        lines.push(format!("  {}", path.display()));
    }
    let output = BacktestOutput {
        model_uri: version.uri.clone(),
        range: (first.to_rfc3339(), last.to_rfc3339()),
        periods_per_year: p.periods_per_year,
        leakage: None,
        test_range: reaches_test,
        test_looks,
        reports,
        metrics,
    };
    Ok((output, lines))
}
