//! The HTTP API: plain async handlers over the shared [`AppState`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ratchet_data::Bar;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use crate::deployment::{Live, Role};
use crate::model::ServedModel;
use crate::session::{PaperReturn, Session};
use crate::state::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most bars one request may carry.
const MAX_BARS_PER_REQUEST: usize = 10_000;
/// Most symbols the server keeps sessions for.
pub const MAX_SESSIONS: usize = 100_000;
/// Longest symbol accepted.
const MAX_SYMBOL_CHARS: usize = 64;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/bars", post(bars))
        .route("/v1/deployment", get(deployment))
        .route("/v1/reload", post(reload))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// An error answer: a status and `{"error": "..."}`.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_request",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({"error": self.message}))).into_response();
        response.extensions_mut().insert(ErrorKind(self.kind));
        response
    }
}

/// The kind of an error answer, for `ratchet_errors_total`.
#[derive(Clone, Copy)]
struct ErrorKind(&'static str);

/// Counts and times every request, and traces it.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status();
    let m = &state.metrics;
    m.requests
        .with_label_values(&[&route, status.as_str()])
        .inc();
    m.latency
        .with_label_values(&[&route])
        .observe(elapsed.as_secs_f64());
    if let Some(ErrorKind(kind)) = response.extensions().get::<ErrorKind>() {
        m.errors.with_label_values(&[kind]).inc();
    }
    tracing::debug!(%method, route, status = status.as_u16(), micros = elapsed.as_micros() as u64, "request");
    response
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "not_found",
        message: "no such endpoint; see GET /v1/deployment, POST /v1/bars, POST /v1/reload, \
                  GET /healthz, /readyz, /metrics"
            .into(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "bad_request",
        message: "method not allowed on this endpoint".into(),
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "alive"}))
}

/// Ready once a verified, warmed production model serves: always, after start-up, since the
/// server listens only after loading it.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let live = state.live();
    axum::Json(json!({
        "status": "ready",
        "production": {"version": live.production.version, "version_id": live.production.version_id},
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn deployment(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(state.view())
}

/// Checks the aliases now. Needs `Authorization: Bearer TOKEN` when the server has a token.
async fn reload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    state.reload.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "checking aliases"})),
    )
        .into_response())
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given == Some(token.as_str()) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorized",
            message: "this endpoint needs the header `Authorization: Bearer <RATCHET_SERVE_TOKEN>`"
                .into(),
        })
    }
}

/// New bars of one symbol.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SymbolBars {
    symbol: String,
    bars: Vec<WireBar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBar {
    /// Epoch milliseconds, or an RFC 3339 date-time.
    #[serde(deserialize_with = "timestamp")]
    timestamp: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Millis(i64),
        Text(String),
    }
    match Wire::deserialize(d).map_err(|_| {
        serde::de::Error::custom("timestamp must be epoch milliseconds or an RFC 3339 date-time")
    })? {
        Wire::Millis(ms) => Ok(ms),
        Wire::Text(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "timestamp {text:?} is not an RFC 3339 date-time ({e}); \
                     e.g. 2017-06-01T14:00:00Z, or epoch milliseconds"
                ))
            }),
    }
}

/// The answer for one symbol.
#[derive(Serialize)]
struct SymbolDecision {
    symbol: String,
    bars_accepted: usize,
    /// True until the features' window is full; no position is decided before.
    warming_up: bool,
    bars_needed: usize,
    /// Target position for the next bar: -1 short, 0 flat, 1 long.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
}

/// `POST /v1/bars`: one `{"symbol", "bars"}` object or a list of them. Every bar is checked
/// before any is taken, so a rejected request changes no session.
async fn bars(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError {
        status: e.status(),
        kind: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        },
        message: format!(
            "cannot read the body: {} (the limit is {MAX_BODY_BYTES} bytes)",
            e.body_text()
        ),
    })?;
    let requests = parse_bars(&body)?;
    let live = state.live();
    let mut answers = Vec::with_capacity(requests.len());
    for request in &requests {
        answers.push(take_bars(&state, &live, request)?);
    }
    Ok(axum::Json(json!({ "decisions": answers })).into_response())
}

fn parse_bars(body: &[u8]) -> Result<Vec<SymbolBars>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let parsed = if first == Some(&b'[') {
        serde_json::from_slice::<Vec<SymbolBars>>(body)
    } else {
        serde_json::from_slice::<SymbolBars>(body).map(|one| vec![one])
    };
    let requests = parsed.map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a valid bars request ({e}); send {{\"symbol\": \"GOOGL\", \"bars\": \
             [{{\"timestamp\": ..., \"open\": ..., \"high\": ..., \"low\": ..., \"close\": ..., \
             \"volume\": ...}}]}} or a list of such objects"
        ))
    })?;
    if requests.is_empty() {
        return Err(ApiError::bad_request("the request lists no symbols"));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for r in &requests {
        let symbol = &r.symbol;
        if symbol.is_empty()
            || symbol.chars().count() > MAX_SYMBOL_CHARS
            || symbol.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ApiError::bad_request(format!(
                "symbol {symbol:?} is not valid: 1 to {MAX_SYMBOL_CHARS} characters, no spaces or control characters"
            )));
        }
        if !seen.insert(symbol.as_str()) {
            return Err(ApiError::bad_request(format!(
                "symbol {symbol:?} appears twice; send all its bars in one list, oldest first"
            )));
        }
        if r.bars.is_empty() {
            return Err(ApiError::bad_request(format!(
                "symbol {symbol:?} has no bars"
            )));
        }
        total += r.bars.len();
        for (i, (bar, previous)) in r
            .bars
            .iter()
            .zip(std::iter::once(None).chain(r.bars.iter().map(Some)))
            .enumerate()
        {
            if let Some(problem) = as_bar(bar).problem() {
                return Err(ApiError::bad_request(format!(
                    "{symbol} bar {i}: {problem}"
                )));
            }
            if let Some(previous) = previous
                && bar.timestamp <= previous.timestamp
            {
                return Err(ApiError::bad_request(format!(
                    "{symbol} bar {i}: timestamp {} is not after the previous bar's ({}); send bars oldest first, one per time",
                    bar.timestamp, previous.timestamp
                )));
            }
        }
    }
    if total > MAX_BARS_PER_REQUEST {
        return Err(ApiError::bad_request(format!(
            "the request carries {total} bars; at most {MAX_BARS_PER_REQUEST} per request"
        )));
    }
    Ok(requests)
}

fn as_bar(b: &WireBar) -> Bar {
    Bar {
        timestamp: b.timestamp,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
    }
}

/// Feeds one symbol's bars to its session, deciding after each bar as a backtest does, and
/// answers with the decision after the last one.
fn take_bars(
    state: &AppState,
    live: &Live,
    request: &SymbolBars,
) -> Result<SymbolDecision, ApiError> {
    let symbol = &request.symbol;
    let session = state
        .session(symbol, live, MAX_SESSIONS)
        .ok_or_else(|| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "too_many_sessions",
            message: format!("the server holds sessions for {MAX_SESSIONS} symbols, its limit"),
        })?;
    let mut session = session.lock().expect("no panics hold the lock");
    if let Some(last) = session.last_timestamp()
        && request.bars[0].timestamp <= last
    {
        return Err(ApiError::bad_request(format!(
            "{symbol} bar 0: timestamp {} is not after the symbol's last bar ({last})",
            request.bars[0].timestamp
        )));
    }
    // The same answering model for every bar of the request: the symbol's hash decides it.
    let route = live.route(symbol);
    let mut last = None;
    for bar in &request.bars {
        let filled = session
            .push(&as_bar(bar))
            .map_err(|e| ApiError::bad_request(format!("{symbol}: {e}")))?;
        for paper in [filled.served, filled.shadow].into_iter().flatten() {
            book_paper(state, paper);
        }
        last = if session.ready() {
            Some(decide(state, live, route, symbol, &mut session)?)
        } else {
            state
                .metrics
                .decision(&live.production, Role::Production, "warming_up");
            None
        };
    }
    let answer = match last {
        None => SymbolDecision {
            symbol: symbol.clone(),
            bars_accepted: request.bars.len(),
            warming_up: true,
            bars_needed: session.bars_needed(),
            position: None,
            action: None,
            version: None,
            version_id: None,
            role: None,
        },
        Some((position, model, role)) => SymbolDecision {
            symbol: symbol.clone(),
            bars_accepted: request.bars.len(),
            warming_up: false,
            bars_needed: 0,
            position: Some(position),
            action: Some(match position {
                p if p < 0.0 => "short",
                p if p > 0.0 => "long",
                _ => "flat",
            }),
            version: Some(model.version),
            version_id: Some(model.version_id.clone()),
            role: Some(role),
        },
    };
    Ok(answer)
}

type Decided = (f64, Arc<ServedModel>, Role);

/// The answering model's decision at the session's last bar, with the canary falling back to
/// production when its outputs are not finite, and the shadow deciding on its own track.
fn decide(
    state: &AppState,
    live: &Live,
    (role, model): (Role, &Arc<ServedModel>),
    symbol: &str,
    session: &mut Session,
) -> Result<Decided, ApiError> {
    let start = Instant::now();
    let target = session.decide(model, false);
    note_decision(state, model.version, role, !target.is_finite(), start);
    let (target, model, role) = if target.is_finite() {
        state.metrics.decision(model, role, "decided");
        if role == Role::Canary {
            let production = session.decide(&live.production, false);
            if production != target {
                state
                    .metrics
                    .disagreements
                    .with_label_values(&["canary"])
                    .inc();
            }
        }
        (target, model.clone(), role)
    } else {
        state.metrics.decision(model, role, "failed");
        state
            .metrics
            .errors
            .with_label_values(&["model_output"])
            .inc();
        if role != Role::Canary {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "model_output",
                message: format!(
                    "{} gave non-finite outputs for {symbol}; no decision (the SLO watch rolls back a failing version)",
                    model.uri()
                ),
            });
        }
        let production = &live.production;
        let target = session.decide(production, false);
        if !target.is_finite() {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "model_output",
                message: format!(
                    "both the canary and {} gave non-finite outputs for {symbol}",
                    production.uri()
                ),
            });
        }
        state
            .metrics
            .decision(production, Role::Production, "fallback");
        (target, production.clone(), Role::Production)
    };
    session.commit(target, model.clone(), role);
    if let Some(shadow) = &live.shadow {
        let start = Instant::now();
        let shadow_target = session.decide(shadow, true);
        let failed = !shadow_target.is_finite();
        note_decision(state, shadow.version, Role::Shadow, failed, start);
        if failed {
            state.metrics.decision(shadow, Role::Shadow, "failed");
        } else {
            state.metrics.decision(shadow, Role::Shadow, "decided");
            if shadow_target != target {
                state
                    .metrics
                    .disagreements
                    .with_label_values(&["shadow"])
                    .inc();
            }
            session.commit(shadow_target, shadow.clone(), Role::Shadow);
        }
    }
    Ok((target, model, role))
}

fn note_decision(state: &AppState, version: u64, role: Role, failed: bool, start: Instant) {
    if state.slo.is_some() {
        let now = Instant::now();
        state
            .records
            .lock()
            .expect("no panics hold the lock")
            .entry((version, role))
            .or_default()
            .decision(now, failed, now - start);
    }
}

fn book_paper(state: &AppState, paper: PaperReturn) {
    let version = paper.model.version;
    state
        .metrics
        .paper_log_return
        .with_label_values(&[&version.to_string(), paper.role.as_str()])
        .add(paper.log_return);
    if state.slo.is_some() {
        state
            .records
            .lock()
            .expect("no panics hold the lock")
            .entry((version, paper.role))
            .or_default()
            .paper(paper.log_return);
    }
}
