//! The storage backend trait and the plain data it moves.
//!
//! [`TrackingStore`] is MLflow's data model (experiments, runs, artifacts, registered
//! models, versions, tags, aliases) as one trait with two implementations: the local
//! `mlruns/` tree ([`crate::FileStore`]) and an MLflow tracking server over REST
//! ([`crate::RestStore`]); [`crate::open_store`] picks one from a tracking URI. Everything
//! built on it (Ratchet's model registry: checkpoints, promotion, lineage, cleanup) works on
//! either.
//!
//! ```no_run
//! use ratchet_mlflow::{open_store, resolve_tracking_uri};
//!
//! let store = open_store(&resolve_tracking_uri(None))?; // ./mlruns unless configured
//! let experiment = store.get_or_create_experiment("ratchet")?;
//! let run = store.create_run(&experiment.experiment_id, "ppo-googl", &[])?;
//! store.log_params(&run.run_id, &[("lr".into(), "0.0003".into())])?;
//! # Ok::<(), ratchet_mlflow::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// An MLflow experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    /// Root URI under which the experiment's runs keep their artifacts.
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Milliseconds since the Unix epoch.
    pub creation_time: Option<i64>,
    pub last_update_time: Option<i64>,
    pub tags: BTreeMap<String, String>,
}

/// Lifecycle state of a run, as MLflow defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    /// The name used by MLflow's REST API and Python client (`"FINISHED"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }

    /// The integer stored in a file-store run's `meta.yaml` (`1` RUNNING … `5` KILLED).
    pub fn code(self) -> i64 {
        match self {
            RunStatus::Running => 1,
            RunStatus::Scheduled => 2,
            RunStatus::Finished => 3,
            RunStatus::Failed => 4,
            RunStatus::Killed => 5,
        }
    }

    /// Inverse of [`RunStatus::code`].
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => RunStatus::Running,
            2 => RunStatus::Scheduled,
            3 => RunStatus::Finished,
            4 => RunStatus::Failed,
            5 => RunStatus::Killed,
            _ => return None,
        })
    }

    /// Inverse of [`RunStatus::as_str`] (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        [
            RunStatus::Running,
            RunStatus::Scheduled,
            RunStatus::Finished,
            RunStatus::Failed,
            RunStatus::Killed,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(name))
    }
}

/// Identity and lifecycle of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: String,
    pub run_name: String,
    pub user_id: String,
    pub status: RunStatus,
    /// Milliseconds since the Unix epoch.
    pub start_time: i64,
    pub end_time: Option<i64>,
    /// Where the run's artifacts live (`file:///…/artifacts`, `mlflow-artifacts:/…`).
    pub artifact_uri: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
}

/// One logged metric point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub step: i64,
}

impl Metric {
    /// A point stamped with the current time.
    pub fn now(key: impl Into<String>, value: f64, step: i64) -> Self {
        Metric {
            key: key.into(),
            value,
            timestamp: now_ms(),
            step,
        }
    }
}

/// A run with its data. `metrics` holds the latest point per key as MLflow defines it
/// (largest `(step, timestamp, value)`); [`TrackingStore::get_metric_history`] gives all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, Metric>,
}

/// One entry of an artifact listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// Path relative to the run's artifact root, `/`-separated.
    pub path: String,
    pub is_dir: bool,
    /// Size in bytes, for files.
    pub size: Option<u64>,
}

/// A registered model (the container of versions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: Option<i64>,
    pub last_updated_timestamp: Option<i64>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Alias → version number.
    pub aliases: BTreeMap<String, u64>,
}

/// A model version as the store keeps it: MLflow's fields, tags and aliases. Ratchet's own
/// metadata (`ratchet_registry::ModelVersion`) is built from this plus the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredVersion {
    pub name: String,
    pub version: u64,
    /// Milliseconds since the Unix epoch.
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    /// URI of the model directory (the run's checkpoint artifact).
    pub source: String,
    pub run_id: Option<String>,
    pub description: Option<String>,
    /// MLflow's registration status, `READY` for every version Ratchet creates.
    pub status: String,
    pub tags: BTreeMap<String, String>,
    /// Aliases currently pointing at this version.
    pub aliases: Vec<String>,
}

impl StoredVersion {
    /// The version borrowed, with `tags` its tags as pairs.
    pub fn view<'a>(&'a self, tags: &'a [(&'a str, &'a str)]) -> VersionView<'a> {
        VersionView {
            name: &self.name,
            version: self.version,
            creation_timestamp: self.creation_timestamp,
            source: &self.source,
            run_id: self.run_id.as_deref(),
            tags,
            aliases: &self.aliases,
        }
    }

    /// The tags as borrowed pairs, for [`StoredVersion::view`].
    pub fn tag_pairs(&self) -> Vec<(&str, &str)> {
        self.tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// What listing reads of a model version, borrowed from the store's own buffers, so that
/// listing thousands of versions copies only what the caller keeps.
#[derive(Debug, Clone, Copy)]
pub struct VersionView<'a> {
    pub name: &'a str,
    pub version: u64,
    /// Milliseconds since the Unix epoch.
    pub creation_timestamp: i64,
    pub source: &'a str,
    pub run_id: Option<&'a str>,
    /// Tag key and value pairs.
    pub tags: &'a [(&'a str, &'a str)],
    /// Aliases currently pointing at this version.
    pub aliases: &'a [String],
}

/// Held while a caller performs a read-modify-write on one registered model (promotion with
/// alias history, registration choosing a unique human id, counting a test look). Released
/// on drop.
///
/// The file store takes an exclusive OS file lock; against a tracking server the lock is a
/// registered model of its own, created to take it and deleted to release it (see
/// `RestStore`'s `lock.rs`).
pub struct ModelLock {
    _guard: Box<dyn Send>,
}

impl ModelLock {
    /// Keeps `guard` alive (e.g. a locked [`std::fs::File`]) until the lock is dropped.
    pub fn holding(guard: Box<dyn Send>) -> Self {
        ModelLock { _guard: guard }
    }
}

/// MLflow's tracking + registry data model. One implementation per backend.
///
/// Conventions shared by all implementations:
/// - names, keys, ids, aliases and artifact paths are checked once, by [`crate::Checked`]
///   (which every backend's constructor returns), before anything is written;
/// - times are milliseconds since the Unix epoch;
/// - "not found" is always [`crate::Error::NotFound`], so callers can branch on it;
/// - writes are all-or-nothing where the backend allows it: a reader never sees a
///   half-created experiment, run, registered model or version.
pub trait TrackingStore: Send + Sync {
    /// The URI this store was opened with (`file:///abs/mlruns`, `http://host:5000`).
    fn tracking_uri(&self) -> String;

    // ---- experiments -------------------------------------------------------------------

    /// The active experiment called `name`, created if missing.
    fn get_or_create_experiment(&self, name: &str) -> Result<Experiment>;
    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment>;
    /// Active experiments, ordered by id.
    fn list_experiments(&self) -> Result<Vec<Experiment>>;
    fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()>;

    // ---- runs --------------------------------------------------------------------------

    /// Starts a RUNNING run now. `mlflow.runName` is set from `run_name`; `tags` are added.
    fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(String, String)],
    ) -> Result<RunInfo>;
    fn get_run(&self, run_id: &str) -> Result<Run>;
    /// Active runs of an experiment, newest first.
    fn list_runs(&self, experiment_id: &str) -> Result<Vec<RunInfo>>;
    /// Params are immutable: re-logging the same value is a no-op, a different value is an
    /// error.
    fn log_params(&self, run_id: &str, params: &[(String, String)]) -> Result<()>;
    /// Appends points to each metric's history, in order.
    fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()>;
    /// Every logged point of one metric, in logging order.
    fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>>;
    fn set_run_tags(&self, run_id: &str, tags: &[(String, String)]) -> Result<()>;
    /// Sets the status; `end_time_ms` is recorded when given (terminal states).
    fn set_run_status(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<()>;

    // ---- artifacts ---------------------------------------------------------------------

    /// Copies `local` (a directory: its contents; a file: the file itself) under
    /// `artifact_path` (`""` = the artifact root) of the run's artifacts.
    fn upload_artifacts(&self, run_id: &str, local: &Path, artifact_path: &str) -> Result<()>;
    /// Every file and directory below `artifact_path` (recursive), sorted by path.
    fn list_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<Vec<ArtifactEntry>>;
    /// Copies the artifact file or directory `artifact_path` to `dest` (created; for a
    /// directory, `dest` receives its contents).
    fn download_artifacts(&self, run_id: &str, artifact_path: &str, dest: &Path) -> Result<()>;
    /// Like [`TrackingStore::upload_artifacts`] for a directory the caller no longer needs:
    /// the store may move it instead of copying (the file store does when `local` lies in
    /// [`TrackingStore::scratch_dir`]). `local` is gone afterwards.
    fn upload_artifacts_owned(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<()> {
        self.upload_artifacts(run_id, local, artifact_path)?;
        Ok(ratchet_fsutil::remove_tree(local)?)
    }
    /// Replaces the directory artifact `artifact_path` whole with `local` (which is gone
    /// afterwards, as with [`TrackingStore::upload_artifacts_owned`]): whenever the writer
    /// stops, [`TrackingStore::current_artifact_dir`] names the previous directory complete
    /// or the new one complete, never a mix of their files.
    ///
    /// A server cannot rename, so by default the files go to a fresh path
    /// (`<artifact_path>.<generation>`), the run tag [`current_artifact_tag`] switches to
    /// it once the last file is in, and only then is the previous path deleted. The file
    /// store renames the directory into place instead.
    fn replace_artifact_dir(&self, run_id: &str, local: &Path, artifact_path: &str) -> Result<()> {
        let tag = current_artifact_tag(artifact_path);
        let previous = self.get_run(run_id)?.tags.remove(&tag);
        let generation = previous
            .as_deref()
            .and_then(|path| path.rsplit_once('.'))
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let fresh = format!("{artifact_path}.{generation}");
        // A writer killed during an earlier upload may have left part of this generation;
        // no tag points at it.
        ignore_not_found(self.delete_artifacts(run_id, &fresh))?;
        self.upload_artifacts_owned(run_id, local, &fresh)?;
        self.set_run_tags(run_id, &[(tag, fresh)])?;
        match previous {
            Some(previous) => ignore_not_found(self.delete_artifacts(run_id, &previous)),
            None => Ok(()),
        }
    }
    /// The artifact path where the last complete [`TrackingStore::replace_artifact_dir`] of
    /// `artifact_path` put its files, or `None` when the run has none yet.
    fn current_artifact_dir(&self, run_id: &str, artifact_path: &str) -> Result<Option<String>> {
        Ok(self
            .get_run(run_id)?
            .tags
            .remove(&current_artifact_tag(artifact_path)))
    }
    /// A directory where callers build files they will upload, chosen so that
    /// [`TrackingStore::upload_artifacts_owned`] can move rather than copy.
    fn scratch_dir(&self) -> Result<PathBuf> {
        Ok(std::env::temp_dir())
    }
    /// Removes leftovers of writers that were killed mid-way (older than `older_than`);
    /// returns how many. Backends without local temporaries have nothing to do.
    fn remove_stale_temporaries(&self, _older_than: std::time::Duration) -> Result<usize> {
        Ok(0)
    }
    /// Removes an artifact file or directory (used by retention cleanup).
    fn delete_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<()>;
    /// Where the artifact already is on this machine, when the backend stores artifacts
    /// locally, so readers can skip the copy. Remote backends return `None`.
    fn local_artifact_path(&self, _run_id: &str, _artifact_path: &str) -> Result<Option<PathBuf>> {
        Ok(None)
    }
    /// The URI of an artifact, suitable as a model version's `source`.
    fn artifact_uri(&self, run_id: &str, artifact_path: &str) -> Result<String> {
        let root = self.get_run(run_id)?.info.artifact_uri;
        let path = artifact_path.trim_matches('/');
        Ok(if path.is_empty() {
            root
        } else {
            format!("{}/{}", root.trim_end_matches('/'), path)
        })
    }

    // ---- model registry ----------------------------------------------------------------

    /// Creates the registered model, or returns the existing one (idempotent, race-safe).
    fn create_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    /// All registered models, ordered by name.
    fn list_registered_models(&self) -> Result<Vec<RegisteredModel>>;
    fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()>;
    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;

    /// Creates the next version of `name` (READY) with its tags in one step. Concurrent
    /// callers get distinct consecutive numbers; numbers are never reused.
    fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[(String, String)],
        description: Option<&str>,
    ) -> Result<StoredVersion>;
    fn get_model_version(&self, name: &str, version: u64) -> Result<StoredVersion>;
    /// Live (not deleted) versions, ascending by number.
    fn list_model_versions(&self, name: &str) -> Result<Vec<StoredVersion>>;
    /// Calls `visit` with each live version, ascending by number (what listing reads,
    /// without owning copies where the backend can lend them).
    fn visit_model_versions(
        &self,
        name: &str,
        visit: &mut dyn FnMut(VersionView<'_>),
    ) -> Result<()> {
        for version in self.list_model_versions(name)? {
            visit(version.view(&version.tag_pairs()));
        }
        Ok(())
    }
    /// Deletes the version (MLflow: number burned, aliases pointing at it removed).
    fn delete_model_version(&self, name: &str, version: u64) -> Result<()>;
    fn set_model_version_tag(&self, name: &str, version: u64, key: &str, value: &str)
    -> Result<()>;
    fn delete_model_version_tag(&self, name: &str, version: u64, key: &str) -> Result<()>;

    /// Points `alias` at `version` (moving it if it pointed elsewhere).
    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()>;
    fn delete_alias(&self, name: &str, alias: &str) -> Result<()>;
    fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<StoredVersion>;

    /// Serialises read-modify-write sequences on one registered model across processes
    /// (see [`ModelLock`]). The model must exist.
    fn lock_model(&self, name: &str) -> Result<ModelLock>;

    /// A lock of its own on model `name` for one kind of long work (`work`, e.g. `retrain`:
    /// letters, digits, `_` and `-`), independent of [`TrackingStore::lock_model`], so its
    /// holder can take the model lock meanwhile (to register). Released when its holder
    /// drops it or dies, like the model lock. The model must exist.
    fn lock_model_work(&self, name: &str, work: &str) -> Result<ModelLock>;
}

/// The run tag that names where the directory artifact `artifact_path` replaced by
/// [`TrackingStore::replace_artifact_dir`] currently lives (on stores that cannot rename).
pub fn current_artifact_tag(artifact_path: &str) -> String {
    format!("ratchet.artifact.{}", artifact_path.trim_matches('/'))
}

/// `Ok` for a [`crate::Error::NotFound`]: deleting what is already gone.
fn ignore_not_found(result: Result<()>) -> Result<()> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The user recorded as a run's owner (`mlflow.user`): the first of `$USER`, `$LOGNAME`,
/// `$USERNAME` that is set.
pub(crate) fn current_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_status_round_trips() {
        for code in 1..=5 {
            let status = RunStatus::from_code(code).unwrap();
            assert_eq!(status.code(), code);
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RunStatus::from_code(0), None);
        assert_eq!(RunStatus::parse("done"), None);
    }
}
