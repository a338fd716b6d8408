//! The bridge between the agents' [`TrainingState`] and the registry's checkpoints: run
//! checkpoints (what `--resume` restarts from), registration of a finished run, and loading
//! a registered version (for `--from` and backtests).
//!
//! Each tensor goes to the file of its [`TensorGroup`] (the agents crate names its tensors
//! and says which are weights, optimizer moments or other state). The agent's JSON state,
//! this run's step budget and parent, and the whole [`TrainConfig`] travel in `state.json`
//! and `metadata.json`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use ratchet_agents::{NamedTensor, TensorGroup, TrainingState};
use ratchet_registry::{
    Checkpoint, CheckpointState, CompatibilityTarget, DataSource, DateRange, ModelRef,
    ModelVersion, ParentRef, Registry, SymbolSource, TrainingRecord,
};

use crate::judge::Evaluation;
use crate::universe::{TrainingData, Universe};
use ratchet_agents::Agent;
use ratchet_config::{Algo, EnvKind, TrainConfig};

/// Artifact path of a run's latest checkpoint.
pub const RUN_CHECKPOINT: &str = "checkpoint";
/// Artifact path of the state with the best validation Sharpe ratio so far, kept by runs
/// with `[run] select = "best_val_sharpe"`.
pub const BEST_CHECKPOINT: &str = "checkpoint-best";

/// The evaluated state with the best validation Sharpe ratio so far.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub step: u64,
    pub val_sharpe: f64,
}

/// What a run checkpoint holds besides the agent's own state.
#[derive(Serialize, Deserialize)]
struct RunProgress {
    /// Total environment steps at which the run ends.
    target_steps: u64,
    parent: Option<ParentRef>,
    /// `select = "best_val_sharpe"`: the best state so far (saved as [`BEST_CHECKPOINT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    best: Option<Best>,
}

/// `state.json` of every checkpoint Ratchet writes.
#[derive(Serialize, Deserialize)]
struct SavedState {
    algorithm: String,
    agent: serde_json::Value,
    run: RunProgress,
}

fn split_state(state: TrainingState<'_>, run: RunProgress) -> Result<CheckpointState<'_>> {
    let mut out = CheckpointState {
        state: serde_json::to_value(SavedState {
            algorithm: state.algorithm,
            agent: state.meta,
            run,
        })?,
        ..CheckpointState::default()
    };
    for t in state.tensors {
        match TrainingState::group(&t.name) {
            TensorGroup::Weights => out.weights.push(t),
            TensorGroup::Optimizer => out.optimizer.push(t),
            TensorGroup::State => out.state_tensors.push(t),
        }
    }
    Ok(out)
}

fn join_state(state: CheckpointState<'static>) -> Result<(TrainingState<'static>, RunProgress)> {
    let saved: SavedState = serde_json::from_value(state.state)
        .context("state.json was not written by this version of ratchet")?;
    let tensors = state
        .weights
        .into_iter()
        .chain(state.optimizer)
        .chain(state.state_tensors)
        .collect();
    Ok((
        TrainingState {
            algorithm: saved.algorithm,
            tensors,
            meta: saved.agent,
        },
        saved.run,
    ))
}

/// CartPole has neither data nor features; its name and the hash of its name stand in for
/// both, so that every version carries a hash to check compatibility against.
const CARTPOLE: &str = "cartpole-v1";

fn cartpole_hash() -> String {
    hex::encode(sha2::Sha256::digest(CARTPOLE.as_bytes()))
}

fn algorithm(config: &TrainConfig) -> &'static str {
    match config.run.algo {
        Algo::Ppo => "ppo",
        Algo::Dqn => "dqn",
    }
}

/// A universe's record: its hash, each instrument's file and ranges (with the digests of
/// their bars), and the span of each range over all of them.
fn universe_source(universe: &Universe) -> DataSource {
    let symbols: Vec<SymbolSource> = universe
        .members
        .iter()
        .map(|member| {
            let m = &member.market;
            let range = |s: &ratchet_data::Segment| DateRange {
                start: s.first_date.clone(),
                end: s.last_date.clone(),
                bars_sha256: Some(m.digest(s)),
            };
            SymbolSource {
                symbol: member.symbol.clone(),
                path: m.loaded.path.display().to_string(),
                sha256: m.loaded.sha256.clone(),
                train: range(&m.splits.train),
                validation: range(&m.splits.validation),
                test: m.splits.test.as_ref().map(range),
            }
        })
        .collect();
    let span = |of: fn(&SymbolSource) -> Option<&DateRange>| {
        let start = symbols
            .iter()
            .filter_map(|s| Some(of(s)?.start.clone()))
            .min();
        let end = symbols
            .iter()
            .filter_map(|s| Some(of(s)?.end.clone()))
            .max();
        start.zip(end).map(|(start, end)| DateRange {
            start,
            end,
            bars_sha256: None,
        })
    };
    DataSource {
        path: universe
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        sha256: universe.hash.clone(),
        train: span(|s| Some(&s.train)),
        validation: span(|s| Some(&s.validation)),
        test: span(|s| s.test.as_ref()),
        symbols,
        outside: universe.outside.clone(),
    }
}

/// Everything known about the run that trained the weights.
pub fn training_record(
    config: &TrainConfig,
    market: Option<&TrainingData>,
    agent: &dyn Agent,
    parent: Option<&ParentRef>,
    metrics: BTreeMap<String, f64>,
    wall_time_secs: f64,
) -> Result<TrainingRecord> {
    let data = match market {
        Some(TrainingData::Instrument(m)) => {
            let range = |s: &ratchet_data::Segment| DateRange {
                start: s.first_date.clone(),
                end: s.last_date.clone(),
                bars_sha256: Some(m.digest(s)),
            };
            DataSource {
                path: config.data.file.display().to_string(),
                sha256: m.loaded.sha256.clone(),
                train: Some(range(&m.splits.train)),
                validation: Some(range(&m.splits.validation)),
                test: m.splits.test.as_ref().map(range),
                symbols: Vec::new(),
                outside: m.outside.clone(),
            }
        }
        Some(TrainingData::Universe(u)) => universe_source(u),
        None => DataSource {
            path: CARTPOLE.into(),
            sha256: cartpole_hash(),
            ..DataSource::default()
        },
    };
    let (feature_config, feature_hash) = match config.run.env {
        EnvKind::Trading => (
            serde_json::to_value(&config.features)?,
            config.features.hash(),
        ),
        EnvKind::Cartpole => (
            serde_json::json!({ "environment": CARTPOLE }),
            cartpole_hash(),
        ),
    };
    let policy = agent.policy();
    let crate_versions = [
        ("ratchet", env!("CARGO_PKG_VERSION")),
        ("burn", "0.22.1"),
        ("feature_schema", ratchet_data::FEATURE_SCHEMA_VERSION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Ok(TrainingRecord {
        feature_config,
        feature_hash,
        data,
        algorithm: algorithm(config).into(),
        hyperparameters: serde_json::to_value(config)?,
        seed: config.run.seed,
        device: format!("{:?}", config.run.device).to_lowercase(),
        crate_versions,
        training_steps: agent.total_steps(),
        wall_time_secs,
        observation_shape: vec![policy.input_size()],
        action_count: policy.output_size(),
        metrics,
        parent: parent.cloned(),
    })
}

/// Writes the agent's complete state as the run's `artifact` ([`RUN_CHECKPOINT`] or
/// [`BEST_CHECKPOINT`]), replacing the previous one atomically.
/// Saves the complete training state as the run's checkpoint artifact `artifact`.
#[allow(clippy::too_many_arguments)]
pub fn save_run(
    registry: &Registry,
    run_id: &str,
    artifact: &str,
    config: &TrainConfig,
    market: Option<&TrainingData>,
    agent: &dyn Agent,
    parent: Option<&ParentRef>,
    target_steps: u64,
    best: Option<Best>,
) -> Result<()> {
    let checkpoint_state = split_state(
        agent.state()?,
        RunProgress {
            target_steps,
            parent: parent.cloned(),
            best,
        },
    )?;
    let record = training_record(config, market, agent, parent, BTreeMap::new(), 0.0)?;
    registry
        .save_run_checkpoint(
            &config.model_name(),
            run_id,
            artifact,
            checkpoint_state,
            record,
        )
        .with_context(|| format!("saving the {artifact} of run {run_id}"))
}

pub struct RunCheckpoint {
    pub config: TrainConfig,
    pub state: TrainingState<'static>,
    pub parent: Option<ParentRef>,
    pub target_steps: u64,
    pub best: Option<Best>,
}

pub fn load_run(registry: &Registry, run_id: &str) -> Result<RunCheckpoint> {
    let run = registry.store().get_run(run_id).with_context(|| {
        format!("no run {run_id} to resume; `ratchet runs list` shows the runs")
    })?;
    if run.info.status == ratchet_mlflow::RunStatus::Finished {
        anyhow::bail!(
            "run {run_id} already finished; continue its model with `ratchet train --from`"
        );
    }
    let checkpoint = run_artifact(registry, run_id, RUN_CHECKPOINT)?.ok_or_else(|| {
        anyhow!(
            "run {run_id} has no checkpoint yet (it stopped before the first one); start it again"
        )
    })?;
    let config = TrainConfig::from_version(&checkpoint.metadata)?;
    let (state, progress) = join_state(checkpoint.state)?;
    Ok(RunCheckpoint {
        config,
        state,
        parent: progress.parent,
        target_steps: progress.target_steps,
        best: progress.best,
    })
}

/// The training state a run saved as [`BEST_CHECKPOINT`].
pub fn load_best(registry: &Registry, run_id: &str) -> Result<TrainingState<'static>> {
    let checkpoint = run_artifact(registry, run_id, BEST_CHECKPOINT)?
        .ok_or_else(|| anyhow!("run {run_id} has no {BEST_CHECKPOINT} artifact"))?;
    Ok(join_state(checkpoint.state)?.0)
}

/// A checkpoint artifact of a run, verified; `None` when the run has none at that path.
fn run_artifact(
    registry: &Registry,
    run_id: &str,
    artifact: &str,
) -> Result<Option<Checkpoint<'static>>> {
    registry
        .load_run_checkpoint(run_id, artifact)
        .with_context(|| format!("reading the {artifact} artifact of run {run_id}"))
}

pub struct LoadedVersion {
    pub name: String,
    pub version: u64,
    /// `models:/NAME/VERSION`.
    pub uri: String,
    pub run_id: String,
    pub config: TrainConfig,
    pub metadata: ModelVersion,
}

impl LoadedVersion {
    pub fn parent_ref(&self) -> ParentRef {
        ParentRef {
            name: self.name.clone(),
            version: self.version,
        }
    }

    /// Differences between this version and what `config` would build: an agent it would be
    /// restored into, or the environment its policy would act in (observations of
    /// `observation_size` floats, `action_count` actions).
    pub fn differences(
        &self,
        config: &TrainConfig,
        (observation_size, action_count): (usize, usize),
    ) -> Vec<String> {
        let target = CompatibilityTarget {
            feature_hash: match config.run.env {
                EnvKind::Trading => Some(config.features.hash()),
                EnvKind::Cartpole => Some(self.metadata.training.feature_hash.clone()),
            },
            observation_shape: Some(vec![observation_size]),
            action_count: Some(action_count),
            algorithm: Some(algorithm(config).to_string()),
        };
        ratchet_registry::compatibility(&self.metadata, &target)
            .into_iter()
            .map(|d| {
                format!(
                    "{}: the version has {}, this run {}",
                    d.field, d.model, d.target
                )
            })
            .collect()
    }
}

/// An agent's observation size and action count, as [`LoadedVersion::differences`] takes
/// them.
pub fn sizes(agent: &dyn Agent) -> (usize, usize) {
    let network = agent.policy();
    (network.input_size(), network.output_size())
}

pub fn parse_ref(uri: &str) -> Result<ModelRef> {
    Ok(ModelRef::parse(uri)?)
}

/// A version and its complete training state, for continue-training.
pub fn load_version(
    registry: &Registry,
    uri: &str,
) -> Result<(LoadedVersion, TrainingState<'static>)> {
    let checkpoint = registry
        .load_checkpoint(&parse_ref(uri)?)
        .with_context(|| format!("loading {uri}"))?;
    let version = describe(uri, checkpoint.metadata)?;
    let (state, _) = join_state(checkpoint.state)?;
    Ok((version, state))
}

/// A version and its network weights only (not the optimizer state or the replay buffer),
/// for backtests.
pub fn load_weights(
    registry: &Registry,
    uri: &str,
) -> Result<(LoadedVersion, Vec<NamedTensor<'static>>)> {
    let loaded = registry
        .load_weights(&parse_ref(uri)?)
        .with_context(|| format!("loading {uri}"))?;
    Ok((describe(uri, loaded.metadata)?, loaded.weights))
}

fn describe(uri: &str, metadata: ModelVersion) -> Result<LoadedVersion> {
    let version = metadata
        .version
        .ok_or_else(|| anyhow!("{uri}: the store returned a version without a number"))?;
    Ok(LoadedVersion {
        name: metadata.name.clone(),
        version,
        uri: format!("models:/{}/{}", metadata.name, version),
        run_id: metadata.run_id.clone().unwrap_or_default(),
        config: TrainConfig::from_version(&metadata)?,
        metadata,
    })
}

/// Registers the agent's final state as a new version of the config's model, with
/// `extra_tags` besides Ratchet's own.
#[allow(clippy::too_many_arguments)]
pub fn register(
    registry: &Registry,
    run_id: &str,
    config: &TrainConfig,
    market: Option<&TrainingData>,
    agent: &dyn Agent,
    parent: Option<&ParentRef>,
    evaluation: &Evaluation,
    wall_time_secs: f64,
    extra_tags: &[(String, String)],
) -> Result<ModelVersion> {
    let checkpoint_state = split_state(
        agent.state()?,
        RunProgress {
            target_steps: agent.total_steps(),
            parent: parent.cloned(),
            best: None,
        },
    )?;
    let record = training_record(
        config,
        market,
        agent,
        parent,
        evaluation.metrics.clone(),
        wall_time_secs,
    )?;
    let name = config.model_name();
    registry
        .register_tagged(&name, run_id, checkpoint_state, record, extra_tags)
        .with_context(|| format!("registering a version of {name}"))
}

/// Flattened configuration for MLflow's params table (`section.key` → value).
pub fn flat_params(config: &TrainConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let value = serde_json::to_value(config).expect("a TrainConfig serialises");
    flatten("", &value, &mut out);
    if config.run.env == EnvKind::Trading {
        out.push(("features.hash".into(), config.features.hash()));
    }
    out.retain(|(k, _)| match config.run.algo {
        Algo::Ppo => !k.starts_with("dqn."),
        Algo::Dqn => !k.starts_with("ppo."),
    });
    out
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        serde_json::Value::Null => {}
        other => {
            // MLflow caps a param value at 6000 characters; long lists are summarised.
            out.push((prefix.to_string(), cut_at_char(other.to_string(), 6000)));
        }
    }
}

/// `text` cut to at most `max` bytes, ending in `…` when cut. Cuts on a character boundary:
/// `String::truncate` panics inside a multi-byte one.
pub fn cut_at_char(mut text: String, max: usize) -> String {
    if text.len() > max {
        let ellipsis = '…'.len_utf8();
        let cut = (0..=max - ellipsis)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_param_values_are_cut_on_a_character_boundary() {
        // `["x` puts every 2-byte `é` at an odd offset, so byte 5990 falls inside one.
        let value = serde_json::json!({ "features": [format!("x{}", "é".repeat(4000))] });
        let mut out = Vec::new();
        super::flatten("", &value, &mut out);
        let (key, text) = &out[0];
        assert_eq!(key, "features");
        assert_eq!(text.len(), 6000);
        assert!(text.ends_with('…'), "{text}");
    }
}
