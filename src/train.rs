//! `ratchet train`: a fresh run, continue-training from a registered version (`--from`), or
//! restarting an interrupted run (`--resume`).
//!
//! A run trains in chunks that end on checkpoint boundaries. Because the agents' `train(a)`
//! then `train(b)` equals `train(a + b)` bit for bit, chunking changes nothing, and each
//! checkpoint captures the complete state: weights, optimizer moments, counters, schedules,
//! RNG streams, environment state and (DQN) the replay buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use ratchet_agents::UpdateLog;
use ratchet_registry::{Metric, ParentRef, Registry, RunStatus, TrackingStore};

use crate::checkpoint::{self, LoadedVersion};
use crate::cli::{EnvKind, TrainArgs};
use crate::config::TrainConfig;
use crate::evaluate::{self, Evaluation};
use crate::learner::Learner;
use crate::market::Market;

/// Set by the Ctrl-C handler; the training loop stops at the next update boundary.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(tracking_uri: &str, args: TrainArgs) -> Result<()> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let store: Arc<dyn TrackingStore> = Arc::from(ratchet_registry::open_store(tracking_uri)?);
    let registry = Registry::new(store.clone());
    if let Some(run_id) = &args.resume {
        return resume(registry, run_id, &args);
    }
    if let Some(source) = &args.from {
        return continue_from(registry, source, &args);
    }
    let mut config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::default(),
    };
    config.apply_flags(&args);
    config.validate()?;
    Job::new(registry, config, None)?.run(args.json)
}

/// Continue training a registered version: its config, data and full training state,
/// `--steps` more steps, registered as a new version whose parent is the source.
fn continue_from(registry: Registry, source: &str, args: &TrainArgs) -> Result<()> {
    let source = checkpoint::load_version(&registry, source)?;
    let mut config = source.config.clone();
    if let Some(path) = &args.config {
        let requested = TrainConfig::from_file(path)?;
        if requested.features != config.features {
            bail!(
                "{} was trained with features {} ({}), {} asks for {} ({}); continue-training keeps \
                 the version's features: drop [features] from the file, or train a new model",
                source.uri,
                config.features.short_hash(),
                describe_features(&config),
                path.display(),
                requested.features.short_hash(),
                describe_features(&requested),
            );
        }
        config.ppo = requested.ppo;
        config.dqn = requested.dqn;
        config.run.checkpoint_every = requested.run.checkpoint_every;
    }
    if let Some(s) = args.steps {
        config.run.steps = s;
    }
    if let Some(d) = args.device {
        config.run.device = d;
    }
    config.run.model_name = Some(
        args.model_name
            .clone()
            .unwrap_or_else(|| source.name.clone()),
    );
    if let Some(x) = &args.experiment {
        config.run.experiment = x.clone();
    }
    if let Some(c) = args.checkpoint_every {
        config.run.checkpoint_every = c;
    }
    // The data file may change (say, a longer history); the features may not.
    if let Some(d) = &args.data {
        config.data.file = d.clone();
    }
    config.validate()?;
    let mut job = Job::new(registry, config, Some(source.parent_ref()))?;
    job.restore_from(&source)?;
    job.run(args.json)
}

fn describe_features(config: &TrainConfig) -> String {
    format!(
        "window {}, {} columns",
        config.features.window,
        config.features.column_names().len()
    )
}

/// Restart an interrupted run from its last checkpoint and finish it.
fn resume(registry: Registry, run_id: &str, args: &TrainArgs) -> Result<()> {
    let saved = checkpoint::load_run(registry.store(), run_id)?;
    let mut config = saved.config;
    if let Some(d) = args.device {
        config.run.device = d;
    }
    let mut job = Job::new(registry, config, saved.parent)?;
    job.learner
        .restore(&saved.state)
        .with_context(|| format!("restoring the last checkpoint of run {run_id}"))?;
    job.run_id = Some(run_id.to_string());
    job.target_steps = saved.target_steps;
    job.run(args.json)
}

/// One training run from start to registration.
struct Job {
    registry: Registry,
    config: TrainConfig,
    market: Option<Market>,
    learner: Learner,
    parent: Option<ParentRef>,
    /// Set when resuming an existing run.
    run_id: Option<String>,
    /// Total environment steps at which this run ends (0: `run.steps` from now).
    target_steps: u64,
}

#[derive(Serialize)]
struct TrainOutput {
    run_id: String,
    model_uri: String,
    name: String,
    version: u64,
    version_id: String,
    semver: String,
    parent: Option<String>,
    total_steps: u64,
    wall_time_s: f64,
    evaluation: Evaluation,
}

impl Job {
    fn new(registry: Registry, mut config: TrainConfig, parent: Option<ParentRef>) -> Result<Self> {
        // The observation window is a property of the features; the environment follows it.
        config.trading.window = config.features.window;
        let market = match config.run.env {
            EnvKind::Trading => Some(Market::prepare(
                &config.data.file,
                &config.data.load_options(),
                &config.features,
                &config.data.split,
            )?),
            EnvKind::Cartpole => None,
        };
        let learner = Learner::build(&config, market.as_ref())?;
        Ok(Self {
            registry,
            config,
            market,
            learner,
            parent,
            run_id: None,
            target_steps: 0,
        })
    }

    /// Loads a registered version's state, refusing one whose network or features do not
    /// fit this run.
    fn restore_from(&mut self, source: &LoadedVersion) -> Result<()> {
        let differences = source.differences(&self.config, &self.learner);
        if !differences.is_empty() {
            bail!(
                "{} does not fit this run: {}",
                source.uri,
                differences.join("; ")
            );
        }
        self.learner
            .restore(&source.state)
            .with_context(|| format!("restoring {}", source.uri))
    }

    fn store(&self) -> &dyn TrackingStore {
        self.registry.store()
    }

    fn run(mut self, json: bool) -> Result<()> {
        let started = Instant::now();
        let start_steps = self.learner.total_steps();
        if self.target_steps == 0 {
            self.target_steps = start_steps + self.config.run.steps;
        }
        let run_id = match self.run_id.clone() {
            Some(id) => {
                self.store()
                    .set_run_status(&id, RunStatus::Running, None)
                    .context("marking the resumed run RUNNING")?;
                id
            }
            None => self.create_run()?,
        };
        let progress = progress_bar(start_steps, self.target_steps);
        let mut pending: Vec<Metric> = Vec::new();
        let every = self.config.run.checkpoint_every;
        while self.learner.total_steps() < self.target_steps {
            let now = self.learner.total_steps();
            let chunk = ((now / every + 1) * every).min(self.target_steps) - now;
            let result = self.learner.train(chunk, &mut |log: &UpdateLog| {
                record(&progress, &mut pending, log)
            });
            if let Err(e) = result {
                progress.abandon();
                self.finish_run(&run_id, RunStatus::Failed);
                return Err(anyhow!(e).context("training failed"));
            }
            progress.set_position(self.learner.total_steps());
            if !pending.is_empty() {
                self.store().log_metrics(&run_id, &pending)?;
                pending.clear();
            }
            checkpoint::save_run(
                self.store(),
                &run_id,
                &self.config,
                self.market.as_ref(),
                &self.learner,
                self.parent.as_ref(),
                self.target_steps,
            )?;
            if INTERRUPTED.load(Ordering::SeqCst) {
                progress.abandon_with_message("interrupted");
                self.finish_run(&run_id, RunStatus::Killed);
                bail!(
                    "interrupted at step {}; run {run_id} is marked KILLED and its last checkpoint \
                     kept: finish it with `ratchet train --resume {run_id}`",
                    self.learner.total_steps()
                );
            }
        }
        progress.finish_and_clear();
        let evaluation =
            evaluate::after_training(&self.config, self.market.as_ref(), &self.learner)?;
        let step = self.learner.total_steps() as i64;
        let metrics: Vec<Metric> = evaluation
            .metrics
            .iter()
            .map(|(k, v)| Metric::now(format!("eval/{k}"), *v, step))
            .collect();
        self.store().log_metrics(&run_id, &metrics)?;
        let wall_time = started.elapsed().as_secs_f64();
        let registered = checkpoint::register(
            &self.registry,
            &run_id,
            &self.config,
            self.market.as_ref(),
            &self.learner,
            self.parent.as_ref(),
            &evaluation,
            wall_time,
        )?;
        self.finish_run(&run_id, RunStatus::Finished);
        let version = registered.version.unwrap_or_default();
        let out = TrainOutput {
            run_id,
            model_uri: format!("models:/{}/{}", registered.name, version),
            name: registered.name.clone(),
            version,
            version_id: registered.version_id.clone(),
            semver: registered.semver.to_string(),
            parent: self.parent.as_ref().map(ParentRef::uri),
            total_steps: self.learner.total_steps(),
            wall_time_s: wall_time,
            evaluation,
        };
        if json {
            crate::output::print_json(&out)?;
        } else {
            print_summary(&out);
        }
        Ok(())
    }

    fn create_run(&self) -> Result<String> {
        let experiment = self
            .store()
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
            tags.push(("ratchet.data_sha256".to_string(), m.loaded.sha256.clone()));
        }
        let run_name = format!("{name}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
        let run = self
            .store()
            .create_run(&experiment.experiment_id, &run_name, &tags)?;
        self.store()
            .log_params(&run.run_id, &checkpoint::flat_params(&self.config))?;
        Ok(run.run_id)
    }

    /// Best effort: a failure to record the end status must not hide the real error.
    fn finish_run(&self, run_id: &str, status: RunStatus) {
        if let Err(e) =
            self.store()
                .set_run_status(run_id, status, Some(ratchet_registry::now_ms()))
        {
            eprintln!(
                "warning: could not mark run {run_id} {}: {e}",
                status.as_str()
            );
        }
    }
}

fn record(progress: &ProgressBar, pending: &mut Vec<Metric>, log: &UpdateLog) {
    let now = ratchet_registry::now_ms();
    for (key, value) in &log.metrics {
        if value.is_finite() {
            pending.push(Metric {
                key: key.to_string(),
                value: *value,
                timestamp: now,
                step: log.step as i64,
            });
        }
    }
    progress.set_position(log.step);
    if let Some(r) = log.get("rollout/ep_return_mean") {
        progress.set_message(format!("episode return {r:.3}"));
    }
}

fn progress_bar(position: u64, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar.set_position(position);
    bar
}

fn print_summary(out: &TrainOutput) {
    println!(
        "registered {} (version {}, {}, semver {})",
        out.model_uri, out.version, out.version_id, out.semver
    );
    println!("  run        {}", out.run_id);
    if let Some(p) = &out.parent {
        println!("  parent     {p}");
    }
    println!(
        "  steps      {} in {:.1} s",
        out.total_steps, out.wall_time_s
    );
    for line in out.evaluation.summary_lines() {
        println!("  {line}");
    }
}
