//! The sweep's records in the MLflow store: one parent run per sweep, one child run per
//! trial attempt (made by `ratchet train`, tagged with what [`trial_tags`] lists).
//!
//! This is the only module that talks to the tracking store crate.

use std::collections::BTreeMap;

use ratchet_mlflow::{RunStatus, TrackingStore};

use crate::error::SweepError;
use crate::plan::{Plan, Trial};
use crate::spec::Goal;

/// MLflow's own nesting tag: `mlflow ui` shows a run under the run it names.
pub const PARENT_TAG: &str = "mlflow.parentRunId";
const SWEEP_TAG: &str = "ratchet.sweep.id";
const NAME_TAG: &str = "ratchet.sweep.name";
const METRIC_TAG: &str = "ratchet.sweep.metric";
const GOAL_TAG: &str = "ratchet.sweep.goal";
const PLANNED_TAG: &str = "ratchet.sweep.trials";
const TRIAL_TAG: &str = "ratchet.sweep.trial";
const CONFIG_TAG: &str = "ratchet.sweep.config";
const OVERRIDES_TAG: &str = "ratchet.sweep.overrides";
const SEED_TAG: &str = "ratchet.sweep.seed";
/// The registered model a `ratchet train` run's version goes to.
const MODEL_NAME_TAG: &str = "ratchet.model_name";
/// Followed by a trial id: the error of a trial that failed every attempt.
const FAILED_TAG_PREFIX: &str = "ratchet.sweep.failed.";
/// A trial's per-bar returns on the validation range (a JSON list of numbers), when the
/// training run uploads them: the input of the deflated Sharpe ratio and of PBO.
pub const RETURNS_ARTIFACT: &str = "val/returns.json";
/// MLflow caps tag values at 8,000 characters; errors are cut well below.
const MAX_ERROR_CHARS: usize = 2_000;

/// Where a trial's run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Finished,
    Failed,
    Killed,
}

/// A child run of a sweep, as the store has it.
#[derive(Clone, Debug)]
pub struct TrialRun {
    pub run_id: String,
    pub trial_id: String,
    pub config_id: String,
    pub seed: u64,
    pub overrides: String,
    pub state: RunState,
    pub start_time: i64,
    pub metrics: BTreeMap<String, f64>,
}

/// A sweep's parent run and what it records about the sweep.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SweepRecord {
    pub run_id: String,
    pub sweep_id: String,
    pub name: String,
    pub experiment_id: String,
    pub metric: String,
    pub goal: Goal,
    pub planned_trials: usize,
    /// Trial id → the error of its last attempt, for trials that ran out of attempts.
    pub failures: BTreeMap<String, String>,
}

/// The tracking store, seen from a sweep.
pub struct SweepStore {
    store: Box<dyn TrackingStore>,
}

impl SweepStore {
    pub fn open(tracking_uri: &str) -> Result<Self, SweepError> {
        Ok(Self {
            store: ratchet_mlflow::open_store(tracking_uri)?,
        })
    }

    /// The store's URI, absolute (what trials on other machines or directories are given).
    pub fn tracking_uri(&self) -> String {
        self.store.tracking_uri()
    }

    /// The parent run of `plan`: the one an earlier run of the same sweep made (found by
    /// the sweep id), marked RUNNING again, or a new one with the sweep's axes as params
    /// and the sweep file as the artifact `sweep.toml`.
    pub fn parent_run(&self, plan: &Plan) -> Result<SweepRecord, SweepError> {
        let experiment = self.store.get_or_create_experiment(&plan.experiment)?;
        for info in self.store.list_runs(&experiment.experiment_id)? {
            let run = self.store.get_run(&info.run_id)?;
            if run.tags.get(SWEEP_TAG) == Some(&plan.id) && !run.tags.contains_key(PARENT_TAG) {
                self.store
                    .set_run_status(&info.run_id, RunStatus::Running, None)?;
                return record(&info.run_id, &info.experiment_id, &run.tags);
            }
        }
        let file = &plan.file;
        let tags = vec![
            (
                "mlflow.source.name".to_string(),
                "ratchet sweep".to_string(),
            ),
            ("mlflow.source.type".to_string(), "LOCAL".to_string()),
            (SWEEP_TAG.to_string(), plan.id.clone()),
            (NAME_TAG.to_string(), file.name.clone()),
            (METRIC_TAG.to_string(), file.metric.clone()),
            (GOAL_TAG.to_string(), goal_name(file.goal).to_string()),
            (PLANNED_TAG.to_string(), plan.trials.len().to_string()),
        ];
        let run = self
            .store
            .create_run(&experiment.experiment_id, &file.name, &tags)?;
        let mut params = vec![
            ("sweep.file".to_string(), file.path.display().to_string()),
            ("sweep.trials".to_string(), plan.trials.len().to_string()),
        ];
        if !file.seeds.is_empty() {
            params.push(("sweep.seeds".into(), format!("{:?}", file.seeds)));
        }
        for (key, values) in &file.grid {
            params.push((
                format!("grid.{key}"),
                toml::Value::Array(values.clone()).to_string(),
            ));
        }
        if let Some(random) = &file.random {
            params.push(("random.count".into(), random.count.to_string()));
            params.push(("random.seed".into(), random.seed.to_string()));
            for (key, distribution) in &random.axes {
                params.push((format!("random.{key}"), format!("{distribution:?}")));
            }
        }
        params.push(("list.entries".into(), file.list.len().to_string()));
        self.store.log_params(&run.run_id, &params)?;
        self.store
            .upload_artifacts(&run.run_id, &file.path, "")
            .map_err(|error| SweepError::StoreAt {
                doing: "uploading the sweep file to the parent run",
                error,
            })?;
        record(&run.run_id, &run.experiment_id, &tags.into_iter().collect())
    }

    /// The sweep's record as the store has it now (failures recorded since it was read).
    pub fn refresh(&self, sweep: &SweepRecord) -> Result<SweepRecord, SweepError> {
        let run = self.store.get_run(&sweep.run_id)?;
        record(&sweep.run_id, &sweep.experiment_id, &run.tags)
    }

    /// Every child run of the sweep.
    pub fn trial_runs(&self, sweep: &SweepRecord) -> Result<Vec<TrialRun>, SweepError> {
        let mut out = Vec::new();
        for info in self.store.list_runs(&sweep.experiment_id)? {
            let run = self.store.get_run(&info.run_id)?;
            if run.tags.get(PARENT_TAG) != Some(&sweep.run_id) {
                continue;
            }
            let Some(trial_id) = run.tags.get(TRIAL_TAG) else {
                continue;
            };
            let tag = |key: &str| run.tags.get(key).cloned().unwrap_or_default();
            out.push(TrialRun {
                run_id: info.run_id.clone(),
                trial_id: trial_id.clone(),
                config_id: tag(CONFIG_TAG),
                seed: tag(SEED_TAG).parse().unwrap_or_default(),
                overrides: tag(OVERRIDES_TAG),
                state: match info.status {
                    RunStatus::Finished => RunState::Finished,
                    RunStatus::Failed => RunState::Failed,
                    RunStatus::Killed => RunState::Killed,
                    RunStatus::Running | RunStatus::Scheduled => RunState::Running,
                },
                start_time: info.start_time,
                metrics: run
                    .metrics
                    .iter()
                    .map(|(k, m)| (k.clone(), m.value))
                    .collect(),
            });
        }
        Ok(out)
    }

    /// A metric of one run, when it was logged.
    pub fn metric(&self, run_id: &str, key: &str) -> Result<Option<f64>, SweepError> {
        Ok(self
            .store
            .get_run(run_id)?
            .metrics
            .get(key)
            .map(|m| m.value))
    }

    /// The registered version a trial's run made (`ratchet train` registers one per run):
    /// its model name and version number.
    pub fn trial_version(&self, run_id: &str) -> Result<Option<(String, u64)>, SweepError> {
        let run = self.store.get_run(run_id)?;
        let Some(name) = run.tags.get(MODEL_NAME_TAG) else {
            return Ok(None);
        };
        let versions = match self.store.list_model_versions(name) {
            Err(ratchet_mlflow::Error::NotFound(_)) => return Ok(None),
            listed => listed?,
        };
        Ok(versions
            .iter()
            .filter(|v| v.run_id.as_deref() == Some(run_id))
            .map(|v| v.version)
            .max()
            .map(|v| (name.clone(), v)))
    }

    /// The run's [`RETURNS_ARTIFACT`], when it has one.
    pub fn validation_returns(&self, run_id: &str) -> Result<Option<Vec<f64>>, SweepError> {
        // The file store answers NotFound for a folder no artifact was logged under.
        let listed = match self.store.list_artifacts(run_id, "val") {
            Err(ratchet_mlflow::Error::NotFound(_)) => return Ok(None),
            listed => listed?,
        };
        if !listed.iter().any(|e| e.path == RETURNS_ARTIFACT) {
            return Ok(None);
        }
        // A file artifact is downloaded into the destination folder, under its own name.
        let dir = tempfile::tempdir()?;
        self.store
            .download_artifacts(run_id, RETURNS_ARTIFACT, dir.path())?;
        let name = RETURNS_ARTIFACT
            .rsplit('/')
            .next()
            .unwrap_or(RETURNS_ARTIFACT);
        let text = std::fs::read_to_string(dir.path().join(name))?;
        let returns = serde_json::from_str(&text).map_err(|error| SweepError::Returns {
            run_id: run_id.to_string(),
            error,
        })?;
        Ok(Some(returns))
    }

    /// Marks the trial's runs still RUNNING as KILLED: their process is gone (a job stopped
    /// or killed before `ratchet train` could record it).
    pub fn close_abandoned_runs(
        &self,
        sweep: &SweepRecord,
        trial_id: &str,
    ) -> Result<(), SweepError> {
        for run in self.trial_runs(sweep)? {
            if run.trial_id == trial_id && run.state == RunState::Running {
                self.store.set_run_status(
                    &run.run_id,
                    RunStatus::Killed,
                    Some(ratchet_mlflow::now_ms()),
                )?;
            }
        }
        Ok(())
    }

    /// Records on the parent run that a trial failed every attempt, with its last error.
    pub fn record_failure(
        &self,
        sweep: &SweepRecord,
        trial_id: &str,
        error: &str,
    ) -> Result<(), SweepError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        self.store.set_run_tags(
            &sweep.run_id,
            &[(format!("{FAILED_TAG_PREFIX}{trial_id}"), error)],
        )?;
        Ok(())
    }

    /// Ends the parent run: FINISHED, FAILED (some trial failed every attempt) or KILLED
    /// (interrupted).
    pub fn finish(&self, sweep: &SweepRecord, state: RunState) -> Result<(), SweepError> {
        let status = match state {
            RunState::Finished => RunStatus::Finished,
            RunState::Failed => RunStatus::Failed,
            RunState::Killed => RunStatus::Killed,
            RunState::Running => RunStatus::Running,
        };
        self.store
            .set_run_status(&sweep.run_id, status, Some(ratchet_mlflow::now_ms()))?;
        Ok(())
    }

    /// A sweep by its parent run id, its sweep id or its name (the newest of that name).
    pub fn find_sweep(&self, query: &str) -> Result<SweepRecord, SweepError> {
        let mut newest: Option<(i64, SweepRecord)> = None;
        for experiment in self.store.list_experiments()? {
            for info in self.store.list_runs(&experiment.experiment_id)? {
                let run = self.store.get_run(&info.run_id)?;
                let Some(sweep_id) = run.tags.get(SWEEP_TAG) else {
                    continue;
                };
                if run.tags.contains_key(PARENT_TAG) {
                    continue;
                }
                let matches = info.run_id == query
                    || sweep_id == query
                    || run.tags.get(NAME_TAG).is_some_and(|n| n == query);
                if matches && newest.as_ref().is_none_or(|(t, _)| info.start_time > *t) {
                    newest = Some((
                        info.start_time,
                        record(&info.run_id, &info.experiment_id, &run.tags)?,
                    ));
                }
            }
        }
        match newest {
            Some((_, sweep)) => Ok(sweep),
            None => Err(SweepError::NoSuchSweep {
                query: query.to_string(),
                tracking_uri: self.store.tracking_uri(),
            }),
        }
    }
}

/// The tags `ratchet train --tag` gives a trial's run: its parent, and what identifies the
/// trial (the leaderboard reads them back).
pub fn trial_tags(sweep: &SweepRecord, trial: &Trial) -> Vec<(String, String)> {
    vec![
        (PARENT_TAG.to_string(), sweep.run_id.clone()),
        (SWEEP_TAG.to_string(), sweep.sweep_id.clone()),
        (TRIAL_TAG.to_string(), trial.id.clone()),
        (CONFIG_TAG.to_string(), trial.config_id.clone()),
        (SEED_TAG.to_string(), trial.seed.to_string()),
        (OVERRIDES_TAG.to_string(), trial.describe()),
    ]
}

fn goal_name(goal: Goal) -> &'static str {
    match goal {
        Goal::Max => "max",
        Goal::Min => "min",
    }
}

fn record(
    run_id: &str,
    experiment_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<SweepRecord, SweepError> {
    let tag = |key: &str| tags.get(key).cloned().unwrap_or_default();
    Ok(SweepRecord {
        run_id: run_id.to_string(),
        sweep_id: tag(SWEEP_TAG),
        name: tag(NAME_TAG),
        experiment_id: experiment_id.to_string(),
        metric: tag(METRIC_TAG),
        goal: if tag(GOAL_TAG) == "min" {
            Goal::Min
        } else {
            Goal::Max
        },
        planned_trials: tag(PLANNED_TAG).parse().unwrap_or_default(),
        failures: tags
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(FAILED_TAG_PREFIX)?.to_string(), v.clone())))
            .collect(),
    })
}
