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

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{RegistryError, Result};
use crate::fsutil::{self, TEMP_PREFIX};
use crate::names;
use crate::store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, VersionView, current_user, now_ms,
};
use crate::version_cache::{self, Decoded};
use crate::yaml;

const META: &str = "meta.yaml";
const TRASH: &str = ".trash";
const MODELS: &str = "models";
const DEFAULT_EXPERIMENT: &str = "0";
/// Where experiments and registered models are assembled before their rename.
const STAGING: &str = ".ratchet-staging";
/// Directory names inside an experiment that are not runs.
const RESERVED_EXPERIMENT_DIRS: [&str; 4] = ["tags", "datasets", "traces", "models"];
const STAGE_DELETED: &str = "Deleted_Internal";
/// Version-listing cache ([`crate::version_cache`]), invalidated by `GENERATION` and the
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
    /// `models/` and the Default experiment `0`, as MLflow expects.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let root = std::path::absolute(&root).map_err(|e| RegistryError::io(&root, e))?;
        if root.exists() && !root.is_dir() {
            return Err(RegistryError::InvalidArgument(format!(
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
        Ok(store)
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
        names::validate_model_name(name)?;
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
        let map = yaml::parse(&text).map_err(|e| RegistryError::corrupt(&meta_path, e))?;
        let field = |key: &str| {
            map.str(key)
                .map(str::to_string)
                .or_else(|| map.i64(key).map(|v| v.to_string()))
                .ok_or_else(|| RegistryError::corrupt(&meta_path, format!("missing field `{key}`")))
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
        names::validate_id("experiment id", experiment_id)?;
        let dir = self.root.join(experiment_id);
        match self.read_experiment(&dir)? {
            Some(exp) if exp.lifecycle_stage == "active" => Ok(dir),
            _ => Err(RegistryError::NotFound(format!(
                "experiment {experiment_id} in {}",
                self.root.display()
            ))),
        }
    }

    // ---- runs --------------------------------------------------------------------------

    /// The directory of a run, found in whichever experiment holds it.
    fn run_dir(&self, run_id: &str) -> Result<PathBuf> {
        names::validate_id("run id", run_id)?;
        for exp in self.experiment_dirs()? {
            let dir = exp.join(run_id);
            if dir.join(META).is_file() {
                return Ok(dir);
            }
        }
        Err(RegistryError::NotFound(format!(
            "run {run_id} in {}",
            self.root.display()
        )))
    }

    fn read_run_info(&self, dir: &Path) -> Result<Option<RunInfo>> {
        let meta_path = dir.join(META);
        let Some(text) = fsutil::read_optional(&meta_path)? else {
            return Ok(None);
        };
        let map = yaml::parse(&text).map_err(|e| RegistryError::corrupt(&meta_path, e))?;
        let text_field = |key: &str| {
            map.str(key)
                .map(str::to_string)
                .or_else(|| map.i64(key).map(|v| v.to_string()))
        };
        let required = |key: &str| {
            text_field(key)
                .ok_or_else(|| RegistryError::corrupt(&meta_path, format!("missing field `{key}`")))
        };
        let run_id = text_field("run_id")
            .or_else(|| text_field("run_uuid"))
            .ok_or_else(|| RegistryError::corrupt(&meta_path, "missing field `run_id`"))?;
        let status = match map.get("status") {
            None | Some(yaml::Value::Null) => RunStatus::Running,
            Some(value) => value
                .as_i64()
                .and_then(RunStatus::from_code)
                .ok_or_else(|| {
                    RegistryError::corrupt(&meta_path, format!("`status` {value:?} is not 1..=5"))
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
            start_time: map.i64("start_time").ok_or_else(|| {
                RegistryError::corrupt(&meta_path, "missing integer field `start_time`")
            })?,
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
        fsutil::write_atomic(&dir.join(META), meta.as_bytes(), dir, true)
    }

    fn active_run_dir(&self, run_id: &str) -> Result<(PathBuf, RunInfo)> {
        let dir = self.run_dir(run_id)?;
        let info = self
            .read_run_info(&dir)?
            .ok_or_else(|| RegistryError::NotFound(format!("run {run_id}")))?;
        if info.lifecycle_stage != "active" {
            return Err(RegistryError::InvalidArgument(format!(
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
            Err(RegistryError::Unsupported(format!(
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
        names::validate_artifact_path(artifact_path)?;
        let dir = self.run_dir(run_id)?;
        let info = self
            .read_run_info(&dir)?
            .ok_or_else(|| RegistryError::NotFound(format!("run {run_id}")))?;
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

    // ---- registry ----------------------------------------------------------------------

    fn read_registered_model(&self, dir: &Path) -> Result<Option<RegisteredModel>> {
        let meta_path = dir.join(META);
        let Some(text) = fsutil::read_optional(&meta_path)? else {
            return Ok(None);
        };
        let map = yaml::parse(&text).map_err(|e| RegistryError::corrupt(&meta_path, e))?;
        let name = map
            .str("name")
            .ok_or_else(|| RegistryError::corrupt(&meta_path, "missing field `name`"))?
            .to_string();
        Ok(Some(RegisteredModel {
            creation_timestamp: map.i64("creation_timestamp"),
            last_updated_timestamp: map.i64("last_updated_timestamp"),
            description: map.str("description").map(str::to_string),
            tags: read_key_files(&dir.join("tags"))?,
            aliases: read_aliases(&dir.join("aliases"))?,
            name,
        }))
    }

    fn registered_model_meta(model: &RegisteredModel) -> String {
        yaml::Writer::new()
            .opt_int("creation_timestamp", model.creation_timestamp)
            .opt_str("description", model.description.as_deref())
            .opt_int("last_updated_timestamp", model.last_updated_timestamp)
            .str("name", &model.name)
            .finish()
    }

    fn existing_model_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.model_dir(name)?;
        if !dir.join(META).is_file() {
            return Err(RegistryError::NotFound(format!(
                "registered model {name:?}"
            )));
        }
        Ok(dir)
    }

    /// Runs `change` on a model under the meta lock, then stamps the model's
    /// `last_updated_timestamp` (as MLflow does on every change).
    ///
    /// The version cache stays correct whatever happens: the generation counter is bumped
    /// before the change (so a writer killed mid-change leaves a cache that no longer
    /// matches and is rebuilt by the next reader) and after it; when the cache was valid
    /// before, only the `affected` version is re-read into it.
    fn change_model<T>(
        &self,
        dir: &Path,
        change: impl FnOnce() -> Result<T>,
        affected: impl FnOnce(&T) -> Option<u64>,
    ) -> Result<T> {
        let _lock = fsutil::lock_file(&dir.join(META_LOCK))?;
        let cache = Self::valid_cache(dir)?;
        self.bump_generation(dir)?;
        let result = change();
        // Stamp and bump even on failure: part of the change may have landed.
        let stamped = self.touch_model(dir);
        self.bump_generation(dir)?;
        let value = result?;
        stamped?;
        if let Some(mut cache) = cache {
            if let Some(number) = affected(&value) {
                cache.versions.retain(|v| v.version != number);
                if let Some((stored, false)) = self.read_version(dir, number)? {
                    let at = cache.versions.partition_point(|v| v.version < number);
                    cache.versions.insert(at, stored);
                }
            }
            cache.token = Self::cache_token(dir)?;
            Self::write_cache(dir, &cache);
        }
        Ok(value)
    }

    /// The version cache if it describes the model as it is now.
    fn valid_cache(dir: &Path) -> Result<Option<VersionCache>> {
        let (token, bytes) = Self::read_cache(dir)?;
        Ok(bytes
            .as_deref()
            .and_then(Decoded::decode)
            .filter(|c| c.token == token)
            .map(|c| VersionCache {
                versions: c.into_versions(),
                token,
            }))
    }

    /// The current cache token and the cache file's bytes, if any (valid when they decode
    /// and carry that token).
    fn read_cache(dir: &Path) -> Result<(String, Option<Vec<u8>>)> {
        let token = Self::cache_token(dir)?;
        Ok((token, fs::read(dir.join(VERSION_CACHE)).ok()))
    }

    fn write_cache(dir: &Path, cache: &VersionCache) {
        let bytes = version_cache::encode(&cache.token, &cache.versions);
        // A cache that cannot be written only costs speed.
        let _ = fsutil::write_atomic(&dir.join(VERSION_CACHE), &bytes, dir, false);
    }

    /// Called with the meta lock held.
    fn bump_generation(&self, dir: &Path) -> Result<()> {
        let path = dir.join(GENERATION);
        let current: u64 = fsutil::read_optional(&path)?
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        fsutil::write_atomic(&path, (current + 1).to_string().as_bytes(), dir, false)
    }

    /// Called with the meta lock held.
    fn touch_model(&self, dir: &Path) -> Result<()> {
        let Some(mut model) = self.read_registered_model(dir)? else {
            return Err(RegistryError::NotFound(format!(
                "registered model at {}",
                dir.display()
            )));
        };
        model.last_updated_timestamp = Some(now_ms());
        let meta = Self::registered_model_meta(&model);
        // Not fsynced: a timestamp lost to a power cut leaves the older, valid file.
        fsutil::write_atomic(&dir.join(META), meta.as_bytes(), dir, false)
    }

    fn version_dir(model_dir: &Path, version: u64) -> PathBuf {
        model_dir.join(format!("version-{version}"))
    }

    /// Version numbers of every `version-N` directory, deleted ones included (numbers are
    /// never reused).
    fn version_numbers(model_dir: &Path) -> Result<Vec<u64>> {
        let mut numbers: Vec<u64> = list_dir_names(model_dir)?
            .iter()
            .filter_map(|n| n.strip_prefix("version-")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Reads a version; `None` when its directory or `meta.yaml` is missing. Deleted
    /// versions are returned with `status == "Deleted_Internal"` marked in `stage`.
    fn read_version(
        &self,
        model_dir: &Path,
        version: u64,
    ) -> Result<Option<(StoredVersion, bool)>> {
        let dir = Self::version_dir(model_dir, version);
        let meta_path = dir.join(META);
        let Some(text) = fsutil::read_optional(&meta_path)? else {
            return Ok(None);
        };
        let map = yaml::parse(&text).map_err(|e| RegistryError::corrupt(&meta_path, e))?;
        let missing =
            |key: &str| RegistryError::corrupt(&meta_path, format!("missing field `{key}`"));
        let recorded = map.i64("version").ok_or_else(|| missing("version"))?;
        if recorded != version as i64 {
            return Err(RegistryError::corrupt(
                &meta_path,
                format!("`version: {recorded}` does not match the directory version-{version}"),
            ));
        }
        let creation_timestamp = map
            .i64("creation_timestamp")
            .ok_or_else(|| missing("creation_timestamp"))?;
        let deleted = map.str("current_stage") == Some(STAGE_DELETED);
        Ok(Some((
            StoredVersion {
                name: map.str("name").ok_or_else(|| missing("name"))?.to_string(),
                version,
                creation_timestamp,
                last_updated_timestamp: map
                    .i64("last_updated_timestamp")
                    .unwrap_or(creation_timestamp),
                source: map
                    .str("source")
                    .ok_or_else(|| missing("source"))?
                    .to_string(),
                run_id: map
                    .str("run_id")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                description: map.str("description").map(str::to_string),
                status: map.str("status").unwrap_or("READY").to_string(),
                tags: read_key_files(&dir.join("tags"))?,
                aliases: Vec::new(),
            },
            deleted,
        )))
    }

    fn version_meta(version: &StoredVersion, stage: &str) -> String {
        yaml::Writer::new()
            .int("creation_timestamp", version.creation_timestamp)
            .str("current_stage", stage)
            .opt_str("description", version.description.as_deref())
            .int("last_updated_timestamp", version.last_updated_timestamp)
            .str("name", &version.name)
            .opt_str("run_id", version.run_id.as_deref())
            .null("run_link")
            .str("source", &version.source)
            .str("status", &version.status)
            .null("status_message")
            .str("storage_location", &version.source)
            .null("user_id")
            .int("version", version.version as i64)
            .finish()
    }

    fn live_version(&self, model_dir: &Path, name: &str, version: u64) -> Result<StoredVersion> {
        match self.read_version(model_dir, version)? {
            Some((mut stored, false)) => {
                let aliases = read_aliases(&model_dir.join("aliases"))?;
                stored.aliases = aliases_of(&aliases, version);
                Ok(stored)
            }
            _ => Err(RegistryError::NotFound(format!(
                "model version {name} v{version}"
            ))),
        }
    }

    /// Cache token: everything that changes when a model's versions or their tags change.
    fn cache_token(model_dir: &Path) -> Result<String> {
        let generation = fsutil::read_optional(&model_dir.join(GENERATION))?.unwrap_or_default();
        let meta_path = model_dir.join(META);
        let meta = fsutil::read_optional(&meta_path)?.unwrap_or_default();
        let stamp = fs::metadata(&meta_path)
            .ok()
            .and_then(|m| {
                let modified = m
                    .modified()
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?;
                Some(format!("{}:{}", modified.as_nanos(), m.len()))
            })
            .unwrap_or_default();
        Ok(format!("{generation}|{stamp}|{meta}"))
    }

    fn scan_versions(&self, model_dir: &Path, numbers: &[u64]) -> Result<Vec<StoredVersion>> {
        let mut versions = Vec::with_capacity(numbers.len());
        for &number in numbers {
            // A directory without meta.yaml is not a version (MLflow would fail on it; we
            // never create one, but a foreign writer might be mid-way).
            if let Some((stored, false)) = self.read_version(model_dir, number)? {
                versions.push(stored);
            }
        }
        Ok(versions)
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

struct VersionCache {
    token: String,
    versions: Vec<StoredVersion>,
}

impl TrackingStore for FileStore {
    fn tracking_uri(&self) -> String {
        file_uri(&self.root)
    }

    fn get_or_create_experiment(&self, name: &str) -> Result<Experiment> {
        names::validate_experiment_name(name)?;
        let find = || -> Result<Option<Experiment>> {
            Ok(self
                .list_experiments()?
                .into_iter()
                .find(|e| e.name == name))
        };
        if let Some(exp) = find()? {
            return Ok(exp);
        }
        // Name uniqueness is check-then-create; serialise it among Ratchet processes.
        let _lock = fsutil::lock_file(&self.root.join(EXPERIMENTS_LOCK))?;
        if let Some(exp) = find()? {
            return Ok(exp);
        }
        let mut trash_names = list_dir_names(&self.root.join(TRASH))?;
        for trashed in &trash_names {
            if let Some(Experiment {
                name: trashed_name, ..
            }) = self.read_experiment(&self.root.join(TRASH).join(trashed))?
                && trashed_name == name
            {
                return Err(RegistryError::AlreadyExists(format!(
                    "experiment {name:?} (deleted, in {}); restore it or pick another name",
                    self.root.join(TRASH).join(trashed).display()
                )));
            }
        }
        trash_names.extend(list_dir_names(&self.root)?);
        let mut next = trash_names
            .iter()
            .filter_map(|n| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let staging = fsutil::temp_path(&self.staging_root(), "experiment");
        fsutil::create_dir_all(&staging.join("tags"))?;
        loop {
            let id = next.to_string();
            let meta = self.experiment_meta(&id, name, now_ms());
            fsutil::write_atomic(&staging.join(META), meta.as_bytes(), &staging, true)?;
            let target = self.root.join(&id);
            match fs::rename(&staging, &target) {
                Ok(()) => {
                    fsutil::sync_dir(&self.root)?;
                    return self.get_experiment(&id);
                }
                Err(e) if fsutil::is_target_exists(&e, &target) => next += 1,
                Err(e) => {
                    let _ = fsutil::remove_tree(&staging);
                    return Err(RegistryError::io(&target, e));
                }
            }
        }
    }

    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let dir = self.experiment_dir(experiment_id)?;
        self.read_experiment(&dir)?
            .ok_or_else(|| RegistryError::NotFound(format!("experiment {experiment_id}")))
    }

    fn list_experiments(&self) -> Result<Vec<Experiment>> {
        let mut out = Vec::new();
        for dir in self.experiment_dirs()? {
            if let Some(exp) = self.read_experiment(&dir)?
                && exp.lifecycle_stage == "active"
            {
                out.push(exp);
            }
        }
        out.sort_by(|a, b| {
            let key = |e: &Experiment| {
                (
                    e.experiment_id.parse::<u64>().unwrap_or(u64::MAX),
                    e.experiment_id.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()> {
        names::validate_key("experiment tag key", key)?;
        check_value_len("experiment tag", key, value, 20_000)?;
        let dir = self.experiment_dir(experiment_id)?;
        fsutil::write_atomic(&dir.join("tags").join(key), value.as_bytes(), &dir, false)
    }

    fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(String, String)],
    ) -> Result<RunInfo> {
        let exp_dir = self.experiment_dir(experiment_id)?;
        for (key, value) in tags {
            names::validate_key("run tag key", key)?;
            check_value_len("run tag", key, value, MAX_RUN_TAG_VALUE)?;
        }
        check_value_len("run tag", "mlflow.runName", run_name, MAX_RUN_TAG_VALUE)?;
        let run_id = fsutil::random_hex(16);
        let dir = exp_dir.join(&run_id);
        for sub in ["metrics", "params", "tags", "artifacts"] {
            fsutil::create_dir_all(&dir.join(sub))?;
        }
        let user = current_user();
        let mut all_tags: Vec<(String, String)> = vec![
            ("mlflow.runName".into(), run_name.into()),
            ("mlflow.user".into(), user.clone()),
        ];
        all_tags.extend(tags.iter().cloned());
        for (key, value) in &all_tags {
            let path = dir.join("tags").join(key);
            if let Some(parent) = path.parent() {
                fsutil::create_dir_all(parent)?;
            }
            fs::write(&path, value).map_err(|e| RegistryError::io(&path, e))?;
        }
        let info = RunInfo {
            artifact_uri: file_uri(&dir.join("artifacts")),
            end_time: None,
            experiment_id: experiment_id.to_string(),
            lifecycle_stage: "active".into(),
            run_name: run_name.to_string(),
            start_time: now_ms(),
            status: RunStatus::Running,
            user_id: user,
            run_id,
        };
        // meta.yaml last: until it exists, MLflow and we skip the directory.
        self.write_run_meta(&dir, &info)?;
        Ok(info)
    }

    fn get_run(&self, run_id: &str) -> Result<Run> {
        let dir = self.run_dir(run_id)?;
        let info = self
            .read_run_info(&dir)?
            .ok_or_else(|| RegistryError::NotFound(format!("run {run_id}")))?;
        let mut metrics = BTreeMap::new();
        for key in read_key_files(&dir.join("metrics"))?.into_keys() {
            let history = read_metric_file(&dir.join("metrics").join(&key), &key)?;
            let latest = history.into_iter().max_by(|a, b| {
                (a.step, a.timestamp)
                    .cmp(&(b.step, b.timestamp))
                    .then(a.value.total_cmp(&b.value))
            });
            if let Some(latest) = latest {
                metrics.insert(key, latest);
            }
        }
        Ok(Run {
            params: read_key_files(&dir.join("params"))?,
            tags: read_key_files(&dir.join("tags"))?,
            metrics,
            info,
        })
    }

    fn list_runs(&self, experiment_id: &str) -> Result<Vec<RunInfo>> {
        let exp_dir = self.experiment_dir(experiment_id)?;
        let mut runs = Vec::new();
        for name in list_dir_names(&exp_dir)? {
            if RESERVED_EXPERIMENT_DIRS.contains(&name.as_str()) || fsutil::is_internal_name(&name)
            {
                continue;
            }
            let dir = exp_dir.join(&name);
            if !dir.is_dir() {
                continue;
            }
            if let Some(info) = self.read_run_info(&dir)?
                && info.lifecycle_stage == "active"
                && info.run_id == name
            {
                runs.push(info);
            }
        }
        runs.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then(a.run_id.cmp(&b.run_id))
        });
        Ok(runs)
    }

    fn log_params(&self, run_id: &str, params: &[(String, String)]) -> Result<()> {
        let (dir, _) = self.active_run_dir(run_id)?;
        let mut seen = BTreeMap::new();
        for (key, value) in params {
            names::validate_key("param key", key)?;
            check_value_len("param", key, value, MAX_PARAM_VALUE)?;
            if let Some(previous) = seen.insert(key.as_str(), value.as_str())
                && previous != value
            {
                return Err(RegistryError::InvalidArgument(format!(
                    "param {key:?} given twice with different values ({previous:?}, {value:?})"
                )));
            }
        }
        for (key, value) in seen {
            let path = dir.join("params").join(key);
            match fsutil::read_optional(&path)? {
                Some(existing) if existing == value => {}
                Some(existing) => {
                    return Err(RegistryError::InvalidArgument(format!(
                        "run {run_id}: param {key:?} is already {existing:?}; params are \
                         immutable (log a new run to change {value:?})"
                    )));
                }
                None => fsutil::write_atomic(&path, value.as_bytes(), &dir, false)?,
            }
        }
        Ok(())
    }

    fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        let (dir, _) = self.active_run_dir(run_id)?;
        let mut by_key: BTreeMap<&str, String> = BTreeMap::new();
        for metric in metrics {
            names::validate_key("metric key", &metric.key)?;
            // `{:?}` prints f64 so that Python's float() reads back the same value
            // (1.0, 1e-7, NaN, inf).
            let line = format!("{} {:?} {}\n", metric.timestamp, metric.value, metric.step);
            by_key
                .entry(metric.key.as_str())
                .or_default()
                .push_str(&line);
        }
        for (key, lines) in by_key {
            let path = dir.join("metrics").join(key);
            if let Some(parent) = path.parent() {
                fsutil::create_dir_all(parent)?;
            }
            // One O_APPEND write per key: concurrent appenders never interleave lines.
            use std::io::Write;
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(lines.as_bytes()))
                .map_err(|e| RegistryError::io(&path, e))?;
        }
        Ok(())
    }

    fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        names::validate_key("metric key", key)?;
        let dir = self.run_dir(run_id)?;
        let path = dir.join("metrics").join(key);
        if !path.is_file() {
            return Err(RegistryError::NotFound(format!(
                "metric {key:?} of run {run_id}"
            )));
        }
        read_metric_file(&path, key)
    }

    fn set_run_tags(&self, run_id: &str, tags: &[(String, String)]) -> Result<()> {
        let (dir, mut info) = self.active_run_dir(run_id)?;
        for (key, value) in tags {
            names::validate_key("run tag key", key)?;
            check_value_len("run tag", key, value, MAX_RUN_TAG_VALUE)?;
        }
        for (key, value) in tags {
            fsutil::write_atomic(&dir.join("tags").join(key), value.as_bytes(), &dir, false)?;
            if key == "mlflow.runName" {
                // MLflow keeps meta.yaml's run_name in sync with the tag.
                info.run_name = value.clone();
                self.write_run_meta(&dir, &info)?;
            }
        }
        Ok(())
    }

    fn set_run_status(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<()> {
        let (dir, mut info) = self.active_run_dir(run_id)?;
        info.status = status;
        if end_time_ms.is_some() {
            info.end_time = end_time_ms;
        }
        self.write_run_meta(&dir, &info)
    }

    fn upload_artifacts(&self, run_id: &str, local: &Path, artifact_path: &str) -> Result<()> {
        let (_, target, temp_dir) = self.artifact_target(run_id, artifact_path)?;
        let meta = fs::metadata(local).map_err(|e| RegistryError::io(local, e))?;
        if meta.is_file() {
            let name = local.file_name().ok_or_else(|| {
                RegistryError::InvalidArgument(format!("{} has no file name", local.display()))
            })?;
            return place_copy(local, &target.join(name), &temp_dir);
        }
        if !target.exists() {
            // The whole directory appears at once.
            if place_copy(local, &target, &temp_dir).is_ok() {
                return Ok(());
            }
        }
        // Merging into an existing directory: each file appears atomically.
        for file in walk_files(local)? {
            let relative = file.strip_prefix(local).expect("walk stays below its root");
            place_copy(&file, &target.join(relative), &temp_dir)?;
        }
        Ok(())
    }

    fn upload_artifacts_owned(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<()> {
        let (_, target, _) = self.artifact_target(run_id, artifact_path)?;
        if local.is_dir() && !target.exists() {
            if let Some(parent) = target.parent() {
                fsutil::create_dir_all(parent)?;
            }
            // Same filesystem (the caller built it in scratch_dir): a rename, no copy.
            if fs::rename(local, &target).is_ok() {
                if let Some(parent) = target.parent() {
                    fsutil::sync_dir(parent)?;
                }
                return Ok(());
            }
        }
        self.upload_artifacts(run_id, local, artifact_path)?;
        fsutil::remove_tree(local)
    }

    fn scratch_dir(&self) -> Result<PathBuf> {
        let dir = self.staging_root();
        fsutil::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn list_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<Vec<ArtifactEntry>> {
        let (root, target, _) = self.artifact_target(run_id, artifact_path)?;
        let mut out = Vec::new();
        if !target.exists() {
            return Err(RegistryError::NotFound(format!(
                "artifact {artifact_path:?} of run {run_id}"
            )));
        }
        let mut stack = vec![target];
        while let Some(dir) = stack.pop() {
            if !dir.is_dir() {
                let size = fs::metadata(&dir)
                    .map_err(|e| RegistryError::io(&dir, e))?
                    .len();
                out.push(ArtifactEntry {
                    path: relative_slash(&root, &dir),
                    is_dir: false,
                    size: Some(size),
                });
                continue;
            }
            for name in list_dir_names(&dir)? {
                let path = dir.join(&name);
                if path.is_dir() {
                    out.push(ArtifactEntry {
                        path: relative_slash(&root, &path),
                        is_dir: true,
                        size: None,
                    });
                }
                stack.push(path);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn download_artifacts(&self, run_id: &str, artifact_path: &str, dest: &Path) -> Result<()> {
        let (_, source, _) = self.artifact_target(run_id, artifact_path)?;
        if !source.exists() {
            return Err(RegistryError::NotFound(format!(
                "artifact {artifact_path:?} of run {run_id}"
            )));
        }
        if source.is_file() {
            fsutil::create_dir_all(dest)?;
            let name = source.file_name().expect("a file has a name");
            return fsutil::copy_tree(&source, &dest.join(name), false);
        }
        fsutil::copy_tree(&source, dest, false)
    }

    fn delete_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<()> {
        if artifact_path.trim_matches('/').is_empty() {
            return Err(RegistryError::InvalidArgument(
                "refusing to delete a run's whole artifact root; name a path inside it".into(),
            ));
        }
        let (_, target, temp_dir) = self.artifact_target(run_id, artifact_path)?;
        if !target.exists() {
            return Err(RegistryError::NotFound(format!(
                "artifact {artifact_path:?} of run {run_id}"
            )));
        }
        // Disappear in one step, then free the space.
        let doomed = fsutil::temp_path(&temp_dir, "deleted");
        fs::rename(&target, &doomed).map_err(|e| RegistryError::io(&target, e))?;
        fsutil::remove_tree(&doomed)
    }

    fn local_artifact_path(&self, run_id: &str, artifact_path: &str) -> Result<Option<PathBuf>> {
        let (_, target, _) = self.artifact_target(run_id, artifact_path)?;
        Ok(target.exists().then_some(target))
    }

    fn remove_stale_temporaries(&self, max_age: std::time::Duration) -> Result<usize> {
        FileStore::remove_stale_temporaries(self, max_age)
    }

    fn create_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let dir = self.model_dir(name)?;
        if let Some(model) = self.read_registered_model(&dir)? {
            return Ok(model);
        }
        let now = now_ms();
        let model = RegisteredModel {
            name: name.to_string(),
            creation_timestamp: Some(now),
            last_updated_timestamp: Some(now),
            description: None,
            tags: BTreeMap::new(),
            aliases: BTreeMap::new(),
        };
        let staging = fsutil::temp_path(&self.staging_root(), "model");
        fsutil::create_dir_all(&staging)?;
        let meta = Self::registered_model_meta(&model);
        fsutil::write_new_file(&staging.join(META), meta.as_bytes(), true)?;
        fsutil::sync_dir(&staging)?;
        let result = fs::rename(&staging, &dir);
        match result {
            Ok(()) => {
                fsutil::sync_dir(&self.models_dir())?;
                Ok(model)
            }
            Err(e) => {
                let _ = fsutil::remove_tree(&staging);
                if fsutil::is_target_exists(&e, &dir) {
                    // Created concurrently by another writer: wait for its meta.yaml.
                    for _ in 0..50 {
                        if let Some(model) = self.read_registered_model(&dir)? {
                            return Ok(model);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    return Err(RegistryError::corrupt(
                        &dir,
                        "registered model directory exists without meta.yaml; another writer \
                         may have crashed while creating it (remove the directory if it is empty)",
                    ));
                }
                Err(RegistryError::io(&dir, e))
            }
        }
    }

    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let dir = self.model_dir(name)?;
        self.read_registered_model(&dir)?
            .ok_or_else(|| RegistryError::NotFound(format!("registered model {name:?}")))
    }

    fn list_registered_models(&self) -> Result<Vec<RegisteredModel>> {
        let mut out = Vec::new();
        for name in list_dir_names(&self.models_dir())? {
            if fsutil::is_internal_name(&name) {
                continue;
            }
            if let Some(model) = self.read_registered_model(&self.models_dir().join(&name))? {
                out.push(model);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        names::validate_key("registered model tag key", key)?;
        check_value_len("registered model tag", key, value, MAX_REGISTRY_TAG_VALUE)?;
        let dir = self.existing_model_dir(name)?;
        self.change_model(
            &dir,
            || fsutil::write_atomic(&dir.join("tags").join(key), value.as_bytes(), &dir, false),
            |_| None,
        )
    }

    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        names::validate_key("registered model tag key", key)?;
        let dir = self.existing_model_dir(name)?;
        let path = dir.join("tags").join(key);
        if !path.is_file() {
            return Err(RegistryError::NotFound(format!(
                "tag {key:?} of registered model {name:?}"
            )));
        }
        self.change_model(
            &dir,
            || fs::remove_file(&path).map_err(|e| RegistryError::io(&path, e)),
            |_| None,
        )
    }

    fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[(String, String)],
        description: Option<&str>,
    ) -> Result<StoredVersion> {
        let model_dir = self.existing_model_dir(name)?;
        names::validate_id("run id", run_id)?;
        for (key, value) in tags {
            names::validate_key("model version tag key", key)?;
            check_value_len("model version tag", key, value, MAX_REGISTRY_TAG_VALUE)?;
        }
        // Assemble the complete version (meta.yaml + tags) under a name MLflow ignores.
        let staging = fsutil::temp_path(&model_dir, "version");
        fsutil::create_dir_all(&staging.join("tags"))?;
        let built = (|| -> Result<StoredVersion> {
            for (key, value) in tags {
                let path = staging.join("tags").join(key);
                if let Some(parent) = path.parent() {
                    fsutil::create_dir_all(parent)?;
                }
                fsutil::write_new_file(&path, value.as_bytes(), false).map_err(|e| match e {
                    RegistryError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        RegistryError::InvalidArgument(format!(
                            "model version tag {key:?} given twice"
                        ))
                    }
                    other => other,
                })?;
            }
            self.change_model(
                &model_dir,
                || {
                    let mut next = Self::version_numbers(&model_dir)?
                        .last()
                        .copied()
                        .unwrap_or(0)
                        + 1;
                    loop {
                        let now = now_ms();
                        let version = StoredVersion {
                            name: name.to_string(),
                            version: next,
                            creation_timestamp: now,
                            last_updated_timestamp: now,
                            source: source.to_string(),
                            run_id: Some(run_id.to_string()),
                            description: description.map(str::to_string),
                            status: "READY".into(),
                            tags: tags.iter().cloned().collect(),
                            aliases: Vec::new(),
                        };
                        let meta = Self::version_meta(&version, "None");
                        fsutil::write_atomic(&staging.join(META), meta.as_bytes(), &staging, true)?;
                        fsutil::sync_dir(&staging)?;
                        // The claim: renaming onto an existing (non-empty) version-N fails.
                        let target = Self::version_dir(&model_dir, next);
                        match fs::rename(&staging, &target) {
                            Ok(()) => {
                                return Ok(version);
                            }
                            Err(e) if fsutil::is_target_exists(&e, &target) => next += 1,
                            Err(e) => return Err(RegistryError::io(&target, e)),
                        }
                    }
                },
                |v: &StoredVersion| Some(v.version),
            )
        })();
        if built.is_err() {
            let _ = fsutil::remove_tree(&staging);
        }
        built
    }

    fn get_model_version(&self, name: &str, version: u64) -> Result<StoredVersion> {
        let model_dir = self.existing_model_dir(name)?;
        self.live_version(&model_dir, name, version)
    }

    /// Live versions, ascending. Served from `models/<name>/.ratchet-versions.bin` when the
    /// model is unchanged since the cache was written: same generation counter (bumped by
    /// Ratchet before and after each change) and same `meta.yaml` (MLflow rewrites it on
    /// every change to the model, its versions, tags or aliases). Otherwise every version is
    /// read and the cache rewritten. Only hand edits inside `version-N/` go unnoticed until
    /// the model's next change.
    fn list_model_versions(&self, name: &str) -> Result<Vec<StoredVersion>> {
        let model_dir = self.existing_model_dir(name)?;
        let mut versions = match Self::valid_cache(&model_dir)? {
            Some(cache) => cache.versions,
            None => {
                // Token first: a change during the scan leaves a cache that won't match.
                let token = Self::cache_token(&model_dir)?;
                let numbers = Self::version_numbers(&model_dir)?;
                let versions = self.scan_versions(&model_dir, &numbers)?;
                let cache = VersionCache { token, versions };
                Self::write_cache(&model_dir, &cache);
                cache.versions
            }
        };
        let aliases = read_aliases(&model_dir.join("aliases"))?;
        for version in &mut versions {
            version.aliases = aliases_of(&aliases, version.version);
        }
        Ok(versions)
    }

    /// Served from the cache in place when it is valid (see
    /// [`FileStore::list_model_versions`]), else from the rebuilt listing.
    fn visit_model_versions(
        &self,
        name: &str,
        visit: &mut dyn FnMut(VersionView<'_>),
    ) -> Result<()> {
        let model_dir = self.existing_model_dir(name)?;
        let (token, bytes) = Self::read_cache(&model_dir)?;
        let Some(cache) = bytes
            .as_deref()
            .and_then(Decoded::decode)
            .filter(|c| c.token == token)
        else {
            for version in self.list_model_versions(name)? {
                visit(version.view(&version.tag_pairs()));
            }
            return Ok(());
        };
        let mut by_version: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (alias, version) in read_aliases(&model_dir.join("aliases"))? {
            by_version.entry(version).or_default().push(alias);
        }
        cache.visit(
            |version| by_version.get(&version).map_or(&[], Vec::as_slice),
            visit,
        );
        Ok(())
    }

    fn delete_model_version(&self, name: &str, version: u64) -> Result<()> {
        let model_dir = self.existing_model_dir(name)?;
        let mut stored = self.live_version(&model_dir, name, version)?;
        self.change_model(
            &model_dir,
            || {
                stored.last_updated_timestamp = now_ms();
                let dir = Self::version_dir(&model_dir, version);
                let meta = Self::version_meta(&stored, STAGE_DELETED);
                fsutil::write_atomic(&dir.join(META), meta.as_bytes(), &dir, true)?;
                for alias in &stored.aliases {
                    fsutil::remove_tree(&model_dir.join("aliases").join(alias))?;
                }
                Ok(())
            },
            |_| Some(version),
        )
    }

    fn set_model_version_tag(
        &self,
        name: &str,
        version: u64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        names::validate_key("model version tag key", key)?;
        check_value_len("model version tag", key, value, MAX_REGISTRY_TAG_VALUE)?;
        let model_dir = self.existing_model_dir(name)?;
        self.live_version(&model_dir, name, version)?;
        let dir = Self::version_dir(&model_dir, version);
        self.change_model(
            &model_dir,
            || fsutil::write_atomic(&dir.join("tags").join(key), value.as_bytes(), &dir, false),
            |_| Some(version),
        )
    }

    fn delete_model_version_tag(&self, name: &str, version: u64, key: &str) -> Result<()> {
        names::validate_key("model version tag key", key)?;
        let model_dir = self.existing_model_dir(name)?;
        self.live_version(&model_dir, name, version)?;
        let path = Self::version_dir(&model_dir, version)
            .join("tags")
            .join(key);
        if !path.is_file() {
            return Err(RegistryError::NotFound(format!(
                "tag {key:?} of model version {name} v{version}"
            )));
        }
        self.change_model(
            &model_dir,
            || fs::remove_file(&path).map_err(|e| RegistryError::io(&path, e)),
            |_| Some(version),
        )
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        names::validate_alias(alias)?;
        let model_dir = self.existing_model_dir(name)?;
        self.change_model(
            &model_dir,
            || {
                // Checked under the lock: a concurrent delete cannot slip in between.
                self.live_version(&model_dir, name, version)?;
                // No trailing newline: MLflow reads the file content as the version string.
                fsutil::write_atomic(
                    &model_dir.join("aliases").join(alias),
                    version.to_string().as_bytes(),
                    &model_dir,
                    true,
                )
            },
            |_| None,
        )
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        names::validate_alias(alias)?;
        let model_dir = self.existing_model_dir(name)?;
        let path = model_dir.join("aliases").join(alias);
        self.change_model(
            &model_dir,
            || match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RegistryError::NotFound(
                    format!("alias {alias:?} of registered model {name:?}"),
                )),
                Err(e) => Err(RegistryError::io(&path, e)),
            },
            |_| None,
        )
    }

    fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<StoredVersion> {
        names::validate_alias(alias)?;
        let model_dir = self.existing_model_dir(name)?;
        let aliases = read_aliases(&model_dir.join("aliases"))?;
        let version = aliases.get(alias).ok_or_else(|| {
            RegistryError::NotFound(format!("alias {alias:?} of registered model {name:?}"))
        })?;
        self.live_version(&model_dir, name, *version)
    }

    fn lock_model(&self, name: &str) -> Result<ModelLock> {
        let model_dir = self.existing_model_dir(name)?;
        let file = fsutil::lock_file(&model_dir.join(MODEL_LOCK))?;
        Ok(ModelLock::holding(Box::new(file)))
    }
}

// ---- helpers ---------------------------------------------------------------------------

/// Copies `from` (file or directory) to `to` through a temp in `temp_dir`, so `to` appears
/// complete or not at all. Fails if `to` is an existing non-empty directory.
fn place_copy(from: &Path, to: &Path, temp_dir: &Path) -> Result<()> {
    let temp = fsutil::temp_path(temp_dir, "upload");
    let copied = fsutil::copy_tree(from, &temp, true).and_then(|()| {
        if let Some(parent) = to.parent() {
            fsutil::create_dir_all(parent)?;
        }
        fs::rename(&temp, to).map_err(|e| RegistryError::io(to, e))
    });
    if copied.is_err() {
        let _ = fsutil::remove_tree(&temp);
    }
    copied
}

fn walk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for name in list_dir_names(&dir)? {
            let path = dir.join(name);
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn relative_slash(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Names in a directory (empty when it does not exist), sorted.
fn list_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RegistryError::io(dir, e))?;
        match entry.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(raw) => {
                return Err(RegistryError::corrupt(
                    dir.join(&raw),
                    "file name is not valid UTF-8; MLflow stores need UTF-8 names",
                ));
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Reads a `tags/`, `params/` or `metrics/` directory: every file below it is one key (the
/// path relative to the directory, `/`-joined) whose content is the value.
fn read_key_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for file in walk_files(dir)? {
        let key = relative_slash(dir, &file);
        let value = fsutil::read_optional(&file)?.unwrap_or_default();
        out.insert(key, value);
    }
    Ok(out)
}

fn read_aliases(dir: &Path) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for name in list_dir_names(dir)? {
        let path = dir.join(&name);
        let Some(text) = fsutil::read_optional(&path)? else {
            continue;
        };
        let version = text.parse::<u64>().map_err(|_| {
            RegistryError::corrupt(
                &path,
                format!("alias content {text:?} is not a version number"),
            )
        })?;
        out.insert(name, version);
    }
    Ok(out)
}

fn aliases_of(aliases: &BTreeMap<String, u64>, version: u64) -> Vec<String> {
    aliases
        .iter()
        .filter(|(_, v)| **v == version)
        .map(|(alias, _)| alias.clone())
        .collect()
}

fn read_metric_file(path: &Path, key: &str) -> Result<Vec<Metric>> {
    let text = fsutil::read_optional(path)?.unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let fields: Vec<&str> = line.split(' ').collect();
        let bad =
            |what: &str| RegistryError::corrupt(path, format!("line {}: {what}: {line:?}", i + 1));
        let (timestamp, value, step) = match fields.as_slice() {
            [ts, value] => (*ts, *value, "0"),
            [ts, value, step] | [ts, value, step, _, _] => (*ts, *value, *step),
            _ => return Err(bad("expected `timestamp value step`")),
        };
        out.push(Metric {
            key: key.to_string(),
            timestamp: timestamp
                .parse()
                .map_err(|_| bad("timestamp is not an integer"))?,
            value: parse_python_float(value).ok_or_else(|| bad("value is not a number"))?,
            step: step.parse().map_err(|_| bad("step is not an integer"))?,
        });
    }
    Ok(out)
}

fn parse_python_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

fn check_value_len(kind: &str, key: &str, value: &str, max: usize) -> Result<()> {
    let len = value.chars().count();
    if len > max {
        return Err(RegistryError::InvalidArgument(format!(
            "{kind} {key:?} is {len} characters long; MLflow's limit is {max}"
        )));
    }
    Ok(())
}

/// `file://` URI of an absolute path, percent-encoding what a URI cannot hold verbatim.
pub fn file_uri(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::from("file://");
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The local path a plain path or `file:` URI names, made absolute.
pub fn path_from_uri(uri: &str) -> Result<PathBuf> {
    let path = match uri.strip_prefix("file:") {
        Some(rest) => {
            let rest = match rest.strip_prefix("//") {
                Some(authority_and_path) => {
                    let slash = authority_and_path
                        .find('/')
                        .unwrap_or(authority_and_path.len());
                    let (host, path) = authority_and_path.split_at(slash);
                    if !(host.is_empty() || host == "localhost") {
                        return Err(RegistryError::Unsupported(format!(
                            "tracking URI {uri}: file URIs on another host ({host}) are not supported"
                        )));
                    }
                    path
                }
                None => rest,
            };
            PathBuf::from(percent_decode(rest).ok_or_else(|| {
                RegistryError::InvalidArgument(format!("tracking URI {uri}: bad percent-encoding"))
            })?)
        }
        None => PathBuf::from(uri),
    };
    if path.as_os_str().is_empty() {
        return Err(RegistryError::InvalidArgument(format!(
            "tracking URI {uri:?} names no directory"
        )));
    }
    std::path::absolute(&path).map_err(|e| RegistryError::io(&path, e))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        let path = Path::new("/tmp/my runs/ml%runs");
        let uri = file_uri(path);
        assert_eq!(uri, "file:///tmp/my%20runs/ml%25runs");
        assert_eq!(path_from_uri(&uri).unwrap(), path);
        assert_eq!(path_from_uri("file:///abs/x").unwrap(), Path::new("/abs/x"));
        assert_eq!(
            path_from_uri("file://localhost/abs/x").unwrap(),
            Path::new("/abs/x")
        );
        assert!(path_from_uri("file:rel").unwrap().ends_with("rel"));
        assert!(path_from_uri("file://otherhost/x").is_err());
    }

    #[test]
    fn metric_lines_parse_like_python() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss");
        fs::write(
            &path,
            "1 1.0 0\n2 NaN 1\n3 inf -2\n4 1e-7\n5 -inf 3 ds digest\n",
        )
        .unwrap();
        let points = read_metric_file(&path, "loss").unwrap();
        assert_eq!(points.len(), 5);
        assert!(points[1].value.is_nan());
        assert_eq!(points[2].value, f64::INFINITY);
        assert_eq!(points[2].step, -2);
        assert_eq!(points[3].step, 0);
        fs::write(&path, "1  1.0 0\n").unwrap();
        assert!(
            read_metric_file(&path, "loss")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
