//! `ratchet evaluate --walk-forward` of a universe version: the folds are cut at dates
//! common to every symbol (the timestamps after all the symbols' training ranges, in K
//! groups of equal count); each fold trains over every symbol's rows before it, from the
//! version, and is judged as the equal-weight portfolio of the symbols trading in it.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use ratchet_agents::TrainingState;
use ratchet_backtest::EqualWeight;

use super::{FoldOutput, FoldsRun, MIN_JUDGED_BARS, train_fold};
use crate::agent::TrainingRows;
use crate::checkpoint::LoadedVersion;
use crate::cli::EvaluateArgs;
use crate::judge::policy_backtest;
use crate::universe::Universe;

pub(super) fn walk_forward_folds(
    version: &LoadedVersion,
    state: &TrainingState<'static>,
    args: &EvaluateArgs,
) -> Result<FoldsRun> {
    let (k, steps, rolling) = (args.folds, args.steps, args.rolling);
    let mut config = version.config.clone();
    config.trading.window = config.features.window;
    let window = config.trading.window;
    let universe =
        Universe::prepare_recorded(&config, &version.metadata.training.data, &version.uri)?;
    let members = &universe.members;
    // Each symbol's rows up to its recorded test end (validation end without one), end to end
    // as training laid them out: the version's saved episodes stand at the same rows.
    let (data, offsets) = universe.end_to_end(|m| m.splits.judged_end())?;

    // The folds: the timestamps after every symbol's training range, in k equal groups.
    let mut after: Vec<i64> = members
        .iter()
        .flat_map(|m| {
            let s = &m.market.splits;
            m.market.frame.timestamps[s.train.end..s.judged_end()]
                .iter()
                .copied()
        })
        .collect();
    after.sort_unstable();
    after.dedup();
    let len = after.len() / k;
    if len < 2 {
        bail!(
            "--folds {k}: the {} timestamps after {}'s training ranges make folds of {len}; use \
             fewer folds (each needs at least 2)",
            after.len(),
            version.uri
        );
    }
    if len < MIN_JUDGED_BARS {
        eprintln!(
            "warning: --folds {k} makes folds of {len} timestamps, too short to judge a policy by"
        );
    }
    let daily = after.iter().all(|t| t.rem_euclid(86_400_000) == 0);
    let date = |t: i64| match daily {
        true => ratchet_data::format_date(t),
        false => ratchet_data::format_timestamp(t),
    };
    let mut folds = Vec::with_capacity(k);
    let mut returns = Vec::new();
    let mut periods_per_year = None;
    for i in 0..k {
        let first = after[i * len];
        let last = after[if i + 1 == k {
            after.len() - 1
        } else {
            (i + 1) * len - 1
        }];
        // Per symbol: its rows in the fold, and the rows it trains on before them.
        let mut fold_rows = Vec::with_capacity(members.len());
        let mut train_ranges = Vec::new();
        let (mut train_first, mut train_last) = (i64::MAX, i64::MIN);
        for (member, offset) in members.iter().zip(&offsets) {
            let ts = &member.market.frame.timestamps;
            let start = ts.partition_point(|&t| t < first);
            let end = ts.partition_point(|&t| t <= last);
            let train_len = member.market.splits.train.len();
            let train = if rolling {
                start.saturating_sub(train_len)..start
            } else {
                0..start
            };
            if train.len() > window + 1 {
                train_first = train_first.min(ts[train.start]);
                train_last = train_last.max(ts[train.end - 1]);
                train_ranges.push(offset + train.start..offset + train.end);
            }
            fold_rows.push(start..end);
        }
        if train_ranges.is_empty() {
            bail!(
                "fold {}: no symbol has enough bars before {} to fill the {window}-bar window",
                i + 1,
                date(first)
            );
        }
        eprintln!(
            "fold {}/{k}: {steps} steps on {} symbols' bars {} .. {}, then {} .. {}",
            i + 1,
            train_ranges.len(),
            date(train_first),
            date(train_last),
            date(first),
            date(last)
        );
        let train_bars = train_ranges.iter().map(|r| r.len()).sum();
        let agent = train_fold(
            &config,
            version,
            state,
            TrainingRows {
                data: data.clone(),
                ranges: train_ranges,
            },
            rolling,
            (i + 1, steps),
        )?;
        let mut runs = Vec::new();
        for (member, rows) in members.iter().zip(fold_rows) {
            if rows.len() < 2 {
                continue;
            }
            let policy = config.trading_policy_of(agent.policy())?;
            let (prices, backtest) = policy_backtest(&member.market, &config.trading, policy, rows)
                .with_context(|| format!("fold {}, symbol {}", i + 1, member.symbol))?;
            runs.push((prices, backtest));
        }
        let (pooled, _) = EqualWeight::of_backtests(runs.iter().map(|(p, b)| (p, b)));
        let figures = pooled.metrics();
        periods_per_year.get_or_insert(figures.periods_per_year);
        let mut metrics = BTreeMap::from([
            ("total_return".to_string(), figures.total_return),
            ("max_drawdown".to_string(), figures.max_drawdown),
            (
                "trades".to_string(),
                runs.iter()
                    .map(|(_, b)| b.strategy_metrics.trades as f64)
                    .sum(),
            ),
            ("symbols".to_string(), runs.len() as f64),
        ]);
        if let Some(sharpe) = figures.sharpe {
            metrics.insert("sharpe".to_string(), sharpe);
        }
        folds.push(FoldOutput {
            fold: i + 1,
            train: (date(train_first), date(train_last)),
            train_bars,
            range: (date(first), date(last)),
            bars: runs.iter().map(|(prices, _)| prices.len()).sum(),
            metrics,
        });
        returns.extend(pooled.returns);
    }
    Ok(FoldsRun {
        folds,
        returns,
        periods_per_year: periods_per_year.unwrap_or(1.0),
        // The folds cover the test ranges.
        reaches_test: true,
    })
}
