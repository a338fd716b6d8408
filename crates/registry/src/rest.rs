//! The MLflow tracking-server backend: [`TrackingStore`] over MLflow's REST API
//! (`/api/2.0/mlflow/...`) and its artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`,
//! served by `mlflow server --serve-artifacts`, the default since MLflow 3).
//!
//! ```no_run
//! use ratchet_registry::{Metric, RunStatus, TrackingStore};
//! use ratchet_registry::rest::RestStore;
//!
//! let store = RestStore::open("http://127.0.0.1:5000")?; // retry budget etc. from the environment
//! store.check()?; // fail now, not after hours of training
//! let experiment = store.get_or_create_experiment("trading")?;
//! let run = store.create_run(&experiment.experiment_id, "ppo-googl", &[])?;
//! store.log_params(&run.run_id, &[("learning_rate".into(), "0.0003".into())])?;
//! store.log_metrics(&run.run_id, &[Metric::now("episode_return", 12.5, 1)])?;
//! store.upload_artifacts(&run.run_id, "runs/ppo/checkpoint".as_ref(), "checkpoint")?;
//! store.set_run_status(&run.run_id, RunStatus::Finished, Some(ratchet_registry::now_ms()))?;
//! # Ok::<(), ratchet_registry::RegistryError>(())
//! ```
//!
//! Every request goes through one retry loop: connection refused/reset, HTTP 429 and 5xx
//! are retried with exponential backoff and jitter until [`RestConfig::retry_budget`]
//! (30 s by default, `RATCHET_HTTP_RETRY_SECONDS`) is spent; the error then names the
//! server, the request, the number of attempts and what to check. Other MLflow errors come
//! back as one line, `ERROR_CODE (HTTP n): message`, and `RESOURCE_DOES_NOT_EXIST` becomes
//! [`RegistryError::NotFound`].
//!
//! Local data is never lost: uploads only read their files (a failed upload names the
//! intact local copy; one handed over with `upload_artifacts_owned` is first moved to
//! [`RestConfig::unsent_dir`]), and downloads are built in a temporary sibling of the
//! destination, moved into place once complete, never overwriting an existing file.
//!
//! Batches follow the server's `runs/log-batch` limits: at most 1000 metrics, 100 params,
//! 100 tags and 1000 entities per request, kept under 1 MB.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use ureq::http;

use crate::error::{RegistryError, Result};
use crate::names;
use crate::store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, current_user, now_ms,
};

/// Most metrics one `runs/log-batch` request may carry (MLflow server limit).
pub const MAX_BATCH_METRICS: usize = 1000;
/// Most params one `runs/log-batch` request may carry.
pub const MAX_BATCH_PARAMS: usize = 100;
/// Most tags one `runs/log-batch` request may carry.
pub const MAX_BATCH_TAGS: usize = 100;
/// Most entities (metrics + params + tags) in one `runs/log-batch` request.
pub const MAX_BATCH_ENTITIES: usize = 1000;
/// Request bodies stay under this size: MLflow documents a 1 MB limit, and proxies in
/// front of servers often enforce one.
const MAX_BATCH_BYTES: usize = 900 * 1024;
/// JSON answers larger than this are refused (histories and searches are paged far below).
const MAX_JSON_RESPONSE: u64 = 512 * 1024 * 1024;
/// Page size of searches and metric histories.
const PAGE_SIZE: u32 = 1000;
const ARTIFACTS_API: &str = "/api/2.0/mlflow-artifacts/artifacts";

/// Environment variable overriding [`RestConfig::retry_budget`], in seconds.
pub const RETRY_BUDGET_ENV: &str = "RATCHET_HTTP_RETRY_SECONDS";

/// How the client talks to the server: timeouts, retries, credentials.
#[derive(Clone)]
pub struct RestConfig {
    /// Total time one request may spend retrying transient failures (connection
    /// refused/reset, HTTP 429, 5xx) before giving up. Default 30 s.
    pub retry_budget: Duration,
    /// Delay before the first retry, doubled after each failure. Default 250 ms.
    pub first_backoff: Duration,
    /// Upper bound of one backoff delay (also caps a server's `Retry-After`). Default 5 s.
    pub max_backoff: Duration,
    /// Time allowed to open a connection, further bounded by what is left of the retry
    /// budget. Default 10 s.
    pub connect_timeout: Duration,
    /// Time allowed for the server to start answering, and between two reads of an
    /// answer. Default 120 s (a busy server with a large batch can be slow).
    pub response_timeout: Duration,
    /// How long a new model version may stay `PENDING_REGISTRATION`. Default 300 s.
    pub version_ready_timeout: Duration,
    /// Credentials sent with every request.
    pub auth: Auth,
    /// Where a checkpoint handed over with `upload_artifacts_owned` is kept when its
    /// upload fails: `<unsent_dir>/<run_id>/<artifact_path>`. Default
    /// `$XDG_DATA_HOME/ratchet/unsent` (`~/.local/share/ratchet/unsent`).
    pub unsent_dir: PathBuf,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            retry_budget: Duration::from_secs(30),
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(120),
            version_ready_timeout: Duration::from_secs(300),
            auth: Auth::None,
            unsent_dir: std::env::var_os("XDG_DATA_HOME")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(std::env::temp_dir)
                .join("ratchet/unsent"),
        }
    }
}

impl RestConfig {
    /// The defaults, overridden by the environment: `RATCHET_HTTP_RETRY_SECONDS` (retry
    /// budget) and MLflow's credential variables `MLFLOW_TRACKING_TOKEN`, or
    /// `MLFLOW_TRACKING_USERNAME` with `MLFLOW_TRACKING_PASSWORD`.
    pub fn from_env() -> Result<Self> {
        let mut config = RestConfig::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(text) = var(RETRY_BUDGET_ENV) {
            let seconds = text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    RegistryError::InvalidArgument(format!(
                        "{RETRY_BUDGET_ENV}={text:?} is not a number of seconds (e.g. {RETRY_BUDGET_ENV}=60)"
                    ))
                })?;
            config.retry_budget = Duration::from_secs_f64(seconds);
        }
        config.auth = match (
            var("MLFLOW_TRACKING_TOKEN"),
            var("MLFLOW_TRACKING_USERNAME"),
            var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            (Some(token), _, _) => Auth::Bearer(token),
            (None, Some(username), Some(password)) => Auth::Basic { username, password },
            (None, None, None) => Auth::None,
            _ => {
                return Err(RegistryError::InvalidArgument(
                    "set both MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or neither"
                        .into(),
                ));
            }
        };
        Ok(config)
    }
}

impl fmt::Debug for RestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestConfig")
            .field("retry_budget", &self.retry_budget)
            .field("first_backoff", &self.first_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("version_ready_timeout", &self.version_ready_timeout)
            .field("auth", &self.auth)
            .field("unsent_dir", &self.unsent_dir)
            .finish()
    }
}

/// Credentials for a server behind authentication (MLflow's `--app-name basic-auth`, or a
/// proxy taking bearer tokens).
#[derive(Clone, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic authentication.
    Basic { username: String, password: String },
    /// A bearer token.
    Bearer(String),
}

impl fmt::Debug for Auth {
    // Secrets never reach logs or error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => write!(f, "None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer(_) => write!(f, "Bearer(***)"),
        }
    }
}

/// An MLflow tracking server reached over HTTP(S). See the [module docs](self).
pub struct RestStore {
    /// `scheme://host:port[/prefix]`, without a trailing slash.
    server: String,
    agent: ureq::Agent,
    config: RestConfig,
    /// State of the SplitMix64 generator that jitters backoff delays.
    jitter: AtomicU64,
}

impl fmt::Debug for RestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestStore")
            .field("server", &self.server)
            .field("config", &self.config)
            .finish()
    }
}

impl RestStore {
    /// A store for the server at `tracking_uri` (`http://host:port`, `https://…`, optionally
    /// with a path prefix), configured from the environment ([`RestConfig::from_env`]).
    /// Nothing is sent yet; [`RestStore::check`] asks the server.
    pub fn open(tracking_uri: &str) -> Result<Self> {
        Self::with_config(tracking_uri, RestConfig::from_env()?)
    }

    /// Like [`RestStore::open`] with an explicit configuration.
    pub fn with_config(tracking_uri: &str, config: RestConfig) -> Result<Self> {
        let server = tracking_uri.trim().trim_end_matches('/').to_string();
        let bad = |why: &str| {
            RegistryError::InvalidArgument(format!(
                "tracking URI {tracking_uri:?} {why}; expected the URL of an MLflow server such as http://127.0.0.1:5000"
            ))
        };
        let lower = server.to_ascii_lowercase();
        let after_scheme = if lower.starts_with("http://") {
            &server[7..]
        } else if lower.starts_with("https://") {
            &server[8..]
        } else {
            return Err(bad("is not an http:// or https:// URL"));
        };
        if after_scheme.is_empty() || after_scheme.starts_with('/') {
            return Err(bad("has no host"));
        }
        if after_scheme.contains(['?', '#']) || after_scheme.chars().any(char::is_whitespace) {
            return Err(bad("must not carry a query, fragment or spaces"));
        }
        server
            .parse::<http::Uri>()
            .map_err(|e| bad(&format!("is not a valid URL ({e})")))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("ratchet/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.response_timeout))
            .timeout_per_read(Some(config.response_timeout))
            .build()
            .into();
        // Jitter only has to de-synchronise clients, not be unpredictable: seed it from the
        // server name and the process id.
        let seed = server
            .bytes()
            .chain(std::process::id().to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        Ok(RestStore {
            server,
            agent,
            config,
            jitter: AtomicU64::new(seed),
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The configuration in use.
    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    /// Asks the server's `/health` endpoint (with retries), so a command can fail early
    /// with a clear message instead of after training.
    pub fn check(&self) -> Result<()> {
        let request = Request::new(Method::Get, format!("{}/health", self.server));
        self.execute(&request, |_| Ok(()))
    }

    // ---- experiments -------------------------------------------------------------------

    /// The experiment called `name`, deleted ones included, or `None`.
    fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        match self.get_json(
            "experiments/get-by-name",
            &[("experiment_name", name.into())],
        ) {
            Ok(v) => Ok(Some(
                self.decode::<ExperimentAnswer>("experiments/get-by-name", v)?
                    .experiment
                    .into(),
            )),
            Err(e) if has_code(&e, NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- runs ----------------------------------------------------------------------------

    /// Logs metrics, params and tags in as many `runs/log-batch` requests as the server's
    /// limits require. Keys are checked first, so a bad key cannot leave a half-logged
    /// batch behind.
    pub fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        names::validate_id("run id", run_id)?;
        for m in metrics {
            names::validate_key("metric key", &m.key)?;
        }
        let params = dedup_params(params)?;
        for (key, _) in tags {
            names::validate_key("tag key", key)?;
        }
        for batch in plan_batches(metrics, &params, tags) {
            let body = json!({
                "run_id": run_id,
                "metrics": batch.metrics.iter().map(metric_json).collect::<Vec<_>>(),
                "params": pair_list(batch.params),
                "tags": pair_list(batch.tags),
            });
            let sent = self.post_json("runs/log-batch", &body);
            self.or_not_found(sent, || format!("run {run_id}"))?;
        }
        Ok(())
    }

    fn search_runs_page(
        &self,
        experiment_id: &str,
        token: Option<&str>,
    ) -> Result<SearchRunsAnswer> {
        let mut body = json!({
            "experiment_ids": [experiment_id],
            "max_results": PAGE_SIZE,
            "run_view_type": "ACTIVE_ONLY",
            "order_by": ["attributes.start_time DESC"],
        });
        if let Some(t) = token {
            body["page_token"] = json!(t);
        }
        let v = self.post_json("runs/search", &body);
        let v = self.or_not_found(v, || format!("experiment {experiment_id}"))?;
        self.decode("runs/search", v)
    }

    // ---- artifacts -------------------------------------------------------------------------

    /// Where a run's artifact `path` lives on the artifact proxy.
    fn run_artifacts(&self, run_id: &str, path: &str) -> Result<ArtifactLocation> {
        names::validate_artifact_path(path)?;
        let root = self.get_run(run_id)?.info.artifact_uri;
        let location = resolve_artifact_uri(&root, &self.server)?;
        Ok(ArtifactLocation {
            path: join_path(&location.path, path),
            server: location.server,
        })
    }

    /// One level of an artifact directory; entries are `(name, is_dir, size)`. A missing
    /// directory, and a file, list as empty (that is what the proxy answers).
    fn list_level(&self, location: &ArtifactLocation) -> Result<Vec<WireArtifact>> {
        let request = Request::new(Method::Get, format!("{}{ARTIFACTS_API}", location.server))
            .query(vec![("path", location.path.clone())]);
        let v = self.execute(&request, |body| self.read_json(&request, body))?;
        Ok(self
            .decode::<ListArtifactsAnswer>("mlflow-artifacts/artifacts", v)?
            .files)
    }

    /// Every entry below `location`, paths relative to it, depth first.
    fn walk(
        &self,
        location: &ArtifactLocation,
        prefix: &str,
        out: &mut Vec<ArtifactEntry>,
    ) -> Result<()> {
        for f in self.list_level(&ArtifactLocation {
            server: location.server.clone(),
            path: join_path(&location.path, prefix),
        })? {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
            let path = join_path(prefix, &name);
            out.push(ArtifactEntry {
                path: path.clone(),
                is_dir: f.is_dir,
                // Protobuf JSON leaves out a zero size.
                size: (!f.is_dir).then(|| f.file_size.unwrap_or(0)),
            });
            if f.is_dir {
                self.walk(location, &path, out)?;
            }
        }
        Ok(())
    }

    /// What is at a run's artifact `path`: a directory (its entries, recursively, relative
    /// to it) or a file (its size).
    fn listing(&self, run_id: &str, path: &str) -> Result<(ArtifactLocation, Listing)> {
        let location = self.run_artifacts(run_id, path)?;
        let mut entries = Vec::new();
        self.walk(&location, "", &mut entries)?;
        let path = path.trim_matches('/');
        if !entries.is_empty() || path.is_empty() {
            return Ok((location, Listing::Directory(entries)));
        }
        // The proxy lists a file, an empty directory and nothing at all alike (`{}`):
        // look the name up in the parent directory.
        let (parent, name) = location
            .path
            .rsplit_once('/')
            .unwrap_or(("", location.path.as_str()));
        let parent = ArtifactLocation {
            server: location.server.clone(),
            path: parent.to_string(),
        };
        let found = self
            .list_level(&parent)?
            .into_iter()
            .find(|f| f.path.rsplit('/').next() == Some(name));
        match found {
            Some(f) if f.is_dir => Ok((location, Listing::Directory(Vec::new()))),
            Some(f) => Ok((location, Listing::File(f.file_size.unwrap_or(0)))),
            None => Err(RegistryError::NotFound(format!(
                "artifact {path:?} of run {run_id} on MLflow server {}",
                self.server
            ))),
        }
    }

    /// Uploads `local` (a directory's files, or one file) under `artifact_path`; on failure
    /// says how far it got.
    fn upload(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<(), Box<UploadStopped>> {
        let stopped = |error, uploaded, total| {
            Box::new(UploadStopped {
                error,
                run_id: run_id.to_string(),
                artifact_path: artifact_path.to_string(),
                uploaded,
                total,
            })
        };
        let prepare = || -> Result<(ArtifactLocation, Vec<(PathBuf, String)>)> {
            let meta = fs::metadata(local).map_err(|e| RegistryError::io(local, e))?;
            let target = self.run_artifacts(run_id, artifact_path)?;
            let files = if meta.is_dir() {
                let mut files = Vec::new();
                collect_files(local, "", &mut files)?;
                files.sort();
                files
                    .into_iter()
                    .map(|rel| (local.join(&rel), join_path(&target.path, &rel)))
                    .collect()
            } else {
                let name = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                    RegistryError::InvalidArgument(format!(
                        "{} has no UTF-8 file name to upload under",
                        local.display()
                    ))
                })?;
                vec![(local.to_path_buf(), join_path(&target.path, name))]
            };
            Ok((target, files))
        };
        let (target, files) = prepare().map_err(|e| stopped(e, 0, 0))?;
        for (done, (file, remote)) in files.iter().enumerate() {
            self.put_file(&target.server, remote, file)
                .map_err(|e| stopped(e, done, files.len()))?;
        }
        Ok(())
    }

    fn put_file(&self, server: &str, remote: &str, local: &Path) -> Result<()> {
        let url = format!("{server}{ARTIFACTS_API}/{}", encode_path(remote));
        self.execute(
            &Request::new(Method::Put, url).file(local.to_path_buf()),
            |_| Ok(()),
        )
    }

    /// Streams one remote file into `local` (created or truncated; retried from the start
    /// when the connection breaks mid-way).
    fn get_file(&self, server: &str, remote: &str, local: &Path) -> Result<u64> {
        if let Some(dir) = local.parent() {
            fs::create_dir_all(dir).map_err(|e| RegistryError::io(dir, e))?;
        }
        let url = format!("{server}{ARTIFACTS_API}/{}", encode_path(remote));
        let write_error = |e| Failure::Fatal(RegistryError::io(local, e));
        self.execute(&Request::new(Method::Get, url), |body| {
            let mut file = fs::File::create(local).map_err(write_error)?;
            let mut reader = body.into_reader();
            let mut buffer = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                // A connection cut mid-body is worth another try; a full disk is not.
                let n = match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Failure::retry(format!("download interrupted: {e}"), None));
                    }
                };
                file.write_all(&buffer[..n]).map_err(write_error)?;
                total += n as u64;
            }
            file.sync_all().map_err(write_error)?;
            Ok(total)
        })
    }

    // ---- model registry ----------------------------------------------------------------------

    fn wait_until_ready(&self, mut version: StoredVersion) -> Result<StoredVersion> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            match version.status.as_str() {
                "READY" => return Ok(version),
                "FAILED_REGISTRATION" => {
                    return Err(self.remote(
                        None,
                        Some("FAILED_REGISTRATION".into()),
                        format!(
                            "registering version {} of model {:?} failed on the server; see the server's log",
                            version.version, version.name
                        ),
                    ));
                }
                status if started.elapsed() >= self.config.version_ready_timeout => {
                    return Err(self.remote(
                        None,
                        Some(status.to_string()),
                        format!(
                            "version {} of model {:?} is still {status} after {:.0} s; see the server's log",
                            version.version,
                            version.name,
                            started.elapsed().as_secs_f64()
                        ),
                    ));
                }
                _ => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    version = self.get_model_version(&version.name, version.version)?;
                }
            }
        }
    }

    fn version_from_wire(&self, w: WireModelVersion, endpoint: &str) -> Result<StoredVersion> {
        let version = w.version.parse().map_err(|_| {
            self.protocol(endpoint, format!("version {:?} is not a number", w.version))
        })?;
        Ok(StoredVersion {
            name: w.name,
            version,
            creation_timestamp: w.creation_timestamp.unwrap_or_default(),
            last_updated_timestamp: w
                .last_updated_timestamp
                .or(w.creation_timestamp)
                .unwrap_or_default(),
            source: w.source.unwrap_or_default(),
            run_id: w.run_id.filter(|r| !r.is_empty()),
            description: w.description.filter(|d| !d.is_empty()),
            status: w.status.unwrap_or_else(|| "READY".into()),
            tags: pair_map(w.tags),
            aliases: w.aliases,
        })
    }

    fn model_version_answer(&self, v: Value, endpoint: &str) -> Result<StoredVersion> {
        let answer: ModelVersionAnswer = self.decode(endpoint, v)?;
        self.version_from_wire(answer.model_version, endpoint)
    }

    fn run_info(&self, w: WireRunInfo, endpoint: &str) -> Result<RunInfo> {
        let status_text = w.status.unwrap_or_else(|| "RUNNING".into());
        let status = RunStatus::parse(&status_text).ok_or_else(|| {
            self.protocol(endpoint, format!("unknown run status {status_text:?}"))
        })?;
        Ok(RunInfo {
            run_id: w.run_id,
            experiment_id: w.experiment_id,
            run_name: w.run_name.unwrap_or_default(),
            user_id: w.user_id.unwrap_or_default(),
            status,
            start_time: w.start_time.unwrap_or_default(),
            end_time: w.end_time,
            artifact_uri: w.artifact_uri.unwrap_or_default(),
            lifecycle_stage: w.lifecycle_stage.unwrap_or_else(|| "active".into()),
        })
    }

    fn run_from_wire(&self, w: WireRun, endpoint: &str) -> Result<Run> {
        Ok(Run {
            info: self.run_info(w.info, endpoint)?,
            params: pair_map(w.data.params),
            tags: pair_map(w.data.tags),
            metrics: w
                .data
                .metrics
                .into_iter()
                .map(|m| {
                    let m = m.into_metric();
                    (m.key.clone(), m)
                })
                .collect(),
        })
    }

    // ---- errors ----------------------------------------------------------------------------

    fn remote(&self, status: Option<u16>, code: Option<String>, message: String) -> RegistryError {
        RegistryError::Remote {
            url: self.server.clone(),
            status,
            code,
            message,
        }
    }

    fn protocol(&self, endpoint: &str, detail: String) -> RegistryError {
        self.remote(
            None,
            None,
            format!("unexpected answer from {endpoint}: {detail}"),
        )
    }

    /// Turns the server's `RESOURCE_DOES_NOT_EXIST` into [`RegistryError::NotFound`] naming
    /// `what` (e.g. `run 3f2a…`), so callers can branch on it as with the file store.
    fn or_not_found<T>(&self, result: Result<T>, what: impl FnOnce() -> String) -> Result<T> {
        match result {
            Err(e) if has_code(&e, NOT_FOUND) => Err(RegistryError::NotFound(format!(
                "{} on MLflow server {}",
                what(),
                self.server
            ))),
            other => other,
        }
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, endpoint: &str, v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| {
            self.protocol(
                endpoint,
                format!("the JSON does not match MLflow's API: {e}"),
            )
        })
    }

    // ---- HTTP --------------------------------------------------------------------------------

    fn get_json(&self, endpoint: &str, query: &[(&'static str, String)]) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.server);
        let request = Request::new(Method::Get, url).query(query.to_vec());
        self.execute(&request, |body| self.read_json(&request, body))
    }

    fn post_json(&self, endpoint: &str, body: &Value) -> Result<Value> {
        self.send_json(Method::Post, endpoint, body)
    }

    fn send_json(&self, method: Method, endpoint: &str, body: &Value) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.server);
        let bytes = serde_json::to_vec(body).expect("a JSON value always serialises");
        let request = Request::new(method, url).json(bytes);
        self.execute(&request, |body| self.read_json(&request, body))
    }

    /// Reads a JSON answer; an empty body counts as `{}`.
    fn read_json(&self, request: &Request, body: ureq::Body) -> Result<Value, Failure> {
        let bytes = body
            .into_with_config()
            .limit(MAX_JSON_RESPONSE)
            .read_to_vec()
            .map_err(|e| Failure::retry(format!("answer cut off: {e}"), None))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&quote_metric_values(&bytes)).map_err(|e| {
            Failure::Fatal(self.protocol(
                &request.describe(&self.server),
                format!(
                    "not JSON ({e}): {:?}; is the tracking URI the address of an MLflow server?",
                    one_line(&String::from_utf8_lossy(&bytes), 200)
                ),
            ))
        })
    }

    /// Sends `request`, retrying transient failures within the retry budget, and hands a
    /// successful (2xx) body to `read`, which may itself ask for a retry (a download cut
    /// off mid-way).
    fn execute<T>(
        &self,
        request: &Request,
        mut read: impl FnMut(ureq::Body) -> Result<T, Failure>,
    ) -> Result<T> {
        let started = Instant::now();
        let budget = self.config.retry_budget;
        let mut delay = self.config.first_backoff;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // One connect to a dead host must not eat more than what is left of the budget.
            let remaining = budget.saturating_sub(started.elapsed());
            let connect_timeout = self
                .config
                .connect_timeout
                .min(remaining.max(Duration::from_millis(200)));
            let failure = match self.send_once(request, connect_timeout) {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry_after(&response);
                    let body = response.into_body();
                    if (200..300).contains(&status) {
                        match read(body) {
                            Ok(value) => return Ok(value),
                            Err(failure) => failure,
                        }
                    } else {
                        let (code, message) = error_answer(status, body);
                        if is_transient_status(status) {
                            Failure::Retry {
                                reason: format!("{code} (HTTP {status}): {message}"),
                                status: Some(status),
                                retry_after,
                            }
                        } else {
                            Failure::Fatal(self.remote(
                                Some(status),
                                Some(code.clone()),
                                format!(
                                    "{}: {code} (HTTP {status}): {message}",
                                    request.describe(&self.server)
                                ),
                            ))
                        }
                    }
                }
                Err(e) => self.classify(request, e),
            };
            let (reason, status, retry_after) = match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Retry {
                    reason,
                    status,
                    retry_after,
                } => (reason, status, retry_after),
            };
            let wait = retry_after
                .map(|w| w.min(self.config.max_backoff))
                .unwrap_or_else(|| self.jittered(delay));
            delay = (delay * 2).min(self.config.max_backoff);
            if started.elapsed() + wait >= budget {
                return Err(self.remote(
                    status,
                    None,
                    format!(
                        "{} failed {attempts} time{} in {:.1} s (last: {reason}); the server is unavailable. Check that `mlflow server` is running and reachable at {}, or allow more time with {RETRY_BUDGET_ENV}=<seconds> (now {:.0})",
                        request.describe(&self.server),
                        if attempts == 1 { "" } else { "s" },
                        started.elapsed().as_secs_f64(),
                        self.server,
                        budget.as_secs_f64(),
                    ),
                ));
            }
            std::thread::sleep(wait);
        }
    }

    fn send_once(
        &self,
        request: &Request,
        connect_timeout: Duration,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url());
        match &self.config.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                let credentials = base64(format!("{username}:{password}").as_bytes());
                builder = builder.header("Authorization", format!("Basic {credentials}"));
            }
            Auth::Bearer(token) => {
                builder = builder.header("Authorization", format!("Bearer {token}"));
            }
        }
        match &request.payload {
            Payload::Empty => self.run(builder.body(())?, connect_timeout),
            Payload::Json(bytes) => self.run(
                builder
                    .header("Content-Type", "application/json")
                    .body(bytes.as_slice())?,
                connect_timeout,
            ),
            Payload::File(path) => {
                let file = fs::File::open(path).map_err(ureq::Error::Io)?;
                self.run(
                    builder
                        .header("Content-Type", "application/octet-stream")
                        .body(file)?,
                    connect_timeout,
                )
            }
        }
    }

    fn run<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
        connect_timeout: Duration,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let request = self
            .agent
            .configure_request(request)
            .timeout_connect(Some(connect_timeout))
            .build();
        self.agent.run(request)
    }

    /// Sorts a transport error into "retry" or "give up now".
    fn classify(&self, request: &Request, error: ureq::Error) -> Failure {
        let fatal = |detail: String| {
            Failure::Fatal(self.remote(
                None,
                None,
                format!("{}: {detail}", request.describe(&self.server)),
            ))
        };
        match error {
            ureq::Error::Io(e) => {
                // Opening the file to upload happens inside the attempt.
                if let Payload::File(path) = &request.payload
                    && matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                    )
                {
                    return Failure::Fatal(RegistryError::io(path, e));
                }
                if is_transient_io(e.kind()) {
                    Failure::retry(describe_io(&e), None)
                } else {
                    fatal(describe_io(&e))
                }
            }
            ureq::Error::ConnectionFailed => Failure::retry("connection failed".into(), None),
            ureq::Error::Timeout(which) => {
                let connecting = matches!(
                    which,
                    ureq::Timeout::Connect | ureq::Timeout::Resolve | ureq::Timeout::SendRequest
                );
                if connecting || request.method.is_idempotent() {
                    Failure::retry(format!("timed out ({which})"), None)
                } else {
                    fatal(format!(
                        "no answer within {:.0} s ({which}); the request may or may not have been applied",
                        self.config.response_timeout.as_secs_f64()
                    ))
                }
            }
            ureq::Error::HostNotFound => fatal("host not found; check the tracking URI".into()),
            other => fatal(other.to_string()),
        }
    }

    /// Backoff with "equal jitter": uniform in [delay/2, delay], from SplitMix64.
    fn jittered(&self, delay: Duration) -> Duration {
        const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut z = self
            .jitter
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        delay.mul_f64(0.5 + 0.5 * unit)
    }
}

impl TrackingStore for RestStore {
    fn tracking_uri(&self) -> String {
        self.server.clone()
    }

    // ---- experiments -------------------------------------------------------------------

    fn get_or_create_experiment(&self, name: &str) -> Result<Experiment> {
        names::validate_experiment_name(name)?;
        let experiment = match self.experiment_by_name(name)? {
            Some(e) => e,
            None => match self.post_json("experiments/create", &json!({"name": name})) {
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
            return Err(RegistryError::InvalidArgument(format!(
                "experiment {name:?} (id {id}) on MLflow server {} is deleted; restore it (`mlflow experiments restore --experiment-id {id}`) or use another experiment name",
                self.server,
                id = experiment.experiment_id,
            )));
        }
        Ok(experiment)
    }

    fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        names::validate_id("experiment id", experiment_id)?;
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
        names::validate_id("experiment id", experiment_id)?;
        names::validate_key("tag key", key)?;
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
        names::validate_id("experiment id", experiment_id)?;
        for (key, _) in tags {
            names::validate_key("tag key", key)?;
        }
        let user = current_user();
        let mut all_tags = tags.to_vec();
        // The UI's "Created by" reads this tag; MLflow's own client always sets it.
        if !tags.iter().any(|(k, _)| k == "mlflow.user") {
            all_tags.push(("mlflow.user".into(), user.clone()));
        }
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": now_ms(),
            "user_id": user,
            "tags": pair_list(&all_tags),
        });
        let v = self.post_json("runs/create", &body);
        let v = self.or_not_found(v, || format!("experiment {experiment_id}"))?;
        let answer: RunAnswer = self.decode("runs/create", v)?;
        self.run_info(answer.run.info, "runs/create")
    }

    fn get_run(&self, run_id: &str) -> Result<Run> {
        names::validate_id("run id", run_id)?;
        let v = self.get_json("runs/get", &[("run_id", run_id.into())]);
        let v = self.or_not_found(v, || format!("run {run_id}"))?;
        let answer: RunAnswer = self.decode("runs/get", v)?;
        self.run_from_wire(answer.run, "runs/get")
    }

    fn list_runs(&self, experiment_id: &str) -> Result<Vec<RunInfo>> {
        names::validate_id("experiment id", experiment_id)?;
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
        names::validate_id("run id", run_id)?;
        names::validate_key("metric key", key)?;
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
        names::validate_id("run id", run_id)?;
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
            Ok(()) => crate::fsutil::remove_tree(local),
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
            return Err(RegistryError::AlreadyExists(format!(
                "download destination {} is a file (existing local files are never overwritten)",
                dest.display()
            )));
        }
        if let Some((_, rel)) = files.iter().find(|(_, rel)| dest.join(rel).exists()) {
            return Err(RegistryError::AlreadyExists(format!(
                "{} (existing local files are never overwritten; download into a new directory)",
                dest.join(rel).display()
            )));
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        crate::fsutil::create_dir_all(&parent)?;
        let staging = crate::fsutil::temp_path(&parent, "download");
        crate::fsutil::create_dir_all(&staging)?;
        let result = (|| -> Result<()> {
            for (remote, rel) in &files {
                let got = self.get_file(&location.server, remote, &staging.join(rel));
                self.or_not_found(got, || {
                    format!("artifact {artifact_path:?} of run {run_id}")
                })?;
            }
            for dir in &dirs {
                // Empty remote directories exist locally too.
                crate::fsutil::create_dir_all(&staging.join(dir))?;
            }
            if !dest.exists() {
                fs::rename(&staging, dest).map_err(|e| RegistryError::io(dest, e))?;
            } else {
                // Merge into the existing directory, one rename per file.
                for dir in &dirs {
                    crate::fsutil::create_dir_all(&dest.join(dir))?;
                }
                for (_, rel) in &files {
                    let target = dest.join(rel);
                    if let Some(dir) = target.parent() {
                        crate::fsutil::create_dir_all(dir)?;
                    }
                    if target.exists() {
                        return Err(RegistryError::AlreadyExists(target.display().to_string()));
                    }
                    fs::rename(staging.join(rel), &target)
                        .map_err(|e| RegistryError::io(&target, e))?;
                }
            }
            crate::fsutil::sync_dir(&parent)
        })();
        // Only our own staging directory is removed (already gone after a whole rename).
        let _ = crate::fsutil::remove_tree(&staging);
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
        names::validate_model_name(name)?;
        match self.get_registered_model(name) {
            Err(e) if e.is_not_found() => {}
            other => return other,
        }
        match self.post_json("registered-models/create", &json!({"name": name})) {
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
        names::validate_model_name(name)?;
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
                    .map(RegisteredModel::from),
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
        names::validate_model_name(name)?;
        names::validate_key("tag key", key)?;
        let body = json!({"name": name, "key": key, "value": value});
        let sent = self.post_json("registered-models/set-tag", &body);
        self.or_not_found(sent, || format!("registered model {name:?}"))
            .map(drop)
    }

    fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        names::validate_model_name(name)?;
        names::validate_key("tag key", key)?;
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
        names::validate_model_name(name)?;
        names::validate_id("run id", run_id)?;
        for (key, _) in tags {
            names::validate_key("tag key", key)?;
        }
        let mut body = json!({
            "name": name,
            "source": source,
            "run_id": run_id,
            "tags": pair_list(tags),
        });
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        let v = self.post_json("model-versions/create", &body);
        let v = self.or_not_found(v, || format!("registered model {name:?}"))?;
        let created = self.model_version_answer(v, "model-versions/create")?;
        self.wait_until_ready(created)
    }

    fn get_model_version(&self, name: &str, version: u64) -> Result<StoredVersion> {
        names::validate_model_name(name)?;
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
        names::validate_model_name(name)?;
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
        names::validate_model_name(name)?;
        names::validate_key("tag key", key)?;
        let body =
            json!({"name": name, "version": version.to_string(), "key": key, "value": value});
        let sent = self.post_json("model-versions/set-tag", &body);
        self.or_not_found(sent, || format!("version {version} of model {name:?}"))
            .map(drop)
    }

    fn delete_model_version_tag(&self, name: &str, version: u64, key: &str) -> Result<()> {
        names::validate_model_name(name)?;
        names::validate_key("tag key", key)?;
        let body = json!({"name": name, "version": version.to_string(), "key": key});
        let sent = self.send_json(Method::Delete, "model-versions/delete-tag", &body);
        self.or_not_found(sent, || format!("version {version} of model {name:?}"))
            .map(drop)
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        names::validate_model_name(name)?;
        names::validate_alias(alias)?;
        let body = json!({"name": name, "alias": alias, "version": version.to_string()});
        let sent = self.post_json("registered-models/alias", &body);
        self.or_not_found(sent, || format!("version {version} of model {name:?}"))
            .map(drop)
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        names::validate_model_name(name)?;
        names::validate_alias(alias)?;
        let body = json!({"name": name, "alias": alias});
        let sent = self.send_json(Method::Delete, "registered-models/alias", &body);
        self.or_not_found(sent, || format!("registered model {name:?}"))
            .map(drop)
    }

    /// Read through the registered model's alias list: the by-alias endpoint reports a
    /// missing alias as a generic `INVALID_PARAMETER_VALUE`, not as "not found".
    fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<StoredVersion> {
        names::validate_alias(alias)?;
        let model = self.get_registered_model(name)?;
        let version = *model.aliases.get(alias).ok_or_else(|| {
            RegistryError::NotFound(format!(
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

    /// A tracking server offers no cross-client lock: callers re-check after writing (see
    /// [`ModelLock`]). Checks that the model exists, as the trait requires.
    fn lock_model(&self, name: &str) -> Result<ModelLock> {
        self.get_registered_model(name)?;
        Ok(ModelLock::unlocked())
    }
}

// ---------------------------------------------------------------------------------------------
// One request, rebuilt into a fresh HTTP request on every attempt

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// Safe to repeat when the first attempt's fate is unknown (a response timeout).
    fn is_idempotent(self) -> bool {
        matches!(self, Method::Get | Method::Put | Method::Delete)
    }
}

enum Payload {
    Empty,
    Json(Vec<u8>),
    File(PathBuf),
}

struct Request {
    method: Method,
    /// Without the query string.
    url: String,
    query: Vec<(&'static str, String)>,
    payload: Payload,
}

impl Request {
    fn new(method: Method, url: String) -> Self {
        Request {
            method,
            url,
            query: Vec::new(),
            payload: Payload::Empty,
        }
    }

    fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    fn json(mut self, body: Vec<u8>) -> Self {
        self.payload = Payload::Json(body);
        self
    }

    fn file(mut self, path: PathBuf) -> Self {
        self.payload = Payload::File(path);
        self
    }

    fn url(&self) -> String {
        if self.query.is_empty() {
            return self.url.clone();
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        format!("{}?{}", self.url, query.join("&"))
    }

    /// `METHOD /path` for messages (no query: it may be long).
    fn describe(&self, server: &str) -> String {
        let path = self.url.strip_prefix(server).unwrap_or(&self.url);
        format!("{} {path}", self.method.as_str())
    }
}

/// Why one attempt failed.
enum Failure {
    Retry {
        reason: String,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    Fatal(RegistryError),
}

impl Failure {
    fn retry(reason: String, status: Option<u16>) -> Self {
        Failure::Retry {
            reason,
            status,
            retry_after: None,
        }
    }
}

const NOT_FOUND: &str = "RESOURCE_DOES_NOT_EXIST";
const ALREADY_EXISTS: &str = "RESOURCE_ALREADY_EXISTS";

fn has_code(error: &RegistryError, wanted: &str) -> bool {
    matches!(error, RegistryError::Remote { code: Some(code), .. } if code == wanted)
}

/// 429 and 5xx may go away; 501 (not implemented) and 505 (HTTP version) will not.
fn is_transient_status(status: u16) -> bool {
    status == 429 || (status >= 500 && status != 501 && status != 505)
}

/// MLflow's `error_code` and message from an error answer, on one line; for a non-MLflow
/// answer (a proxy's HTML page) `HTTP_<status>` and the start of the body.
fn error_answer(status: u16, body: ureq::Body) -> (String, String) {
    let text = body
        .into_with_config()
        .limit(64 * 1024)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    #[derive(Deserialize)]
    struct ErrorAnswer {
        error_code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_str::<ErrorAnswer>(&text) {
        Ok(ErrorAnswer {
            error_code: Some(code),
            message,
        }) => (code, one_line(&message.unwrap_or_default(), 400)),
        _ => {
            let message = if text.trim().is_empty() {
                http::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no message")
                    .to_string()
            } else {
                one_line(&text, 200)
            };
            (format!("HTTP_{status}"), message)
        }
    }
}

fn retry_after<B>(response: &http::Response<B>) -> Option<Duration> {
    let seconds: f64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn is_transient_io(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | Interrupted
            | WouldBlock
    )
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        _ => e.to_string(),
    }
}

/// Turns every number that is the value of a `"value"` key into a string, so metric values
/// reach [`WireMetric::into_metric`] as text and are parsed by Rust's correctly rounded
/// `str::parse::<f64>`: serde_json's default number parser can be an ulp or two off for
/// 17-digit decimals (its exact `float_roundtrip` feature would change a dependency shared
/// with the whole workspace). Only metric values are numbers under that key (tag and
/// param values are strings), and strings are copied untouched.
fn quote_metric_values(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 16);
    let mut i = 0;
    let mut key_is_value = false; // the last string was `"value"`
    let mut number_expected = false; // ... and a ':' followed it
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(json.len());
                out.extend_from_slice(&json[start..i]);
                key_is_value = &json[start..i] == b"\"value\"";
                number_expected = false;
            }
            b':' => {
                out.push(b':');
                number_expected = key_is_value;
                key_is_value = false;
                i += 1;
            }
            b'-' | b'0'..=b'9' if number_expected => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                out.push(b'"');
                out.extend_from_slice(&json[start..i]);
                out.push(b'"');
                number_expected = false;
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.push(json[i]);
                i += 1;
            }
            other => {
                out.push(other);
                key_is_value = false;
                number_expected = false;
                i += 1;
            }
        }
    }
    out
}

/// Collapses whitespace (MLflow messages can carry SQL with newlines) and shortens to
/// `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Numeric ids in numeric order, others after them in text order.
fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// What a run's artifact path holds.
enum Listing {
    /// Entries below the directory, recursively, paths relative to it.
    Directory(Vec<ArtifactEntry>),
    /// A file of this many bytes.
    File(u64),
}

/// An upload that did not finish.
struct UploadStopped {
    error: RegistryError,
    run_id: String,
    artifact_path: String,
    uploaded: usize,
    total: usize,
}

impl UploadStopped {
    /// The error, saying where the local data now is (`state`: "is intact", "was kept")
    /// and how to finish the upload by hand.
    fn into_error(self, local: &Path, state: &str) -> RegistryError {
        let destination = if self.artifact_path.is_empty() {
            String::new()
        } else {
            format!(" --artifact-path {}", self.artifact_path)
        };
        let context = format!(
            "uploading to run {}'s artifacts stopped after {} of {} files; the local copy {state} at {} — upload it once the server is back (`mlflow artifacts log-artifacts --local-dir {} --run-id {}{destination}`)",
            self.run_id,
            self.uploaded,
            self.total,
            local.display(),
            local.display(),
            self.run_id,
        );
        match self.error {
            RegistryError::Remote {
                url,
                status,
                code,
                message,
            } => RegistryError::Remote {
                url,
                status,
                code,
                message: format!("{context}: {message}"),
            },
            // A local problem (unreadable file, bad name) names its own path.
            other => other,
        }
    }
}

/// Moves (or, across filesystems, copies) an upload that failed to
/// `<unsent_dir>/<run_id>/<artifact_path>` and returns where it is.
fn keep_unsent(
    unsent_dir: &Path,
    local: &Path,
    run_id: &str,
    artifact_path: &str,
) -> Result<PathBuf> {
    let mut kept = unsent_dir.join(run_id);
    let leaf = if artifact_path.trim_matches('/').is_empty() {
        "artifacts"
    } else {
        artifact_path.trim_matches('/')
    };
    kept.push(leaf);
    if kept.exists() {
        let name = format!(
            "{}-{}",
            kept.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            crate::fsutil::random_hex(4)
        );
        kept.set_file_name(name);
    }
    if let Some(parent) = kept.parent() {
        crate::fsutil::create_dir_all(parent)?;
    }
    if fs::rename(local, &kept).is_err() {
        // The caller removes `local` afterwards; a complete copy is enough.
        crate::fsutil::copy_tree(local, &kept, true)?;
    }
    Ok(kept)
}

// ---------------------------------------------------------------------------------------------
// Batches

/// Drops repeats of an identical param; a key given twice with different values is refused
/// before anything is sent (the server would reject the whole batch).
fn dedup_params(params: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = Vec::with_capacity(params.len());
    for (key, value) in params {
        names::validate_key("param key", key)?;
        match seen.get(key.as_str()) {
            Some(&previous) if previous == value => {}
            Some(&previous) => {
                return Err(RegistryError::InvalidArgument(format!(
                    "param {key:?} given twice with different values ({previous:?} and {value:?}); a param cannot change"
                )));
            }
            None => {
                seen.insert(key, value);
                out.push((key.clone(), value.clone()));
            }
        }
    }
    Ok(out)
}

/// One `runs/log-batch` request's share.
#[derive(Debug, PartialEq)]
struct Batch<'a> {
    metrics: &'a [Metric],
    params: &'a [(String, String)],
    tags: &'a [(String, String)],
}

/// Splits entities into requests within the server's limits (≤ 1000 metrics, ≤ 100 params,
/// ≤ 100 tags, ≤ 1000 entities, about 1 MB), in order. Params and tags go first, so a run's
/// configuration reaches the server before its metrics.
fn plan_batches<'a>(
    metrics: &'a [Metric],
    params: &'a [(String, String)],
    tags: &'a [(String, String)],
) -> Vec<Batch<'a>> {
    // Upper estimates of each entity's JSON size.
    let pair_size = |(k, v): &(String, String)| k.len() + v.len() + 32;
    let metric_size = |m: &Metric| m.key.len() + 96;
    let mut batches = Vec::new();
    let (mut m, mut p, mut t) = (0, 0, 0);
    while m < metrics.len() || p < params.len() || t < tags.len() {
        let (p0, t0, m0) = (p, t, m);
        let mut bytes = 64;
        let mut count = 0;
        // `count == 0`: an entity too big on its own still goes, alone.
        let fits =
            |bytes: usize, size: usize, count: usize| count == 0 || bytes + size <= MAX_BATCH_BYTES;
        while p < params.len()
            && p - p0 < MAX_BATCH_PARAMS
            && fits(bytes, pair_size(&params[p]), count)
        {
            bytes += pair_size(&params[p]);
            p += 1;
            count += 1;
        }
        while t < tags.len() && t - t0 < MAX_BATCH_TAGS && fits(bytes, pair_size(&tags[t]), count) {
            bytes += pair_size(&tags[t]);
            t += 1;
            count += 1;
        }
        while m < metrics.len()
            && m - m0 < MAX_BATCH_METRICS
            && count < MAX_BATCH_ENTITIES
            && fits(bytes, metric_size(&metrics[m]), count)
        {
            bytes += metric_size(&metrics[m]);
            m += 1;
            count += 1;
        }
        batches.push(Batch {
            metrics: &metrics[m0..m],
            params: &params[p0..p],
            tags: &tags[t0..t],
        });
    }
    batches
}

fn metric_json(m: &Metric) -> Value {
    // JSON has no NaN or infinities; MLflow takes these strings instead.
    let value = if m.value.is_nan() {
        json!("NaN")
    } else if m.value == f64::INFINITY {
        json!("Infinity")
    } else if m.value == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(m.value)
    };
    json!({"key": m.key, "value": value, "timestamp": m.timestamp, "step": m.step})
}

fn pair_list(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

fn pair_map(tags: Vec<WireTag>) -> BTreeMap<String, String> {
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

/// Quotes a value for an MLflow search filter.
fn quote_filter_value(value: &str) -> Result<String> {
    if !value.contains('\'') {
        Ok(format!("'{value}'"))
    } else if !value.contains('"') {
        Ok(format!("\"{value}\""))
    } else {
        Err(RegistryError::InvalidArgument(format!(
            "{value:?} contains both kinds of quote and cannot be searched for on an MLflow server"
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Artifact locations

/// A place on an artifact proxy: the server answering for it and the path below
/// `/api/2.0/mlflow-artifacts/artifacts/`.
#[derive(Debug, Clone, PartialEq)]
struct ArtifactLocation {
    server: String,
    path: String,
}

/// `mlflow-artifacts:/P` (or `:///P`) is `P` on this server; `mlflow-artifacts://host:port/P`
/// names another host (reached with this server's scheme). Anything else (`s3://`, `file:`)
/// is not reachable through the server.
fn resolve_artifact_uri(uri: &str, server: &str) -> Result<ArtifactLocation> {
    let rest = uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
        RegistryError::Unsupported(format!(
            "artifact location {uri:?} is not served by the MLflow server {server}: Ratchet moves artifacts only through the server's artifact proxy. Start the server with --serve-artifacts (the default in MLflow 3) and use an experiment created since, whose artifact location is mlflow-artifacts:/<id>"
        ))
    })?;
    let (server, path) = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let (authority, path) = authority_and_path
                .split_once('/')
                .unwrap_or((authority_and_path, ""));
            if authority.is_empty() {
                (server.to_string(), path)
            } else {
                let scheme = server.split("://").next().unwrap_or("http");
                (format!("{scheme}://{authority}"), path)
            }
        }
        None => (server.to_string(), rest),
    };
    if path.split('/').any(|part| part == "..") {
        return Err(RegistryError::InvalidArgument(format!(
            "artifact location {uri:?} contains '..'"
        )));
    }
    Ok(ArtifactLocation {
        server,
        path: join_path(path, ""),
    })
}

/// Joins `/`-separated paths, dropping empty parts.
fn join_path(base: &str, rel: &str) -> String {
    base.split('/')
        .chain(rel.split('/'))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Regular files below `dir`, as `/`-separated paths relative to it. Symbolic links to
/// files are followed; links to directories are refused (they could loop).
fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| RegistryError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| RegistryError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| {
            RegistryError::InvalidArgument(format!(
                "{} has a file name that is not UTF-8 and cannot be an artifact",
                path.display()
            ))
        })?;
        let rel = join_path(prefix, &name);
        names::validate_artifact_path(&rel)?;
        let meta = fs::metadata(&path).map_err(|e| RegistryError::io(&path, e))?;
        if meta.is_dir() {
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                return Err(RegistryError::InvalidArgument(format!(
                    "{} is a symbolic link to a directory; upload its target instead",
                    path.display()
                )));
            }
            collect_files(&path, &rel, out)?;
        } else if meta.is_file() {
            out.push(rel);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Wire format: protobuf JSON, where unset fields are omitted, so nearly all are optional.

#[derive(Deserialize)]
struct WireTag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct WireExperiment {
    experiment_id: String,
    name: String,
    artifact_location: Option<String>,
    lifecycle_stage: Option<String>,
    creation_time: Option<i64>,
    last_update_time: Option<i64>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

impl From<WireExperiment> for Experiment {
    fn from(w: WireExperiment) -> Self {
        Experiment {
            experiment_id: w.experiment_id,
            name: w.name,
            artifact_location: w.artifact_location.unwrap_or_default(),
            lifecycle_stage: w.lifecycle_stage.unwrap_or_else(|| "active".into()),
            creation_time: w.creation_time,
            last_update_time: w.last_update_time,
            tags: pair_map(w.tags),
        }
    }
}

#[derive(Deserialize)]
struct ExperimentAnswer {
    experiment: WireExperiment,
}

#[derive(Deserialize)]
struct CreateExperimentAnswer {
    experiment_id: String,
}

#[derive(Deserialize)]
struct SearchExperimentsAnswer {
    #[serde(default)]
    experiments: Vec<WireExperiment>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct WireRunInfo {
    run_id: String,
    experiment_id: String,
    run_name: Option<String>,
    user_id: Option<String>,
    status: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    artifact_uri: Option<String>,
    lifecycle_stage: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireRunData {
    #[serde(default)]
    metrics: Vec<WireMetric>,
    #[serde(default)]
    params: Vec<WireTag>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

#[derive(Deserialize)]
struct WireRun {
    info: WireRunInfo,
    #[serde(default)]
    data: WireRunData,
}

#[derive(Deserialize)]
struct RunAnswer {
    run: WireRun,
}

#[derive(Deserialize)]
struct SearchRunsAnswer {
    #[serde(default)]
    runs: Vec<WireRun>,
    next_page_token: Option<String>,
}

/// A metric value: a JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireNumber {
    Number(f64),
    Text(String),
}

#[derive(Deserialize)]
struct WireMetric {
    key: String,
    value: WireNumber,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    step: i64,
}

impl WireMetric {
    fn into_metric(self) -> Metric {
        let value = match self.value {
            WireNumber::Number(v) => v,
            // Numbers arrive as text (see `quote_metric_values`), as do MLflow's
            // "NaN", "Infinity" and "-Infinity".
            WireNumber::Text(text) => match text.as_str() {
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other.parse().unwrap_or(f64::NAN),
            },
        };
        Metric {
            key: self.key,
            value,
            timestamp: self.timestamp,
            step: self.step,
        }
    }
}

#[derive(Deserialize)]
struct MetricHistoryAnswer {
    #[serde(default)]
    metrics: Vec<WireMetric>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct WireArtifact {
    path: String,
    #[serde(default)]
    is_dir: bool,
    file_size: Option<u64>,
}

#[derive(Deserialize)]
struct ListArtifactsAnswer {
    #[serde(default)]
    files: Vec<WireArtifact>,
}

#[derive(Deserialize)]
struct WireAlias {
    alias: String,
    version: String,
}

#[derive(Deserialize)]
struct WireRegisteredModel {
    name: String,
    description: Option<String>,
    creation_timestamp: Option<i64>,
    last_updated_timestamp: Option<i64>,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default)]
    aliases: Vec<WireAlias>,
}

impl From<WireRegisteredModel> for RegisteredModel {
    fn from(w: WireRegisteredModel) -> Self {
        RegisteredModel {
            name: w.name,
            creation_timestamp: w.creation_timestamp,
            last_updated_timestamp: w.last_updated_timestamp,
            description: w.description.filter(|d| !d.is_empty()),
            tags: pair_map(w.tags),
            aliases: w
                .aliases
                .into_iter()
                .filter_map(|a| Some((a.alias, a.version.parse().ok()?)))
                .collect(),
        }
    }
}

#[derive(Deserialize)]
struct RegisteredModelAnswer {
    registered_model: WireRegisteredModel,
}

#[derive(Deserialize)]
struct SearchRegisteredModelsAnswer {
    #[serde(default)]
    registered_models: Vec<WireRegisteredModel>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct WireModelVersion {
    name: String,
    version: String,
    source: Option<String>,
    run_id: Option<String>,
    status: Option<String>,
    description: Option<String>,
    creation_timestamp: Option<i64>,
    last_updated_timestamp: Option<i64>,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default)]
    aliases: Vec<String>,
}

#[derive(Deserialize)]
struct ModelVersionAnswer {
    model_version: WireModelVersion,
}

#[derive(Deserialize)]
struct SearchModelVersionsAnswer {
    #[serde(default)]
    model_versions: Vec<WireModelVersion>,
    next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(i: usize) -> Metric {
        Metric {
            key: format!("m{}", i % 3),
            value: i as f64,
            timestamp: 1_700_000_000_000 + i as i64,
            step: i as i64,
        }
    }

    fn pairs(n: usize, prefix: &str) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("{prefix}{i}"), format!("v{i}")))
            .collect()
    }

    #[test]
    fn batches_respect_every_server_limit_and_keep_order() {
        let metrics: Vec<Metric> = (0..2500).map(metric).collect();
        let params = pairs(250, "p");
        let tags = pairs(130, "t");
        let batches = plan_batches(&metrics, &params, &tags);
        for b in &batches {
            assert!(b.metrics.len() <= MAX_BATCH_METRICS);
            assert!(b.params.len() <= MAX_BATCH_PARAMS);
            assert!(b.tags.len() <= MAX_BATCH_TAGS);
            assert!(b.metrics.len() + b.params.len() + b.tags.len() <= MAX_BATCH_ENTITIES);
        }
        let sent_metrics: Vec<&Metric> = batches.iter().flat_map(|b| b.metrics).collect();
        assert_eq!(sent_metrics, metrics.iter().collect::<Vec<_>>());
        let sent_params: Vec<_> = batches.iter().flat_map(|b| b.params).collect();
        assert_eq!(sent_params, params.iter().collect::<Vec<_>>());
        let sent_tags: Vec<_> = batches.iter().flat_map(|b| b.tags).collect();
        assert_eq!(sent_tags, tags.iter().collect::<Vec<_>>());
        // 2880 entities need at least 3 requests, and 3 suffice: 100 params + 100 tags +
        // 800 metrics, 100 + 30 + 870, then 50 + 0 + 830.
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[0].metrics.len(), 800);
    }

    #[test]
    fn large_values_split_batches_by_size() {
        let params: Vec<(String, String)> = (0..100)
            .map(|i| (format!("p{i}"), "x".repeat(6000)))
            .collect();
        let tags: Vec<(String, String)> = (0..100)
            .map(|i| (format!("t{i}"), "y".repeat(8000)))
            .collect();
        let batches = plan_batches(&[], &params, &tags);
        assert!(batches.len() > 1);
        for b in &batches {
            let size: usize = b
                .params
                .iter()
                .chain(b.tags)
                .map(|(k, v)| k.len() + v.len())
                .sum();
            assert!(size <= MAX_BATCH_BYTES, "{size}");
        }
        assert_eq!(batches.iter().map(|b| b.params.len()).sum::<usize>(), 100);
        assert_eq!(batches.iter().map(|b| b.tags.len()).sum::<usize>(), 100);
    }

    #[test]
    fn nothing_to_log_sends_nothing() {
        assert!(plan_batches(&[], &[], &[]).is_empty());
    }

    #[test]
    fn params_are_deduplicated_and_conflicts_refused() {
        let same = vec![("lr".to_string(), "0.1".to_string()); 2];
        assert_eq!(dedup_params(&same).unwrap().len(), 1);
        let conflict = vec![
            ("lr".to_string(), "0.1".to_string()),
            ("lr".to_string(), "0.2".to_string()),
        ];
        let message = dedup_params(&conflict).unwrap_err().to_string();
        assert!(
            message.contains("\"lr\"") && message.contains("cannot change"),
            "{message}"
        );
    }

    #[test]
    fn artifact_uris_map_to_the_proxy() {
        let s = "http://127.0.0.1:5000";
        let here = resolve_artifact_uri("mlflow-artifacts:/1/abc/artifacts", s).unwrap();
        assert_eq!(
            here,
            ArtifactLocation {
                server: s.into(),
                path: "1/abc/artifacts".into()
            }
        );
        let triple = resolve_artifact_uri("mlflow-artifacts:///1/abc/artifacts", s).unwrap();
        assert_eq!(triple, here);
        let other = resolve_artifact_uri(
            "mlflow-artifacts://art.example:8080/2/r/artifacts",
            "https://t",
        )
        .unwrap();
        assert_eq!(
            other,
            ArtifactLocation {
                server: "https://art.example:8080".into(),
                path: "2/r/artifacts".into()
            }
        );
        let message = resolve_artifact_uri("s3://bucket/1/abc", s)
            .unwrap_err()
            .to_string();
        assert!(message.contains("--serve-artifacts"), "{message}");
        assert!(resolve_artifact_uri("mlflow-artifacts:/1/../x", s).is_err());
        assert_eq!(
            join_path("1/r/artifacts/", "/ckpt/model.safetensors"),
            "1/r/artifacts/ckpt/model.safetensors"
        );
        assert_eq!(encode_path("1/r/a b/ü%.txt"), "1/r/a%20b/%C3%BC%25.txt");
    }

    #[test]
    fn non_finite_metrics_use_mlflow_strings() {
        let mut m = metric(0);
        m.value = f64::NAN;
        assert_eq!(metric_json(&m)["value"], json!("NaN"));
        m.value = f64::NEG_INFINITY;
        assert_eq!(metric_json(&m)["value"], json!("-Infinity"));
        let wire: WireMetric =
            serde_json::from_value(json!({"key": "x", "value": "NaN", "timestamp": 1})).unwrap();
        assert!(wire.into_metric().value.is_nan());
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay_and_is_deterministic() {
        let a = RestStore::with_config("http://127.0.0.1:1", RestConfig::default()).unwrap();
        let b = RestStore::with_config("http://127.0.0.1:1", RestConfig::default()).unwrap();
        let d = Duration::from_millis(1000);
        let xs: Vec<Duration> = (0..50).map(|_| a.jittered(d)).collect();
        let ys: Vec<Duration> = (0..50).map(|_| b.jittered(d)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| *x >= d / 2 && *x <= d));
        assert!(xs.iter().any(|x| *x != xs[0]));
    }

    #[test]
    fn tracking_uris_are_checked() {
        assert!(
            RestStore::with_config("https://mlflow.example.com/prefix/", RestConfig::default())
                .is_ok()
        );
        assert!(RestStore::with_config("HTTP://127.0.0.1:5000", RestConfig::default()).is_ok());
        for bad in [
            "ftp://x",
            "http://",
            "http:///x",
            "127.0.0.1:5000",
            "http://h:1/?q",
        ] {
            assert!(
                RestStore::with_config(bad, RestConfig::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"user:pa ss"), "dXNlcjpwYSBzcw==");
    }

    #[test]
    fn metric_values_parse_exactly() {
        let body = br#"{"metrics": [{"key": "value", "value" : 0.09090909090909091, "timestamp": 17, "step": -2},
            {"key": "k", "value": "NaN", "timestamp": 1}, {"key": "x\"value\"", "value": -1.5e-7}],
            "tags": [{"key": "value", "value": "3.0"}]}"#;
        let quoted: Value = serde_json::from_slice(&quote_metric_values(body)).unwrap();
        assert_eq!(quoted["metrics"][0]["value"], "0.09090909090909091");
        assert_eq!(quoted["metrics"][0]["key"], "value");
        assert_eq!(quoted["metrics"][0]["timestamp"], 17);
        assert_eq!(quoted["metrics"][0]["step"], -2);
        assert_eq!(quoted["metrics"][1]["value"], "NaN");
        assert_eq!(quoted["metrics"][2]["key"], "x\"value\"");
        assert_eq!(quoted["metrics"][2]["value"], "-1.5e-7");
        assert_eq!(quoted["tags"][0]["value"], "3.0");
        let history: MetricHistoryAnswer = serde_json::from_value(quoted).unwrap();
        let values: Vec<f64> = history
            .metrics
            .into_iter()
            .map(|m| m.into_metric().value)
            .collect();
        assert_eq!(values[0].to_bits(), (1.0f64 / 11.0).to_bits());
        assert!(values[1].is_nan());
        assert_eq!(values[2], -1.5e-7);
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\n  b\tc", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn numeric_ids_sort_numerically() {
        let mut ids = vec!["10", "2", "abc", "0"];
        ids.sort_by(|a, b| id_order(a, b));
        assert_eq!(ids, ["0", "2", "10", "abc"]);
    }
}
