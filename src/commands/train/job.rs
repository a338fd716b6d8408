//! One training run from start to registration: train in chunks that end on checkpoint
//! boundaries, evaluate, select, register.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};

use ratchet_agents::{Agent, Environments, TrainingState, UpdateLog};
use ratchet_config::{Device, EnvKind, Select, TrainConfig};
use ratchet_mlflow::{Metric, RunStatus, TrackingStore};
use ratchet_registry::{ParentRef, Registry};

use super::feast_tags;
use super::open_run::{Interrupted, OpenRun};
use super::*;
use crate::checkpoint::{self, Best, LoadedVersion};
use crate::judge;
use crate::progress::Progress;
use crate::universe::TrainingData;

/// One training run from start to registration.
pub(crate) struct Job {
    pub(super) store: Arc<dyn TrackingStore>,
    pub(super) registry: Registry,
    pub(crate) config: TrainConfig,
    pub(crate) market: Option<TrainingData>,
    pub(super) agent: Box<dyn Agent>,
    pub(super) parent: Option<ParentRef>,
    /// Set when resuming an existing run.
    pub(super) run_id: Option<String>,
    /// Total environment steps at which this run ends (0: `run.steps` from now).
    pub(super) target_steps: u64,
    /// `select = "best_val_sharpe"`: the evaluated state with the best validation Sharpe
    /// ratio so far (saved as the run's `checkpoint-best` artifact).
    pub(super) best: Option<Best>,
    /// Validation evaluations this process ran during training (`eval_every`).
    pub(super) evaluations: usize,
    /// Tags the version gets from its creation, given the evaluation of the registered
    /// state (`ratchet retrain`'s key and verdict).
    pub(crate) version_tags: Option<VersionTags>,
}

/// Makes a version's extra tags from the evaluation of its state.
pub(crate) type VersionTags = Box<dyn Fn(&Evaluation) -> Result<Vec<(String, String)>>>;

impl Job {
    pub(crate) fn new(
        store: Arc<dyn TrackingStore>,
        mut config: TrainConfig,
        parent: Option<ParentRef>,
    ) -> Result<Self> {
        // The observation window is a property of the features; the environment follows it.
        config.trading.window = config.features.window;
        let market = match config.run.env {
            EnvKind::Trading => Some(TrainingData::prepare(&config)?),
            EnvKind::Cartpole => None,
        };
        if config.run.device == Device::Wgpu {
            crate::agent::report_wgpu_adapter();
        }
        if !config.arithmetic().native() {
            eprintln!(
                "warning: this CPU has no FMA instructions, so arithmetic \"fma\" is emulated in \
                 software: the same bits as on a CPU with them, many times slower (a new run can \
                 take --arithmetic exact)"
            );
        }
        let rows = market
            .as_ref()
            .map(TrainingData::training_rows)
            .transpose()?;
        let agent = crate::agent::build(&config, rows)?;
        Ok(Self {
            registry: Registry::new(store.clone()),
            store,
            config,
            market,
            agent,
            parent,
            run_id: None,
            target_steps: 0,
            best: None,
            evaluations: 0,
            version_tags: None,
        })
    }

    /// Loads a registered version's state, refusing one whose network or features do not
    /// fit this run.
    pub(super) fn restore_from(
        &mut self,
        source: &LoadedVersion,
        state: &TrainingState,
    ) -> Result<()> {
        let differences = source.differences(&self.config, checkpoint::sizes(self.agent.as_ref()));
        if !differences.is_empty() {
            bail!(
                "{} does not fit this run: {}",
                source.uri,
                differences.join("; ")
            );
        }
        // A universe's instruments lie end to end, so when any of its files changed, the
        // saved episodes' bar numbers would point into other bars (even other instruments).
        let recorded_train = source.metadata.training.data.train.as_ref();
        let environments = match &self.market {
            Some(TrainingData::Universe(universe))
                if universe.hash != source.metadata.training.data.sha256 =>
            {
                eprintln!(
                    "the universe's data differs from {}'s: training continues from its weights, \
                     optimizer, schedules and counters, in new episodes",
                    source.uri
                );
                Environments::Fresh
            }
            // A training range that starts elsewhere (a rolling window) holds other starts.
            Some(TrainingData::Instrument(market))
                if recorded_train.is_some_and(|r| r.start != market.splits.train.first_date) =>
            {
                eprintln!(
                    "the training range starts at {}, not at {}'s {}: training continues from \
                     its weights, optimizer, schedules and counters, in new episodes",
                    market.splits.train.first_date,
                    source.uri,
                    recorded_train.map_or("", |r| r.start.as_str())
                );
                Environments::Fresh
            }
            _ => Environments::Restore,
        };
        self.agent.restore(state, environments).map_err(|e| {
            let recorded = source.metadata.training.data.train.as_ref();
            match (&self.market, recorded) {
                // The saved environments stand at bars of the version's training range that
                // this data's (shorter) training range does not reach.
                (Some(TrainingData::Instrument(market)), Some(recorded))
                    if market.splits.train.last_date < recorded.end =>
                {
                    anyhow!(
                        "{} cannot continue on {}: its training range ends at {}, before the end \
                         of the version's ({} .. {}), so the saved environments stand at bars \
                         this data does not have; continue with data that covers the version's \
                         training range (--data), or train a new model on this file",
                        source.uri,
                        self.config.data.file.display(),
                        market.splits.train.last_date,
                        recorded.start,
                        recorded.end
                    )
                }
                _ => anyhow!(e).context(format!("restoring {}", source.uri)),
            }
        })
    }

    /// Trains, evaluates and registers, and prints the result. The run ends FINISHED,
    /// KILLED (Ctrl-C) or FAILED (any error, with the error as its `ratchet.error` tag),
    /// never left RUNNING.
    pub(super) fn run(self, json: bool) -> Result<()> {
        let out = self.finish()?;
        if json {
            crate::output::print_json(&out)
        } else {
            print_summary(&out);
            Ok(())
        }
    }

    /// [`Job::run`] without printing: the registered version.
    pub(crate) fn finish(mut self) -> Result<TrainOutput> {
        let started = Instant::now();
        if self.target_steps == 0 {
            self.target_steps = self.agent.total_steps() + self.config.run.steps;
        }
        let (run, fresh) = match self.run_id.clone() {
            Some(id) => {
                self.store
                    .set_run_status(&id, RunStatus::Running, None)
                    .context("marking the resumed run RUNNING")?;
                (OpenRun::new(self.store.clone(), id), false)
            }
            None => (OpenRun::new(self.store.clone(), self.create_run()?), true),
        };
        match self.train_and_register(&run.id, fresh, started) {
            Ok(out) => {
                run.end(RunStatus::Finished, None);
                Ok(out)
            }
            Err(e) if e.is::<Interrupted>() => {
                run.end(RunStatus::Killed, None);
                Err(e)
            }
            Err(e) => {
                run.end(RunStatus::Failed, Some(&e));
                Err(e)
            }
        }
    }

    pub(super) fn train_and_register(
        &mut self,
        run_id: &str,
        fresh: bool,
        started: Instant,
    ) -> Result<TrainOutput> {
        if fresh {
            self.store
                .log_params(run_id, &checkpoint::flat_params(&self.config))?;
        }
        let mut progress = Progress::new(self.agent.total_steps(), self.target_steps);
        let trained = self.train(run_id, &mut progress);
        match &trained {
            Ok(()) => progress.finish(),
            Err(_) => progress.abandon(),
        }
        trained?;
        let last_step = self.agent.total_steps();
        if self.config.run.select == Select::BestValSharpe {
            match self.best {
                Some(best) if best.step != last_step => {
                    let state = checkpoint::load_best(&self.registry, run_id)?;
                    self.agent
                        .restore(&state, Environments::Restore)
                        .context("restoring the state with the best validation Sharpe ratio")?;
                    anyhow::ensure!(
                        self.agent.total_steps() == best.step,
                        "the run's checkpoint-best artifact holds step {}, its record says {}",
                        self.agent.total_steps(),
                        best.step
                    );
                }
                Some(_) => {}
                None => eprintln!(
                    "note: no evaluation had a validation Sharpe ratio (the policy never traded, \
                     or its returns were constant); registering the last state"
                ),
            }
        }
        let evaluation = judge::validation(&self.config, self.market.as_ref(), self.agent.as_ref())
            .context("evaluating the trained policy on the validation range")?;
        // Ctrl-C during the evaluation: stop before anything is registered.
        self.stop_if_interrupted(run_id)?;
        let step = self.agent.total_steps();
        let metrics: Vec<Metric> = evaluation
            .metrics
            .iter()
            .map(|(k, v)| Metric::now(format!("val/{k}"), *v, step as i64))
            .collect();
        self.store.log_metrics(run_id, &metrics)?;
        if let Some(returns) = &evaluation.returns {
            upload_returns(self.store.as_ref(), run_id, returns)?;
        }
        let wall_time = started.elapsed().as_secs_f64();
        let mut extra_tags = match &self.version_tags {
            Some(make) => make(&evaluation)?,
            None => Vec::new(),
        };
        if let Some(data) = &self.market {
            extra_tags.extend(feast_tags::record(
                self.store.as_ref(),
                run_id,
                &self.config.features,
                data,
            )?);
        }
        let registered = checkpoint::register(
            &self.registry,
            run_id,
            &self.config,
            self.market.as_ref(),
            self.agent.as_ref(),
            self.parent.as_ref(),
            &evaluation,
            wall_time,
            &extra_tags,
        )?;
        let version = registered.version.unwrap_or_default();
        let selection = SelectionOutput {
            rule: self.config.run.select.as_str(),
            step,
            last_step,
            val_sharpe: evaluation.metrics.get("sharpe").copied(),
            evaluations: self.evaluations,
        };
        if self.config.run.select != Select::Last || self.config.run.eval_every.is_some() {
            let mut tags = vec![
                (SELECT_TAG, selection.rule.to_string()),
                (SELECTED_STEP_TAG, step.to_string()),
            ];
            if let Some(v) = selection.val_sharpe {
                tags.push((SELECTED_VAL_SHARPE_TAG, format!("{v}")));
            }
            for (key, value) in tags {
                self.store
                    .set_model_version_tag(&registered.name, version, key, &value)
                    .with_context(|| format!("tagging models:/{}/{version}", registered.name))?;
            }
        }
        Ok(TrainOutput {
            run_id: run_id.to_string(),
            model_uri: format!("models:/{}/{}", registered.name, version),
            name: registered.name.clone(),
            version,
            version_id: registered.version_id.clone(),
            semver: registered.semver.to_string(),
            parent: self.parent.as_ref().map(ParentRef::uri),
            total_steps: step,
            wall_time_s: wall_time,
            selection,
            evaluation,
        })
    }

    /// Trains up to `target_steps` in chunks that end on checkpoint (and `eval_every`)
    /// boundaries, logging each chunk's metrics, evaluating on the validation range at each
    /// `eval_every` boundary and saving a checkpoint at each checkpoint boundary. Stops early,
    /// checkpointed, on Ctrl-C, and without a checkpoint when a loss goes non-finite.
    pub(super) fn train(&mut self, run_id: &str, progress: &mut Progress) -> Result<()> {
        let every = self.config.run.checkpoint_every;
        let eval_every = self.config.run.eval_every;
        let next = |now: u64, k: u64| (now / k + 1) * k;
        while self.agent.total_steps() < self.target_steps {
            let now = self.agent.total_steps();
            let end = eval_every
                .map_or(u64::MAX, |e| next(now, e))
                .min(next(now, every))
                .min(self.target_steps);
            let chunk = end - now;
            let stop = AtomicBool::new(false);
            let mut pending: Vec<Metric> = Vec::new();
            let mut diverged = None;
            let trained = self.agent.train(
                chunk,
                &mut |log: &UpdateLog| {
                    record(&mut *progress, &mut pending, log);
                    if diverged.is_none() {
                        diverged = non_finite_loss(log);
                    }
                    if diverged.is_some() || INTERRUPTED.load(Ordering::SeqCst) {
                        stop.store(true, Ordering::SeqCst);
                    }
                },
                &stop,
            );
            // Logged even when training failed: the history shows how it got there.
            if !pending.is_empty() {
                self.store.log_metrics(run_id, &pending)?;
            }
            trained.map_err(|e| anyhow!(e).context("training failed"))?;
            if let Some((key, value, step)) = diverged {
                bail!(
                    "training diverged: {key} is {value} at step {step}; stopped without \
                     checkpointing the diverged state (lower the learning rate, or check the \
                     reward scale)"
                );
            }
            let now = self.agent.total_steps();
            progress.set_position(now);
            let interrupted = INTERRUPTED.load(Ordering::SeqCst);
            let at_end = now >= self.target_steps;
            if let Some(e) = eval_every
                && !interrupted
                && (now.is_multiple_of(e) || at_end)
            {
                self.evaluate_candidate(run_id)?;
            }
            if now.is_multiple_of(every) || at_end || interrupted {
                self.save(run_id, checkpoint::RUN_CHECKPOINT, self.best)?;
            }
            self.stop_if_interrupted(run_id)?;
        }
        Ok(())
    }

    /// Saves the complete training state as the run's checkpoint artifact `name`.
    fn save(&self, run_id: &str, name: &str, best: Option<Best>) -> Result<()> {
        checkpoint::save_run(
            &self.registry,
            run_id,
            name,
            &self.config,
            self.market.as_ref(),
            self.agent.as_ref(),
            self.parent.as_ref(),
            self.target_steps,
            best,
        )
    }

    /// One `eval_every` evaluation on the validation range: logged as `val_curve/*` at the
    /// current step, and with `select = "best_val_sharpe"` the state is kept (as the run's
    /// `checkpoint-best`) when its Sharpe ratio beats the best so far.
    pub(super) fn evaluate_candidate(&mut self, run_id: &str) -> Result<()> {
        let evaluation = judge::validation(&self.config, self.market.as_ref(), self.agent.as_ref())
            .context("evaluating on the validation range during training")?;
        self.evaluations += 1;
        let step = self.agent.total_steps();
        let metrics: Vec<Metric> = evaluation
            .metrics
            .iter()
            .map(|(k, v)| Metric::now(format!("val_curve/{k}"), *v, step as i64))
            .collect();
        self.store.log_metrics(run_id, &metrics)?;
        let sharpe = evaluation.metrics.get("sharpe").copied();
        if self.config.run.select == Select::BestValSharpe
            && let Some(sharpe) = sharpe
            && self.best.is_none_or(|b| sharpe > b.val_sharpe)
        {
            let best = Best {
                step,
                val_sharpe: sharpe,
            };
            self.save(run_id, checkpoint::BEST_CHECKPOINT, Some(best))?;
            self.best = Some(best);
        }
        Ok(())
    }

    pub(super) fn stop_if_interrupted(&self, run_id: &str) -> Result<()> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(Interrupted {
                step: self.agent.total_steps(),
                run_id: run_id.to_string(),
            }
            .into());
        }
        Ok(())
    }

    pub(super) fn create_run(&self) -> Result<String> {
        let experiment = self
            .store
            .get_or_create_experiment(&self.config.run.experiment)?;
        let name = self.config.model_name();
        let mut tags = vec![
            ("ratchet.model_name".to_string(), name.clone()),
            (
                "mlflow.source.name".to_string(),
                "ratchet train".to_string(),
            ),
            ("mlflow.source.type".to_string(), "LOCAL".to_string()),
        ];
        if let Some(p) = &self.parent {
            tags.push(("ratchet.parent".to_string(), p.uri()));
        }
        tags.extend(self.config.run_tags.iter().cloned());
        if let Some(m) = &self.market {
            tags.push((
                "ratchet.feature_hash".to_string(),
                self.config.features.hash(),
            ));
            let data_sha256 = match m {
                TrainingData::Instrument(market) => market.loaded.sha256.clone(),
                TrainingData::Universe(universe) => universe.hash.clone(),
            };
            tags.push(("ratchet.data_sha256".to_string(), data_sha256));
        }
        let run_name = format!("{name}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
        let run = self
            .store
            .create_run(&experiment.experiment_id, &run_name, &tags)?;
        Ok(run.run_id)
    }
}

/// Uploads `returns` as the run's [`RETURNS_ARTIFACT`].
fn upload_returns(store: &dyn TrackingStore, run_id: &str, returns: &[f64]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (folder, file) = RETURNS_ARTIFACT
        .rsplit_once('/')
        .expect("the artifact path has a folder");
    let path = dir.path().join(file);
    std::fs::write(&path, serde_json::to_vec(returns)?)?;
    store
        .upload_artifacts(run_id, &path, folder)
        .with_context(|| format!("uploading {RETURNS_ARTIFACT} to run {run_id}"))
}

/// The first loss among an update's metrics that is NaN or infinite.
fn non_finite_loss(log: &UpdateLog) -> Option<(&'static str, f64, u64)> {
    log.metrics
        .iter()
        .find(|(key, value)| key.ends_with("loss") && !value.is_finite())
        .map(|&(key, value)| (key, value, log.step))
}

fn record(progress: &mut Progress, pending: &mut Vec<Metric>, log: &UpdateLog) {
    let now = ratchet_mlflow::now_ms();
    // Non-finite values are logged too (MLflow stores them as NaN and ±Infinity).
    for (key, value) in &log.metrics {
        pending.push(Metric {
            key: key.to_string(),
            value: *value,
            timestamp: now,
            step: log.step as i64,
        });
    }
    progress.set_position(log.step);
    if let Some(r) = log.get("rollout/ep_return_mean") {
        progress.set_message(format!("episode return {r:.3}"));
    }
}
