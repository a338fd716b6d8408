//! [`TrackingStore`] for [`FileStore`]: every operation on the `mlruns/` tree.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::files::{check_value_len, list_dir_names, read_key_files, read_metric_file, write_tag};
use super::models::{VersionCache, aliases_of, read_aliases};
use super::version_cache::Decoded;
use super::{
    EXPERIMENTS_LOCK, FileStore, MAX_PARAM_VALUE, MAX_REGISTRY_TAG_VALUE, MAX_RUN_TAG_VALUE, META,
    MODEL_LOCK, RESERVED_EXPERIMENT_DIRS, STAGE_DELETED, TRASH,
};
use crate::error::{Error, Result};
use crate::store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, VersionView, current_user, now_ms,
};
use crate::uri::file_uri;
use ratchet_fsutil as fsutil;

impl TrackingStore for FileStore {
    fn tracking_uri(&self) -> String {
        file_uri(&self.root)
    }

    fn get_or_create_experiment(&self, name: &str) -> Result<Experiment> {
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
                return Err(Error::AlreadyExists(format!(
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
                    return Err(Error::io(&target, e));
                }
            }
        }
    }

    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let dir = self.experiment_dir(experiment_id)?;
        self.read_experiment(&dir)?
            .ok_or_else(|| Error::NotFound(format!("experiment {experiment_id}")))
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
        check_value_len("experiment tag", key, value, 20_000)?;
        let dir = self.experiment_dir(experiment_id)?;
        write_tag(&dir, key, value)
    }

    fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(String, String)],
    ) -> Result<RunInfo> {
        let exp_dir = self.experiment_dir(experiment_id)?;
        for (key, value) in tags {
            check_value_len("run tag", key, value, MAX_RUN_TAG_VALUE)?;
        }
        check_value_len("run tag", "mlflow.runName", run_name, MAX_RUN_TAG_VALUE)?;
        // A uuid4 in hex, as MLflow's own run ids.
        let run_id = Uuid::new_v4().simple().to_string();
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
            fs::write(&path, value).map_err(|e| Error::io(&path, e))?;
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
            .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?;
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
            check_value_len("param", key, value, MAX_PARAM_VALUE)?;
            if let Some(previous) = seen.insert(key.as_str(), value.as_str())
                && previous != value
            {
                return Err(Error::InvalidArgument(format!(
                    "param {key:?} given twice with different values ({previous:?}, {value:?})"
                )));
            }
        }
        for (key, value) in seen {
            let path = dir.join("params").join(key);
            match fsutil::read_optional(&path)? {
                Some(existing) if existing == value => {}
                Some(existing) => {
                    return Err(Error::InvalidArgument(format!(
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
                .map_err(|e| Error::io(&path, e))?;
        }
        Ok(())
    }

    fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        let dir = self.run_dir(run_id)?;
        let path = dir.join("metrics").join(key);
        if !path.is_file() {
            return Err(Error::NotFound(format!("metric {key:?} of run {run_id}")));
        }
        read_metric_file(&path, key)
    }

    fn set_run_tags(&self, run_id: &str, tags: &[(String, String)]) -> Result<()> {
        let (dir, mut info) = self.active_run_dir(run_id)?;
        for (key, value) in tags {
            check_value_len("run tag", key, value, MAX_RUN_TAG_VALUE)?;
        }
        for (key, value) in tags {
            write_tag(&dir, key, value)?;
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
        self.copy_into_artifacts(run_id, local, artifact_path)
    }

    fn upload_artifacts_owned(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<()> {
        let (_, target, _) = self.artifact_target(run_id, artifact_path)?;
        if local.is_dir() {
            // Same filesystem (the caller built it in scratch_dir): renames, no copy.
            if fsutil::replace_dir(local, &target)? {
                return Ok(());
            }
        }
        self.upload_artifacts(run_id, local, artifact_path)?;
        Ok(fsutil::remove_tree(local)?)
    }

    /// `upload_artifacts_owned` already swaps a directory in with one rename.
    fn replace_artifact_dir(&self, run_id: &str, local: &Path, artifact_path: &str) -> Result<()> {
        self.upload_artifacts_owned(run_id, local, artifact_path)
    }

    fn current_artifact_dir(&self, run_id: &str, artifact_path: &str) -> Result<Option<String>> {
        Ok(self
            .local_artifact_path(run_id, artifact_path)?
            .map(|_| artifact_path.to_string()))
    }

    fn scratch_dir(&self) -> Result<PathBuf> {
        let dir = self.staging_root();
        fsutil::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn list_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<Vec<ArtifactEntry>> {
        self.artifact_entries(run_id, artifact_path)
    }

    fn download_artifacts(&self, run_id: &str, artifact_path: &str, dest: &Path) -> Result<()> {
        self.copy_out_of_artifacts(run_id, artifact_path, dest)
    }

    fn delete_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<()> {
        self.remove_artifact(run_id, artifact_path)
    }

    fn local_artifact_path(&self, run_id: &str, artifact_path: &str) -> Result<Option<PathBuf>> {
        let (_, target, _) = self.artifact_target(run_id, artifact_path)?;
        fsutil::restore_replaced(&target)?;
        Ok(target.exists().then_some(target))
    }

    fn remove_stale_temporaries(&self, max_age: std::time::Duration) -> Result<usize> {
        FileStore::remove_stale_temporaries(self, max_age)
    }

    fn create_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.add_registered_model(name)
    }

    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let dir = self.model_dir(name)?;
        self.read_registered_model(&dir)?
            .ok_or_else(|| Error::NotFound(format!("registered model {name:?}")))
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
        check_value_len("registered model tag", key, value, MAX_REGISTRY_TAG_VALUE)?;
        let dir = self.existing_model_dir(name)?;
        self.change_model(&dir, || write_tag(&dir, key, value), |_| None)
    }

    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let dir = self.existing_model_dir(name)?;
        let path = dir.join("tags").join(key);
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "tag {key:?} of registered model {name:?}"
            )));
        }
        self.change_model(
            &dir,
            || fs::remove_file(&path).map_err(|e| Error::io(&path, e)),
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
        self.add_version(name, source, run_id, tags, description)
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
        check_value_len("model version tag", key, value, MAX_REGISTRY_TAG_VALUE)?;
        let model_dir = self.existing_model_dir(name)?;
        self.live_version(&model_dir, name, version)?;
        let dir = Self::version_dir(&model_dir, version);
        self.change_model(
            &model_dir,
            || write_tag(&dir, key, value),
            |_| Some(version),
        )
    }

    fn delete_model_version_tag(&self, name: &str, version: u64, key: &str) -> Result<()> {
        let model_dir = self.existing_model_dir(name)?;
        self.live_version(&model_dir, name, version)?;
        let path = Self::version_dir(&model_dir, version)
            .join("tags")
            .join(key);
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "tag {key:?} of model version {name} v{version}"
            )));
        }
        self.change_model(
            &model_dir,
            || fs::remove_file(&path).map_err(|e| Error::io(&path, e)),
            |_| Some(version),
        )
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        let model_dir = self.existing_model_dir(name)?;
        self.change_model(
            &model_dir,
            || {
                // Checked under the lock: a concurrent delete cannot slip in between.
                self.live_version(&model_dir, name, version)?;
                // No trailing newline: MLflow reads the file content as the version string.
                Ok(fsutil::write_atomic(
                    &model_dir.join("aliases").join(alias),
                    version.to_string().as_bytes(),
                    &model_dir,
                    true,
                )?)
            },
            |_| None,
        )
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let model_dir = self.existing_model_dir(name)?;
        let path = model_dir.join("aliases").join(alias);
        self.change_model(
            &model_dir,
            || match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(
                    format!("alias {alias:?} of registered model {name:?}"),
                )),
                Err(e) => Err(Error::io(&path, e)),
            },
            |_| None,
        )
    }

    fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<StoredVersion> {
        let model_dir = self.existing_model_dir(name)?;
        let aliases = read_aliases(&model_dir.join("aliases"))?;
        let version = aliases.get(alias).ok_or_else(|| {
            Error::NotFound(format!("alias {alias:?} of registered model {name:?}"))
        })?;
        self.live_version(&model_dir, name, *version)
    }

    fn lock_model(&self, name: &str) -> Result<ModelLock> {
        let model_dir = self.existing_model_dir(name)?;
        let file = fsutil::lock_file(&model_dir.join(MODEL_LOCK))?;
        Ok(ModelLock::holding(Box::new(file)))
    }

    fn lock_model_work(&self, name: &str, work: &str) -> Result<ModelLock> {
        let model_dir = self.existing_model_dir(name)?;
        let file = fsutil::lock_file(&model_dir.join(format!("{MODEL_LOCK}.{work}")))?;
        Ok(ModelLock::holding(Box::new(file)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::{FileStore, TrackingStore};

    #[test]
    fn the_lock_of_long_work_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        store.create_registered_model("m").unwrap();
        let work = store.lock_model_work("m", "retrain").unwrap();
        // Its holder takes the model lock meanwhile (to register), and waits for nobody.
        drop(store.lock_model("m").unwrap());
        // Another taker of the same work lock waits until it is released.
        let (taken, seen) = mpsc::channel();
        let root = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let store = FileStore::open(&root).unwrap();
            let _lock = store.lock_model_work("m", "retrain").unwrap();
            taken.send(()).unwrap();
        });
        assert!(
            seen.recv_timeout(Duration::from_millis(200)).is_err(),
            "taken while held"
        );
        drop(work);
        seen.recv().unwrap();
        waiter.join().unwrap();
        assert!(dir.path().join("models/m/.ratchet-lock.retrain").exists());
        let Err(refused) = store.lock_model_work("m", "../x") else {
            panic!("a work name with a path in it was taken");
        };
        assert!(refused.to_string().contains("\"../x\""), "{refused}");
        let Err(absent) = store.lock_model_work("absent", "retrain") else {
            panic!("a lock on a model that does not exist was taken");
        };
        assert!(absent.is_not_found(), "{absent}");
    }
}
