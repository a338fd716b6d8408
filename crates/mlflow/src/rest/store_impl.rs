//! [`TrackingStore`] for [`RestStore`]: each operation as MLflow REST calls.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::artifacts::{ARTIFACTS_API, Listing, join_path, keep_unsent};
use super::http::{Method, Request};
use super::lock::HOLDER_TAG;
use super::lost_answers::{REQUEST_ID_TAG, new_request_id};
use super::wire::{
    CreateExperimentAnswer, ExperimentAnswer, MetricHistoryAnswer, RegisteredModelAnswer,
    RunAnswer, SearchExperimentsAnswer, SearchModelVersionsAnswer, SearchRegisteredModelsAnswer,
    WireMetric, pair_list,
};
use super::{ALREADY_EXISTS, PAGE_SIZE, RestStore, has_code, id_order, quote_filter_value};
use crate::error::{Error, Result};
use crate::store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, current_user, now_ms,
};
use crate::uri::encode_path;

impl TrackingStore for RestStore {
    fn tracking_uri(&self) -> String {
        self.server.clone()
    }

    // ---- experiments -------------------------------------------------------------------

    fn get_or_create_experiment(&self, name: &str) -> Result<Experiment> {
        let experiment = match self.experiment_by_name(name)? {
            Some(e) => e,
            None => match self.post_create(
                "experiments/create",
                &json!({"name": name}),
                self.experiment_created(name),
            ) {
                Ok(v) => {
                    let id = self
                        .decode::<CreateExperimentAnswer>("experiments/create", v)?
                        .experiment_id;
                    return self.get_experiment(&id);
                }
                // Created by someone else between our two requests.
                Err(e) if has_code(&e, ALREADY_EXISTS) => {
                    self.experiment_by_name(name)?.ok_or(e)?
                }
                Err(e) => return Err(e),
            },
        };
        if experiment.lifecycle_stage != "active" {
            return Err(Error::InvalidArgument(format!(
                "experiment {name:?} (id {id}) on MLflow server {} is deleted; restore it (`mlflow experiments restore --experiment-id {id}`) or use another experiment name",
                self.server,
                id = experiment.experiment_id,
            )));
        }
        Ok(experiment)
    }

    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let v = self.get_json(
            "experiments/get",
            &[("experiment_id", experiment_id.into())],
        );
        let v = self.or_not_found(v, || format!("experiment {experiment_id}"))?;
        Ok(self
            .decode::<ExperimentAnswer>("experiments/get", v)?
            .experiment
            .into())
    }

    fn list_experiments(&self) -> Result<Vec<Experiment>> {
        let mut experiments: Vec<Experiment> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"max_results": PAGE_SIZE, "view_type": "ACTIVE_ONLY"});
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let v = self.post_json("experiments/search", &body)?;
            let page: SearchExperimentsAnswer = self.decode("experiments/search", v)?;
            experiments.extend(page.experiments.into_iter().map(Experiment::from));
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        experiments.sort_by(|a, b| id_order(&a.experiment_id, &b.experiment_id));
        Ok(experiments)
    }

    fn set_experiment_tag(&self, experiment_id: &str, key: &str, value: &str) -> Result<()> {
        let body = json!({"experiment_id": experiment_id, "key": key, "value": value});
        let sent = self.post_json("experiments/set-experiment-tag", &body);
        self.or_not_found(sent, || format!("experiment {experiment_id}"))
            .map(drop)
    }

    // ---- runs ----------------------------------------------------------------------------

    fn create_run(
        &self,
        experiment_id: &str,
        run_name: &str,
        tags: &[(String, String)],
    ) -> Result<RunInfo> {
        let user = current_user();
        let mut all_tags = tags.to_vec();
        // The UI's "Created by" reads this tag; MLflow's own client always sets it.
        if !tags.iter().any(|(k, _)| k == "mlflow.user") {
            all_tags.push(("mlflow.user".into(), user.clone()));
        }
        let request_id = new_request_id();
        all_tags.push((REQUEST_ID_TAG.into(), request_id.clone()));
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": now_ms(),
            "user_id": user,
            "tags": pair_list(&all_tags),
        });
        let v = self.post_create(
            "runs/create",
            &body,
            self.run_created(experiment_id, &request_id),
        );
        let v = self.or_not_found(v, || format!("experiment {experiment_id}"))?;
        let answer: RunAnswer = self.decode("runs/create", v)?;
        self.run_info(answer.run.info, "runs/create")
    }

    fn get_run(&self, run_id: &str) -> Result<Run> {
        let v = self.get_json("runs/get", &[("run_id", run_id.into())]);
        let v = self.or_not_found(v, || format!("run {run_id}"))?;
        let answer: RunAnswer = self.decode("runs/get", v)?;
        self.run_from_wire(answer.run, "runs/get")
    }

    fn list_runs(&self, experiment_id: &str) -> Result<Vec<RunInfo>> {
        let mut runs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.search_runs_page(experiment_id, token.as_deref())?;
            for run in page.runs {
                runs.push(self.run_info(run.info, "runs/search")?);
            }
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(runs);
            }
        }
    }

    fn log_params(&self, run_id: &str, params: &[(String, String)]) -> Result<()> {
        self.log_batch(run_id, &[], params, &[])
    }

    fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        self.log_batch(run_id, metrics, &[], &[])
    }

    /// The server returns a history ordered by timestamp, then step: the logging order
    /// whenever points are logged in time order (as a training loop does).
    fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        let mut points = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("run_id", run_id.to_string()),
                ("metric_key", key.to_string()),
                ("max_results", PAGE_SIZE.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let v = self.get_json("metrics/get-history", &query);
            let v = self.or_not_found(v, || format!("run {run_id}"))?;
            let page: MetricHistoryAnswer = self.decode("metrics/get-history", v)?;
            points.extend(page.metrics.into_iter().map(WireMetric::into_metric));
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(points);
            }
        }
    }

    fn set_run_tags(&self, run_id: &str, tags: &[(String, String)]) -> Result<()> {
        self.log_batch(run_id, &[], &[], tags)
    }

    fn set_run_status(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<()> {
        let mut body = json!({"run_id": run_id, "status": status.as_str()});
        if let Some(end) = end_time_ms {
            body["end_time"] = json!(end);
        }
        let sent = self.post_json("runs/update", &body);
        self.or_not_found(sent, || format!("run {run_id}"))
            .map(drop)
    }

    // ---- artifacts -------------------------------------------------------------------------

    /// One PUT per file through the artifact proxy, each retried on transient failures.
    /// `local` is only read; if the upload stops, the error names it as the intact copy.
    fn upload_artifacts(&self, run_id: &str, local: &Path, artifact_path: &str) -> Result<()> {
        self.upload(run_id, local, artifact_path)
            .map_err(|stopped| stopped.into_error(local, "is intact"))
    }

    /// As `upload_artifacts`, then removes `local`. When the upload fails, the caller may
    /// clean up around `local` (its scratch directory), so the data is first moved to
    /// [`RestConfig::unsent_dir`]`/<run_id>/<artifact_path>` and the error names that place.
    fn upload_artifacts_owned(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<()> {
        match self.upload(run_id, local, artifact_path) {
            Ok(()) => Ok(ratchet_fsutil::remove_tree(local)?),
            Err(stopped) => Err(
                match keep_unsent(&self.config.unsent_dir, local, run_id, artifact_path) {
                    Ok(kept) => stopped.into_error(&kept, "was kept"),
                    Err(_) => stopped.into_error(local, "is intact"),
                },
            ),
        }
    }

    fn list_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<Vec<ArtifactEntry>> {
        let (_, listing) = self.listing(run_id, artifact_path)?;
        let prefix = artifact_path.trim_matches('/');
        let mut entries = match listing {
            Listing::Directory(entries) => entries
                .into_iter()
                .map(|e| ArtifactEntry {
                    path: join_path(prefix, &e.path),
                    ..e
                })
                .collect(),
            Listing::File(size) => vec![ArtifactEntry {
                path: prefix.to_string(),
                is_dir: false,
                size: Some(size),
            }],
        };
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// A directory's contents land in `dest`, a file in `dest/<its name>` (as with the file
    /// store). Everything is fetched into a temporary sibling of `dest` first and moved
    /// into place only once complete; an existing local file is never overwritten.
    fn download_artifacts(&self, run_id: &str, artifact_path: &str, dest: &Path) -> Result<()> {
        let (location, listing) = self.listing(run_id, artifact_path)?;
        // (remote path, local path relative to dest)
        let (files, dirs): (Vec<(String, String)>, Vec<String>) = match listing {
            Listing::File(_) => {
                let name = artifact_path
                    .trim_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                (vec![(location.path.clone(), name.to_string())], Vec::new())
            }
            Listing::Directory(entries) => {
                let files = entries
                    .iter()
                    .filter(|e| !e.is_dir)
                    .map(|e| (join_path(&location.path, &e.path), e.path.clone()))
                    .collect();
                let dirs = entries
                    .into_iter()
                    .filter(|e| e.is_dir)
                    .map(|e| e.path)
                    .collect();
                (files, dirs)
            }
        };
        if dest.exists() && !dest.is_dir() {
            return Err(Error::AlreadyExists(format!(
                "download destination {} is a file (existing local files are never overwritten)",
                dest.display()
            )));
        }
        if let Some((_, rel)) = files.iter().find(|(_, rel)| dest.join(rel).exists()) {
            return Err(Error::AlreadyExists(format!(
                "{} (existing local files are never overwritten; download into a new directory)",
                dest.join(rel).display()
            )));
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        ratchet_fsutil::create_dir_all(&parent)?;
        let staging = ratchet_fsutil::temp_path(&parent, "download");
        ratchet_fsutil::create_dir_all(&staging)?;
        let result = (|| -> Result<()> {
            for (remote, rel) in &files {
                let got = self.get_file(&location.server, remote, &staging.join(rel));
                self.or_not_found(got, || {
                    format!("artifact {artifact_path:?} of run {run_id}")
                })?;
            }
            for dir in &dirs {
                // Empty remote directories exist locally too.
                ratchet_fsutil::create_dir_all(&staging.join(dir))?;
            }
            if !dest.exists() {
                fs::rename(&staging, dest).map_err(|e| Error::io(dest, e))?;
            } else {
                // Merge into the existing directory, one rename per file.
                for dir in &dirs {
                    ratchet_fsutil::create_dir_all(&dest.join(dir))?;
                }
                for (_, rel) in &files {
                    let target = dest.join(rel);
                    if let Some(dir) = target.parent() {
                        ratchet_fsutil::create_dir_all(dir)?;
                    }
                    if target.exists() {
                        return Err(Error::AlreadyExists(target.display().to_string()));
                    }
                    fs::rename(staging.join(rel), &target).map_err(|e| Error::io(&target, e))?;
                }
            }
            Ok(ratchet_fsutil::sync_dir(&parent)?)
        })();
        // Only our own staging directory is removed (already gone after a whole rename).
        let _ = ratchet_fsutil::remove_tree(&staging);
        result
    }

    fn delete_artifacts(&self, run_id: &str, artifact_path: &str) -> Result<()> {
        let location = self.run_artifacts(run_id, artifact_path)?;
        let url = format!(
            "{}{ARTIFACTS_API}/{}",
            location.server,
            encode_path(&location.path)
        );
        let request = Request::new(Method::Delete, url);
        self.execute(&request, |body| self.read_json(&request, body))
            .map(drop)
    }

    // ---- model registry ----------------------------------------------------------------------

    fn create_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        match self.get_registered_model(name) {
            Err(e) if e.is_not_found() => {}
            other => return other,
        }
        match self.post_create(
            "registered-models/create",
            &json!({"name": name}),
            self.registered_model_created(name),
        ) {
            Ok(v) => Ok(self
                .decode::<RegisteredModelAnswer>("registered-models/create", v)?
                .registered_model
                .into()),
            // Created by someone else between our two requests.
            Err(e) if has_code(&e, ALREADY_EXISTS) => self.get_registered_model(name),
            Err(e) => Err(e),
        }
    }

    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let v = self.get_json("registered-models/get", &[("name", name.into())]);
        let v = self.or_not_found(v, || format!("registered model {name:?}"))?;
        Ok(self
            .decode::<RegisteredModelAnswer>("registered-models/get", v)?
            .registered_model
            .into())
    }

    fn list_registered_models(&self) -> Result<Vec<RegisteredModel>> {
        let mut models: Vec<RegisteredModel> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("max_results", PAGE_SIZE.to_string())];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let v = self.get_json("registered-models/search", &query)?;
            let page: SearchRegisteredModelsAnswer = self.decode("registered-models/search", v)?;
            models.extend(
                page.registered_models
                    .into_iter()
                    .map(RegisteredModel::from)
                    .filter(|model| !model.tags.contains_key(HOLDER_TAG)),
            );
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        let body = json!({"name": name, "key": key, "value": value});
        let sent = self.post_json("registered-models/set-tag", &body);
        self.or_not_found(sent, || format!("registered model {name:?}"))
            .map(drop)
    }

    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let body = json!({"name": name, "key": key});
        let sent = self.send_json(Method::Delete, "registered-models/delete-tag", &body);
        self.or_not_found(sent, || format!("registered model {name:?}"))
            .map(drop)
    }

    /// The server numbers versions itself (distinct and never reused). A version still
    /// `PENDING_REGISTRATION` is polled until `READY`, within
    /// [`RestConfig::version_ready_timeout`].
    fn create_model_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[(String, String)],
        description: Option<&str>,
    ) -> Result<StoredVersion> {
        let request_id = new_request_id();
        let mut tags = tags.to_vec();
        tags.push((REQUEST_ID_TAG.into(), request_id.clone()));
        let mut body = json!({
            "name": name,
            "source": source,
            "run_id": run_id,
            "tags": pair_list(&tags),
        });
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        let v = self.post_create(
            "model-versions/create",
            &body,
            self.version_created(name, &request_id)?,
        );
        let v = self.or_not_found(v, || format!("registered model {name:?}"))?;
        let created = self.model_version_answer(v, "model-versions/create")?;
        self.wait_until_ready(created)
    }

    fn get_model_version(&self, name: &str, version: u64) -> Result<StoredVersion> {
        let query = [("name", name.to_string()), ("version", version.to_string())];
        let v = self.get_json("model-versions/get", &query);
        let v = self.or_not_found(v, || format!("version {version} of model {name:?}"))?;
        self.model_version_answer(v, "model-versions/get")
    }

    /// The search endpoint leaves out aliases; they are filled in from the registered model.
    fn list_model_versions(&self, name: &str) -> Result<Vec<StoredVersion>> {
        let model = self.get_registered_model(name)?;
        let filter = format!("name = {}", quote_filter_value(name)?);
        let mut versions = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("filter", filter.clone()),
                ("max_results", PAGE_SIZE.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let v = self.get_json("model-versions/search", &query)?;
            let page: SearchModelVersionsAnswer = self.decode("model-versions/search", v)?;
            for wire in page.model_versions {
                versions.push(self.version_from_wire(wire, "model-versions/search")?);
            }
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        // `name = 'x'` is an exact match, but be strict about what we return.
        versions.retain(|v| v.name == name);
        for v in &mut versions {
            v.aliases = model
                .aliases
                .iter()
                .filter(|(_, number)| **number == v.version)
                .map(|(alias, _)| alias.clone())
                .collect();
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    fn delete_model_version(&self, name: &str, version: u64) -> Result<()> {
        let body = json!({"name": name, "version": version.to_string()});
        let sent = self.send_json(Method::Delete, "model-versions/delete", &body);
        self.or_not_found(sent, || format!("version {version} of model {name:?}"))
            .map(drop)
    }

    fn set_model_version_tag(
        &self,
        name: &str,
        version: u64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let body =
            json!({"name": name, "version": version.to_string(), "key": key, "value": value});
        let sent = self.post_json("model-versions/set-tag", &body);
        self.or_not_found(sent, || format!("version {version} of model {name:?}"))
            .map(drop)
    }

    fn delete_model_version_tag(&self, name: &str, version: u64, key: &str) -> Result<()> {
        let body = json!({"name": name, "version": version.to_string(), "key": key});
        let sent = self.send_json(Method::Delete, "model-versions/delete-tag", &body);
        self.or_not_found(sent, || format!("version {version} of model {name:?}"))
            .map(drop)
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        let body = json!({"name": name, "alias": alias, "version": version.to_string()});
        let sent = self.post_json("registered-models/alias", &body);
        self.or_not_found(sent, || format!("version {version} of model {name:?}"))
            .map(drop)
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let body = json!({"name": name, "alias": alias});
        let sent = self.send_json(Method::Delete, "registered-models/alias", &body);
        self.or_not_found(sent, || format!("registered model {name:?}"))
            .map(drop)
    }

    /// Read through the registered model's alias list: the by-alias endpoint reports a
    /// missing alias as a generic `INVALID_PARAMETER_VALUE`, not as "not found".
    fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<StoredVersion> {
        let model = self.get_registered_model(name)?;
        let version = *model.aliases.get(alias).ok_or_else(|| {
            Error::NotFound(format!(
                "alias {alias:?} of model {name:?} on MLflow server {}",
                self.server
            ))
        })?;
        let mut found = self.get_model_version(name, version)?;
        if !found.aliases.iter().any(|a| a == alias) {
            found.aliases.push(alias.to_string());
        }
        Ok(found)
    }

    /// A registered model of its own stands for the lock (see `lock.rs`). Checks that the
    /// model exists, as the trait requires.
    fn lock_model(&self, name: &str) -> Result<ModelLock> {
        self.get_registered_model(name)?;
        self.acquire_lock(name)
    }

    /// The lock model of `NAME.WORK`, so it is not the model lock's.
    fn lock_model_work(&self, name: &str, work: &str) -> Result<ModelLock> {
        self.get_registered_model(name)?;
        self.acquire_lock(&format!("{name}.{work}"))
    }
}
