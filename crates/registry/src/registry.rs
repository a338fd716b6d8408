//! [`Registry`]: the model-management operations the CLI exposes, on any [`TrackingStore`].
//! This file holds registration and reading; the other operations live in their own
//! modules ([`crate::aliases`], [`crate::compare`], [`crate::lineage`],
//! [`crate::validation`], [`crate::cleanup`], [`crate::compatibility`]).
//!
//! ```no_run
//! use ratchet_registry::{ModelRef, Registry, VersionFilter};
//!
//! let registry = Registry::open("./mlruns")?;
//! let production = registry.get(&ModelRef::parse("models:/googl-ppo@production")?)?;
//! println!("{} {} {}", production.version.unwrap(), production.version_id, production.semver);
//! for summary in registry.list("googl-ppo", &VersionFilter::default())? {
//!     println!("{} {:?}", summary.version, summary.metrics.get("sharpe"));
//! }
//! # Ok::<(), ratchet_registry::RegistryError>(())
//! ```
//!
//! What lives where: each version's checkpoint (with `metadata.json`, immutable) is an
//! artifact of the run that trained it, under `checkpoints/<human id>`; the version's
//! `ratchet.*` tags repeat the fields listing and filtering need, so `list` never opens a
//! checkpoint; mutable facts (status, aliases, alias history) live only in the store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

use chrono::{DateTime, Utc};
use ratchet_mlflow::{StoredVersion, TrackingStore, names, open_existing_store, open_store};

use crate::checkpoint::{self, Checkpoint, CheckpointState};
use crate::error::{RegistryError, Result};
use crate::listing::{VersionFilter, VersionSummary};
use crate::model_ref::{ModelRef, VersionSelector};
use crate::model_version::{ModelVersion, SemVer, TrainingRecord, VersionStatus, human_id_base};
use crate::tags::{self, metrics_tag, test_looks_of};

/// A checkpoint directory on this machine: the store's own copy, or a temporary download
/// removed on drop.
pub struct LocalCheckpoint {
    path: PathBuf,
    _download: Option<TempDir>,
}

impl LocalCheckpoint {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A scratch directory under `dir`, removed when dropped; its leading dot marks it as the
/// registry's own (never data).
pub(crate) fn scratch_dir(dir: &Path, label: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{}{label}-", ratchet_fsutil::TEMP_PREFIX))
        .tempdir_in(dir)
        .map_err(|e| RegistryError::io(dir, e))
}

/// Model-management operations over a [`TrackingStore`].
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn TrackingStore>,
}

impl Registry {
    pub fn new(store: Arc<dyn TrackingStore>) -> Self {
        Registry { store }
    }

    /// Opens the store a tracking URI names (see [`crate::open_store`]).
    pub fn open(tracking_uri: &str) -> Result<Self> {
        Ok(Registry::new(Arc::from(open_store(tracking_uri)?)))
    }

    /// Opens an existing store without creating one (see [`ratchet_mlflow::open_existing_store`]).
    pub fn open_existing(tracking_uri: &str) -> Result<Self> {
        Ok(Registry::new(Arc::from(open_existing_store(tracking_uri)?)))
    }

    pub fn store(&self) -> &dyn TrackingStore {
        self.store.as_ref()
    }

    // ---- register ----------------------------------------------------------------------

    /// Registers a trained state as the next version of `name`: chooses the human id and
    /// semver, writes the checkpoint as an artifact of `run_id` under
    /// `checkpoints/<human id>`, and creates the MLflow version with Ratchet's tags. The
    /// returned metadata carries the version number.
    pub fn register(
        &self,
        name: &str,
        run_id: &str,
        state: CheckpointState,
        record: TrainingRecord,
    ) -> Result<ModelVersion> {
        self.register_tagged(name, run_id, state, record, &[])
    }

    /// [`Registry::register`] with `extra_tags` on the version from its creation (a reader
    /// never sees the version without them), after Ratchet's own `ratchet.*` tags, which
    /// they must not repeat.
    pub fn register_tagged(
        &self,
        name: &str,
        run_id: &str,
        state: CheckpointState,
        record: TrainingRecord,
        extra_tags: &[(String, String)],
    ) -> Result<ModelVersion> {
        names::validate_model_name(name)?;
        if let Some((key, _)) = extra_tags
            .iter()
            .find(|(key, _)| OWN_TAGS.contains(&key.as_str()))
        {
            return Err(RegistryError::InvalidArgument(format!(
                "the extra version tag {key} is one Ratchet sets itself"
            )));
        }
        check_record(&record, &state)?;
        self.store.get_run(run_id)?;
        let parent = match &record.parent {
            Some(parent) => Some(
                self.summary(&ModelRef::number(&parent.name, parent.version))
                    .map_err(|e| {
                        if e.is_not_found() {
                            RegistryError::NotFound(format!(
                                "parent version {} (deleted?)",
                                parent.uri()
                            ))
                        } else {
                            e
                        }
                    })?,
            ),
            None => None,
        };
        self.store.create_registered_model(name)?;
        let weights_sha256 = checkpoint::weights_sha256(&state.weights);
        let network_hash = checkpoint::network_hash(&state.weights);

        // Human id and semver depend on the versions already there: decide them and
        // create the version under the model lock.
        let _lock = self.store.lock_model(name)?;
        let existing = self.list(name, &VersionFilter::default())?;
        let created_at = Utc::now();
        let version_id = unique_human_id(created_at, &existing);
        let semver = next_semver(
            &existing,
            parent.as_ref(),
            &record.feature_hash,
            &network_hash,
            &weights_sha256,
        );
        let mut metadata = ModelVersion {
            name: name.to_string(),
            version: None,
            version_id,
            semver,
            status: VersionStatus::Registered,
            created_at,
            run_id: Some(run_id.to_string()),
            weights_sha256,
            network_hash,
            aliases: Vec::new(),
            training: record,
        };
        let artifact_path = format!("checkpoints/{}", metadata.version_id);
        let checkpoint = Checkpoint {
            state,
            metadata: metadata.clone(),
        };
        self.write_checkpoint(run_id, &artifact_path, &checkpoint, false)?;
        let source = self.store.artifact_uri(run_id, &artifact_path)?;
        let description = format!(
            "{} {} ({}), {} training steps",
            metadata.training.algorithm,
            metadata.semver.clone(),
            metadata.version_id,
            metadata.training.training_steps
        );
        let mut tags = version_tags(&metadata, &artifact_path);
        tags.extend(extra_tags.iter().cloned());
        let stored =
            self.store
                .create_model_version(name, &source, run_id, &tags, Some(&description))?;
        metadata.version = Some(stored.version);
        self.record_logged_model(run_id, &metadata, &artifact_path)?;
        Ok(metadata)
    }

    /// Adds the checkpoint to the run's `mlflow.log-model.history` tag so MLflow's UI lists
    /// it under the run's logged models.
    fn record_logged_model(
        &self,
        run_id: &str,
        metadata: &ModelVersion,
        artifact_path: &str,
    ) -> Result<()> {
        const KEY: &str = "mlflow.log-model.history";
        const MAX_CHARS: usize = 8000;
        let run = self.store.get_run(run_id)?;
        let mut history: Vec<serde_json::Value> = run
            .tags
            .get(KEY)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        history.push(serde_json::json!({
            "run_id": run_id,
            "artifact_path": artifact_path,
            "utc_time_created": metadata.created_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
            "model_uuid": checkpoint::model_uuid(metadata),
            "flavors": { checkpoint::FLAVOR: { "format": checkpoint::CHECKPOINT_FORMAT, "algorithm": metadata.training.algorithm } },
        }));
        let mut value = serde_json::to_string(&history).expect("JSON values serialise");
        while value.chars().count() > MAX_CHARS && history.len() > 1 {
            history.remove(0);
            value = serde_json::to_string(&history).expect("JSON values serialise");
        }
        self.store.set_run_tags(run_id, &[(KEY.to_string(), value)])
    }

    // ---- test looks --------------------------------------------------------------------

    /// How many times a version's test range has been looked at ([`tags::TEST_LOOKS`]).
    pub fn test_looks(&self, reference: &ModelRef) -> Result<u64> {
        Ok(test_looks_of(&self.resolve(reference)?))
    }

    /// Counts one more look at a version's test range and returns the new count. The
    /// read-modify-write holds the model lock, so concurrent looks are all counted.
    pub fn record_test_look(&self, reference: &ModelRef) -> Result<u64> {
        let stored = self.resolve(reference)?;
        let _lock = self.store.lock_model(&stored.name)?;
        let fresh = self.store.get_model_version(&stored.name, stored.version)?;
        let looks = test_looks_of(&fresh) + 1;
        self.store.set_model_version_tag(
            &stored.name,
            stored.version,
            tags::TEST_LOOKS,
            &looks.to_string(),
        )?;
        Ok(looks)
    }

    // ---- get ---------------------------------------------------------------------------

    /// Why `@alias` names nothing: the model is missing, or these are its aliases.
    fn unknown_alias(&self, name: &str, alias: &str) -> RegistryError {
        let model = match self.store.get_registered_model(name) {
            Ok(model) => model,
            Err(e) => return e,
        };
        let existing = if model.aliases.is_empty() {
            "it has no aliases".to_string()
        } else {
            let listed: Vec<String> = model
                .aliases
                .iter()
                .map(|(alias, version)| format!("@{alias} = version {version}"))
                .collect();
            format!("its aliases: {}", listed.join(", "))
        };
        // `NotFound` appends "not found".
        RegistryError::NotFound(format!("alias @{alias} of model {name:?} ({existing})"))
    }

    /// The store's record of the version a reference names.
    pub fn resolve(&self, reference: &ModelRef) -> Result<StoredVersion> {
        let name = &reference.name;
        match &reference.selector {
            VersionSelector::Number(n) => self.store.get_model_version(name, *n),
            VersionSelector::Alias(alias) => match self.store.get_version_by_alias(name, alias) {
                Err(e) if e.is_not_found() => Err(self.unknown_alias(name, alias)),
                found => found,
            },
            VersionSelector::Latest => self
                .store
                .list_model_versions(name)?
                .into_iter()
                .max_by_key(|v| v.version)
                .ok_or_else(|| RegistryError::NotFound(format!("any version of model {name:?}"))),
            VersionSelector::HumanId(id) => self
                .store
                .list_model_versions(name)?
                .into_iter()
                .find(|v| v.tags.get(tags::VERSION_ID) == Some(id))
                .ok_or_else(|| RegistryError::NotFound(format!("version {id} of model {name:?}"))),
        }
    }

    /// The summary (tags only, no checkpoint access) of a referenced version.
    pub fn summary(&self, reference: &ModelRef) -> Result<VersionSummary> {
        Ok(VersionSummary::from_stored(&self.resolve(reference)?))
    }

    /// Full metadata of a referenced version: the checkpoint's `metadata.json` with the
    /// store's current facts (number, status, aliases) filled in.
    pub fn get(&self, reference: &ModelRef) -> Result<ModelVersion> {
        let stored = self.resolve(reference)?;
        let (run_id, artifact_path) = checkpoint_location(&stored)?;
        let metadata = match self.store.local_artifact_path(&run_id, &artifact_path)? {
            Some(dir) => checkpoint::read_metadata(&dir)?,
            None => {
                let temp = scratch_dir(&std::env::temp_dir(), "metadata")?;
                for file in [checkpoint::MANIFEST_FILE, checkpoint::METADATA_FILE] {
                    self.store.download_artifacts(
                        &run_id,
                        &format!("{artifact_path}/{file}"),
                        temp.path(),
                    )?;
                }
                checkpoint::read_metadata(temp.path())?
            }
        };
        Ok(with_store_facts(metadata, &stored))
    }

    /// The checkpoint directory of a version on this machine (downloaded for remote
    /// stores; the download is removed when the returned value is dropped).
    pub fn checkpoint_dir(&self, reference: &ModelRef) -> Result<LocalCheckpoint> {
        let stored = self.resolve(reference)?;
        self.checkpoint_dir_of(&stored)
    }

    /// Where a version's checkpoint is, without fetching it: its directory when the store
    /// keeps it on this machine, otherwise its artifact URI (the version's source).
    pub fn checkpoint_location(&self, stored: &StoredVersion) -> Result<String> {
        let (run_id, artifact_path) = checkpoint_location(stored)?;
        Ok(
            match self.store.local_artifact_path(&run_id, &artifact_path)? {
                Some(path) => path.display().to_string(),
                None => stored.source.clone(),
            },
        )
    }

    pub(crate) fn checkpoint_dir_of(&self, stored: &StoredVersion) -> Result<LocalCheckpoint> {
        let (run_id, artifact_path) = checkpoint_location(stored)?;
        if let Some(path) = self.store.local_artifact_path(&run_id, &artifact_path)? {
            return Ok(LocalCheckpoint {
                path,
                _download: None,
            });
        }
        let temp = scratch_dir(&std::env::temp_dir(), "checkpoint")?;
        self.store
            .download_artifacts(&run_id, &artifact_path, temp.path())?;
        Ok(LocalCheckpoint {
            path: temp.path().to_path_buf(),
            _download: Some(temp),
        })
    }

    /// Loads and verifies a version's checkpoint (for continue-training and backtests).
    pub fn load_checkpoint(&self, reference: &ModelRef) -> Result<Checkpoint<'static>> {
        let stored = self.resolve(reference)?;
        let dir = self.checkpoint_dir_of(&stored)?;
        let mut checkpoint = Checkpoint::load(dir.path())?;
        checkpoint.metadata = with_store_facts(checkpoint.metadata, &stored);
        Ok(checkpoint)
    }

    /// A version's weights and metadata only (for backtests and serving: the optimizer
    /// state and replay buffer are neither downloaded nor read).
    pub fn load_weights(&self, reference: &ModelRef) -> Result<checkpoint::Weights> {
        let stored = self.resolve(reference)?;
        let (run_id, artifact_path) = checkpoint_location(&stored)?;
        let mut weights = match self.store.local_artifact_path(&run_id, &artifact_path)? {
            Some(dir) => checkpoint::Weights::load(&dir)?,
            None => {
                let temp = scratch_dir(&std::env::temp_dir(), "weights")?;
                for file in checkpoint::WEIGHTS_FILES {
                    self.store.download_artifacts(
                        &run_id,
                        &format!("{artifact_path}/{file}"),
                        temp.path(),
                    )?;
                }
                checkpoint::Weights::load(temp.path())?
            }
        };
        weights.metadata = with_store_facts(weights.metadata, &stored);
        Ok(weights)
    }

    /// The full feature configuration a version was trained with.
    pub fn feature_config(&self, reference: &ModelRef) -> Result<serde_json::Value> {
        Ok(self.get(reference)?.training.feature_config)
    }
    // ---- list --------------------------------------------------------------------------

    /// Live versions of a model matching `filter`, ascending by version number.
    pub fn list(&self, name: &str, filter: &VersionFilter) -> Result<Vec<VersionSummary>> {
        let mut summaries = Vec::new();
        self.store.visit_model_versions(name, &mut |view| {
            let summary = VersionSummary::from_view(view);
            if filter.matches(&summary) {
                summaries.push(summary);
            }
        })?;
        Ok(summaries)
    }

    /// The number of the live version of `name` whose tag `key` holds `value`, from the
    /// store's version listing alone (no metadata or checkpoint is read); `None` when there
    /// is none, or no such model.
    pub fn find_by_tag(&self, name: &str, key: &str, value: &str) -> Result<Option<u64>> {
        let mut found = None;
        let visited = self.store.visit_model_versions(name, &mut |view| {
            if found.is_none() && view.tags.iter().any(|&(k, v)| k == key && v == value) {
                found = Some(view.version);
            }
        });
        match visited {
            Ok(()) => Ok(found),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Registered model names.
    pub fn models(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list_registered_models()?
            .into_iter()
            .map(|m| m.name)
            .collect())
    }
}

/// Run id and artifact path of a version's checkpoint.
fn checkpoint_location(stored: &StoredVersion) -> Result<(String, String)> {
    let run_id = stored.run_id.clone().ok_or_else(|| {
        RegistryError::InvalidArgument(format!(
            "model version {} v{} has no run id",
            stored.name, stored.version
        ))
    })?;
    let path = stored.tags.get(tags::CHECKPOINT).cloned().ok_or_else(|| {
        RegistryError::InvalidArgument(format!(
            "model version {} v{} was not registered by Ratchet (no {} tag); its source is {}",
            stored.name,
            stored.version,
            tags::CHECKPOINT,
            stored.source
        ))
    })?;
    names::validate_artifact_path(&path)?;
    Ok((run_id, path))
}

fn with_store_facts(mut metadata: ModelVersion, stored: &StoredVersion) -> ModelVersion {
    metadata.version = Some(stored.version);
    if let Some(status) = stored.tags.get(tags::STATUS).and_then(|s| s.parse().ok()) {
        metadata.status = status;
    }
    metadata.aliases = stored.aliases.clone();
    metadata
}

/// Every tag [`version_tags`] may write.
const OWN_TAGS: [&str; 15] = [
    tags::VERSION_ID,
    tags::SEMVER,
    tags::STATUS,
    tags::CREATED_AT,
    tags::ALGORITHM,
    tags::FEATURE_HASH,
    tags::NETWORK_HASH,
    tags::WEIGHTS_SHA256,
    tags::METRICS,
    tags::TRAINING_STEPS,
    tags::OBSERVATION_SHAPE,
    tags::ACTION_COUNT,
    tags::CHECKPOINT,
    tags::PARENT,
    tags::SYMBOLS,
];

fn version_tags(m: &ModelVersion, artifact_path: &str) -> Vec<(String, String)> {
    let t = &m.training;
    let mut out = vec![
        (tags::VERSION_ID, m.version_id.clone()),
        (tags::SEMVER, m.semver.to_string()),
        (tags::STATUS, m.status.as_str().to_string()),
        (
            tags::CREATED_AT,
            m.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
        (tags::ALGORITHM, t.algorithm.clone()),
        (tags::FEATURE_HASH, t.feature_hash.clone()),
        (tags::NETWORK_HASH, m.network_hash.clone()),
        (tags::WEIGHTS_SHA256, m.weights_sha256.clone()),
        (tags::METRICS, metrics_tag(&t.metrics)),
        (tags::TRAINING_STEPS, t.training_steps.to_string()),
        (
            tags::OBSERVATION_SHAPE,
            serde_json::to_string(&t.observation_shape).expect("shape serialises"),
        ),
        (tags::ACTION_COUNT, t.action_count.to_string()),
        (tags::CHECKPOINT, artifact_path.to_string()),
    ];
    if let Some(parent) = &t.parent {
        out.push((tags::PARENT, parent.uri()));
    }
    if !t.data.symbols.is_empty() {
        let symbols: Vec<&str> = t.data.symbols.iter().map(|s| s.symbol.as_str()).collect();
        out.push((tags::SYMBOLS, symbols.join(",")));
    }
    out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The record must describe the weights well enough to check compatibility later.
fn check_record(record: &TrainingRecord, state: &CheckpointState) -> Result<()> {
    let missing = |field: &str| {
        RegistryError::InvalidArgument(format!(
            "cannot register: training record field {field} is empty"
        ))
    };
    if record.algorithm.trim().is_empty() {
        return Err(missing("algorithm"));
    }
    if record.feature_hash.trim().is_empty() {
        return Err(missing("feature_hash"));
    }
    if record.observation_shape.is_empty() {
        return Err(missing("observation_shape"));
    }
    if record.action_count == 0 {
        return Err(missing("action_count"));
    }
    if state.weights.is_empty() {
        return Err(RegistryError::InvalidArgument(
            "cannot register: the state has no weight tensors".into(),
        ));
    }
    if let Some(parent) = &record.parent {
        names::validate_model_name(&parent.name)?;
    }
    Ok(())
}

/// `vYYYY-MM-DD--HHhMM`, or with `-2`, `-3`… when taken.
fn unique_human_id(at: DateTime<Utc>, existing: &[VersionSummary]) -> String {
    let base = human_id_base(at);
    let taken: BTreeSet<&str> = existing
        .iter()
        .filter_map(|v| v.version_id.as_deref())
        .collect();
    if !taken.contains(base.as_str()) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken.contains(id.as_str()))
        .expect("an unused suffix exists")
}

/// The semver of a new version, from what is already registered:
/// - the same weights as an existing version → that version's `major.minor`, next patch;
/// - continue-training with unchanged features and network → parent's major, next minor;
/// - features or network changed from the parent (or from the latest version, without a
///   parent) → next major;
/// - a fresh training run with the same features and network as the latest version → next
///   minor;
/// - the first version → 1.0.0.
fn next_semver(
    existing: &[VersionSummary],
    parent: Option<&VersionSummary>,
    feature_hash: &str,
    network_hash: &str,
    weights_sha256: &str,
) -> SemVer {
    let known: Vec<SemVer> = existing.iter().filter_map(|v| v.semver.clone()).collect();
    let next_major = known.iter().map(|s| s.major).max().unwrap_or(0) + 1;
    let next_minor = |major: u64| {
        known
            .iter()
            .filter(|s| s.major == major)
            .map(|s| s.minor)
            .max()
            .map_or(0, |m| m + 1)
    };
    let next_patch = |major: u64, minor: u64| {
        known
            .iter()
            .filter(|s| s.major == major && s.minor == minor)
            .map(|s| s.patch)
            .max()
            .map_or(0, |p| p + 1)
    };
    if let Some(same) = existing
        .iter()
        .filter(|v| v.weights_sha256.as_deref() == Some(weights_sha256))
        .filter_map(|v| v.semver.clone())
        .max()
    {
        return SemVer::new(same.major, same.minor, next_patch(same.major, same.minor));
    }
    // Compare with the parent when it belongs to this model; otherwise with the latest.
    let same_model_parent = parent.filter(|p| existing.iter().any(|v| v.name == p.name));
    let reference = same_model_parent.or_else(|| existing.iter().max_by_key(|v| v.version));
    let Some(reference) = reference else {
        return SemVer::new(1, 0, 0);
    };
    let unchanged = reference.feature_hash.as_deref() == Some(feature_hash)
        && reference.network_hash.as_deref() == Some(network_hash);
    match (unchanged, &reference.semver) {
        (true, Some(base)) => SemVer::new(base.major, next_minor(base.major), 0),
        _ => SemVer::new(next_major, 0, 0),
    }
}

#[cfg(test)]
mod tests;
