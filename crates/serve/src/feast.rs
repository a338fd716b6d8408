//! `serve --feast-online URL`: the latest values of a version's Feast sources (the outside
//! sources `[[features.feast]]` declared) from a running Feast feature server (`feast serve`),
//! for the bars of a request that do not carry them in `"external"`.
//!
//! One `POST URL/get-online-features` per request and join key asks for every such source
//! and symbol at once (`{"features": ["view:feature", …], "entities": {"symbol": [...]},
//! "full_feature_names": true}`). Feast answers, per feature, a value, a status and the event
//! timestamp of the row it holds; a source's row is its features' values (each `PRESENT`, or
//! `OUTSIDE_MAX_AGE`: Feast judges age by its own clock, the join judges it by the bar's time
//! as training did) stamped with the latest of their timestamps. What becomes of the row is
//! the caller's: it goes into the session's point-in-time join like a row sent in
//! `"external"`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratchet_data::{FeastView, FeatureConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ServeError;

/// A Feast feature server, asked through one agent that keeps its connections open.
pub struct FeastOnline {
    url: String,
    endpoint: String,
    agent: ureq::Agent,
    /// Whether the last request failed, so an outage is logged when it starts and ends rather
    /// than on every request.
    failing: AtomicBool,
}

/// Why a bar got no row of a source from Feast: the `reason` label of
/// `ratchet_feast_online_missing_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// No connection to the server.
    Unreachable,
    /// No answer within `--feast-timeout`.
    Timeout,
    /// An error status, or an answer that is not Feast's.
    Error,
    /// Feast holds no value for the symbol (`NOT_FOUND`, or null).
    NotFound,
    /// Feast's row is stamped after the bar: using it would be look-ahead.
    AfterBar,
}

impl Missing {
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::Unreachable => "unreachable",
            Missing::Timeout => "timeout",
            Missing::Error => "error",
            Missing::NotFound => "not_found",
            Missing::AfterBar => "after_bar",
        }
    }
}

/// Feast's answer for one source and symbol.
#[derive(Clone, Debug, PartialEq)]
pub enum Fetched {
    /// The row Feast holds: its event timestamp (epoch ms) and one value per column.
    Row {
        timestamp: i64,
        values: Vec<f64>,
    },
    Missing(Missing),
}

/// `POST /get-online-features`'s answer, the parts read.
#[derive(Deserialize)]
struct Answer {
    metadata: Metadata,
    results: Vec<FeatureVector>,
}

#[derive(Deserialize)]
struct Metadata {
    feature_names: Vec<String>,
}

/// One feature's values, one per entity asked.
#[derive(Deserialize)]
struct FeatureVector {
    values: Vec<Value>,
    statuses: Vec<String>,
    #[serde(default)]
    event_timestamps: Vec<String>,
}

impl FeastOnline {
    /// A client of the feature server at `url` (`http://host:port`), waiting at most
    /// `timeout` for each answer.
    pub fn new(url: &str, timeout: Duration) -> Result<FeastOnline, ServeError> {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) || timeout.is_zero() {
            return Err(ServeError::FeastOnline(format!(
                "--feast-online {url:?} with --feast-timeout {timeout:?}: give the feature \
                 server's http:// or https:// address (as `feast serve` prints it) and a timeout \
                 above 0"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections(64)
            .max_idle_connections_per_host(64)
            .build()
            .into();
        Ok(FeastOnline {
            url: url.to_string(),
            endpoint: format!("{url}/get-online-features"),
            agent,
            failing: AtomicBool::new(false),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Per symbol of `wanted`, per outside source of `features`: Feast's latest row, or why
    /// there is none; `None` where the symbol does not want the source (or Feast does not
    /// serve it). Blocks for at most the timeout per join key.
    pub fn fetch(
        &self,
        features: &FeatureConfig,
        wanted: &[(String, Vec<bool>)],
    ) -> Vec<Vec<Option<Fetched>>> {
        let mut out: Vec<Vec<Option<Fetched>>> = wanted
            .iter()
            .map(|_| vec![None; features.external.len()])
            .collect();
        // One request per join key, for every source keyed by it that some symbol wants.
        let mut keys: Vec<(&str, bool)> = Vec::new();
        for (s, feature) in features.external.iter().enumerate() {
            if let Some(view) = &feature.feast
                && wanted.iter().any(|(_, w)| w[s])
                && !keys.contains(&(view.join_key.as_str(), view.integer_key))
            {
                keys.push((view.join_key.as_str(), view.integer_key));
            }
        }
        for (join_key, integer_key) in keys {
            let sources: Vec<(usize, &FeastView)> = features
                .external
                .iter()
                .enumerate()
                .filter_map(|(s, f)| Some((s, f.feast.as_ref()?)))
                .filter(|(s, v)| {
                    v.join_key == join_key
                        && v.integer_key == integer_key
                        && wanted.iter().any(|(_, w)| w[*s])
                })
                .collect();
            let mut asked = Vec::new();
            let mut entities = Vec::new();
            for (i, (symbol, w)) in wanted.iter().enumerate() {
                if !sources.iter().any(|(s, _)| w[*s]) {
                    continue;
                }
                let key = if integer_key {
                    // A symbol that is no number names no entity of an integer key.
                    match symbol.parse::<i64>() {
                        Ok(n) => json!(n),
                        Err(_) => {
                            for (s, _) in &sources {
                                out[i][*s] = w[*s].then_some(Fetched::Missing(Missing::NotFound));
                            }
                            continue;
                        }
                    }
                } else {
                    json!(symbol)
                };
                asked.push(i);
                entities.push(key);
            }
            if asked.is_empty() {
                continue;
            }
            let references: Vec<String> =
                sources.iter().flat_map(|(_, v)| v.references()).collect();
            let body = json!({
                "features": references,
                "entities": {join_key: entities},
                "full_feature_names": true,
            });
            let answer = self.ask(&body, asked.len());
            for (k, &i) in asked.iter().enumerate() {
                for (s, view) in &sources {
                    if wanted[i].1[*s] {
                        out[i][*s] = Some(match &answer {
                            Ok(answer) => row_of(answer, view, k),
                            Err(why) => Fetched::Missing(*why),
                        });
                    }
                }
            }
        }
        out
    }

    /// One request; its answer checked to hold `entities` values per feature.
    fn ask(&self, body: &Value, entities: usize) -> Result<Answer, Missing> {
        let answer = match self.agent.post(&self.endpoint).send_json(body) {
            Ok(mut response) if response.status().is_success() => response
                .body_mut()
                .read_json::<Answer>()
                .map_err(|e| (Missing::Error, format!("its answer is not Feast's ({e})")))
                .and_then(|answer| {
                    let complete = answer.results.len() == answer.metadata.feature_names.len()
                        && answer
                            .results
                            .iter()
                            .all(|r| r.values.len() == entities && r.statuses.len() == entities);
                    if complete {
                        Ok(answer)
                    } else {
                        Err((
                            Missing::Error,
                            "its answer does not hold a value per feature and symbol asked".into(),
                        ))
                    }
                }),
            Ok(mut response) => {
                let text = response.body_mut().read_to_string().unwrap_or_default();
                Err((
                    Missing::Error,
                    format!(
                        "it answered {}: {}",
                        response.status(),
                        text.chars().take(300).collect::<String>()
                    ),
                ))
            }
            Err(ureq::Error::Timeout(_)) => Err((Missing::Timeout, "no answer in time".into())),
            Err(
                e
                @ (ureq::Error::ConnectionFailed | ureq::Error::HostNotFound | ureq::Error::Io(_)),
            ) => Err((Missing::Unreachable, e.to_string())),
            Err(e) => Err((Missing::Error, e.to_string())),
        };
        match &answer {
            Ok(_) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::warn!("the Feast feature server at {} answers again", self.url);
            }
            Err((why, message)) if !self.failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(
                    "the Feast feature server at {} fails ({}): {message}; bars get no values \
                     from it until it answers (counted in ratchet_feast_online_missing_total)",
                    self.url,
                    why.as_str()
                );
            }
            _ => {}
        }
        answer.map_err(|(why, _)| why)
    }
}

/// The row of `view` for the `k`th entity asked, from Feast's answer.
fn row_of(answer: &Answer, view: &FeastView, k: usize) -> Fetched {
    let mut values = Vec::with_capacity(view.features.len());
    let mut timestamp = i64::MIN;
    for feature in &view.features {
        let name = format!("{}__{feature}", view.view);
        let Some(i) = answer
            .metadata
            .feature_names
            .iter()
            .position(|n| *n == name)
        else {
            return Fetched::Missing(Missing::Error);
        };
        let vector = &answer.results[i];
        let present = matches!(vector.statuses[k].as_str(), "PRESENT" | "OUTSIDE_MAX_AGE");
        match (&vector.values[k], present) {
            (Value::Null, _) | (_, false) => return Fetched::Missing(Missing::NotFound),
            (Value::Number(n), true) => match n.as_f64().filter(|v| v.is_finite()) {
                Some(v) => values.push(v),
                None => return Fetched::Missing(Missing::Error),
            },
            // Not a number: Feast's "NaN", or a type no feature holds.
            _ => return Fetched::Missing(Missing::Error),
        }
        let Some(stamp) = vector
            .event_timestamps
            .get(k)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            return Fetched::Missing(Missing::Error);
        };
        timestamp = timestamp.max(stamp.timestamp_millis());
    }
    Fetched::Row { timestamp, values }
}

#[cfg(test)]
mod tests {
    use ratchet_data::ExternalFeature;

    use super::*;

    /// An outside source served by Feast view `view`, keyed by `symbol`.
    fn source(name: &str, view: &str, features: &[&str]) -> ExternalFeature {
        let columns: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        ExternalFeature {
            name: name.into(),
            source: "x.parquet".into(),
            timestamp: "event_timestamp".into(),
            symbol: Some("symbol".into()),
            created: None,
            timestamp_format: None,
            columns: columns.clone(),
            max_staleness: ExternalFeature::NEVER_STALE,
            missing: ratchet_data::MissingRule::Last,
            transform: ratchet_data::Transform::Raw,
            window: None,
            feast: Some(FeastView {
                project: "p".into(),
                service: None,
                view: view.into(),
                alias: None,
                features: columns,
                join_key: "symbol".into(),
                integer_key: false,
            }),
        }
    }

    /// Feast 0.67's answer for two symbols, as its feature server writes it (names in its own
    /// order, the entity column first).
    const ANSWER: &str = r#"{"results":[
        {"values":["AAA","BBB"],"statuses":["PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},
        {"values":[100,null],"statuses":["PRESENT","NOT_FOUND"],"event_timestamps":["2024-01-03T00:00:00Z","1970-01-01T00:00:00Z"]},
        {"values":[10.100000381469727,null],"statuses":["OUTSIDE_MAX_AGE","NOT_FOUND"],"event_timestamps":["2024-01-03T00:00:00.250Z","1970-01-01T00:00:00Z"]},
        {"values":["NaN",4.01],"statuses":["PRESENT","PRESENT"],"event_timestamps":["2024-01-02T00:00:00Z","2024-01-04T00:00:00Z"]}],
        "metadata":{"feature_names":["symbol","prices__volume","prices__close","rates__ten_year"]}}"#;

    #[test]
    fn a_source_row_is_its_features_at_their_latest_timestamp() {
        let answer: Answer = serde_json::from_str(ANSWER).unwrap();
        let prices = source("prices", "prices", &["close", "volume"]);
        let rates = source("rates", "rates", &["ten_year"]);
        let view = |f: &ExternalFeature| f.feast.clone().unwrap();
        // OUTSIDE_MAX_AGE counts (the join judges age by the bar); columns in the source's
        // order; the latest of the features' timestamps, to the millisecond.
        assert_eq!(
            row_of(&answer, &view(&prices), 0),
            Fetched::Row {
                timestamp: 1_704_240_000_250,
                values: vec![10.100000381469727, 100.0]
            }
        );
        assert_eq!(
            row_of(&answer, &view(&prices), 1),
            Fetched::Missing(Missing::NotFound)
        );
        // Feast's "NaN" is no value a feature can hold.
        assert_eq!(
            row_of(&answer, &view(&rates), 0),
            Fetched::Missing(Missing::Error)
        );
        assert_eq!(
            row_of(&answer, &view(&rates), 1),
            Fetched::Row {
                timestamp: 1_704_326_400_000,
                values: vec![4.01]
            }
        );
        // A feature the answer does not name.
        let other = source("other", "other", &["x"]);
        assert_eq!(
            row_of(&answer, &view(&other), 0),
            Fetched::Missing(Missing::Error)
        );
    }

    /// A server that takes the connection and never answers: every source a symbol wants is
    /// missing for `timeout`; what it does not want is not asked.
    #[test]
    fn no_answer_in_time_is_a_timeout_for_what_was_wanted() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let feast = FeastOnline::new(&url, Duration::from_millis(100)).unwrap();
        let mut features = FeatureConfig::default();
        let mut vix = source("vix", "vix", &["close"]);
        vix.feast = None;
        features.external = vec![source("prices", "prices", &["close"]), vix];
        let wanted = vec![
            ("AAA".to_string(), vec![true, false]),
            ("BBB".to_string(), vec![false, false]),
        ];
        assert_eq!(
            feast.fetch(&features, &wanted),
            [
                vec![Some(Fetched::Missing(Missing::Timeout)), None],
                vec![None, None]
            ]
        );
    }

    #[test]
    fn an_address_that_is_not_http_is_refused() {
        let err = FeastOnline::new("localhost:6566", Duration::from_millis(500))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "--feast-online \"localhost:6566\" with --feast-timeout 500ms: give the feature \
             server's http:// or https:// address (as `feast serve` prints it) and a timeout \
             above 0"
        );
    }
}
