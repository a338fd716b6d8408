//! [`FileStore`]: MLflow's local `mlruns/` tree, written field by field as MLflow 2.22 and
//! 3.17 read it (see `shared/spec/mlflow-file-store.md`).
//!
//! Crash safety: every object becomes visible in one `rename`. Experiments and registered
//! models are assembled in `<root>/0/.ratchet-staging/` (a directory MLflow skips as "not a
//! run") and renamed into place; a model version is assembled inside its model directory
//! under a name MLflow ignores (only `version-*` directories are versions) and renamed to
//! `version-N`; a run directory gets its `meta.yaml` last (MLflow skips run directories
//! without one); `meta.yaml` and tag files are replaced through a temp file + rename in the
//! owning directory, never in `tags/`, `params/` or `aliases/`. A process killed at any
//! point leaves only hidden temporaries that both readers ignore.
//!
//! Concurrency: a version number is claimed by renaming a complete directory to
//! `version-N`, which fails when `version-N` exists, so concurrent writers get distinct
//! consecutive numbers. Alias moves and registered-model `meta.yaml` updates happen under an
//! exclusive file lock. Listing a model's versions is served from a cache file that is
//! rebuilt whenever the model changed (see [`FileStore::list_model_versions`]).

mod artifacts;
mod files;
mod models;
mod store_impl;
mod version_cache;

use std::fs;
use std::path::{Path, PathBuf};

use crate::checked::Checked;
use crate::error::{Error, Result};
use crate::store::{Experiment, RunInfo, RunStatus, now_ms};
use crate::uri::{file_uri, path_from_uri};
use crate::yaml;
use ratchet_fsutil::{self as fsutil, TEMP_PREFIX};

use files::{list_dir_names, read_key_files};

const META: &str = "meta.yaml";
const TRASH: &str = ".trash";
const MODELS: &str = "models";
const DEFAULT_EXPERIMENT: &str = "0";
/// Where experiments and registered models are assembled before their rename.
const STAGING: &str = ".ratchet-staging";
/// Directory names inside an experiment that are not runs.
const RESERVED_EXPERIMENT_DIRS: [&str; 4] = ["tags", "datasets", "traces", "models"];
const STAGE_DELETED: &str = "Deleted_Internal";
/// Version-listing cache ([`version_cache`]), invalidated by `GENERATION` and the
/// model's `meta.yaml`.
const VERSION_CACHE: &str = ".ratchet-versions.bin";
/// Counter bumped before and after every change Ratchet makes to a model's versions.
const GENERATION: &str = ".ratchet-generation";
/// Held by [`TrackingStore::lock_model`] callers for read-modify-write sequences.
const MODEL_LOCK: &str = ".ratchet-lock";
/// Held briefly around `meta.yaml`, alias and generation updates.
const META_LOCK: &str = ".ratchet-meta.lock";
const EXPERIMENTS_LOCK: &str = ".ratchet-experiments.lock";

/// Longest param value MLflow accepts; longer values would be truncated by MLflow clients.
const MAX_PARAM_VALUE: usize = 6000;
const MAX_RUN_TAG_VALUE: usize = 8000;
const MAX_REGISTRY_TAG_VALUE: usize = 100_000;

/// The local MLflow file store rooted at one `mlruns` directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// Opens (creating if needed) the store at `root`: the directory itself, `.trash/`,
    /// `models/` and the Default experiment `0`, as MLflow expects. The store comes inside
    /// [`Checked`], which validates every argument: the file store's own code trusts them.
    pub fn open(root: impl Into<PathBuf>) -> Result<Checked<Self>> {
        let root = root.into();
        let root = std::path::absolute(&root).map_err(|e| Error::io(&root, e))?;
        if root.exists() && !root.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "tracking store {} is a file, not a directory",
                root.display()
            )));
        }
        let store = FileStore { root };
        fsutil::create_dir_all(&store.root.join(TRASH))?;
        fsutil::create_dir_all(&store.root.join(MODELS))?;
        let default_dir = store.root.join(DEFAULT_EXPERIMENT);
        if !default_dir.join(META).exists() {
            let _lock = fsutil::lock_file(&store.root.join(EXPERIMENTS_LOCK))?;
            if !default_dir.join(META).exists() {
                fsutil::create_dir_all(&default_dir)?;
                let now = now_ms();
                let meta = store.experiment_meta(DEFAULT_EXPERIMENT, "Default", now);
                fsutil::write_atomic(&default_dir.join(META), meta.as_bytes(), &default_dir, true)?;
            }
        }
        fsutil::create_dir_all(&store.staging_root())?;
        Ok(Checked::new(store))
    }

    /// The store's root directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn staging_root(&self) -> PathBuf {
        self.root.join(DEFAULT_EXPERIMENT).join(STAGING)
    }

    fn models_dir(&self) -> PathBuf {
        self.root.join(MODELS)
    }

    fn model_dir(&self, name: &str) -> Result<PathBuf> {
        Ok(self.models_dir().join(name))
    }

    fn experiment_meta(&self, id: &str, name: &str, now: i64) -> String {
        yaml::Writer::new()
            .str("artifact_location", &file_uri(&self.root.join(id)))
            .int("creation_time", now)
            .str("experiment_id", id)
            .int("last_update_time", now)
            .raw("lifecycle_stage", "active")
            .str("name", name)
            .finish()
    }

    // ---- experiments -------------------------------------------------------------------

    fn read_experiment(&self, dir: &Path) -> Result<Option<Experiment>> {
        let meta_path = dir.join(META);
        let Some(text) = fsutil::read_optional(&meta_path)? else {
            return Ok(None);
        };
        let map = yaml::parse(&text).map_err(|e| Error::corrupt(&meta_path, e))?;
        let field = |key: &str| {
            map.str(key)
                .map(str::to_string)
                .or_else(|| map.i64(key).map(|v| v.to_string()))
                .ok_or_else(|| Error::corrupt(&meta_path, format!("missing field `{key}`")))
        };
        let experiment_id = field("experiment_id")?;
        if dir.file_name().and_then(|n| n.to_str()) != Some(experiment_id.as_str()) {
            // MLflow ignores such an experiment too ("Experiment ID mismatch").
            return Ok(None);
        }
        Ok(Some(Experiment {
            name: field("name")?,
            artifact_location: field("artifact_location")?,
            lifecycle_stage: map.str("lifecycle_stage").unwrap_or("active").to_string(),
            creation_time: map.i64("creation_time"),
            last_update_time: map.i64("last_update_time"),
            tags: read_key_files(&dir.join("tags"))?,
            experiment_id,
        }))
    }

    fn experiment_dirs(&self) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for name in list_dir_names(&self.root)? {
            if name == TRASH || name == MODELS || fsutil::is_internal_name(&name) {
                continue;
            }
            let path = self.root.join(&name);
            if path.is_dir() {
                dirs.push(path);
            }
        }
        Ok(dirs)
    }

    fn experiment_dir(&self, experiment_id: &str) -> Result<PathBuf> {
        let dir = self.root.join(experiment_id);
        match self.read_experiment(&dir)? {
            Some(exp) if exp.lifecycle_stage == "active" => Ok(dir),
            _ => Err(Error::NotFound(format!(
                "experiment {experiment_id} in {}",
                self.root.display()
            ))),
        }
    }

    // ---- runs --------------------------------------------------------------------------

    /// The directory of a run, found in whichever experiment holds it.
    fn run_dir(&self, run_id: &str) -> Result<PathBuf> {
        for exp in self.experiment_dirs()? {
            let dir = exp.join(run_id);
            if dir.join(META).is_file() {
                return Ok(dir);
            }
        }
        Err(Error::NotFound(format!(
            "run {run_id} in {}",
            self.root.display()
        )))
    }

    fn read_run_info(&self, dir: &Path) -> Result<Option<RunInfo>> {
        let meta_path = dir.join(META);
        let Some(text) = fsutil::read_optional(&meta_path)? else {
            return Ok(None);
        };
        let map = yaml::parse(&text).map_err(|e| Error::corrupt(&meta_path, e))?;
        let text_field = |key: &str| {
            map.str(key)
                .map(str::to_string)
                .or_else(|| map.i64(key).map(|v| v.to_string()))
        };
        let required = |key: &str| {
            text_field(key)
                .ok_or_else(|| Error::corrupt(&meta_path, format!("missing field `{key}`")))
        };
        let run_id = text_field("run_id")
            .or_else(|| text_field("run_uuid"))
            .ok_or_else(|| Error::corrupt(&meta_path, "missing field `run_id`"))?;
        let status = match map.get("status") {
            None | Some(yaml::Value::Null) => RunStatus::Running,
            Some(value) => value
                .as_i64()
                .and_then(RunStatus::from_code)
                .ok_or_else(|| {
                    Error::corrupt(&meta_path, format!("`status` {value:?} is not 1..=5"))
                })?,
        };
        let tags_dir = dir.join("tags");
        let run_name = match text_field("run_name").filter(|n| !n.is_empty()) {
            Some(name) => name,
            None => fsutil::read_optional(&tags_dir.join("mlflow.runName"))?.unwrap_or_default(),
        };
        Ok(Some(RunInfo {
            experiment_id: required("experiment_id")?,
            user_id: text_field("user_id").unwrap_or_default(),
            status,
            start_time: map
                .i64("start_time")
                .ok_or_else(|| Error::corrupt(&meta_path, "missing integer field `start_time`"))?,
            end_time: map.i64("end_time"),
            artifact_uri: required("artifact_uri")?,
            lifecycle_stage: map.str("lifecycle_stage").unwrap_or("active").to_string(),
            run_name,
            run_id,
        }))
    }

    fn write_run_meta(&self, dir: &Path, info: &RunInfo) -> Result<()> {
        let meta = yaml::Writer::new()
            .str("artifact_uri", &info.artifact_uri)
            .opt_int("end_time", info.end_time)
            .str("entry_point_name", "")
            .str("experiment_id", &info.experiment_id)
            .raw("lifecycle_stage", &info.lifecycle_stage)
            .str("run_id", &info.run_id)
            .str("run_name", &info.run_name)
            .str("run_uuid", &info.run_id)
            .str("source_name", "")
            .int("source_type", 4)
            .str("source_version", "")
            .int("start_time", info.start_time)
            .int("status", info.status.code())
            .raw("tags", "[]")
            .str("user_id", &info.user_id)
            .finish();
        Ok(fsutil::write_atomic(
            &dir.join(META),
            meta.as_bytes(),
            dir,
            true,
        )?)
    }

    fn active_run_dir(&self, run_id: &str) -> Result<(PathBuf, RunInfo)> {
        let dir = self.run_dir(run_id)?;
        let info = self
            .read_run_info(&dir)?
            .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
        if info.lifecycle_stage != "active" {
            return Err(Error::InvalidArgument(format!(
                "run {run_id} is deleted; restore it before logging to it"
            )));
        }
        Ok((dir, info))
    }

    /// The local directory holding a run's artifacts.
    fn artifact_root(&self, info: &RunInfo) -> Result<PathBuf> {
        let uri = &info.artifact_uri;
        if uri.starts_with("file:") || uri.starts_with('/') {
            path_from_uri(uri)
        } else {
            Err(Error::Unsupported(format!(
                "run {}: artifacts live at {uri}, which is not a local path; open the store \
                 through the tracking server that owns them",
                info.run_id
            )))
        }
    }

    fn artifact_target(
        &self,
        run_id: &str,
        artifact_path: &str,
    ) -> Result<(PathBuf, PathBuf, PathBuf)> {
        let dir = self.run_dir(run_id)?;
        let info = self
            .read_run_info(&dir)?
            .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
        let root = self.artifact_root(&info)?;
        let target = if artifact_path.is_empty() {
            root.clone()
        } else {
            root.join(artifact_path.trim_end_matches('/'))
        };
        // Temporaries go where listing artifacts never shows them: the run directory when
        // the artifacts live inside it (the normal case), else beside the target.
        let temp_dir = if root.starts_with(&dir) {
            dir
        } else {
            target
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.clone())
        };
        Ok((root, target, temp_dir))
    }

    /// Removes staging leftovers of killed writers older than `max_age`.
    pub fn remove_stale_temporaries(&self, max_age: std::time::Duration) -> Result<usize> {
        let mut removed = 0;
        let mut dirs = vec![self.staging_root()];
        for model in list_dir_names(&self.models_dir())? {
            dirs.push(self.models_dir().join(model));
        }
        for exp in self.experiment_dirs()? {
            for run in list_dir_names(&exp)? {
                dirs.push(exp.join(run));
            }
        }
        for dir in dirs.into_iter().filter(|d| d.is_dir()) {
            for name in list_dir_names(&dir)? {
                if !name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let path = dir.join(&name);
                let old = fs::symlink_metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= max_age);
                if old {
                    fsutil::remove_tree(&path)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
