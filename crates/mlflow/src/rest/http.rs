//! HTTP for the REST store: one request rebuilt on every attempt, and the retry loop that
//! sorts failures into "try again" and "give up".

use backon::{BackoffBuilder, ExponentialBuilder};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use ureq::http;

use super::RestStore;
use super::config::RETRY_BUDGET_ENV;
use crate::error::{Error, Result};
use crate::uri::encode_component;

/// JSON answers larger than this are refused (histories and searches are paged far below).
const MAX_JSON_RESPONSE: u64 = 512 * 1024 * 1024;

impl RestStore {
    pub(super) fn get_json(
        &self,
        endpoint: &str,
        query: &[(&'static str, String)],
    ) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.server);
        let request = Request::new(Method::Get, url).query(query.to_vec());
        self.execute(&request, |body| self.read_json(&request, body))
    }

    pub(super) fn post_json(&self, endpoint: &str, body: &Value) -> Result<Value> {
        self.send_json(Method::Post, endpoint, body)
    }

    pub(super) fn send_json(&self, method: Method, endpoint: &str, body: &Value) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.server);
        let bytes = serde_json::to_vec(body).expect("a JSON value always serialises");
        let request = Request::new(method, url).json(bytes);
        self.execute(&request, |body| self.read_json(&request, body))
    }

    /// Reads a JSON answer; an empty body counts as `{}`.
    pub(super) fn read_json(&self, request: &Request, body: ureq::Body) -> Result<Value, Failure> {
        let bytes = body
            .into_with_config()
            .limit(MAX_JSON_RESPONSE)
            .read_to_vec()
            .map_err(|e| Failure::retry(format!("answer cut off: {e}"), true))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
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
    /// off mid-way). For requests whose effect is the same when sent twice.
    pub(super) fn execute<T>(
        &self,
        request: &Request,
        read: impl FnMut(ureq::Body) -> Result<T, Failure>,
    ) -> Result<T> {
        self.execute_with(request, read, None)
    }

    /// `POST endpoint` of a request that must not take effect twice: a retry after a lost
    /// answer first looks with `lost` whether it did.
    pub(super) fn post_create(
        &self,
        endpoint: &str,
        body: &Value,
        lost: LostAnswer<'_>,
    ) -> Result<Value> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.server);
        let bytes = serde_json::to_vec(body).expect("a JSON value always serialises");
        let request = Request::new(Method::Post, url).json(bytes);
        self.execute_with(&request, |body| self.read_json(&request, body), Some(lost))
    }

    /// The retry loop. Once an attempt may have reached the server without its answer
    /// coming back, every later attempt is preceded by `lost`'s lookup (when given), and
    /// what that finds is the result; so is a last lookup before giving up.
    fn execute_with<T>(
        &self,
        request: &Request,
        mut read: impl FnMut(ureq::Body) -> Result<T, Failure>,
        mut lost: Option<LostAnswer<'_, T>>,
    ) -> Result<T> {
        let clock = &self.config.clock;
        let started = clock.now();
        let elapsed = || clock.now().saturating_sub(started);
        let budget = self.config.retry_budget;
        let mut backoff = backoff(self.config.first_backoff, self.config.max_backoff);
        let mut attempts = 0u32;
        // Why the last attempt that may have taken effect failed.
        let mut answer_lost: Option<String> = None;
        loop {
            if let (Some(reason), Some(lost)) = (&answer_lost, &mut lost)
                && let Some(found) = self.look_up(request, reason, lost)?
            {
                return Ok(found);
            }
            attempts += 1;
            // One connect to a dead host must not eat more than what is left of the budget.
            let remaining = budget.saturating_sub(elapsed());
            let connect_timeout = self
                .config
                .connect_timeout
                .min(remaining.max(Duration::from_millis(200)));
            let failure = match self.send_once(request, connect_timeout) {
                Ok(response) => {
                    self.answered.store(true, Ordering::Relaxed);
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
                                // A rate limit refuses the request; a 5xx may come from
                                // a proxy whose upstream did the work.
                                reached_server: status != 429,
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
                    reached_server,
                } => {
                    if reached_server {
                        answer_lost = Some(reason.clone());
                    }
                    (reason, status, retry_after)
                }
            };
            // The backoff advances even when the server says how long to wait.
            let jittered = backoff.next().unwrap_or(self.config.max_backoff);
            let wait = retry_after
                .map(|w| w.min(self.config.max_backoff))
                .unwrap_or(jittered);
            if elapsed() + wait >= budget {
                if let (Some(reason), Some(lost)) = (&answer_lost, &mut lost)
                    && let Some(found) = self.look_up(request, reason, lost)?
                {
                    return Ok(found);
                }
                return Err(self.remote(
                    status,
                    None,
                    format!(
                        "{} failed {attempts} time{} in {:.1} s (last: {reason}); the server is unavailable. Check that `mlflow server` is running and reachable at {}, or allow more time with {RETRY_BUDGET_ENV}=<seconds> (now {:.0})",
                        request.describe(&self.server),
                        if attempts == 1 { "" } else { "s" },
                        elapsed().as_secs_f64(),
                        self.server,
                        budget.as_secs_f64(),
                    ),
                ));
            }
            clock.sleep(wait);
        }
    }

    /// Asks whether a request whose answer was lost (`reason`) took effect; when that
    /// cannot be told, the error names what may exist on the server.
    fn look_up<T>(
        &self,
        request: &Request,
        reason: &str,
        lost: &mut LostAnswer<'_, T>,
    ) -> Result<Option<T>> {
        (lost.find)().map_err(|e| {
            let detail = match e {
                Error::Remote { message, .. } => message,
                other => other.to_string(),
            };
            self.remote(
                None,
                None,
                format!(
                    "{}: the answer was lost ({reason}), and checking whether the request took effect failed ({detail}); {} — check before trying again",
                    request.describe(&self.server),
                    lost.what
                ),
            )
        })
    }

    pub(super) fn send_once(
        &self,
        request: &Request,
        connect_timeout: Duration,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url());
        if let Some(credentials) = self.config.auth.header() {
            builder = builder.header("Authorization", credentials);
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

    pub(super) fn run<S: ureq::AsSendBody>(
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
    pub(super) fn classify(&self, request: &Request, error: ureq::Error) -> Failure {
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
                    return Failure::Fatal(Error::io(path, e));
                }
                if e.kind() == io::ErrorKind::ConnectionRefused
                    && !self.answered.load(Ordering::Relaxed)
                {
                    // Nothing listens there, and nothing ever has for this client: a wrong
                    // address or a server not started, which waiting will not fix. (A
                    // server that answered before and now refuses is restarting: retried.)
                    return fatal(format!(
                        "connection refused: nothing is listening at {}. Start the server \
                         (`mlflow server --host <host> --port <port>`) or point --tracking-uri \
                         or MLFLOW_TRACKING_URI at a running one",
                        self.server
                    ));
                }
                if is_transient_io(e.kind()) {
                    let reached_server = e.kind() != io::ErrorKind::ConnectionRefused;
                    Failure::retry(describe_io(&e), reached_server)
                } else {
                    fatal(describe_io(&e))
                }
            }
            ureq::Error::ConnectionFailed => Failure::retry("connection failed".into(), false),
            ureq::Error::Timeout(which) => {
                let connecting = matches!(which, ureq::Timeout::Connect | ureq::Timeout::Resolve);
                Failure::retry(format!("timed out ({which})"), !connecting)
            }
            ureq::Error::HostNotFound => fatal("host not found; check the tracking URI".into()),
            other => fatal(other.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One request, rebuilt into a fresh HTTP request on every attempt

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

pub(super) enum Payload {
    Empty,
    Json(Vec<u8>),
    File(PathBuf),
}

pub(super) struct Request {
    method: Method,
    /// Without the query string.
    url: String,
    query: Vec<(&'static str, String)>,
    payload: Payload,
}

impl Request {
    pub(super) fn new(method: Method, url: String) -> Self {
        Request {
            method,
            url,
            query: Vec::new(),
            payload: Payload::Empty,
        }
    }

    pub(super) fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    pub(super) fn json(mut self, body: Vec<u8>) -> Self {
        self.payload = Payload::Json(body);
        self
    }

    pub(super) fn file(mut self, path: PathBuf) -> Self {
        self.payload = Payload::File(path);
        self
    }

    pub(super) fn url(&self) -> String {
        if self.query.is_empty() {
            return self.url.clone();
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        format!("{}?{}", self.url, query.join("&"))
    }

    /// `METHOD /path` for messages (no query: it may be long).
    pub(super) fn describe(&self, server: &str) -> String {
        let path = self.url.strip_prefix(server).unwrap_or(&self.url);
        format!("{} {path}", self.method.as_str())
    }
}

/// Why one attempt failed.
pub(super) enum Failure {
    Retry {
        reason: String,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
        retry_after: Option<Duration>,
        /// Whether the request may have reached the server and taken effect although its
        /// answer is lost (a 5xx, a dropped connection); false when it surely did not
        /// (connection refused, rate limited).
        reached_server: bool,
    },
    Fatal(Error),
}

impl Failure {
    pub(super) fn retry(reason: String, reached_server: bool) -> Self {
        Failure::Retry {
            reason,
            status: None,
            retry_after: None,
            reached_server,
        }
    }
}

/// How a retry finds out whether a request whose answer was lost took effect (see
/// [`REQUEST_ID_TAG`](super::REQUEST_ID_TAG) for which requests need it).
pub(super) struct LostAnswer<'a, T = Value> {
    /// `Some(answer)` when it did: what the server would have answered.
    pub(super) find: Box<dyn FnMut() -> Result<Option<T>> + 'a>,
    /// What may exist on the server when `find` cannot tell, e.g. `a run tagged … may
    /// have been created in experiment 1`.
    pub(super) what: String,
}

/// 429 and 5xx may go away; 501 (not implemented) and 505 (HTTP version) will not.
pub(super) fn is_transient_status(status: u16) -> bool {
    status == 429 || (status >= 500 && status != 501 && status != 505)
}

/// MLflow's `error_code` and message from an error answer, on one line; for a non-MLflow
/// answer (a proxy's HTML page) `HTTP_<status>` and the start of the body.
pub(super) fn error_answer(status: u16, body: ureq::Body) -> (String, String) {
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

pub(super) fn retry_after<B>(response: &http::Response<B>) -> Option<Duration> {
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

pub(super) fn is_transient_io(kind: io::ErrorKind) -> bool {
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

pub(super) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        _ => e.to_string(),
    }
}

/// Collapses whitespace (MLflow messages can carry SQL with newlines) and shortens to
/// `max` characters.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// Exponential backoff with "equal jitter": each delay is uniform in `[d/2, d)`, with `d`
/// doubling from `first` up to `max`, so that clients retrying together drift apart.
/// (`backon` adds up to the current delay as jitter, so it is given the halves.)
pub(super) fn backoff(first: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(first / 2)
        .with_max_delay(max / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\n  b\tc", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
