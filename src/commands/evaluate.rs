//! `ratchet evaluate MODEL`: a registered version's greedy policy on its validation range
//! (the figures training logged as `val/*`), or with `--walk-forward` an anchored or rolling
//! walk-forward over the bars after its training range.
//!
//! Walk-forward: the bars after the version's training range (its recorded validation and
//! test ranges) are cut into K consecutive folds of equal length. For each fold, training
//! continues from the version for `--steps` steps on the bars before the fold (anchored: from
//! the first bar; rolling: a window as long as the version's training range), then the
//! policy is judged greedily on the fold. Every fold starts again from the version, never
//! from the previous fold. Training is deterministic, so the same command gives the same
//! numbers. Nothing is registered or logged; the folds cover the version's test range, so
//! each walk-forward counts as one look at it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use ratchet_agents::{Environments, NamedTensor, TensorGroup, TrainingState, UpdateLog};
use ratchet_backtest::SharpeEstimate;
use ratchet_registry::Registry;

use crate::checkpoint::{self, LoadedVersion};
use ratchet_config::{EnvKind, TrainConfig};

use crate::cli::EvaluateArgs;
use crate::judge::{headline, policy_backtest, universe_validation};
use crate::market::Market;
use crate::output::{Table, print_json};
use crate::universe::Universe;

mod universe;

#[derive(Serialize)]
struct ValidationOutput {
    model_uri: String,
    range: (String, String),
    metrics: BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct FoldOutput {
    fold: usize,
    /// First and last date of the bars the fold trained on, and how many.
    train: (String, String),
    train_bars: usize,
    /// First and last date of the fold, and its bars.
    range: (String, String),
    bars: usize,
    metrics: BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct WalkForwardOutput {
    model_uri: String,
    /// `anchored` or `rolling`.
    mode: &'static str,
    steps_per_fold: u64,
    folds: Vec<FoldOutput>,
    /// Over the folds' returns joined end to end: `sharpe` (annualised), `total_return`,
    /// `probabilistic_sharpe` (against zero), `bars`; and `mean_fold_sharpe`.
    pooled: BTreeMap<String, f64>,
    /// The version's test looks, this walk-forward included.
    test_looks: Option<u64>,
}

pub fn run(tracking_uri: &str, args: EvaluateArgs) -> Result<()> {
    let registry = Registry::open(tracking_uri)?;
    if args.walk_forward {
        return walk_forward(&registry, &args);
    }
    let (version, weights) = checkpoint::load_weights(&registry, &args.model)?;
    if version.config.data.is_universe() {
        return evaluate_universe(&version, &weights, args.json);
    }
    let (config, market) = prepare(&version, &["validation"])?;
    let policy = config
        .trading_policy(&weights)
        .with_context(|| format!("loading the weights of {}", version.uri))?;
    let val = &market.splits.validation;
    let (_, backtest) = policy_backtest(&market, &config.trading, policy, val.range())?;
    let out = ValidationOutput {
        model_uri: version.uri.clone(),
        range: (val.first_date.clone(), val.last_date.clone()),
        metrics: headline(&backtest),
    };
    if args.json {
        return print_json(&out);
    }
    println!(
        "{} on its validation range {} .. {}",
        out.model_uri, out.range.0, out.range.1
    );
    for (k, v) in &out.metrics {
        println!("  {k:<26} {}", crate::output::figure(k, Some(*v)));
    }
    Ok(())
}

/// A universe version on every symbol's recorded validation range and as their equal-weight
/// portfolio: the figures training logged as `val/*`.
fn evaluate_universe(version: &LoadedVersion, weights: &[NamedTensor], json: bool) -> Result<()> {
    let mut config = version.config.clone();
    config.trading.window = config.features.window;
    let universe =
        Universe::prepare_recorded(&config, &version.metadata.training.data, &version.uri)?;
    let evaluation = universe_validation(&config, &universe, || {
        config
            .trading_policy(weights)
            .with_context(|| format!("loading the weights of {}", version.uri))
    })?;
    let out = ValidationOutput {
        model_uri: version.uri.clone(),
        range: evaluation.range.clone().unwrap_or_default(),
        metrics: evaluation.metrics,
    };
    if json {
        return print_json(&out);
    }
    println!(
        "{} ({} symbols, equal-weight portfolio) on its validation ranges {} .. {}",
        out.model_uri,
        universe.members.len(),
        out.range.0,
        out.range.1
    );
    for (k, v) in out.metrics.iter().filter(|(k, _)| !k.contains('/')) {
        println!("  {k:<26} {}", crate::output::figure(k, Some(*v)));
    }
    Ok(())
}

/// The version's config (the observation window following its features) and its market data,
/// split at the version's recorded dates; the bars of the `judged` ranges must be the ones
/// the version saw.
fn prepare(version: &LoadedVersion, judged: &[&str]) -> Result<(TrainConfig, Market)> {
    if version.config.run.env != EnvKind::Trading {
        bail!(
            "{} was trained on CartPole; `ratchet evaluate` needs a model trained on market data",
            version.uri
        );
    }
    let mut config = version.config.clone();
    config.trading.window = config.features.window;
    let (market, check) =
        Market::prepare_recorded(&config, &version.metadata.training.data, &version.uri)?;
    check.require_unchanged(judged)?;
    Ok((config, market))
}

/// Fold length below which `--walk-forward` warns that a fold's figures are noise.
const MIN_JUDGED_BARS: usize = 30;

/// `k` folds of equal length (the last takes the remainder) over `rows`.
fn folds(rows: Range<usize>, k: usize) -> Vec<Range<usize>> {
    let len = rows.len() / k;
    (0..k)
        .map(|i| {
            let start = rows.start + i * len;
            let end = if i + 1 == k { rows.end } else { start + len };
            start..end
        })
        .collect()
}

fn walk_forward(registry: &Registry, args: &EvaluateArgs) -> Result<()> {
    let k = args.folds;
    if k == 0 {
        bail!("--folds must be at least 1");
    }
    let steps = args.steps;
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let (version, state) = checkpoint::load_version(registry, &args.model)?;
    let run = if version.config.data.is_universe() {
        universe::walk_forward_folds(&version, &state, args)?
    } else {
        instrument_folds(&version, &state, args)?
    };
    report_walk_forward(registry, &version, args, run)
}

/// What the folds of a walk-forward gave: each fold's figures, the strategy's returns over
/// all folds end to end, their periods per year, and whether the folds reach the version's
/// test range.
struct FoldsRun {
    folds: Vec<FoldOutput>,
    returns: Vec<f64>,
    periods_per_year: f64,
    reaches_test: bool,
}

fn instrument_folds(
    version: &LoadedVersion,
    state: &TrainingState<'static>,
    args: &EvaluateArgs,
) -> Result<FoldsRun> {
    let (k, steps) = (args.folds, args.steps);
    let (config, market) = prepare(version, &["validation", "test"])?;
    let train = market.splits.train.range();
    // The folds cover the recorded validation and test ranges, never bars appended since.
    let test = market.splits.test.as_ref();
    let after = train.end..market.splits.judged_end();
    // A fold needs a full observation window behind its first decision and two bars to act.
    let window = config.trading.window;
    if after.len() / k < 2 {
        bail!(
            "--folds {k}: the {} bars after {}'s training range make folds of {} bars; use \
             fewer folds (each needs at least 2)",
            after.len(),
            version.uri,
            after.len() / k
        );
    }
    if after.len() / k < MIN_JUDGED_BARS {
        eprintln!(
            "warning: --folds {k} makes folds of {} bars, too short to judge a policy by (a \
             Sharpe ratio over fewer than {MIN_JUDGED_BARS} returns is mostly noise); use at most \
             {} folds for the {} bars after the training range",
            after.len() / k,
            (after.len() / MIN_JUDGED_BARS).max(1),
            after.len()
        );
    }
    let rolling = args.rolling;
    let ts = &market.frame.timestamps;
    // Dates alone for daily bars (as the splits print them), date-times otherwise.
    let daily = ts.iter().all(|t| t.rem_euclid(86_400_000) == 0);
    let date = |row: usize| match daily {
        true => ratchet_data::format_date(ts[row]),
        false => ratchet_data::format_timestamp(ts[row]),
    };
    let mut out_folds = Vec::new();
    let mut pooled = Vec::new();
    let mut periods_per_year = None;
    for (i, fold) in folds(after.clone(), k).into_iter().enumerate() {
        let train_rows = if rolling {
            fold.start.saturating_sub(train.len())..fold.start
        } else {
            0..fold.start
        };
        if train_rows.len() <= window + 1 {
            bail!(
                "fold {}: {} training bars before {} do not fill the {window}-bar window",
                i + 1,
                train_rows.len(),
                date(fold.start)
            );
        }
        eprintln!(
            "fold {}/{k}: {steps} steps on {} .. {} ({} bars), then {} .. {}",
            i + 1,
            date(train_rows.start),
            date(train_rows.end - 1),
            train_rows.len(),
            date(fold.start),
            date(fold.end - 1)
        );
        let agent = train_fold(
            &config,
            version,
            state,
            crate::agent::TrainingRows {
                data: market.data.clone(),
                ranges: vec![train_rows.clone()],
            },
            rolling,
            (i + 1, steps),
        )?;
        let policy = config.trading_policy_of(agent.policy())?;
        let (_, backtest) = policy_backtest(&market, &config.trading, policy, fold.clone())?;
        periods_per_year.get_or_insert(backtest.frequency.periods_per_year);
        pooled.extend_from_slice(&backtest.strategy.returns[1..]);
        out_folds.push(FoldOutput {
            fold: i + 1,
            train: (date(train_rows.start), date(train_rows.end - 1)),
            train_bars: train_rows.len(),
            range: (date(fold.start), date(fold.end - 1)),
            bars: fold.len(),
            metrics: headline(&backtest),
        });
    }
    Ok(FoldsRun {
        folds: out_folds,
        returns: pooled,
        periods_per_year: periods_per_year.unwrap_or(1.0),
        reaches_test: test.is_some_and(|t| after.end > t.start),
    })
}

/// The pooled figures of a walk-forward, its counted test look, and its table or JSON.
fn report_walk_forward(
    registry: &Registry,
    version: &LoadedVersion,
    args: &EvaluateArgs,
    run: FoldsRun,
) -> Result<()> {
    let (k, steps, rolling) = (args.folds, args.steps, args.rolling);
    let FoldsRun {
        folds: out_folds,
        returns: pooled,
        periods_per_year: ppy,
        reaches_test,
    } = run;
    let mut summary = BTreeMap::new();
    summary.insert(
        "total_return".to_string(),
        pooled.iter().map(|r| 1.0 + r).product::<f64>() - 1.0,
    );
    summary.insert("bars".to_string(), pooled.len() as f64);
    if let Ok(e) = SharpeEstimate::of_returns(&pooled) {
        summary.insert("sharpe".to_string(), e.sharpe * ppy.sqrt());
        if let Some(p) = e.probabilistic(0.0) {
            summary.insert("probabilistic_sharpe".to_string(), p);
        }
    }
    let fold_sharpes: Vec<f64> = out_folds
        .iter()
        .filter_map(|f| f.metrics.get("sharpe").copied())
        .collect();
    if !fold_sharpes.is_empty() {
        summary.insert(
            "mean_fold_sharpe".to_string(),
            fold_sharpes.iter().sum::<f64>() / fold_sharpes.len() as f64,
        );
    }
    let test_looks = if reaches_test {
        Some(registry.record_test_look(&checkpoint::parse_ref(&version.uri)?)?)
    } else {
        None
    };
    let out = WalkForwardOutput {
        model_uri: version.uri.clone(),
        mode: if rolling { "rolling" } else { "anchored" },
        steps_per_fold: steps,
        folds: out_folds,
        pooled: summary,
        test_looks,
    };
    if args.json {
        return print_json(&out);
    }
    println!(
        "walk-forward of {} ({}, {k} folds, {steps} steps each from the version)",
        out.model_uri, out.mode
    );
    let mut table = Table::new(&[
        "FOLD",
        "TRAINED ON",
        "EVALUATED ON",
        "BARS",
        "RETURN",
        "SHARPE",
        "MAX DD",
        "TRADES",
    ]);
    let percent =
        |v: Option<&f64>| v.map_or_else(|| "-".to_string(), |v| format!("{:+.2}%", v * 100.0));
    let ratio = |v: Option<&f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    for f in &out.folds {
        let m = |k: &str| f.metrics.get(k);
        table.row(vec![
            f.fold.to_string(),
            format!("{} .. {}", f.train.0, f.train.1),
            format!("{} .. {}", f.range.0, f.range.1),
            f.bars.to_string(),
            percent(m("total_return")),
            ratio(m("sharpe")),
            crate::output::figure("max_drawdown", m("max_drawdown").copied()),
            m("trades").map_or_else(|| "-".to_string(), |v| format!("{v:.0}")),
        ]);
    }
    print!("{}", table.render());
    let p = |k: &str| out.pooled.get(k);
    println!(
        "pooled over {} bars: total return {}, sharpe {}, probabilistic sharpe {}, mean fold sharpe {}",
        pooled.len(),
        percent(p("total_return")),
        ratio(p("sharpe")),
        ratio(p("probabilistic_sharpe")),
        ratio(p("mean_fold_sharpe"))
    );
    if let Some(n) = out.test_looks {
        println!(
            "test looks of {}: {n} (the folds cover its test range)",
            out.model_uri
        );
    }
    Ok(())
}

/// A fold's agent: built over `rows`, started from the version (its whole training state
/// when anchored; its weights with a fresh optimizer and environments when rolling, since a
/// saved episode position lies outside a moved window), then trained `steps` more.
fn train_fold(
    config: &TrainConfig,
    version: &LoadedVersion,
    state: &TrainingState<'static>,
    rows: crate::agent::TrainingRows,
    rolling: bool,
    (fold, steps): (usize, u64),
) -> Result<Box<dyn ratchet_agents::Agent>> {
    let mut agent = crate::agent::build(config, Some(rows))?;
    if let Some(d) = version
        .differences(config, checkpoint::sizes(agent.as_ref()))
        .first()
    {
        bail!("{} does not fit its own data: {d}", version.uri);
    }
    if rolling {
        agent
            .load_weights(&weights_of(state))
            .with_context(|| format!("loading the weights of {}", version.uri))?;
    } else {
        // A universe's truncated instruments lie end to end at other rows than the version's:
        // its saved episodes would stand at other bars.
        let environments = if version.metadata.training.data.symbols.is_empty() {
            Environments::Restore
        } else {
            Environments::Fresh
        };
        agent
            .restore(state, environments)
            .with_context(|| format!("restoring {}", version.uri))?;
    }
    agent
        .train(steps, &mut |_: &UpdateLog| {}, &AtomicBool::new(false))
        .map_err(|e| anyhow!(e).context(format!("training fold {fold}")))?;
    Ok(agent)
}

/// The network weights of a training state (what a rolling fold starts from).
fn weights_of<'a>(state: &'a TrainingState<'a>) -> Vec<NamedTensor<'a>> {
    state
        .tensors
        .iter()
        .filter(|t| TrainingState::group(&t.name) == TensorGroup::Weights)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::folds;

    #[test]
    fn folds_are_consecutive_and_cover_the_rows() {
        assert_eq!(folds(10..21, 3), vec![10..13, 13..16, 16..21]);
        assert_eq!(folds(0..4, 1), vec![0..4]);
    }
}
