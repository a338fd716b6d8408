//! A bar's outside values as `POST /v1/bars` takes them, for versions whose features join
//! outside sources (`[[features.external]]`):
//!
//! ```text
//! "external": {"vix": 13.2}                          one column, known at the bar's time
//! "external": {"vix": {"close": 13.2}}               columns by name
//! "external": {"vix": {"close": 13.2, "timestamp": "2024-01-02", "created": "2024-01-03"}}
//! "external": {"vix": [{...}, {...}]}                several rows that became known since
//!                                                    the symbol's previous bar
//! ```
//!
//! A row's `timestamp` (its event time; the bar's when left out) and `created` (when it was
//! written, for restatements) are read like a bar's. Rows go into the session's point-in-time
//! join before the bar, so a feed that sends each source row with the bar it became known at
//! gives the backtest's features bit for bit.

use ratchet_data::{ExternalFeature, FeatureConfig};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

use super::Timestamp;

/// Per source named in a bar, the rows sent with it.
#[derive(Default)]
pub(crate) struct Outside(Vec<(String, Vec<OutsideRow>)>);

pub(crate) struct OutsideRow {
    timestamp: Option<i64>,
    created: Option<i64>,
    values: Values,
}

enum Values {
    /// A bare number: the source's one column.
    One(f64),
    /// By column name.
    Named(Vec<(String, f64)>),
}

impl<'de> Deserialize<'de> for Outside {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, Value>::deserialize(d)
            .map_err(|_| de::Error::custom("external is an object: {\"vix\": 13.2, …}"))?;
        let mut sources = Vec::with_capacity(map.len());
        for (name, value) in map {
            let rows = match value {
                Value::Array(rows) => rows
                    .into_iter()
                    .map(|row| read_row(&name, row))
                    .collect::<Result<Vec<_>, String>>(),
                row => read_row(&name, row).map(|row| vec![row]),
            }
            .map_err(de::Error::custom)?;
            sources.push((name, rows));
        }
        Ok(Outside(sources))
    }
}

fn read_row(name: &str, value: Value) -> Result<OutsideRow, String> {
    let time = |value: Value, key: &str| -> Result<i64, String> {
        Timestamp::deserialize(value)
            .map(|t| t.ms)
            .map_err(|e| format!("external {name:?}: {key}: {e}"))
    };
    match value {
        Value::Number(n) => Ok(OutsideRow {
            timestamp: None,
            created: None,
            values: Values::One(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::Object(fields) => {
            let mut row = OutsideRow {
                timestamp: None,
                created: None,
                values: Values::Named(Vec::new()),
            };
            for (key, value) in fields {
                match key.as_str() {
                    "timestamp" => row.timestamp = Some(time(value, &key)?),
                    "created" => row.created = Some(time(value, &key)?),
                    _ => {
                        let Some(v) = value.as_f64() else {
                            return Err(format!(
                                "external {name:?}: column {key:?} is {value}, not a number"
                            ));
                        };
                        if let Values::Named(values) = &mut row.values {
                            values.push((key, v));
                        }
                    }
                }
            }
            Ok(row)
        }
        other => Err(format!(
            "external {name:?} is {other}; give a number, an object of columns, or a list of \
             such objects"
        )),
    }
}

/// One row for a source's point-in-time join, as its declaration orders the columns.
pub(crate) struct KnownRow<'a> {
    pub source: &'a str,
    pub timestamp: i64,
    pub created: Option<i64>,
    pub values: Vec<f64>,
}

impl Outside {
    /// Whether the bar carries rows of the source `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// Each row sent, the bar's `timestamp` standing in for a row's own when it has none.
    /// Errors name what does not fit `features`' declarations.
    pub(crate) fn rows<'a>(
        &self,
        features: &'a FeatureConfig,
        timestamp: i64,
    ) -> Result<Vec<KnownRow<'a>>, String> {
        let mut out = Vec::new();
        for (name, rows) in &self.0 {
            let Some(declared) = features.external.iter().find(|f| f.name == *name) else {
                let names: Vec<&str> = features.external.iter().map(|f| f.name.as_str()).collect();
                return Err(format!(
                    "external {name:?} is not an outside source of the served version ({})",
                    if names.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("it has {}", names.join(", "))
                    }
                ));
            };
            for row in rows {
                let values = in_declared_order(declared, &row.values)?;
                out.push(KnownRow {
                    source: declared.name.as_str(),
                    timestamp: row.timestamp.unwrap_or(timestamp),
                    created: row.created,
                    values,
                });
            }
        }
        Ok(out)
    }
}

fn in_declared_order(declared: &ExternalFeature, values: &Values) -> Result<Vec<f64>, String> {
    let name = &declared.name;
    match values {
        Values::One(v) if declared.columns.len() == 1 => Ok(vec![*v]),
        Values::One(_) => Err(format!(
            "external {name:?} has the columns {}; give them by name",
            declared.columns.join(", ")
        )),
        Values::Named(given) => {
            if let Some((extra, _)) = given.iter().find(|(c, _)| !declared.columns.contains(c)) {
                return Err(format!(
                    "external {name:?} has no column {extra:?} (its columns: {})",
                    declared.columns.join(", ")
                ));
            }
            declared
                .columns
                .iter()
                .map(|column| {
                    given
                        .iter()
                        .find(|(c, _)| c == column)
                        .map(|(_, v)| *v)
                        .ok_or_else(|| format!("external {name:?}: column {column:?} is missing"))
                })
                .collect()
        }
    }
}
