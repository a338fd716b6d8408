//! A loopback HTTP proxy in front of a real `mlflow server` that loses answers on purpose:
//! a chosen request is forwarded, the server applies it, and the client gets `502 Bad
//! Gateway` instead of the server's answer — what a load balancer does when its upstream
//! connection drops after the request went through.
//!
//! ```ignore
//! let proxy = FaultProxy::start(&server.url, |seen| seen.path.ends_with("/runs/create") && seen.nth == 0);
//! let store = RestStore::open(&proxy.url)?; // every request goes through the proxy
//! ```

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub body: Vec<u8>,
    /// How many different requests (by body) to the same method and path came before
    /// this one, not counting its own earlier copies.
    pub nth: usize,
    /// Whether the same request (method, path and body) came before.
    pub resent: bool,
    /// Whether its answer was replaced by a 502.
    pub answer_lost: bool,
}

impl Seen {
    /// `METHOD` and the path after `/api/2.0/mlflow/` (e.g. `POST runs/create`), or the
    /// whole path for other endpoints.
    pub fn endpoint(&self) -> String {
        let path = self
            .path
            .strip_prefix("/api/2.0/mlflow/")
            .unwrap_or(&self.path);
        format!("{} {path}", self.method)
    }
}

/// The requests that create something on an MLflow server, as [`Seen::endpoint`] writes them.
pub const CREATES: [&str; 4] = [
    "POST experiments/create",
    "POST runs/create",
    "POST registered-models/create",
    "POST model-versions/create",
];

/// A rule for [`FaultProxy::start`]: the answer to the first request of every create and to
/// each of the first three different `runs/log-batch` requests is lost.
pub fn lose_first_answers(seen: &Seen) -> bool {
    let endpoint = seen.endpoint();
    if CREATES.contains(&endpoint.as_str()) {
        !seen.resent && seen.nth == 0
    } else {
        endpoint == "POST runs/log-batch" && !seen.resent && seen.nth < 3
    }
}

/// The proxy; stops accepting requests when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`, the tracking URI to give the client.
    pub url: String,
    server: Arc<tiny_http::Server>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FaultProxy {
    /// Forwards every request to `upstream`; when `lose_answer(request)` is true, the
    /// upstream's answer is dropped and the client gets a 502.
    pub fn start(upstream: &str, lose_answer: impl Fn(&Seen) -> bool + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = Arc::new(
            tiny_http::Server::from_listener(listener, None).expect("serve on the bound port"),
        );
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let upstream = upstream.trim_end_matches('/').to_string();
        let (accepting, log) = (Arc::clone(&server), Arc::clone(&seen));
        thread::spawn(move || {
            for mut request in accepting.incoming_requests() {
                let mut body = Vec::new();
                if request.as_reader().read_to_end(&mut body).is_err() {
                    continue;
                }
                let (path, _) = request.url().split_once('?').unwrap_or((request.url(), ""));
                let mut seen = Seen {
                    method: request.method().as_str().to_string(),
                    path: path.to_string(),
                    body,
                    nth: 0,
                    resent: false,
                    answer_lost: false,
                };
                {
                    let log = log.lock().unwrap();
                    let earlier: BTreeSet<&[u8]> = log
                        .iter()
                        .filter(|s| s.method == seen.method && s.path == seen.path)
                        .map(|s| s.body.as_slice())
                        .collect();
                    seen.resent = earlier.contains(seen.body.as_slice());
                    seen.nth = earlier.len() - usize::from(seen.resent);
                }
                seen.answer_lost = lose_answer(&seen);
                let answer = forward(&agent, &upstream, &request, &seen.body);
                let response = match answer {
                    Ok(_) if seen.answer_lost => bad_gateway(),
                    Ok((status, content_type, bytes)) => {
                        let mut response =
                            tiny_http::Response::from_data(bytes).with_status_code(status);
                        if let Some(value) = content_type {
                            response = response.with_header(header("Content-Type", &value));
                        }
                        response
                    }
                    Err(_) => bad_gateway(),
                };
                log.lock().unwrap().push(seen);
                let _ = request.respond(response);
            }
        });
        FaultProxy { url, server, seen }
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests went to `endpoint` (as [`Seen::endpoint`] writes it).
    pub fn count(&self, endpoint: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.endpoint() == endpoint)
            .count()
    }

    /// How many answers were replaced by a 502.
    pub fn lost(&self) -> usize {
        self.seen().iter().filter(|s| s.answer_lost).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Sends the request on to `upstream` and reads the whole answer.
fn forward(
    agent: &ureq::Agent,
    upstream: &str,
    request: &tiny_http::Request,
    body: &[u8],
) -> Result<(u16, Option<String>, Vec<u8>), ureq::Error> {
    let mut builder = ureq::http::Request::builder()
        .method(request.method().as_str())
        .uri(format!("{upstream}{}", request.url()));
    for h in request.headers() {
        let name = h.field.as_str().as_str();
        // The client's connection handling and framing are the proxy's business.
        if !["host", "content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|skip| name.eq_ignore_ascii_case(skip))
        {
            builder = builder.header(name, h.value.as_str());
        }
    }
    let response = if body.is_empty() {
        agent.run(builder.body(())?)?
    } else {
        agent.run(builder.body(body)?)?
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .read_to_vec()?;
    Ok((status, content_type, bytes))
}

fn bad_gateway() -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_data(b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec())
        .with_status_code(502)
        .with_header(header("Content-Type", "text/html"))
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}
