//! The REST client's configuration: the retry budget and backoff, the clock it waits on (a
//! virtual one in tests), and the credentials a request carries.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::prelude::{BASE64_STANDARD, Engine as _};

use crate::error::{Error, Result};

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
    /// The time retries are measured and waited in: the system's by default; a test's
    /// own to check the retry schedule without waiting for it.
    pub clock: Arc<dyn Clock>,
    /// How often a holder of a model lock shows it is alive. Default 2 s.
    pub lock_beat: Duration,
    /// How long a model lock may show no sign of life before a waiter takes it over (its
    /// holder died). Default 30 s.
    pub lock_stale_after: Duration,
}

/// Time as the retry loop sees it.
pub trait Clock: Send + Sync {
    /// Time since some fixed start.
    fn now(&self) -> Duration;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration);
}

/// The system's monotonic clock.
struct SystemClock(Instant);

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
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
            clock: Arc::new(SystemClock(Instant::now())),
            lock_beat: Duration::from_secs(2),
            lock_stale_after: Duration::from_secs(30),
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
                    Error::InvalidArgument(format!(
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
                return Err(Error::InvalidArgument(
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
            .field("lock_beat", &self.lock_beat)
            .field("lock_stale_after", &self.lock_stale_after)
            .finish_non_exhaustive()
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

impl Auth {
    /// The `Authorization` header's value, if any.
    pub(super) fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic { username, password } => Some(format!(
                "Basic {}",
                BASE64_STANDARD.encode(format!("{username}:{password}"))
            )),
            Auth::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_the_authorization_header() {
        let basic = Auth::Basic {
            username: "user".into(),
            password: "pa ss".into(),
        };
        assert_eq!(basic.header().as_deref(), Some("Basic dXNlcjpwYSBzcw=="));
        let bearer = Auth::Bearer("t0k".into());
        assert_eq!(bearer.header().as_deref(), Some("Bearer t0k"));
        assert_eq!(Auth::None.header(), None);
    }
}
