//! The MLflow tracking-server backend: [`TrackingStore`] over MLflow's REST API
//! (`/api/2.0/mlflow/...`) and its artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`,
//! served by `mlflow server --serve-artifacts`, the default since MLflow 3).
//!
//! ```no_run
//! use ratchet_mlflow::{Metric, RunStatus, TrackingStore};
//! use ratchet_mlflow::rest::RestStore;
//!
//! let store = RestStore::open("http://127.0.0.1:5000")?; // retry budget etc. from the environment
//! store.check()?; // fail now, not after hours of training
//! let experiment = store.get_or_create_experiment("trading")?;
//! let run = store.create_run(&experiment.experiment_id, "ppo-googl", &[])?;
//! store.log_params(&run.run_id, &[("learning_rate".into(), "0.0003".into())])?;
//! store.log_metrics(&run.run_id, &[Metric::now("episode_return", 12.5, 1)])?;
//! store.upload_artifacts(&run.run_id, "runs/ppo/checkpoint".as_ref(), "checkpoint")?;
//! store.set_run_status(&run.run_id, RunStatus::Finished, Some(ratchet_mlflow::now_ms()))?;
//! # Ok::<(), ratchet_mlflow::Error>(())
//! ```
//!
//! Every request goes through one retry loop: connection refused/reset, HTTP 429 and 5xx
//! are retried with exponential backoff and jitter until [`RestConfig::retry_budget`]
//! (30 s by default, `RATCHET_HTTP_RETRY_SECONDS`) is spent; the error then names the
//! server, the request, the number of attempts and what to check. Other MLflow errors come
//! back as one line, `ERROR_CODE (HTTP n): message`, and `RESOURCE_DOES_NOT_EXIST` becomes
//! [`Error::NotFound`].
//!
//! A create is never repeated blindly: when its answer is lost (a 5xx, a dropped
//! connection, a response timeout), the retry first looks on the server for what it may
//! have made — runs and model versions carry a [`REQUEST_ID_TAG`] for that — and uses it
//! (see `lost_answers.rs`).
//!
//! Local data is never lost: uploads only read their files (a failed upload names the
//! intact local copy; one handed over with `upload_artifacts_owned` is first moved to
//! [`RestConfig::unsent_dir`]), and downloads are built in a temporary sibling of the
//! destination, moved into place once complete, never overwriting an existing file.
//!
//! Batches follow the server's `runs/log-batch` limits: at most 1000 metrics, 100 params,
//! 100 tags and 1000 entities per request, kept under 1 MB.

mod artifacts;
mod batch;
mod config;
mod http;
mod lock;
mod lost_answers;
mod store_impl;
mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::checked::Checked;
use crate::error::{Error, Result};
use crate::store::{Experiment, StoredVersion, TrackingStore};

pub use batch::{MAX_BATCH_ENTITIES, MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS};
pub use config::{Auth, Clock, RETRY_BUDGET_ENV, RestConfig};
use http::{Method, Request};
pub use lost_answers::REQUEST_ID_TAG;
use wire::{ExperimentAnswer, SearchRunsAnswer};

/// Page size of searches and metric histories.
const PAGE_SIZE: u32 = 1000;

/// An MLflow tracking server reached over HTTP(S). See the [module docs](self).
pub struct RestStore {
    /// `scheme://host:port[/prefix]`, without a trailing slash.
    server: String,
    agent: ureq::Agent,
    config: RestConfig,
    /// Whether the server has answered any request of this client: until it has, a refused
    /// connection means a wrong address or a server not started, and is not retried.
    answered: AtomicBool,
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
    /// Nothing is sent yet; [`RestStore::check`] asks the server. The store comes inside
    /// [`Checked`], which validates every argument before a request is built.
    pub fn open(tracking_uri: &str) -> Result<Checked<Self>> {
        Self::with_config(tracking_uri, RestConfig::from_env()?)
    }

    /// Like [`RestStore::open`] with an explicit configuration.
    pub fn with_config(tracking_uri: &str, config: RestConfig) -> Result<Checked<Self>> {
        let server = tracking_uri.trim().trim_end_matches('/').to_string();
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "tracking URI {tracking_uri:?} {why}; expected the URL of an MLflow server such as http://127.0.0.1:5000"
            ))
        };
        let after_scheme = ["http://", "https://"]
            .iter()
            .find_map(|scheme| {
                let (head, rest) = server.split_at_checked(scheme.len())?;
                head.eq_ignore_ascii_case(scheme).then_some(rest)
            })
            .ok_or_else(|| bad("is not an http:// or https:// URL"))?;
        if after_scheme.is_empty() || after_scheme.starts_with('/') {
            return Err(bad("has no host"));
        }
        if after_scheme.contains(['?', '#']) || after_scheme.chars().any(char::is_whitespace) {
            return Err(bad("must not carry a query, fragment or spaces"));
        }
        server
            .parse::<ureq::http::Uri>()
            .map_err(|e| bad(&format!("is not a valid URL ({e})")))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("ratchet/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(config.response_timeout))
            .timeout_per_read(Some(config.response_timeout))
            .build()
            .into();
        Ok(Checked::new(RestStore {
            server,
            agent,
            config,
            answered: AtomicBool::new(false),
        }))
    }

    /// Another client of the same server with the same configuration (for a thread of its
    /// own; the connection pool is shared).
    fn sibling(&self) -> RestStore {
        RestStore {
            server: self.server.clone(),
            agent: self.agent.clone(),
            config: self.config.clone(),
            answered: AtomicBool::new(self.answered.load(Ordering::Relaxed)),
        }
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

    // ---- model registry ----------------------------------------------------------------------

    fn wait_until_ready(&self, mut version: StoredVersion) -> Result<StoredVersion> {
        let clock = &self.config.clock;
        let started = clock.now();
        let elapsed = || clock.now().saturating_sub(started);
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
                status if elapsed() >= self.config.version_ready_timeout => {
                    return Err(self.remote(
                        None,
                        Some(status.to_string()),
                        format!(
                            "version {} of model {:?} is still {status} after {:.0} s; see the server's log",
                            version.version,
                            version.name,
                            elapsed().as_secs_f64()
                        ),
                    ));
                }
                _ => {
                    clock.sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                    version = self.get_model_version(&version.name, version.version)?;
                }
            }
        }
    }

    // ---- errors ----------------------------------------------------------------------------

    fn remote(&self, status: Option<u16>, code: Option<String>, message: String) -> Error {
        Error::Remote {
            url: self.server.clone(),
            status,
            code,
            message,
        }
    }

    fn protocol(&self, endpoint: &str, detail: String) -> Error {
        self.remote(
            None,
            None,
            format!("unexpected answer from {endpoint}: {detail}"),
        )
    }

    /// Turns the server's `RESOURCE_DOES_NOT_EXIST` into [`Error::NotFound`] naming
    /// `what` (e.g. `run 3f2a…`), so callers can branch on it as with the file store.
    fn or_not_found<T>(&self, result: Result<T>, what: impl FnOnce() -> String) -> Result<T> {
        match result {
            Err(e) if has_code(&e, NOT_FOUND) => Err(Error::NotFound(format!(
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
}

const NOT_FOUND: &str = "RESOURCE_DOES_NOT_EXIST";
const ALREADY_EXISTS: &str = "RESOURCE_ALREADY_EXISTS";

fn has_code(error: &Error, wanted: &str) -> bool {
    matches!(error, Error::Remote { code: Some(code), .. } if code == wanted)
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

/// Quotes a value for an MLflow search filter.
fn quote_filter_value(value: &str) -> Result<String> {
    if !value.contains('\'') {
        Ok(format!("'{value}'"))
    } else if !value.contains('"') {
        Ok(format!("\"{value}\""))
    } else {
        Err(Error::InvalidArgument(format!(
            "{value:?} contains both kinds of quote and cannot be searched for on an MLflow server"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_its_cap() {
        let first = Duration::from_millis(100);
        let delays: Vec<Duration> = http::backoff(first, first * 8).take(200).collect();
        for (i, delay) in delays.iter().enumerate() {
            let d = first * 2u32.pow(i.min(3) as u32);
            // backon computes in f32 seconds: allow a microsecond of rounding.
            let slack = Duration::from_micros(1);
            assert!(
                *delay + slack >= d / 2 && *delay <= d + slack,
                "{i}: {delay:?} for {d:?}"
            );
        }
        assert!(delays[3..].iter().any(|d| *d != delays[3]), "jittered");
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
    fn numeric_ids_sort_numerically() {
        let mut ids = vec!["10", "2", "abc", "0"];
        ids.sort_by(|a, b| id_order(a, b));
        assert_eq!(ids, ["0", "2", "10", "abc"]);
    }
}
