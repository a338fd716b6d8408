//! The leaderboard: configurations ranked by the sweep's metric (mean ± standard error
//! across seeds), the deflated Sharpe ratio of the best trial given how many were tried, and
//! the probability of backtest overfitting of picking the best.

use std::collections::BTreeMap;

use serde::Serialize;

use ratchet_backtest::{SharpeEstimate, Trials, probability_of_backtest_overfitting};

use crate::error::SweepError;
use crate::spec::Goal;
use crate::store::{RETURNS_ARTIFACT, RunState, SweepRecord, TrialRun};

/// The trials' validation and test Sharpe ratios (logged by `ratchet train` and by
/// `ratchet backtest` of a version's test split).
pub const VAL_SHARPE: &str = "val/sharpe";
pub const TEST_SHARPE: &str = "test/sharpe";

/// Fewest trials with return series for the probability of backtest overfitting.
pub const MIN_PBO_TRIALS: usize = 4;
/// Blocks of the combinatorially symmetric cross-validation (Bailey et al. use 16), fewer
/// when the series are short (each block keeps at least [`MIN_BLOCK_ROWS`] returns).
const PBO_PARTITIONS: usize = 16;
const MIN_BLOCK_ROWS: usize = 4;

/// One configuration (trials that differ only by seed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigurationRow {
    /// 1 = best; configurations whose trials logged no metric are unranked (`None`).
    pub rank: Option<usize>,
    pub config_id: String,
    pub overrides: String,
    /// Seeds of the finished trials.
    pub seeds: Vec<u64>,
    /// The metric of each finished trial, in seed order.
    pub values: Vec<f64>,
    pub mean: Option<f64>,
    /// Sample standard deviation over `sqrt(n)`; needs two seeds.
    pub standard_error: Option<f64>,
}

/// One finished trial (its newest finished run).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrialRow {
    pub trial_id: String,
    pub run_id: String,
    pub config_id: String,
    pub seed: u64,
    pub overrides: String,
    pub value: Option<f64>,
    /// `val/sharpe` and, when the trial's test range was backtested (`ratchet backtest` of
    /// its version, `sweep --final-test`), `test/sharpe`: the HTML page's scatter.
    pub val_sharpe: Option<f64>,
    pub test_sharpe: Option<f64>,
}

/// The deflated Sharpe ratio of the best trial (Bailey & López de Prado 2014).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeflatedSharpe {
    pub trial_id: String,
    /// Per-period Sharpe ratio of its validation returns.
    pub sharpe: f64,
    pub observations: usize,
    /// Trials whose Sharpe ratios set the bar: their count and variance (per period).
    pub trials: usize,
    pub sharpe_variance: f64,
    /// The Sharpe ratio the best of that many skill-less trials would show.
    pub expected_max_sharpe: f64,
    /// Probability that the best trial's true Sharpe ratio beats that.
    pub deflated_sharpe: Option<f64>,
}

/// The probability of backtest overfitting of choosing the best trial.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverfittingRow {
    pub probability: f64,
    pub trials: usize,
    pub partitions: usize,
    pub splits: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Leaderboard {
    pub sweep: String,
    pub sweep_id: String,
    pub parent_run_id: String,
    pub metric: String,
    pub goal: Goal,
    pub planned_trials: usize,
    pub configurations: Vec<ConfigurationRow>,
    pub trials: Vec<TrialRow>,
    /// Trial id → the error of its last attempt, for trials that never finished.
    pub failed: BTreeMap<String, String>,
    pub best_trial: Option<String>,
    /// Why the best trial is the selected one (the rule, on validation numbers only).
    pub selection: Option<String>,
    pub deflated_sharpe: Option<DeflatedSharpe>,
    pub overfitting: Option<OverfittingRow>,
    /// Why a statistic is missing.
    pub notes: Vec<String>,
}

/// A run's validation returns, by run id ([`crate::SweepStore::validation_returns`]).
pub type ValidationReturns<'a> = &'a dyn Fn(&str) -> Result<Option<Vec<f64>>, SweepError>;

impl Leaderboard {
    /// Builds the leaderboard from the sweep's child runs. `returns` gives a run's
    /// validation returns ([`RETURNS_ARTIFACT`]) when it has them.
    pub fn build(
        sweep: &SweepRecord,
        runs: &[TrialRun],
        returns: ValidationReturns,
    ) -> Result<Self, SweepError> {
        let metric = &sweep.metric;
        // The newest finished run of each trial.
        let mut newest: BTreeMap<&str, &TrialRun> = BTreeMap::new();
        for run in runs.iter().filter(|r| r.state == RunState::Finished) {
            let slot = newest.entry(run.trial_id.as_str()).or_insert(run);
            if run.start_time > slot.start_time {
                *slot = run;
            }
        }
        let mut trials: Vec<TrialRow> = newest
            .values()
            .map(|r| TrialRow {
                trial_id: r.trial_id.clone(),
                run_id: r.run_id.clone(),
                config_id: r.config_id.clone(),
                seed: r.seed,
                overrides: r.overrides.clone(),
                value: r.metrics.get(metric).copied().filter(|v| v.is_finite()),
                val_sharpe: r.metrics.get(VAL_SHARPE).copied().filter(|v| v.is_finite()),
                test_sharpe: r
                    .metrics
                    .get(TEST_SHARPE)
                    .copied()
                    .filter(|v| v.is_finite()),
            })
            .collect();
        trials.sort_by(|a, b| (&a.overrides, a.seed).cmp(&(&b.overrides, b.seed)));

        let mut configurations = group(&trials);
        configurations.sort_by(|a, b| match (a.mean, b.mean) {
            (Some(x), Some(y)) if sweep.goal.better(x, y) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) if sweep.goal.better(y, x) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            _ => a.overrides.cmp(&b.overrides),
        });
        for (i, row) in configurations.iter_mut().enumerate() {
            row.rank = row.mean.is_some().then_some(i + 1);
        }

        let best = trials
            .iter()
            .filter_map(|t| Some((t, t.value?)))
            .reduce(|best, t| {
                if sweep.goal.better(t.1, best.1) {
                    t
                } else {
                    best
                }
            })
            .map(|(trial, _)| trial);
        let mut notes = Vec::new();
        let selection = best.map(|b| {
            let scored = trials.iter().filter(|t| t.value.is_some()).count();
            let rank = configurations
                .iter()
                .find(|c| c.config_id == b.config_id)
                .and_then(|c| c.rank);
            format!(
                "trial {} is selected: the {} {metric} ({}) of the {scored} finished trials that \
                 logged it, on the validation range; its configuration ranks {} by the mean \
                 across seeds",
                b.trial_id,
                match sweep.goal {
                    Goal::Max => "highest",
                    Goal::Min => "lowest",
                },
                b.value.map_or_else(String::new, |v| format!("{v:.4}")),
                rank.map_or_else(|| "-".to_string(), |r| format!("#{r}")),
            )
        });
        if metric.starts_with("test/") {
            notes.push(format!(
                "the sweep ranks by {metric}, a test-range metric: selecting on the test range \
                 leaves no untouched data to judge the choice"
            ));
        }
        if best.is_none() && !trials.is_empty() {
            notes.push(format!("no finished trial logged the metric {metric}"));
        }
        let mut series: Vec<(&TrialRow, Vec<f64>)> = Vec::new();
        for t in &trials {
            if let Some(r) = returns(&t.run_id)? {
                series.push((t, r));
            }
        }
        let (deflated_sharpe, overfitting) = if series.is_empty() {
            if !trials.is_empty() {
                notes.push(format!(
                    "deflated Sharpe and PBO need the trials' validation returns ({RETURNS_ARTIFACT} in each run); none has them"
                ));
            }
            (None, None)
        } else {
            (
                deflate(best, &series, &mut notes),
                overfit(&series, &mut notes),
            )
        };
        let failed = sweep
            .failures
            .iter()
            .filter(|(id, _)| !newest.contains_key(id.as_str()))
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        Ok(Self {
            sweep: sweep.name.clone(),
            sweep_id: sweep.sweep_id.clone(),
            parent_run_id: sweep.run_id.clone(),
            metric: metric.clone(),
            goal: sweep.goal,
            planned_trials: sweep.planned_trials,
            configurations,
            best_trial: best.map(|t| t.trial_id.clone()),
            selection,
            trials,
            failed,
            deflated_sharpe,
            overfitting,
            notes,
        })
    }
}

/// Trials grouped by configuration, seeds in order.
fn group(trials: &[TrialRow]) -> Vec<ConfigurationRow> {
    let mut by_config: BTreeMap<&str, ConfigurationRow> = BTreeMap::new();
    for t in trials {
        let row = by_config
            .entry(&t.config_id)
            .or_insert_with(|| ConfigurationRow {
                rank: None,
                config_id: t.config_id.clone(),
                overrides: t.overrides.clone(),
                seeds: Vec::new(),
                values: Vec::new(),
                mean: None,
                standard_error: None,
            });
        row.seeds.push(t.seed);
        if let Some(v) = t.value {
            row.values.push(v);
        }
    }
    by_config
        .into_values()
        .map(|mut row| {
            let n = row.values.len() as f64;
            if n > 0.0 {
                let mean = row.values.iter().sum::<f64>() / n;
                row.mean = Some(mean);
                if n > 1.0 {
                    let variance =
                        row.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
                    row.standard_error = Some((variance / n).sqrt());
                }
            }
            row
        })
        .collect()
}

fn deflate(
    best: Option<&TrialRow>,
    series: &[(&TrialRow, Vec<f64>)],
    notes: &mut Vec<String>,
) -> Option<DeflatedSharpe> {
    let best = best?;
    let Some((_, best_returns)) = series.iter().find(|(t, _)| t.trial_id == best.trial_id) else {
        notes.push(format!(
            "deflated Sharpe: the best trial {} has no validation returns",
            best.trial_id
        ));
        return None;
    };
    let estimate = match SharpeEstimate::of_returns(best_returns) {
        Ok(e) => e,
        Err(e) => {
            notes.push(format!("deflated Sharpe: trial {}: {e}", best.trial_id));
            return None;
        }
    };
    let sharpes: Vec<f64> = series
        .iter()
        .filter_map(|(_, r)| SharpeEstimate::of_returns(r).ok().map(|e| e.sharpe))
        .collect();
    let trials = match Trials::from_sharpes(&sharpes) {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!("deflated Sharpe: {e}"));
            return None;
        }
    };
    Some(DeflatedSharpe {
        trial_id: best.trial_id.clone(),
        sharpe: estimate.sharpe,
        observations: estimate.observations,
        trials: trials.count(),
        sharpe_variance: trials.sharpe_variance(),
        expected_max_sharpe: trials.expected_max_sharpe(),
        deflated_sharpe: estimate.deflated(&trials),
    })
}

fn overfit(series: &[(&TrialRow, Vec<f64>)], notes: &mut Vec<String>) -> Option<OverfittingRow> {
    if series.len() < MIN_PBO_TRIALS {
        notes.push(format!(
            "PBO needs at least {MIN_PBO_TRIALS} trials with validation returns, {} have them",
            series.len()
        ));
        return None;
    }
    let rows = series.iter().map(|(_, r)| r.len()).min().unwrap_or(0);
    let partitions = PBO_PARTITIONS.min(rows / MIN_BLOCK_ROWS / 2 * 2);
    let returns: Vec<&[f64]> = series.iter().map(|(_, r)| r.as_slice()).collect();
    match probability_of_backtest_overfitting(&returns, partitions.max(2)) {
        Ok(o) => Some(OverfittingRow {
            probability: o.probability,
            trials: series.len(),
            partitions: partitions.max(2),
            splits: o.logits.len(),
        }),
        Err(e) => {
            notes.push(format!("PBO: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        trial: &str,
        config: &str,
        seed: u64,
        value: Option<f64>,
        state: RunState,
        start: i64,
    ) -> TrialRun {
        TrialRun {
            run_id: format!("run-{trial}-{start}"),
            trial_id: trial.into(),
            config_id: config.into(),
            seed,
            overrides: format!("lr={config}"),
            state,
            start_time: start,
            metrics: value.map(|v| ("m".to_string(), v)).into_iter().collect(),
        }
    }

    fn sweep(goal: Goal) -> SweepRecord {
        SweepRecord {
            run_id: "parent".into(),
            sweep_id: "s".into(),
            name: "n".into(),
            experiment_id: "1".into(),
            metric: "m".into(),
            goal,
            planned_trials: 6,
            failures: BTreeMap::from([
                ("t6".to_string(), "boom".to_string()),
                ("t1".to_string(), "old".to_string()),
            ]),
        }
    }

    fn runs() -> Vec<TrialRun> {
        vec![
            run("t1", "a", 0, Some(1.0), RunState::Finished, 5),
            run("t1", "a", 0, Some(9.0), RunState::Finished, 1), // older attempt: ignored
            run("t2", "a", 1, Some(3.0), RunState::Finished, 2),
            run("t3", "b", 0, Some(4.0), RunState::Finished, 3),
            run("t4", "b", 1, Some(6.0), RunState::Killed, 4), // never finished
            run("t5", "c", 0, None, RunState::Finished, 6),
        ]
    }

    #[test]
    fn configurations_rank_by_mean_with_standard_errors() {
        let board = Leaderboard::build(&sweep(Goal::Max), &runs(), &|_| Ok(None)).unwrap();
        let ranked: Vec<_> = board
            .configurations
            .iter()
            .map(|c| {
                (
                    c.rank,
                    c.config_id.as_str(),
                    c.seeds.clone(),
                    c.mean,
                    c.standard_error,
                )
            })
            .collect();
        assert_eq!(
            ranked,
            vec![
                (Some(1), "b", vec![0], Some(4.0), None),
                // mean 2, sample sd sqrt(2), over sqrt(2): 1
                (Some(2), "a", vec![0, 1], Some(2.0), Some(1.0)),
                (None, "c", vec![0], None, None),
            ]
        );
        assert_eq!(board.best_trial.as_deref(), Some("t3"));
        assert_eq!(
            board.selection.as_deref(),
            Some(
                "trial t3 is selected: the highest m (4.0000) of the 3 finished trials that \
                 logged it, on the validation range; its configuration ranks #1 by the mean \
                 across seeds"
            )
        );
        assert_eq!(board.trials.len(), 4);
        assert_eq!(
            board.failed,
            BTreeMap::from([("t6".to_string(), "boom".to_string())])
        );
        assert_eq!(
            board.notes,
            [
                "deflated Sharpe and PBO need the trials' validation returns (val/returns.json in each run); none has them"
            ]
        );
        let min = Leaderboard::build(&sweep(Goal::Min), &runs(), &|_| Ok(None)).unwrap();
        assert_eq!(min.configurations[0].config_id, "a");
        assert_eq!(min.best_trial.as_deref(), Some("t1"));
    }

    #[test]
    fn deflated_sharpe_and_pbo_from_validation_returns() {
        // One two-valued series shifted by a constant per trial: the same spread, different
        // means.
        let series = |shift: f64| -> Vec<f64> {
            (0..80)
                .map(|i| if i % 5 == 4 { -1.0 } else { 1.0 } * 0.01 + shift)
                .collect()
        };
        let by_run: BTreeMap<String, Vec<f64>> = [
            ("run-t1-5", series(0.0)),
            ("run-t2-2", series(-0.002)),
            ("run-t3-3", series(0.004)),
            ("run-t5-6", series(-0.004)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let board = Leaderboard::build(&sweep(Goal::Max), &runs(), &|id| {
            Ok(by_run.get(id).cloned())
        })
        .unwrap();
        let d = board.deflated_sharpe.clone().unwrap();
        let best = SharpeEstimate::of_returns(&series(0.004)).unwrap();
        let sharpes: Vec<f64> = [0.0, -0.002, 0.004, -0.004]
            .iter()
            .map(|&s| SharpeEstimate::of_returns(&series(s)).unwrap().sharpe)
            .collect();
        let trials = Trials::from_sharpes(&sharpes).unwrap();
        assert_eq!(d.trial_id, "t3");
        assert_eq!((d.sharpe, d.observations, d.trials), (best.sharpe, 80, 4));
        assert_eq!(d.deflated_sharpe, best.deflated(&trials));
        assert_eq!(d.expected_max_sharpe, trials.expected_max_sharpe());
        // Shifted copies of one series rank the same in every block: the in-sample best is
        // the out-of-sample best, so no split overfits. 80 rows make 16 blocks of 5.
        let o = board.overfitting.unwrap();
        assert_eq!(
            (o.probability, o.trials, o.partitions, o.splits),
            (0.0, 4, 16, 12870)
        );
        assert!(board.notes.is_empty(), "{:?}", board.notes);
    }
}
