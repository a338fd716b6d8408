//! `ratchet train`: a fresh run, continue-training from a registered version (`--from`), or
//! restarting an interrupted run (`--resume`).
//!
//! A run trains in chunks that end on checkpoint boundaries. Because the agents' `train(a)`
//! then `train(b)` equals `train(a + b)` bit for bit, chunking changes nothing, and each
//! checkpoint captures the complete state: weights, optimizer moments, counters, schedules,
//! RNG streams, environment state and (DQN) the replay buffer.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::Serialize;

use ratchet_agents::{TrainingState, UpdateLog};
use ratchet_mlflow::{Metric, RunStatus, TrackingStore};
use ratchet_registry::{ParentRef, Registry};

use crate::checkpoint::{self, Best, LoadedVersion};
use ratchet_config::{Algo, Device, EnvKind, Select, TrainConfig};

use crate::cli::TrainArgs;

use crate::judge::{self, Evaluation};
use crate::market::Market;
use ratchet_agents::Agent;

/// Set by the Ctrl-C handler; training stops at the next update boundary, and a run that
/// is evaluating stops before it registers.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The run tag that holds the error a run FAILED with.
pub const ERROR_TAG: &str = "ratchet.error";

/// Version tags of a run with `eval_every` or `select`: the rule, and the step and
/// validation Sharpe ratio of the state that became the version.
pub const SELECT_TAG: &str = "ratchet.select";
pub const SELECTED_STEP_TAG: &str = "ratchet.selected_step";
pub const SELECTED_VAL_SHARPE_TAG: &str = "ratchet.selected_val_sharpe";

/// Artifact of every trading run: the registered state's per-bar returns on the validation
/// range, a JSON list (what `ratchet sweep` computes the deflated Sharpe ratio and PBO from).
pub const RETURNS_ARTIFACT: &str = ratchet_sweep::store::RETURNS_ARTIFACT;

/// MLflow's limit on a run tag's value, in characters.
const MAX_TAG_CHARS: usize = 8000;

pub fn run(tracking_uri: &str, args: TrainArgs) -> Result<()> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let store: Arc<dyn TrackingStore> = Arc::from(ratchet_mlflow::open_store(tracking_uri)?);
    if let Some(run_id) = &args.resume {
        return resume(store, run_id, &args);
    }
    if let Some(source) = &args.from {
        return continue_from(store, source, &args);
    }
    let mut config = match &args.config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::default(),
    };
    crate::config::apply_flags(&mut config, &args);
    config.validate()?;
    config.check_learns()?;
    Job::new(store, config, None)?.run(args.json)
}

/// Continue training a registered version: its config, data and full training state,
/// `--steps` more steps, registered as a new version whose parent is the source.
fn continue_from(store: Arc<dyn TrackingStore>, source: &str, args: &TrainArgs) -> Result<()> {
    let (source, state) = checkpoint::load_version(&Registry::new(store.clone()), source)?;
    let mut config = source.config.clone();
    if let Some(path) = &args.config {
        let requested = TrainConfig::load(path)?;
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
        // The file's hyperparameters, but the version's own arithmetic (below: unless asked).
        let arithmetic = config.arithmetic();
        config.ppo = requested.ppo;
        config.dqn = requested.dqn;
        config.set_arithmetic(arithmetic);
        config.run.checkpoint_every = requested.run.checkpoint_every;
    }
    if let Some(a) = args.arithmetic {
        config.set_arithmetic(a);
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
    let mut job = Job::new(store, config, Some(source.parent_ref()))?;
    job.restore_from(&source, &state)?;
    eprintln!("{}", schedule_line(&job.config, job.agent.as_ref()));
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
fn resume(store: Arc<dyn TrackingStore>, run_id: &str, args: &TrainArgs) -> Result<()> {
    let saved = checkpoint::load_run(store.as_ref(), run_id)?;
    let mut config = saved.config;
    if let Some(d) = args.device {
        config.run.device = d;
    }
    let mut job = Job::new(store, config, saved.parent)?;
    job.agent
        .restore(&saved.state)
        .with_context(|| format!("restoring the last checkpoint of run {run_id}"))?;
    eprintln!(
        "resuming run {run_id} from its checkpoint at step {} of {}",
        job.agent.total_steps(),
        saved.target_steps
    );
    job.run_id = Some(run_id.to_string());
    job.target_steps = saved.target_steps;
    job.best = saved.best;
    job.run(args.json)
}

/// One training run from start to registration.
struct Job {
    store: Arc<dyn TrackingStore>,
    registry: Registry,
    config: TrainConfig,
    market: Option<Market>,
    agent: Box<dyn Agent>,
    parent: Option<ParentRef>,
    /// Set when resuming an existing run.
    run_id: Option<String>,
    /// Total environment steps at which this run ends (0: `run.steps` from now).
    target_steps: u64,
    /// `select = "best_val_sharpe"`: the evaluated state with the best validation Sharpe
    /// ratio so far (saved as the run's `checkpoint-best` artifact).
    best: Option<Best>,
    /// Validation evaluations this process ran during training (`eval_every`).
    evaluations: usize,
}

/// Which state became the version, and why (printed, and in `--json`).
#[derive(Serialize)]
struct SelectionOutput {
    /// `last` or `best_val_sharpe`.
    rule: &'static str,
    /// Environment steps of the registered state.
    step: u64,
    /// Steps trained when training ended (the last candidate).
    last_step: u64,
    val_sharpe: Option<f64>,
    /// Validation evaluations during training (not counting the final one).
    evaluations: usize,
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
    selection: SelectionOutput,
    evaluation: Evaluation,
}

impl Job {
    fn new(
        store: Arc<dyn TrackingStore>,
        mut config: TrainConfig,
        parent: Option<ParentRef>,
    ) -> Result<Self> {
        // The observation window is a property of the features; the environment follows it.
        config.trading.window = config.features.window;
        let market = match config.run.env {
            EnvKind::Trading => Some(Market::prepare(&config)?),
            EnvKind::Cartpole => None,
        };
        if config.run.device == Device::Wgpu {
            report_wgpu_adapter();
        }
        if !config.arithmetic().native() {
            eprintln!(
                "warning: this CPU has no FMA instructions, so arithmetic \"fma\" is emulated in \
                 software: the same bits as on a CPU with them, many times slower (a new run can \
                 take --arithmetic exact)"
            );
        }
        let agent = crate::agent::build(&config, market.as_ref())?;
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
        })
    }

    /// Loads a registered version's state, refusing one whose network or features do not
    /// fit this run.
    fn restore_from(&mut self, source: &LoadedVersion, state: &TrainingState) -> Result<()> {
        let differences = source.differences(&self.config, checkpoint::sizes(self.agent.as_ref()));
        if !differences.is_empty() {
            bail!(
                "{} does not fit this run: {}",
                source.uri,
                differences.join("; ")
            );
        }
        self.agent.restore(state).map_err(|e| {
            let recorded = source.metadata.training.data.train.as_ref();
            match (&self.market, recorded) {
                // The saved environments stand at bars of the version's training range that
                // this data's (shorter) training range does not reach.
                (Some(market), Some(recorded)) if market.splits.train.last_date < recorded.end => {
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

    /// Trains, evaluates and registers. The run ends FINISHED, KILLED (Ctrl-C) or FAILED
    /// (any error, with the error as its `ratchet.error` tag), never left RUNNING.
    fn run(mut self, json: bool) -> Result<()> {
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
                if json {
                    crate::output::print_json(&out)
                } else {
                    print_summary(&out);
                    Ok(())
                }
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

    fn train_and_register(
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
            Ok(()) => progress.bar.finish_and_clear(),
            Err(_) => progress.bar.abandon(),
        }
        trained?;
        let last_step = self.agent.total_steps();
        if self.config.run.select == Select::BestValSharpe {
            match self.best {
                Some(best) if best.step != last_step => {
                    let state = checkpoint::load_best(self.store.as_ref(), run_id)?;
                    self.agent
                        .restore(&state)
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
        let registered = checkpoint::register(
            &self.registry,
            run_id,
            &self.config,
            self.market.as_ref(),
            self.agent.as_ref(),
            self.parent.as_ref(),
            &evaluation,
            wall_time,
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
    fn train(&mut self, run_id: &str, progress: &mut Progress) -> Result<()> {
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
                checkpoint::save_run(
                    self.store.as_ref(),
                    run_id,
                    checkpoint::RUN_CHECKPOINT,
                    &self.config,
                    self.market.as_ref(),
                    self.agent.as_ref(),
                    self.parent.as_ref(),
                    self.target_steps,
                    self.best,
                )?;
            }
            self.stop_if_interrupted(run_id)?;
        }
        Ok(())
    }

    /// One `eval_every` evaluation on the validation range: logged as `val_curve/*` at the
    /// current step, and with `select = "best_val_sharpe"` the state is kept (as the run's
    /// `checkpoint-best`) when its Sharpe ratio beats the best so far.
    fn evaluate_candidate(&mut self, run_id: &str) -> Result<()> {
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
            checkpoint::save_run(
                self.store.as_ref(),
                run_id,
                checkpoint::BEST_CHECKPOINT,
                &self.config,
                self.market.as_ref(),
                self.agent.as_ref(),
                self.parent.as_ref(),
                self.target_steps,
                Some(best),
            )?;
            self.best = Some(best);
        }
        Ok(())
    }

    fn stop_if_interrupted(&self, run_id: &str) -> Result<()> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(Interrupted {
                step: self.agent.total_steps(),
                run_id: run_id.to_string(),
            }
            .into());
        }
        Ok(())
    }

    fn create_run(&self) -> Result<String> {
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
            tags.push(("ratchet.data_sha256".to_string(), m.loaded.sha256.clone()));
        }
        let run_name = format!("{name}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
        let run = self
            .store
            .create_run(&experiment.experiment_id, &run_name, &tags)?;
        Ok(run.run_id)
    }
}

/// Names on stderr the adapter `--device wgpu` runs on, and warns when this machine has no
/// GPU adapter: wgpu then runs on a software rasteriser (Mesa's llvmpipe, lavapipe), many times
/// slower than `--device cpu`. Burn's runtime prefers a GPU adapter whenever one exists.
fn report_wgpu_adapter() {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let adapters: Vec<wgpu::AdapterInfo> = runtime
        .block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
        .iter()
        .map(wgpu::Adapter::get_info)
        .collect();
    let describe =
        |a: &wgpu::AdapterInfo| format!("{} ({:?}, {:?})", a.name, a.backend, a.device_type);
    match adapters
        .iter()
        .find(|a| a.device_type != wgpu::DeviceType::Cpu)
    {
        Some(gpu) => eprintln!("device wgpu: {}", describe(gpu)),
        None => {
            if let Some(software) = adapters.first() {
                eprintln!(
                    "warning: device wgpu: {} is a software rasteriser (this machine has no GPU \
                     adapter); training runs many times slower than with --device cpu",
                    describe(software)
                );
            }
        }
    }
}

/// Training stopped on Ctrl-C with its last checkpoint saved.
#[derive(Debug)]
struct Interrupted {
    step: u64,
    run_id: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Interrupted { step, run_id } = self;
        write!(
            f,
            "interrupted at step {step}; run {run_id} is marked KILLED and its last checkpoint \
             kept: finish it with `ratchet train --resume {run_id}`"
        )
    }
}

impl std::error::Error for Interrupted {}

/// A run this process marked RUNNING. [`OpenRun::end`] records how it ended; a panic that
/// unwinds past it marks the run FAILED, so no path leaves it RUNNING.
struct OpenRun {
    store: Arc<dyn TrackingStore>,
    id: String,
    open: bool,
}

impl OpenRun {
    fn new(store: Arc<dyn TrackingStore>, id: String) -> Self {
        Self {
            store,
            id,
            open: true,
        }
    }

    fn end(mut self, status: RunStatus, error: Option<&anyhow::Error>) {
        self.open = false;
        self.close(status, error.map(|e| format!("{e:#}")));
    }

    /// Best effort: a failure to record the end must not hide the error that ended the run.
    /// When the store cannot be reached, the end is kept in the run-end journal, and the next
    /// ratchet command on this store records it.
    fn close(&self, status: RunStatus, error: Option<String>) {
        let tags: Vec<(String, String)> = error
            .map(|message| {
                (
                    ERROR_TAG.to_string(),
                    checkpoint::cut_at_char(message, MAX_TAG_CHARS),
                )
            })
            .into_iter()
            .collect();
        if let Err(e) =
            crate::market::run_end_journal().end_run(self.store.as_ref(), &self.id, status, &tags)
        {
            eprintln!(
                "warning: could not mark run {} {}: {e}",
                self.id,
                status.as_str()
            );
        }
    }
}

impl Drop for OpenRun {
    fn drop(&mut self) {
        if self.open {
            // Only an unwinding panic skips `end`.
            self.close(
                RunStatus::Failed,
                Some("ratchet panicked; the message is on its stderr".into()),
            );
        }
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

/// The config key and length, in steps, of the schedule a run follows: DQN's exploration, or
/// PPO's learning-rate annealing (`None`: the learning rate is constant).
pub fn planned_horizon(config: &TrainConfig) -> Option<(&'static str, u64)> {
    match config.run.algo {
        Algo::Dqn => Some(("dqn.total_timesteps", config.dqn.total_timesteps)),
        Algo::Ppo => config
            .ppo
            .lr_anneal_steps
            .map(|horizon| ("ppo.lr_anneal_steps", horizon)),
    }
}

/// Where the learning-rate or exploration schedule stands and the plan it follows (printed
/// when training continues a version, whose schedules keep the source's horizon).
fn schedule_line(config: &TrainConfig, agent: &dyn Agent) -> String {
    let step = agent.total_steps();
    let (name, value) = agent.schedule();
    match planned_horizon(config) {
        Some((key, horizon)) => format!(
            "schedule: {name} {value:.4e} at step {step} of the source's {horizon}-step plan \
             ({key}), continued as planned; to split a run, set {key} to the full horizon"
        ),
        None => format!("schedule: {name} {value:.4e}, constant (no annealing planned)"),
    }
}

/// Seconds between progress lines when stderr is not a terminal (`RATCHET_PROGRESS_SECONDS`
/// overrides: a CI log gets a line this often, a test one per update with 0).
const PLAIN_PROGRESS_SECONDS: f64 = 5.0;

/// Training progress on stderr: indicatif's bar on a terminal; elsewhere (a CI log, a file),
/// where the bar draws nothing, a plain line every few seconds.
struct Progress {
    bar: ProgressBar,
    plain: Option<PlainProgress>,
}

struct PlainProgress {
    every: Duration,
    started: Instant,
    /// When the last line was printed, and the step it showed.
    last: (Instant, u64),
    total: u64,
    message: String,
}

impl Progress {
    fn new(position: u64, total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {rate}  ETA {eta}  {msg}",
            )
            .expect("valid progress template")
            .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", whole(state.per_sec()));
            })
            .progress_chars("=> "),
        );
        bar.set_position(position);
        let plain = (!std::io::stderr().is_terminal()).then(|| {
            let seconds = std::env::var("RATCHET_PROGRESS_SECONDS")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(PLAIN_PROGRESS_SECONDS);
            PlainProgress {
                every: Duration::from_secs_f64(seconds),
                started: Instant::now(),
                last: (Instant::now(), position),
                total,
                message: String::new(),
            }
        });
        Self { bar, plain }
    }

    fn set_position(&mut self, step: u64) {
        self.bar.set_position(step);
        let Some(p) = &mut self.plain else { return };
        let now = Instant::now();
        if now.duration_since(p.last.0) < p.every || step == p.last.1 {
            return;
        }
        let rate = (step - p.last.1) as f64 / now.duration_since(p.last.0).as_secs_f64();
        eprintln!(
            "step {}/{} ({:.0}%), {} steps/s, {:.0} s{}",
            whole(step as f64),
            whole(p.total as f64),
            100.0 * step as f64 / p.total.max(1) as f64,
            whole(rate),
            now.duration_since(p.started).as_secs_f64(),
            if p.message.is_empty() {
                String::new()
            } else {
                format!(", {}", p.message)
            }
        );
        p.last = (now, step);
    }

    fn set_message(&mut self, message: String) {
        if let Some(p) = &mut self.plain {
            p.message.clone_from(&message);
        }
        self.bar.set_message(message);
    }
}

/// A number rounded to a whole one, with thousands separators: `32,836`.
fn whole(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
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

fn print_summary(out: &TrainOutput) {
    println!(
        "registered {} (version {}, {}, semver {})",
        out.model_uri, out.version, out.version_id, out.semver
    );
    println!("  run        {}", out.run_id);
    if let Some(p) = &out.parent {
        println!("  parent     {p}");
    }
    let sel = &out.selection;
    // The time is that of every step trained; the version may hold an earlier state.
    println!(
        "  steps      {} in {:.1} s{}",
        sel.last_step,
        out.wall_time_s,
        if sel.step == sel.last_step {
            String::new()
        } else {
            format!("; the version holds step {}", sel.step)
        }
    );
    if sel.rule != "last" || sel.evaluations > 0 {
        println!(
            "  selected   step {} of {} by {} ({} validation evaluations; val sharpe {})",
            sel.step,
            sel.last_step,
            sel.rule,
            sel.evaluations,
            sel.val_sharpe
                .map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
        );
    }
    for line in out.evaluation.summary_lines() {
        println!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;

    fn store_with_a_run() -> (tempfile::TempDir, Arc<dyn TrackingStore>, String) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TrackingStore> =
            Arc::new(ratchet_mlflow::FileStore::open(dir.path()).unwrap());
        let experiment = store.get_or_create_experiment("e").unwrap();
        let run_id = store
            .create_run(&experiment.experiment_id, "r", &[])
            .unwrap()
            .run_id;
        (dir, store, run_id)
    }

    #[test]
    fn a_panic_marks_the_open_run_failed() {
        let (_dir, store, run_id) = store_with_a_run();
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let _run = OpenRun::new(store.clone(), run_id.clone());
            panic!("a bug");
        }));
        assert!(unwound.is_err());
        let run = store.get_run(&run_id).unwrap();
        assert_eq!(run.info.status, RunStatus::Failed);
        assert_eq!(
            run.tags[ERROR_TAG],
            "ratchet panicked; the message is on its stderr"
        );
    }

    #[test]
    fn an_ended_run_keeps_its_status() {
        let (_dir, store, run_id) = store_with_a_run();
        OpenRun::new(store.clone(), run_id.clone()).end(RunStatus::Killed, None);
        let run = store.get_run(&run_id).unwrap();
        assert_eq!(run.info.status, RunStatus::Killed);
        assert!(!run.tags.contains_key(ERROR_TAG));
    }
}
