//! [`Checked`]: the one place where the names, keys, ids, aliases and artifact paths given
//! to a [`TrackingStore`] are validated ([`crate::names`]), before a backend sees them.
//! The backends trust their arguments; their constructors hand them out wrapped, so every
//! store a caller gets validates.
//!
//! ```no_run
//! use ratchet_mlflow::{Error, FileStore, TrackingStore};
//!
//! let store = FileStore::open("./mlruns")?; // a Checked<FileStore>
//! let err = store.get_registered_model("../etc").unwrap_err();
//! assert!(matches!(err, Error::InvalidName { .. }));
//! println!("{}", store.root().display()); // FileStore's own methods through Deref
//! # Ok::<(), ratchet_mlflow::Error>(())
//! ```

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use delegate::delegate;

use crate::error::Result;
use crate::names::{
    validate_alias, validate_artifact_path, validate_experiment_name, validate_id, validate_key,
    validate_model_name,
};
use crate::store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, VersionView,
};

/// A backend whose every call is validated first. Derefs to the backend for its own
/// methods ([`crate::FileStore::root`], [`crate::RestStore::check`], …).
#[derive(Debug, Clone)]
pub struct Checked<S>(S);

impl<S: TrackingStore> Checked<S> {
    /// Wraps a backend (the backends' constructors do this).
    pub fn new(store: S) -> Self {
        Checked(store)
    }
}

impl<S> Deref for Checked<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0
    }
}

fn keys<'a>(kind: &'static str, keys: impl IntoIterator<Item = &'a str>) -> Result<()> {
    keys.into_iter().try_for_each(|key| validate_key(kind, key))
}

fn pair_keys(kind: &'static str, pairs: &[(String, String)]) -> Result<()> {
    keys(kind, pairs.iter().map(|(key, _)| key.as_str()))
}

fn run(run_id: &str) -> Result<()> {
    validate_id("run id", run_id)
}

fn experiment(experiment_id: &str) -> Result<()> {
    validate_id("experiment id", experiment_id)
}

fn artifact(run_id: &str, artifact_path: &str) -> Result<()> {
    run(run_id)?;
    validate_artifact_path(artifact_path)
}

impl<S: TrackingStore> TrackingStore for Checked<S> {
    // Calls with nothing to validate.
    delegate! {
        to self.0 {
            fn tracking_uri(&self) -> String;
            fn list_experiments(&self) -> Result<Vec<Experiment>>;
            fn scratch_dir(&self) -> Result<PathBuf>;
            fn remove_stale_temporaries(&self, older_than: Duration) -> Result<usize>;
            fn list_registered_models(&self) -> Result<Vec<RegisteredModel>>;
        }
    }

    fn get_or_create_experiment(&self, name: &str) -> Result<Experiment> {
        validate_experiment_name(name)?;
        self.0.get_or_create_experiment(name)
    }

    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        experiment(experiment_id)?;
        self.0.get_experiment(experiment_id)
    }

    fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()> {
        experiment(experiment_id)?;
        validate_key("experiment tag key", key)?;
        self.0.set_experiment_tag(experiment_id, key, value)
    }

    fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(String, String)],
    ) -> Result<RunInfo> {
        experiment(experiment_id)?;
        pair_keys("run tag key", tags)?;
        self.0.create_run(experiment_id, run_name, tags)
    }

    fn get_run(&self, run_id: &str) -> Result<Run> {
        run(run_id)?;
        self.0.get_run(run_id)
    }

    fn list_runs(&self, experiment_id: &str) -> Result<Vec<RunInfo>> {
        experiment(experiment_id)?;
        self.0.list_runs(experiment_id)
    }

    fn log_params(&self, run_id: &str, params: &[(String, String)]) -> Result<()> {
        run(run_id)?;
        pair_keys("param key", params)?;
        self.0.log_params(run_id, params)
    }

    fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        run(run_id)?;
        keys("metric key", metrics.iter().map(|m| m.key.as_str()))?;
        self.0.log_metrics(run_id, metrics)
    }

    fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        run(run_id)?;
        validate_key("metric key", key)?;
        self.0.get_metric_history(run_id, key)
    }

    fn set_run_tags(&self, run_id: &str, tags: &[(String, String)]) -> Result<()> {
        run(run_id)?;
        pair_keys("run tag key", tags)?;
        self.0.set_run_tags(run_id, tags)
    }

    fn set_run_status(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<()> {
        run(run_id)?;
        self.0.set_run_status(run_id, status, end_time_ms)
    }

    fn upload_artifacts(&self, run_id: &str, local: &Path, artifact_path: &str) -> Result<()> {
        artifact(run_id, artifact_path)?;
        self.0.upload_artifacts(run_id, local, artifact_path)
    }

    fn list_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<Vec<ArtifactEntry>> {
        artifact(run_id, artifact_path)?;
        self.0.list_artifacts(run_id, artifact_path)
    }

    fn download_artifacts(&self, run_id: &str, artifact_path: &str, dest: &Path) -> Result<()> {
        artifact(run_id, artifact_path)?;
        self.0.download_artifacts(run_id, artifact_path, dest)
    }

    fn upload_artifacts_owned(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<()> {
        artifact(run_id, artifact_path)?;
        self.0.upload_artifacts_owned(run_id, local, artifact_path)
    }

    fn replace_artifact_dir(&self, run_id: &str, local: &Path, artifact_path: &str) -> Result<()> {
        artifact(run_id, artifact_path)?;
        self.0.replace_artifact_dir(run_id, local, artifact_path)
    }

    fn current_artifact_dir(&self, run_id: &str, artifact_path: &str) -> Result<Option<String>> {
        artifact(run_id, artifact_path)?;
        self.0.current_artifact_dir(run_id, artifact_path)
    }

    fn delete_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<()> {
        artifact(run_id, artifact_path)?;
        self.0.delete_artifacts(run_id, artifact_path)
    }

    fn local_artifact_path(&self, run_id: &str, artifact_path: &str) -> Result<Option<PathBuf>> {
        artifact(run_id, artifact_path)?;
        self.0.local_artifact_path(run_id, artifact_path)
    }

    fn artifact_uri(&self, run_id: &str, artifact_path: &str) -> Result<String> {
        artifact(run_id, artifact_path)?;
        self.0.artifact_uri(run_id, artifact_path)
    }

    fn create_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        self.0.create_registered_model(name)
    }

    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        self.0.get_registered_model(name)
    }

    fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        validate_model_name(name)?;
        validate_key("registered model tag key", key)?;
        self.0.set_registered_model_tag(name, key, value)
    }

    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        validate_model_name(name)?;
        validate_key("registered model tag key", key)?;
        self.0.delete_registered_model_tag(name, key)
    }

    fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[(String, String)],
        description: Option<&str>,
    ) -> Result<StoredVersion> {
        validate_model_name(name)?;
        run(run_id)?;
        pair_keys("model version tag key", tags)?;
        self.0
            .create_model_version(name, source, run_id, tags, description)
    }

    fn get_model_version(&self, name: &str, version: u64) -> Result<StoredVersion> {
        validate_model_name(name)?;
        self.0.get_model_version(name, version)
    }

    fn list_model_versions(&self, name: &str) -> Result<Vec<StoredVersion>> {
        validate_model_name(name)?;
        self.0.list_model_versions(name)
    }

    fn visit_model_versions(
        &self,
        name: &str,
        visit: &mut dyn FnMut(VersionView<'_>),
    ) -> Result<()> {
        validate_model_name(name)?;
        self.0.visit_model_versions(name, visit)
    }

    fn delete_model_version(&self, name: &str, version: u64) -> Result<()> {
        validate_model_name(name)?;
        self.0.delete_model_version(name, version)
    }

    fn set_model_version_tag(
        &self,
        name: &str,
        version: u64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        validate_model_name(name)?;
        validate_key("model version tag key", key)?;
        self.0.set_model_version_tag(name, version, key, value)
    }

    fn delete_model_version_tag(&self, name: &str, version: u64, key: &str) -> Result<()> {
        validate_model_name(name)?;
        validate_key("model version tag key", key)?;
        self.0.delete_model_version_tag(name, version, key)
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        self.0.set_alias(name, alias, version)
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        self.0.delete_alias(name, alias)
    }

    fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<StoredVersion> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        self.0.get_version_by_alias(name, alias)
    }

    fn lock_model(&self, name: &str) -> Result<ModelLock> {
        validate_model_name(name)?;
        self.0.lock_model(name)
    }

    fn lock_model_work(&self, name: &str, work: &str) -> Result<ModelLock> {
        validate_model_name(name)?;
        validate_id("lock work", work)?;
        self.0.lock_model_work(name, work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, FileStore};

    #[test]
    fn bad_arguments_are_refused_before_the_backend_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let kind = |e: Error| match e {
            Error::InvalidName { kind, .. } => kind,
            other => panic!("not an invalid name: {other}"),
        };
        let param = [("a//b".to_string(), "1".to_string())];
        assert_eq!(
            kind(store.create_registered_model("../x").unwrap_err()),
            "model name"
        );
        assert_eq!(kind(store.get_run("a/b").unwrap_err()), "run id");
        assert_eq!(
            kind(store.log_params("r1", &param).unwrap_err()),
            "param key"
        );
        assert_eq!(
            kind(store.list_artifacts("r1", "../x").unwrap_err()),
            "artifact path"
        );
        assert_eq!(
            kind(store.set_alias("m", "latest", 1).unwrap_err()),
            "alias"
        );
        assert!(!dir.path().join("x").exists());
    }
}
