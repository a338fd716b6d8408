//! [`Registry`]: the model-management operations the CLI exposes, on any [`TrackingStore`].
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint, CheckpointState};
use crate::error::{RegistryError, Result};
use crate::fsutil;
use crate::model_version::{
    MetricDirection, ModelVersion, ParentRef, SemVer, TrainingRecord, VersionStatus, human_id_base,
    is_human_id, metric_direction,
};
use crate::names;
use crate::store::{StoredVersion, TrackingStore, VersionView, open_store};

/// Version tags Ratchet writes (all values strings).
pub mod tags {
    pub const VERSION_ID: &str = "ratchet.version_id";
    pub const SEMVER: &str = "ratchet.semver";
    pub const STATUS: &str = "ratchet.status";
    pub const CREATED_AT: &str = "ratchet.created_at";
    pub const ALGORITHM: &str = "ratchet.algorithm";
    pub const FEATURE_HASH: &str = "ratchet.feature_hash";
    pub const NETWORK_HASH: &str = "ratchet.network_hash";
    pub const WEIGHTS_SHA256: &str = "ratchet.weights_sha256";
    pub const PARENT: &str = "ratchet.parent";
    /// JSON object of metric name → value.
    pub const METRICS: &str = "ratchet.metrics";
    pub const TRAINING_STEPS: &str = "ratchet.training_steps";
    pub const OBSERVATION_SHAPE: &str = "ratchet.observation_shape";
    pub const ACTION_COUNT: &str = "ratchet.action_count";
    /// Artifact path of the checkpoint inside the run.
    pub const CHECKPOINT: &str = "ratchet.checkpoint";
    /// Registered-model tag prefix: `ratchet.alias_history.<alias>` holds a JSON list of
    /// [`super::AliasEvent`]s.
    pub const ALIAS_HISTORY_PREFIX: &str = "ratchet.alias_history.";
}

/// The alias whose holder is the production version.
pub const PRODUCTION: &str = "production";
/// Alias history entries kept per alias (oldest dropped first).
const MAX_ALIAS_EVENTS: usize = 500;

/// Which version of a model a reference means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    /// MLflow's version number: `models:/NAME/3`.
    Number(u64),
    /// Ratchet's human id: `models:/NAME/v2026-11-22--14h05`.
    HumanId(String),
    /// An alias: `models:/NAME@production`.
    Alias(String),
    /// The highest live version number: `models:/NAME/latest`.
    Latest,
}

/// A parsed `models:/` URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    pub name: String,
    pub selector: VersionSelector,
}

impl ModelRef {
    /// Parses `models:/NAME/3`, `models:/NAME/v2026-11-22--14h05`, `models:/NAME@ALIAS` or
    /// `models:/NAME/latest`.
    pub fn parse(uri: &str) -> Result<Self> {
        let usage = "expected models:/NAME/VERSION (a number or an id like \
                     v2026-11-22--14h05), models:/NAME@ALIAS or models:/NAME/latest";
        let bad = |why: &str| {
            RegistryError::InvalidArgument(format!("model URI {uri:?}: {why}; {usage}"))
        };
        let rest = uri
            .trim()
            .strip_prefix("models:/")
            .ok_or_else(|| bad("it does not start with models:/"))?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        if let Some((name, alias)) = rest.rsplit_once('@') {
            names::validate_model_name(name)?;
            names::validate_alias(alias)?;
            return Ok(ModelRef {
                name: name.to_string(),
                selector: VersionSelector::Alias(alias.to_string()),
            });
        }
        let (name, version) = rest
            .rsplit_once('/')
            .ok_or_else(|| bad("no version or alias given"))?;
        names::validate_model_name(name)?;
        let selector = if version.eq_ignore_ascii_case("latest") {
            VersionSelector::Latest
        } else if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
            let number = version
                .parse::<u64>()
                .map_err(|_| bad("version number is too large"))?;
            if number == 0 {
                return Err(bad("version numbers start at 1"));
            }
            VersionSelector::Number(number)
        } else if is_human_id(version) {
            VersionSelector::HumanId(version.to_string())
        } else {
            return Err(bad(&format!(
                "{version:?} is neither a version number nor a version id"
            )));
        };
        Ok(ModelRef {
            name: name.to_string(),
            selector,
        })
    }

    /// A reference to a version number.
    pub fn number(name: &str, version: u64) -> Self {
        ModelRef {
            name: name.to_string(),
            selector: VersionSelector::Number(version),
        }
    }
}

impl FromStr for ModelRef {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self> {
        ModelRef::parse(text)
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            VersionSelector::Number(n) => write!(f, "models:/{}/{n}", self.name),
            VersionSelector::HumanId(id) => write!(f, "models:/{}/{id}", self.name),
            VersionSelector::Alias(alias) => write!(f, "models:/{}@{alias}", self.name),
            VersionSelector::Latest => write!(f, "models:/{}/latest", self.name),
        }
    }
}

/// What listing shows of a version: the store's fields plus Ratchet's tags, without
/// opening the checkpoint. Fields are `None` for versions Ratchet did not create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSummary {
    pub name: String,
    pub version: u64,
    pub version_id: Option<String>,
    pub semver: Option<SemVer>,
    pub status: Option<VersionStatus>,
    pub created_at: DateTime<Utc>,
    pub algorithm: Option<String>,
    pub feature_hash: Option<String>,
    pub network_hash: Option<String>,
    pub weights_sha256: Option<String>,
    pub parent: Option<ParentRef>,
    #[serde(with = "crate::model_version::metric_map")]
    pub metrics: BTreeMap<String, f64>,
    pub training_steps: Option<u64>,
    pub aliases: Vec<String>,
    pub run_id: Option<String>,
    pub source: String,
    /// Artifact path of the checkpoint in the run.
    pub checkpoint: Option<String>,
}

impl VersionSummary {
    /// Builds a summary from what the store returns.
    pub fn from_stored(stored: &StoredVersion) -> Self {
        VersionSummary::from_view(stored.view(&stored.tag_pairs()))
    }

    /// Builds a summary from a borrowed version, copying only the fields it keeps.
    pub fn from_view(view: VersionView<'_>) -> Self {
        let mut summary = VersionSummary {
            name: view.name.to_string(),
            version: view.version,
            version_id: None,
            semver: None,
            status: None,
            created_at: DateTime::default(),
            algorithm: None,
            feature_hash: None,
            network_hash: None,
            weights_sha256: None,
            parent: None,
            metrics: BTreeMap::new(),
            training_steps: None,
            aliases: view.aliases.to_vec(),
            run_id: view.run_id.map(str::to_string),
            source: view.source.to_string(),
            checkpoint: None,
        };
        let mut created_at = None;
        // One pass over the tags: no lookup per field.
        for &(key, value) in view.tags {
            match key {
                tags::VERSION_ID => summary.version_id = Some(value.to_string()),
                tags::SEMVER => summary.semver = value.parse().ok(),
                tags::STATUS => summary.status = value.parse().ok(),
                tags::CREATED_AT => {
                    created_at = DateTime::parse_from_rfc3339(value)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                }
                tags::ALGORITHM => summary.algorithm = Some(value.to_string()),
                tags::FEATURE_HASH => summary.feature_hash = Some(value.to_string()),
                tags::NETWORK_HASH => summary.network_hash = Some(value.to_string()),
                tags::WEIGHTS_SHA256 => summary.weights_sha256 = Some(value.to_string()),
                tags::PARENT => summary.parent = ParentRef::parse(value),
                tags::METRICS => summary.metrics = parse_metrics_tag(value).unwrap_or_default(),
                tags::TRAINING_STEPS => summary.training_steps = value.parse().ok(),
                tags::CHECKPOINT => summary.checkpoint = Some(value.to_string()),
                _ => {}
            }
        }
        summary.created_at = created_at
            .or_else(|| DateTime::from_timestamp_millis(view.creation_timestamp))
            .unwrap_or_default();
        summary
    }

    /// `models:/NAME/VERSION`.
    pub fn uri(&self) -> String {
        format!("models:/{}/{}", self.name, self.version)
    }
}

/// A comparison operator of a metric filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Equal,
}

/// `metric OP value`, e.g. parsed from `sharpe>=1.2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricFilter {
    pub metric: String,
    pub op: Comparison,
    pub value: f64,
}

impl MetricFilter {
    /// Parses `NAME>=X`, `NAME>X`, `NAME<=X`, `NAME<X` or `NAME=X`.
    pub fn parse(text: &str) -> Result<Self> {
        let ops = [
            (">=", Comparison::GreaterOrEqual),
            ("<=", Comparison::LessOrEqual),
            (">", Comparison::Greater),
            ("<", Comparison::Less),
            ("=", Comparison::Equal),
        ];
        for (symbol, op) in ops {
            if let Some((metric, value)) = text.split_once(symbol) {
                let metric = metric.trim();
                let value: f64 = value.trim().parse().map_err(|_| {
                    RegistryError::InvalidArgument(format!(
                        "metric filter {text:?}: {:?} is not a number",
                        value.trim()
                    ))
                })?;
                if metric.is_empty() {
                    break;
                }
                return Ok(MetricFilter {
                    metric: metric.to_string(),
                    op,
                    value,
                });
            }
        }
        Err(RegistryError::InvalidArgument(format!(
            "metric filter {text:?}: expected METRIC OP VALUE with OP one of >= > <= < =, e.g. sharpe>=1.2"
        )))
    }

    fn accepts(&self, value: Option<f64>) -> bool {
        let Some(v) = value else { return false };
        match self.op {
            Comparison::Greater => v > self.value,
            Comparison::GreaterOrEqual => v >= self.value,
            Comparison::Less => v < self.value,
            Comparison::LessOrEqual => v <= self.value,
            Comparison::Equal => v == self.value,
        }
    }
}

/// Which versions [`Registry::list`] returns. Empty filter = all live versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionFilter {
    pub status: Option<VersionStatus>,
    /// Every filter must hold (a version without the metric fails).
    pub metrics: Vec<MetricFilter>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Matches a feature hash that starts with this (so short prefixes work).
    pub feature_hash: Option<String>,
    pub algorithm: Option<String>,
}

impl VersionFilter {
    pub fn matches(&self, v: &VersionSummary) -> bool {
        self.status.is_none_or(|s| v.status == Some(s))
            && self
                .metrics
                .iter()
                .all(|f| f.accepts(v.metrics.get(&f.metric).copied()))
            && self.created_after.is_none_or(|t| v.created_at >= t)
            && self.created_before.is_none_or(|t| v.created_at <= t)
            && self.feature_hash.as_ref().is_none_or(|h| {
                v.feature_hash
                    .as_ref()
                    .is_some_and(|f| f.starts_with(h.as_str()))
            })
            && self.algorithm.as_ref().is_none_or(|a| {
                v.algorithm
                    .as_ref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(a))
            })
    }
}

/// One change of an alias, kept in the registered model's `ratchet.alias_history.<alias>`
/// tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasEvent {
    pub action: AliasAction,
    /// The holder after the event (`None` after a removal).
    pub version: Option<u64>,
    /// The holder before it.
    pub previous: Option<u64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AliasAction {
    Promote,
    Rollback,
    Remove,
}

/// The result of a promotion or rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasChange {
    pub name: String,
    pub alias: String,
    pub version: u64,
    pub previous: Option<u64>,
}

/// One metric across compared versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub metric: String,
    pub direction: MetricDirection,
    /// One value per compared version, in the order given.
    pub values: Vec<Option<f64>>,
    /// Index of the best version for this metric (`None` when the direction is unknown or
    /// fewer than one version has a finite value).
    pub best: Option<usize>,
}

/// [`Registry::compare`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionComparison {
    pub versions: Vec<VersionSummary>,
    pub metrics: Vec<MetricRow>,
}

/// One node of a lineage: a version reference and what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineageNode {
    pub name: String,
    pub version: u64,
    /// Generations away from the version asked about (1 = parent or child).
    pub depth: usize,
    /// `None` when the version was deleted or cannot be read.
    pub summary: Option<VersionSummary>,
    /// For descendants: the version it continued from.
    pub parent: Option<ParentRef>,
}

/// [`Registry::lineage`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub version: VersionSummary,
    /// Parent first, then grandparent, …
    pub ancestors: Vec<LineageNode>,
    /// Breadth-first: children, then grandchildren, …
    pub descendants: Vec<LineageNode>,
}

/// One check of [`Registry::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationCheck {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// [`Registry::validate`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub name: String,
    pub version: u64,
    pub checks: Vec<ValidationCheck>,
    /// Whether the status moved from `registered` to `validated`.
    pub status_updated: bool,
}

impl ValidationReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Which versions retention cleanup keeps. A version is kept when it is among the
/// `keep_last` newest **or** younger than `max_age_days` (each rule applies only when set);
/// versions holding an alias, the production version and its ancestors are always kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub keep_last: Option<usize>,
    pub max_age_days: Option<f64>,
    pub dry_run: bool,
}

/// [`Registry::cleanup`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    /// Deleted (or, in a dry run, would be deleted).
    pub deleted: Vec<VersionSummary>,
    /// Versions the policy would have deleted but that are protected, with why.
    pub protected: Vec<(u64, String)>,
    /// Leftovers of killed writers removed from the store.
    pub temporaries_removed: usize,
}

/// What a version must match to be used with some data / environment. `None` fields are
/// not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompatibilityTarget {
    pub feature_hash: Option<String>,
    pub observation_shape: Option<Vec<usize>>,
    pub action_count: Option<usize>,
    pub algorithm: Option<String>,
}

/// One mismatch found by a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub field: String,
    pub model: String,
    pub target: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the model has {}, the target has {}",
            self.field, self.model, self.target
        )
    }
}

/// Differences between a version's metadata and a target (empty = compatible).
pub fn compatibility(version: &ModelVersion, target: &CompatibilityTarget) -> Vec<Difference> {
    let t = &version.training;
    let mut out = Vec::new();
    let mut check = |field: &str, model: String, target: Option<String>| {
        if let Some(target) = target
            && model != target
        {
            out.push(Difference {
                field: field.into(),
                model,
                target,
            });
        }
    };
    check(
        "feature_hash",
        t.feature_hash.clone(),
        target.feature_hash.clone(),
    );
    check(
        "observation_shape",
        format!("{:?}", t.observation_shape),
        target.observation_shape.as_ref().map(|s| format!("{s:?}")),
    );
    check(
        "action_count",
        t.action_count.to_string(),
        target.action_count.map(|a| a.to_string()),
    );
    check(
        "algorithm",
        t.algorithm.to_ascii_lowercase(),
        target.algorithm.as_ref().map(|a| a.to_ascii_lowercase()),
    );
    out
}

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

/// A directory removed (best effort) when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fsutil::remove_tree(&self.0);
    }
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
        names::validate_model_name(name)?;
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
        let scratch = TempDir(fsutil::temp_path(&self.store.scratch_dir()?, "register"));
        fsutil::create_dir_all(&scratch.0)?;
        let local = scratch.0.join(&metadata.version_id);
        Checkpoint {
            state,
            metadata: metadata.clone(),
        }
        .save(&local)?;
        self.store
            .upload_artifacts_owned(run_id, &local, &artifact_path)?;
        drop(scratch);
        let source = self.store.artifact_uri(run_id, &artifact_path)?;
        let description = format!(
            "{} {} ({}), {} training steps",
            metadata.training.algorithm,
            metadata.semver,
            metadata.version_id,
            metadata.training.training_steps
        );
        let stored = self.store.create_model_version(
            name,
            &source,
            run_id,
            &version_tags(&metadata, &artifact_path),
            Some(&description),
        )?;
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

    // ---- get ---------------------------------------------------------------------------

    /// The store's record of the version a reference names.
    pub fn resolve(&self, reference: &ModelRef) -> Result<StoredVersion> {
        let name = &reference.name;
        match &reference.selector {
            VersionSelector::Number(n) => self.store.get_model_version(name, *n),
            VersionSelector::Alias(alias) => self.store.get_version_by_alias(name, alias),
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
                let temp = TempDir(fsutil::temp_path(&std::env::temp_dir(), "metadata"));
                for file in [checkpoint::MANIFEST_FILE, checkpoint::METADATA_FILE] {
                    self.store.download_artifacts(
                        &run_id,
                        &format!("{artifact_path}/{file}"),
                        &temp.0,
                    )?;
                }
                checkpoint::read_metadata(&temp.0)?
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

    fn checkpoint_dir_of(&self, stored: &StoredVersion) -> Result<LocalCheckpoint> {
        let (run_id, artifact_path) = checkpoint_location(stored)?;
        if let Some(path) = self.store.local_artifact_path(&run_id, &artifact_path)? {
            return Ok(LocalCheckpoint {
                path,
                _download: None,
            });
        }
        let temp = TempDir(fsutil::temp_path(&std::env::temp_dir(), "checkpoint"));
        self.store
            .download_artifacts(&run_id, &artifact_path, &temp.0)?;
        Ok(LocalCheckpoint {
            path: temp.0.clone(),
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
                let temp = TempDir(fsutil::temp_path(&std::env::temp_dir(), "weights"));
                for file in checkpoint::WEIGHTS_FILES {
                    self.store.download_artifacts(
                        &run_id,
                        &format!("{artifact_path}/{file}"),
                        &temp.0,
                    )?;
                }
                checkpoint::Weights::load(&temp.0)?
            }
        };
        weights.metadata = with_store_facts(weights.metadata, &stored);
        Ok(weights)
    }

    /// The full feature configuration a version was trained with.
    pub fn feature_config(&self, reference: &ModelRef) -> Result<serde_json::Value> {
        Ok(self.get(reference)?.training.feature_config)
    }

    /// Differences between a version and what it would be used with (empty = compatible).
    pub fn check_compatibility(
        &self,
        reference: &ModelRef,
        target: &CompatibilityTarget,
    ) -> Result<Vec<Difference>> {
        Ok(compatibility(&self.get(reference)?, target))
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

    /// Registered model names.
    pub fn models(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list_registered_models()?
            .into_iter()
            .map(|m| m.name)
            .collect())
    }

    // ---- status, aliases -----------------------------------------------------------------

    /// Sets a version's status tag.
    pub fn set_status(
        &self,
        reference: &ModelRef,
        status: VersionStatus,
    ) -> Result<VersionSummary> {
        let stored = self.resolve(reference)?;
        self.store.set_model_version_tag(
            &stored.name,
            stored.version,
            tags::STATUS,
            status.as_str(),
        )?;
        self.summary(&ModelRef::number(&stored.name, stored.version))
    }

    /// Points `alias` at the referenced version and records it in the alias history. For
    /// `production`, the new holder's status becomes `production` and the previous
    /// holder's `archived`.
    pub fn promote(&self, reference: &ModelRef, alias: &str) -> Result<AliasChange> {
        names::validate_alias(alias)?;
        let target = self.resolve(reference)?;
        let name = target.name.clone();
        let _lock = self.store.lock_model(&name)?;
        let previous = self.alias_holder(&name, alias)?;
        if previous != Some(target.version) {
            self.store.set_alias(&name, alias, target.version)?;
            self.update_statuses(&name, alias, Some(target.version), previous)?;
        }
        self.append_alias_event(
            &name,
            alias,
            AliasAction::Promote,
            Some(target.version),
            previous,
        )?;
        Ok(AliasChange {
            name,
            alias: alias.to_string(),
            version: target.version,
            previous,
        })
    }

    /// Moves `alias` back to the holder it had before the last promotion (skipping deleted
    /// versions). Repeated rollbacks walk further back.
    pub fn rollback(&self, name: &str, alias: &str) -> Result<AliasChange> {
        names::validate_alias(alias)?;
        let _lock = self.store.lock_model(name)?;
        let current = self.alias_holder(name, alias)?;
        let mut stack = holder_stack(&self.alias_history(name, alias)?);
        if let Some(current) = current
            && stack.last() != Some(&current)
        {
            // Moved outside Ratchet (e.g. in MLflow's UI): the actual holder is current.
            stack.push(current);
        }
        stack.pop();
        let target = loop {
            let Some(candidate) = stack.pop() else {
                return Err(RegistryError::NotFound(format!(
                    "an earlier holder of alias {alias:?} of model {name:?} to roll back to"
                )));
            };
            if Some(candidate) == current {
                continue;
            }
            match self.store.get_model_version(name, candidate) {
                Ok(_) => break candidate,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        };
        self.store.set_alias(name, alias, target)?;
        self.update_statuses(name, alias, Some(target), current)?;
        self.append_alias_event(name, alias, AliasAction::Rollback, Some(target), current)?;
        Ok(AliasChange {
            name: name.to_string(),
            alias: alias.to_string(),
            version: target,
            previous: current,
        })
    }

    /// Removes an alias, recording it in the history.
    pub fn remove_alias(&self, name: &str, alias: &str) -> Result<()> {
        names::validate_alias(alias)?;
        let _lock = self.store.lock_model(name)?;
        let previous = self.alias_holder(name, alias)?;
        self.store.delete_alias(name, alias)?;
        self.update_statuses(name, alias, None, previous)?;
        self.append_alias_event(name, alias, AliasAction::Remove, None, previous)
    }

    /// The recorded changes of an alias, oldest first.
    pub fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasEvent>> {
        let model = self.store.get_registered_model(name)?;
        let key = format!("{}{alias}", tags::ALIAS_HISTORY_PREFIX);
        match model.tags.get(&key) {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                RegistryError::corrupt(
                    PathBuf::from(format!("models:/{name} tag {key}")),
                    format!("alias history is not valid JSON: {e}"),
                )
            }),
        }
    }

    fn alias_holder(&self, name: &str, alias: &str) -> Result<Option<u64>> {
        Ok(self
            .store
            .get_registered_model(name)?
            .aliases
            .get(alias)
            .copied())
    }

    fn append_alias_event(
        &self,
        name: &str,
        alias: &str,
        action: AliasAction,
        version: Option<u64>,
        previous: Option<u64>,
    ) -> Result<()> {
        let mut history = self.alias_history(name, alias)?;
        history.push(AliasEvent {
            action,
            version,
            previous,
            at: Utc::now(),
        });
        if history.len() > MAX_ALIAS_EVENTS {
            history.drain(..history.len() - MAX_ALIAS_EVENTS);
        }
        let key = format!("{}{alias}", tags::ALIAS_HISTORY_PREFIX);
        let value = serde_json::to_string(&history).expect("alias events serialise");
        self.store.set_registered_model_tag(name, &key, &value)
    }

    fn update_statuses(
        &self,
        name: &str,
        alias: &str,
        new: Option<u64>,
        old: Option<u64>,
    ) -> Result<()> {
        if alias != PRODUCTION || new == old {
            return Ok(());
        }
        if let Some(old) = old {
            match self.store.set_model_version_tag(
                name,
                old,
                tags::STATUS,
                VersionStatus::Archived.as_str(),
            ) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        if let Some(new) = new {
            self.store.set_model_version_tag(
                name,
                new,
                tags::STATUS,
                VersionStatus::Production.as_str(),
            )?;
        }
        Ok(())
    }

    // ---- compare, lineage --------------------------------------------------------------

    /// Puts two or more versions side by side, metric by metric, marking the best value
    /// where the metric's direction is known.
    pub fn compare(&self, references: &[ModelRef]) -> Result<VersionComparison> {
        if references.len() < 2 {
            return Err(RegistryError::InvalidArgument(format!(
                "compare needs at least two versions, got {}",
                references.len()
            )));
        }
        let versions = references
            .iter()
            .map(|r| self.summary(r))
            .collect::<Result<Vec<_>>>()?;
        let names: BTreeSet<&String> = versions.iter().flat_map(|v| v.metrics.keys()).collect();
        let metrics = names
            .into_iter()
            .map(|metric| {
                let values: Vec<Option<f64>> = versions
                    .iter()
                    .map(|v| v.metrics.get(metric).copied())
                    .collect();
                let direction = metric_direction(metric);
                let finite = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.filter(|x| x.is_finite()).map(|x| (i, x)));
                let best = match direction {
                    MetricDirection::HigherIsBetter => {
                        finite.max_by(|a, b| a.1.total_cmp(&b.1)).map(|(i, _)| i)
                    }
                    MetricDirection::LowerIsBetter => {
                        finite.min_by(|a, b| a.1.total_cmp(&b.1)).map(|(i, _)| i)
                    }
                    MetricDirection::Unknown => None,
                };
                MetricRow {
                    metric: metric.clone(),
                    direction,
                    values,
                    best,
                }
            })
            .collect();
        Ok(VersionComparison { versions, metrics })
    }

    /// Ancestors (following `parent` links, across models) and descendants (versions of any
    /// registered model that continued from this one, transitively).
    pub fn lineage(&self, reference: &ModelRef) -> Result<Lineage> {
        let version = self.summary(reference)?;
        let mut ancestors = Vec::new();
        let mut seen = BTreeSet::from([(version.name.clone(), version.version)]);
        let mut next = version.parent.clone();
        while let Some(parent) = next.take() {
            if !seen.insert((parent.name.clone(), parent.version)) {
                break; // a cycle can only come from hand-edited tags
            }
            let summary = match self.summary(&ModelRef::number(&parent.name, parent.version)) {
                Ok(s) => Some(s),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            };
            next = summary.as_ref().and_then(|s| s.parent.clone());
            ancestors.push(LineageNode {
                name: parent.name,
                version: parent.version,
                depth: ancestors.len() + 1,
                summary,
                parent: None,
            });
        }
        // Children index over every model's live versions.
        let mut children: BTreeMap<(String, u64), Vec<VersionSummary>> = BTreeMap::new();
        for model in self.models()? {
            for v in self.list(&model, &VersionFilter::default())? {
                if let Some(p) = &v.parent {
                    children
                        .entry((p.name.clone(), p.version))
                        .or_default()
                        .push(v);
                }
            }
        }
        let mut descendants = Vec::new();
        let mut queue = VecDeque::from([((version.name.clone(), version.version), 0usize)]);
        while let Some((key, depth)) = queue.pop_front() {
            for child in children.get(&key).into_iter().flatten() {
                let child_key = (child.name.clone(), child.version);
                if seen.insert(child_key.clone()) {
                    descendants.push(LineageNode {
                        name: child.name.clone(),
                        version: child.version,
                        depth: depth + 1,
                        parent: child.parent.clone(),
                        summary: Some(child.clone()),
                    });
                    queue.push_back((child_key, depth + 1));
                }
            }
        }
        Ok(Lineage {
            version,
            ancestors,
            descendants,
        })
    }

    // ---- validate ----------------------------------------------------------------------

    /// Checks a version end to end: checkpoint files present with matching checksums,
    /// metadata complete and consistent with the store and the weights header, tensors load
    /// with finite weights, MLmodel readable. A version that passes and is `registered`
    /// becomes `validated`.
    pub fn validate(&self, reference: &ModelRef) -> Result<ValidationReport> {
        let stored = self.resolve(reference)?;
        let summary = VersionSummary::from_stored(&stored);
        let mut checks = Vec::new();
        let mut add = |check: &str, result: std::result::Result<String, String>| {
            let ok = result.is_ok();
            checks.push(ValidationCheck {
                check: check.into(),
                ok,
                detail: result.unwrap_or_else(|e| e),
            });
            ok
        };
        let dir = self.checkpoint_dir_of(&stored);
        let dir = match dir {
            Ok(dir) => {
                add("checkpoint reachable", Ok(dir.path().display().to_string()));
                dir
            }
            Err(e) => {
                add("checkpoint reachable", Err(e.to_string()));
                return Ok(self.finish_validation(&stored, checks));
            }
        };
        let path = dir.path();
        if !add(
            "files and checksums",
            checkpoint::verify(path)
                .map(|m| format!("{} files match MANIFEST.json", m.files.len()))
                .map_err(|e| e.to_string()),
        ) {
            return Ok(self.finish_validation(&stored, checks));
        }
        let loaded = Checkpoint::load(path);
        let checkpoint = match loaded {
            Ok(c) => {
                add(
                    "tensors load",
                    Ok(format!(
                        "{} weight, {} optimizer and {} state tensors",
                        c.state.weights.len(),
                        c.state.optimizer.len(),
                        c.state.state_tensors.len()
                    )),
                );
                c
            }
            Err(e) => {
                add("tensors load", Err(e.to_string()));
                return Ok(self.finish_validation(&stored, checks));
            }
        };
        let m = &checkpoint.metadata;
        add(
            "metadata fields",
            metadata_problems(m).map(|()| "complete".into()),
        );
        let mut mismatches = Vec::new();
        let mut expect = |what: &str, store: Option<String>, file: String| {
            if let Some(store) = store
                && store != file
            {
                mismatches.push(format!(
                    "{what}: store tag {store:?}, metadata.json {file:?}"
                ));
            }
        };
        expect("name", Some(stored.name.clone()), m.name.clone());
        expect(
            "version_id",
            summary.version_id.clone(),
            m.version_id.clone(),
        );
        expect(
            "semver",
            summary.semver.map(|s| s.to_string()),
            m.semver.to_string(),
        );
        expect(
            "feature_hash",
            summary.feature_hash.clone(),
            m.training.feature_hash.clone(),
        );
        expect(
            "algorithm",
            summary.algorithm.clone(),
            m.training.algorithm.clone(),
        );
        expect(
            "run_id",
            stored.run_id.clone(),
            m.run_id.clone().unwrap_or_default(),
        );
        add(
            "metadata matches the store",
            if mismatches.is_empty() {
                Ok("consistent".into())
            } else {
                Err(mismatches.join("; "))
            },
        );
        let header = checkpoint::read_header_metadata(path).map_err(|e| e.to_string());
        let header_check = header.and_then(|h| {
            let expected = checkpoint.header_metadata();
            let wrong: Vec<String> = expected
                .iter()
                .filter(|(k, v)| h.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: header {:?}, metadata {v:?}", h.get(k)))
                .collect();
            if wrong.is_empty() {
                Ok("consistent".to_string())
            } else {
                Err(wrong.join("; "))
            }
        });
        add("weights header matches metadata", header_check);
        let weights_hash = checkpoint::weights_sha256(&checkpoint.state.weights);
        let network_hash = checkpoint::network_hash(&checkpoint.state.weights);
        add(
            "weights hash",
            if weights_hash == m.weights_sha256 && network_hash == m.network_hash {
                Ok(weights_hash)
            } else {
                Err(format!(
                    "weights hash {weights_hash} / network hash {network_hash} differ from metadata ({} / {})",
                    m.weights_sha256, m.network_hash
                ))
            },
        );
        let non_finite: Vec<&str> = checkpoint
            .state
            .weights
            .iter()
            .filter(|t| t.data.iter().any(|x| !x.is_finite()))
            .map(|t| t.name.as_str())
            .collect();
        add(
            "weights finite",
            if non_finite.is_empty() {
                Ok("no NaN or infinite weights".into())
            } else {
                Err(format!(
                    "NaN or infinite values in {}",
                    non_finite.join(", ")
                ))
            },
        );
        let mlmodel = std::fs::read_to_string(path.join(checkpoint::MLMODEL_FILE))
            .map_err(|e| e.to_string())
            .and_then(|text| crate::yaml::parse(&text))
            .and_then(|map| {
                if map.get("flavors").is_some() && map.str("artifact_path").is_some() {
                    Ok("flavors and artifact_path present".to_string())
                } else {
                    Err("missing flavors or artifact_path".to_string())
                }
            });
        add("MLmodel", mlmodel);
        Ok(self.finish_validation(&stored, checks))
    }

    fn finish_validation(
        &self,
        stored: &StoredVersion,
        checks: Vec<ValidationCheck>,
    ) -> ValidationReport {
        let mut report = ValidationReport {
            name: stored.name.clone(),
            version: stored.version,
            checks,
            status_updated: false,
        };
        let registered = stored.tags.get(tags::STATUS).map(String::as_str)
            == Some(VersionStatus::Registered.as_str());
        if report.passed() && registered {
            let updated = self.store.set_model_version_tag(
                &stored.name,
                stored.version,
                tags::STATUS,
                VersionStatus::Validated.as_str(),
            );
            match updated {
                Ok(()) => report.status_updated = true,
                Err(e) => report.checks.push(ValidationCheck {
                    check: "status update".into(),
                    ok: false,
                    detail: e.to_string(),
                }),
            }
        }
        report
    }

    // ---- cleanup -----------------------------------------------------------------------

    /// Deletes versions the policy does not keep (unless `dry_run`), never the production
    /// version, an ancestor of it, or a version holding any alias. Deleting a version also
    /// removes its checkpoint artifact when no other live version uses it.
    pub fn cleanup(&self, name: &str, policy: &RetentionPolicy) -> Result<CleanupReport> {
        if policy.keep_last.is_none() && policy.max_age_days.is_none() {
            return Err(RegistryError::InvalidArgument(
                "cleanup needs keep_last and/or max_age_days; with neither, nothing is selected"
                    .into(),
            ));
        }
        if let Some(days) = policy.max_age_days
            && !(days.is_finite() && days >= 0.0)
        {
            return Err(RegistryError::InvalidArgument(format!(
                "max_age_days {days} must be a non-negative number"
            )));
        }
        let _lock = self.store.lock_model(name)?;
        let versions = self.list(name, &VersionFilter::default())?;
        let now = Utc::now();
        let mut by_age: Vec<&VersionSummary> = versions.iter().collect();
        by_age.sort_by_key(|v| std::cmp::Reverse(v.version));
        let newest: BTreeSet<u64> = by_age
            .iter()
            .take(policy.keep_last.unwrap_or(0))
            .map(|v| v.version)
            .collect();
        let young = |v: &VersionSummary| {
            policy.max_age_days.is_some_and(|days| {
                (now - v.created_at).num_milliseconds() as f64 / 86_400_000.0 < days
            })
        };
        let protected = self.protected_versions(name, &versions)?;
        let mut report = CleanupReport {
            dry_run: policy.dry_run,
            deleted: Vec::new(),
            protected: Vec::new(),
            temporaries_removed: 0,
        };
        for v in &versions {
            if newest.contains(&v.version) || young(v) {
                continue;
            }
            if let Some(reason) = protected.get(&v.version) {
                report.protected.push((v.version, reason.clone()));
                continue;
            }
            report.deleted.push(v.clone());
        }
        if policy.dry_run {
            return Ok(report);
        }
        for v in &report.deleted {
            self.store.delete_model_version(name, v.version)?;
        }
        // Free checkpoint artifacts no live version points at any more.
        let live_sources: BTreeSet<String> = self
            .list(name, &VersionFilter::default())?
            .into_iter()
            .map(|v| v.source)
            .collect();
        for v in &report.deleted {
            if let (Some(run_id), Some(path)) = (&v.run_id, &v.checkpoint)
                && !live_sources.contains(&v.source)
            {
                match self.store.delete_artifacts(run_id, path) {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        report.temporaries_removed = self
            .store
            .remove_stale_temporaries(std::time::Duration::from_secs(24 * 3600))?;
        Ok(report)
    }

    /// Versions cleanup must not delete, with the reason.
    fn protected_versions(
        &self,
        name: &str,
        versions: &[VersionSummary],
    ) -> Result<BTreeMap<u64, String>> {
        let mut out = BTreeMap::new();
        let by_number: BTreeMap<u64, &VersionSummary> =
            versions.iter().map(|v| (v.version, v)).collect();
        for v in versions {
            if !v.aliases.is_empty() {
                out.insert(v.version, format!("holds alias {}", v.aliases.join(", ")));
            }
        }
        if let Some(production) = self.alias_holder(name, PRODUCTION)? {
            let mut next = by_number.get(&production).and_then(|v| v.parent.clone());
            let mut guard = BTreeSet::new();
            while let Some(parent) = next.take() {
                if parent.name != name || !guard.insert(parent.version) {
                    break;
                }
                out.entry(parent.version)
                    .or_insert_with(|| format!("ancestor of the production version {production}"));
                next = by_number
                    .get(&parent.version)
                    .and_then(|v| v.parent.clone());
            }
        }
        Ok(out)
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
    out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[derive(Serialize, Deserialize)]
struct MetricsTag(#[serde(with = "crate::model_version::metric_map")] BTreeMap<String, f64>);

fn metrics_tag(metrics: &BTreeMap<String, f64>) -> String {
    serde_json::to_string(&MetricsTag(metrics.clone())).expect("metrics serialise")
}

fn parse_metrics_tag(text: &str) -> Option<BTreeMap<String, f64>> {
    serde_json::from_str::<MetricsTag>(text).ok().map(|m| m.0)
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

fn metadata_problems(m: &ModelVersion) -> std::result::Result<(), String> {
    let t = &m.training;
    let mut missing = Vec::new();
    for (field, empty) in [
        ("name", m.name.is_empty()),
        ("version_id", !is_human_id(&m.version_id)),
        ("algorithm", t.algorithm.is_empty()),
        ("feature_hash", t.feature_hash.is_empty()),
        ("feature_config", t.feature_config.is_null()),
        ("observation_shape", t.observation_shape.is_empty()),
        ("action_count", t.action_count == 0),
        ("weights_sha256", m.weights_sha256.is_empty()),
        ("network_hash", m.network_hash.is_empty()),
        ("data.path", t.data.path.is_empty()),
        ("data.sha256", t.data.sha256.is_empty()),
        ("device", t.device.is_empty()),
    ] {
        if empty {
            missing.push(field);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing or invalid: {}", missing.join(", ")))
    }
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
    let known: Vec<SemVer> = existing.iter().filter_map(|v| v.semver).collect();
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
        .filter_map(|v| v.semver)
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
    match (unchanged, reference.semver) {
        (true, Some(base)) => SemVer::new(base.major, next_minor(base.major), 0),
        _ => SemVer::new(next_major, 0, 0),
    }
}

/// The alias holders implied by a history: promotions push, rollbacks pop back to their
/// target, removals clear.
fn holder_stack(history: &[AliasEvent]) -> Vec<u64> {
    let mut stack: Vec<u64> = Vec::new();
    for event in history {
        match (event.action, event.version) {
            (AliasAction::Promote, Some(v)) => {
                if stack.last() != Some(&v) {
                    stack.push(v);
                }
            }
            (AliasAction::Rollback, Some(v)) => {
                while stack.last().is_some_and(|top| *top != v) {
                    stack.pop();
                }
                if stack.is_empty() {
                    stack.push(v);
                }
            }
            _ => stack.clear(),
        }
    }
    stack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_uris() {
        assert_eq!(
            ModelRef::parse("models:/m/3").unwrap(),
            ModelRef::number("m", 3)
        );
        assert_eq!(
            ModelRef::parse("models:/googl-ppo/v2026-11-22--14h05-2")
                .unwrap()
                .selector,
            VersionSelector::HumanId("v2026-11-22--14h05-2".into())
        );
        assert_eq!(
            ModelRef::parse("models:/m@production").unwrap().selector,
            VersionSelector::Alias("production".into())
        );
        assert_eq!(
            ModelRef::parse("models:/m/latest").unwrap().selector,
            VersionSelector::Latest
        );
        for uri in [
            "m/3",
            "models:/m",
            "models:/m/0",
            "models:/m/abc",
            "models:/../x/1",
            "models:/m@latest",
            "models:/a/b/1",
        ] {
            assert!(ModelRef::parse(uri).is_err(), "{uri} accepted");
        }
        let err = ModelRef::parse("models:/m/abc").unwrap_err().to_string();
        assert!(err.contains("models:/NAME@ALIAS"), "{err}");
        for uri in [
            "models:/m/3",
            "models:/m@prod",
            "models:/m/v2026-11-22--14h05",
        ] {
            assert_eq!(ModelRef::parse(uri).unwrap().to_string(), uri);
        }
    }

    #[test]
    fn metric_filters() {
        let f = MetricFilter::parse("sharpe>=1.2").unwrap();
        assert_eq!(f.op, Comparison::GreaterOrEqual);
        assert!(f.accepts(Some(1.2)) && !f.accepts(Some(1.1)) && !f.accepts(None));
        assert!(
            !MetricFilter::parse("max_drawdown<0.2")
                .unwrap()
                .accepts(Some(f64::NAN))
        );
        assert!(MetricFilter::parse("sharpe").is_err());
        assert!(MetricFilter::parse(">=1").is_err());
        assert!(MetricFilter::parse("sharpe>=x").is_err());
    }

    fn summary(
        version: u64,
        semver: SemVer,
        features: &str,
        network: &str,
        weights: &str,
    ) -> VersionSummary {
        VersionSummary {
            name: "m".into(),
            version,
            version_id: None,
            semver: Some(semver),
            status: None,
            created_at: Utc::now(),
            algorithm: None,
            feature_hash: Some(features.into()),
            network_hash: Some(network.into()),
            weights_sha256: Some(weights.into()),
            parent: None,
            metrics: BTreeMap::new(),
            training_steps: None,
            aliases: vec![],
            run_id: None,
            source: String::new(),
            checkpoint: None,
        }
    }

    #[test]
    fn semver_rules() {
        assert_eq!(next_semver(&[], None, "f", "n", "w"), SemVer::new(1, 0, 0));
        let v1 = summary(1, SemVer::new(1, 0, 0), "f", "n", "w1");
        let v2 = summary(2, SemVer::new(1, 1, 0), "f", "n", "w2");
        let all = [v1.clone(), v2.clone()];
        // continue-training from v1: next minor of major 1
        assert_eq!(
            next_semver(&all, Some(&v1), "f", "n", "w3"),
            SemVer::new(1, 2, 0)
        );
        // new features → major
        assert_eq!(
            next_semver(&all, Some(&v2), "g", "n", "w3"),
            SemVer::new(2, 0, 0)
        );
        // new network → major
        assert_eq!(
            next_semver(&all, None, "f", "n2", "w3"),
            SemVer::new(2, 0, 0)
        );
        // same weights as v2 → patch
        assert_eq!(
            next_semver(&all, None, "f", "n", "w2"),
            SemVer::new(1, 1, 1)
        );
    }

    #[test]
    fn human_ids_get_suffixes() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T14:05:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut existing = vec![];
        assert_eq!(unique_human_id(at, &existing), "v2026-11-22--14h05");
        let mut taken = summary(1, SemVer::new(1, 0, 0), "f", "n", "w");
        taken.version_id = Some("v2026-11-22--14h05".into());
        existing.push(taken.clone());
        assert_eq!(unique_human_id(at, &existing), "v2026-11-22--14h05-2");
        taken.version_id = Some("v2026-11-22--14h05-2".into());
        existing.push(taken);
        assert_eq!(unique_human_id(at, &existing), "v2026-11-22--14h05-3");
    }

    #[test]
    fn alias_stack_follows_promotions_and_rollbacks() {
        let event = |action, version| AliasEvent {
            action,
            version,
            previous: None,
            at: Utc::now(),
        };
        let history = vec![
            event(AliasAction::Promote, Some(1)),
            event(AliasAction::Promote, Some(2)),
            event(AliasAction::Promote, Some(3)),
            event(AliasAction::Rollback, Some(2)),
        ];
        assert_eq!(holder_stack(&history), vec![1, 2]);
        let mut cleared = history.clone();
        cleared.push(event(AliasAction::Remove, None));
        assert!(holder_stack(&cleared).is_empty());
    }
}
