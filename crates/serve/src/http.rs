//! The HTTP API: plain async handlers over the shared [`AppState`].

use std::collections::HashSet;
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ratchet_data::{Bar, format_timestamp};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::deployment::{Live, Role};
use crate::feast::{FeastOnline, Fetched, Missing as FeastMissing};
use crate::model::ServedModel;
use crate::session::{PaperReturn, Session};
use crate::state::AppState;

mod outside;
mod take;

use take::take_request;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most bars one request may carry.
const MAX_BARS_PER_REQUEST: usize = 10_000;
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

/// What is live. Needs `Authorization: Bearer TOKEN` when the server has a token.
async fn deployment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    Ok(axum::Json(state.view()).into_response())
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
    // Constant time: the answer's timing tells nothing of how much of a guess was right.
    if given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes()))) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "unauthorized",
            message:
                "this endpoint needs the header `Authorization: Bearer <RATCHET_SERVE_TOKEN>` \
                      (only /healthz, /readyz and /metrics are open)"
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
    timestamp: Timestamp,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    /// Outside values known with the bar, for a version that joins outside sources.
    #[serde(default)]
    external: outside::Outside,
}

/// A bar's timestamp as sent (a number or text), read by the data loader's own parser: epoch
/// milliseconds, and the layout it was read as.
struct Timestamp {
    ms: i64,
    layout: String,
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(serde_json::Number),
            Text(String),
        }
        let text = match Wire::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a timestamp is a number (epoch seconds or milliseconds) or text",
            )
        })? {
            Wire::Number(n) => n.to_string(),
            Wire::Text(t) => t,
        };
        let (ms, layout) =
            ratchet_data::parse_timestamp(&text).map_err(serde::de::Error::custom)?;
        Ok(Timestamp { ms, layout })
    }
}

/// Query options of `POST /v1/bars`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BarsOptions {
    /// Answer the decision after every bar of a request, not only after the last.
    #[serde(default)]
    every_bar: bool,
}

/// The decision after one bar.
#[derive(Serialize)]
struct BarDecision {
    /// The bar's time, ISO 8601 (UTC).
    timestamp: String,
    #[serde(flatten)]
    decision: Decision,
}

/// A decision, or the want of one while the features warm up.
#[derive(Serialize)]
struct Decision {
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

/// A target position, the model that decided it and the role it answered in.
type Decided = (f64, Arc<ServedModel>, Role);

impl Decision {
    fn new(decided: Option<&Decided>, session: &Session) -> Self {
        match decided {
            None => Decision {
                warming_up: true,
                bars_needed: session.bars_needed(),
                position: None,
                action: None,
                version: None,
                version_id: None,
                role: None,
            },
            Some((position, model, role)) => Decision {
                warming_up: false,
                bars_needed: 0,
                position: Some(*position),
                action: Some(match *position {
                    p if p < 0.0 => "short",
                    p if p > 0.0 => "long",
                    _ => "flat",
                }),
                version: Some(model.version),
                version_id: Some(model.version_id.clone()),
                role: Some(*role),
            },
        }
    }
}

/// The answer for one symbol: the decision after its last bar.
#[derive(Serialize)]
struct SymbolDecision {
    symbol: String,
    bars_accepted: usize,
    /// The layouts its bars' timestamps were read as (`epoch_s`, `epoch_ms`, `rfc3339`,
    /// `%Y-%m-%d`, …), each once.
    timestamps_read_as: Vec<String>,
    #[serde(flatten)]
    decision: Decision,
    /// With `?every_bar=true`: the decision after each bar, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    every_bar: Option<Vec<BarDecision>>,
}

/// `POST /v1/bars`: one `{"symbol", "bars"}` object or a list of them. The whole request is
/// checked (after the bearer token, when the server has one), then taken on copies of the sessions, which replace them only when every symbol
/// was taken: a rejected request (400, 429, 503) changes no session.
async fn bars(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    options: Result<Query<BarsOptions>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Query(options) = options.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; the one option is ?every_bar=true",
            e.body_text()
        ))
    })?;
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
    let feast = match &state.feast {
        Some(feast) => fetch_from_feast(feast.clone(), &live.production, &requests).await,
        None => Vec::new(),
    };
    let answers = take_request(&state, &live, &requests, &feast, options.every_bar)?;
    Ok(axum::Json(json!({ "decisions": answers })).into_response())
}

/// Feast's rows (`--feast-online`) for the request's symbols: per symbol, per outside source,
/// for the Feast sources that some of its bars do not carry in `"external"` (empty when none
/// does). The blocking client runs off the async workers.
async fn fetch_from_feast(
    feast: Arc<FeastOnline>,
    model: &Arc<ServedModel>,
    requests: &[SymbolBars],
) -> Vec<Vec<Option<Fetched>>> {
    let external = &model.features.external;
    let wanted: Vec<(String, Vec<bool>)> = requests
        .iter()
        .map(|r| {
            let want = external
                .iter()
                .map(|f| f.feast.is_some() && r.bars.iter().any(|b| !b.external.has(&f.name)))
                .collect();
            (r.symbol.clone(), want)
        })
        .collect();
    if !wanted.iter().any(|(_, w)| w.contains(&true)) {
        return Vec::new();
    }
    let model = model.clone();
    let asked = wanted.clone();
    tokio::task::spawn_blocking(move || feast.fetch(&model.features, &asked))
        .await
        .unwrap_or_else(|_| {
            // The fetch panicked: every value it was to give is missing.
            let error = Fetched::Missing(FeastMissing::Error);
            wanted
                .iter()
                .map(|(_, w)| w.iter().map(|&want| want.then(|| error.clone())).collect())
                .collect()
        })
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
                && bar.timestamp.ms <= previous.timestamp.ms
            {
                return Err(ApiError::bad_request(format!(
                    "{symbol} bar {i}: timestamp {} is not after the previous bar's ({}); send bars oldest first, one per time",
                    format_timestamp(bar.timestamp.ms),
                    format_timestamp(previous.timestamp.ms)
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
        timestamp: b.timestamp.ms,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::parse_bars;

    /// A JSON value of any shape, a few levels deep.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "\\PC{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("symbol".to_string()),
                        Just("bars".to_string()),
                        Just("timestamp".to_string()),
                        Just("close".to_string()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A bar with every field present and arbitrary values in each.
    fn bar() -> impl Strategy<Value = serde_json::Value> {
        let price = prop_oneof![any::<f64>(), Just(f64::NAN), Just(-1.0), Just(100.0)];
        let timestamp = prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,20}".prop_map(serde_json::Value::from),
            Just(serde_json::Value::from("2018-08-30")),
        ];
        (
            timestamp,
            [
                price.clone(),
                price.clone(),
                price.clone(),
                price.clone(),
                price,
            ],
        )
            .prop_map(|(timestamp, [open, high, low, close, volume])| {
                serde_json::json!({"timestamp": timestamp, "open": open, "high": high,
                                   "low": low, "close": close, "volume": volume})
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any body: parsed bars, or a 400 with one line saying why; never a panic.
        #[test]
        fn any_body_is_taken_or_refused_with_one_line(
            body in prop_oneof![
                json_value().prop_map(|v| v.to_string().into_bytes()),
                prop::collection::vec(any::<u8>(), 0..64),
                (prop_oneof![Just(String::new()), "\\PC{0,70}"], prop::collection::vec(bar(), 0..4))
                    .prop_map(|(symbol, bars)| serde_json::json!({"symbol": symbol, "bars": bars})
                        .to_string()
                        .into_bytes()),
            ]
        ) {
            if let Err(e) = parse_bars(&body) {
                prop_assert_eq!(e.status.as_u16(), 400);
                prop_assert!(!e.message.is_empty() && !e.message.contains('\n'), "{}", e.message);
            }
        }
    }
}
