//! `ratchet train`: a fresh run, continue-training from a registered version (`--from`), or
//! restarting an interrupted run (`--resume`).
//!
//! A run trains in chunks that end on checkpoint boundaries. Because the agents' `train(a)`
//! then `train(b)` equals `train(a + b)` bit for bit, chunking changes nothing, and each
//! checkpoint captures the complete state: weights, optimizer moments, counters, schedules,
//! RNG streams, environment state and (DQN) the replay buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use ratchet_agents::{Agent, Environments};
use ratchet_config::{Algo, TrainConfig};
use ratchet_mlflow::TrackingStore;
use ratchet_registry::Registry;

use crate::checkpoint;
use crate::cli::TrainArgs;
use crate::judge::Evaluation;
use crate::universe::TrainingData;

mod feast_tags;
mod job;
mod open_run;

pub(crate) use job::Job;

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
    stop_on_ctrl_c()?;
    let store: Arc<dyn TrackingStore> = Arc::from(ratchet_mlflow::open_store(tracking_uri)?);
    if let Some(run_id) = &args.resume {
        return resume(store, run_id, &args)?.run(args.json);
    }
    if let Some(source) = &args.from {
        return continue_from(store, source, &args, |_| Ok(()))?.run(args.json);
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

/// Makes Ctrl-C stop training at the next update (with its last checkpoint kept) and an
/// evaluating run before it registers.
pub(crate) fn stop_on_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")
}

/// Continue training a registered version: its config, data and full training state,
/// `--steps` more steps, ready to register as a new version whose parent is the source.
/// `adjust` changes the config last, before the data is read (`ratchet retrain` cuts the
/// new ranges and tags the run).
pub(crate) fn continue_from(
    store: Arc<dyn TrackingStore>,
    source: &str,
    args: &TrainArgs,
    adjust: impl FnOnce(&mut TrainConfig) -> Result<()>,
) -> Result<Job> {
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
        config.data.set_from_flag(d);
    }
    adjust(&mut config)?;
    config.validate()?;
    let recorded = &source.metadata.training.data.outside;
    if !recorded.is_empty() && config.features == source.config.features {
        // A source file may have gained rows; the rows the version joined must not change.
        let outside = ratchet_data::OutsideSources::load(&config.features)?;
        crate::market::check_outside_history(recorded, &outside, &source.uri)?;
    }
    let mut job = Job::new(store, config, Some(source.parent_ref()))?;
    if let Some(TrainingData::Universe(universe)) = &job.market {
        // A universe may grow or shrink between versions: say how.
        let before: std::collections::BTreeSet<&str> = source
            .metadata
            .training
            .data
            .symbols
            .iter()
            .map(|s| s.symbol.as_str())
            .collect();
        let after: std::collections::BTreeSet<&str> =
            universe.members.iter().map(|m| m.symbol.as_str()).collect();
        let added: Vec<&str> = after.difference(&before).copied().collect();
        let removed: Vec<&str> = before.difference(&after).copied().collect();
        if !added.is_empty() || !removed.is_empty() {
            eprintln!(
                "universe of {}: {} symbols, {} added ({}), {} gone ({})",
                source.uri,
                after.len(),
                added.len(),
                added.join(", "),
                removed.len(),
                removed.join(", ")
            );
        }
    }
    job.restore_from(&source, &state)?;
    eprintln!("{}", schedule_line(&job.config, job.agent.as_ref()));
    Ok(job)
}

fn describe_features(config: &TrainConfig) -> String {
    format!(
        "window {}, {} columns",
        config.features.window,
        config.features.column_names().len()
    )
}

/// Restart an interrupted run from its last checkpoint, ready to finish it.
pub(crate) fn resume(store: Arc<dyn TrackingStore>, run_id: &str, args: &TrainArgs) -> Result<Job> {
    let saved = checkpoint::load_run(&Registry::new(store.clone()), run_id)?;
    let mut config = saved.config;
    if let Some(d) = args.device {
        config.run.device = d;
    }
    let mut job = Job::new(store, config, saved.parent)?;
    job.agent
        .restore(&saved.state, Environments::Restore)
        .with_context(|| format!("restoring the last checkpoint of run {run_id}"))?;
    eprintln!(
        "resuming run {run_id} from its checkpoint at step {} of {}",
        job.agent.total_steps(),
        saved.target_steps
    );
    job.run_id = Some(run_id.to_string());
    job.target_steps = saved.target_steps;
    job.best = saved.best;
    Ok(job)
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
pub(crate) struct TrainOutput {
    pub(crate) run_id: String,
    pub(crate) model_uri: String,
    pub(crate) name: String,
    pub(crate) version: u64,
    pub(crate) version_id: String,
    semver: String,
    parent: Option<String>,
    total_steps: u64,
    pub(crate) wall_time_s: f64,
    selection: SelectionOutput,
    pub(crate) evaluation: Evaluation,
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
