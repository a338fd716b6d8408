//! What listing returns and filters on: [`VersionSummary`] (a version read from the
//! store's tags, without opening its checkpoint) and [`VersionFilter`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ratchet_mlflow::{StoredVersion, VersionView};
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::model_version::{ParentRef, SemVer, VersionStatus};
use crate::tags::{self, parse_metrics_tag};

/// What listing shows of a version: the store's fields plus Ratchet's tags, without
/// opening the checkpoint. Fields are `None` for versions Ratchet did not create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSummary {
    pub name: String,
    pub version: u64,
    pub version_id: Option<String>,
    pub semver: Option<SemVer>,
    pub status: Option<VersionStatus>,
    pub created_at: DateTime<Utc>,
    pub algorithm: Option<String>,
    pub feature_hash: Option<String>,
    pub network_hash: Option<String>,
    pub weights_sha256: Option<String>,
    pub parent: Option<ParentRef>,
    #[serde(with = "crate::model_version::metric_map")]
    pub metrics: BTreeMap<String, f64>,
    pub training_steps: Option<u64>,
    pub aliases: Vec<String>,
    pub run_id: Option<String>,
    pub source: String,
    /// Artifact path of the checkpoint in the run.
    pub checkpoint: Option<String>,
    /// A universe version's symbols; empty for one instrument.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<String>,
}

impl VersionSummary {
    /// Builds a summary from what the store returns.
    pub fn from_stored(stored: &StoredVersion) -> Self {
        VersionSummary::from_view(stored.view(&stored.tag_pairs()))
    }

    /// Builds a summary from a borrowed version, copying only the fields it keeps.
    pub fn from_view(view: VersionView<'_>) -> Self {
        let mut summary = VersionSummary {
            name: view.name.to_string(),
            version: view.version,
            version_id: None,
            semver: None,
            status: None,
            created_at: DateTime::default(),
            algorithm: None,
            feature_hash: None,
            network_hash: None,
            weights_sha256: None,
            parent: None,
            metrics: BTreeMap::new(),
            training_steps: None,
            aliases: view.aliases.to_vec(),
            run_id: view.run_id.map(str::to_string),
            source: view.source.to_string(),
            checkpoint: None,
            symbols: Vec::new(),
        };
        let mut created_at = None;
        // One pass over the tags: no lookup per field.
        for &(key, value) in view.tags {
            match key {
                tags::VERSION_ID => summary.version_id = Some(value.to_string()),
                tags::SEMVER => summary.semver = value.parse().ok(),
                tags::STATUS => summary.status = value.parse().ok(),
                tags::CREATED_AT => {
                    created_at = DateTime::parse_from_rfc3339(value)
                        .ok()
                        .map(|t| t.with_timezone(&Utc))
                }
                tags::ALGORITHM => summary.algorithm = Some(value.to_string()),
                tags::FEATURE_HASH => summary.feature_hash = Some(value.to_string()),
                tags::NETWORK_HASH => summary.network_hash = Some(value.to_string()),
                tags::WEIGHTS_SHA256 => summary.weights_sha256 = Some(value.to_string()),
                tags::PARENT => summary.parent = ParentRef::parse(value),
                tags::METRICS => summary.metrics = parse_metrics_tag(value).unwrap_or_default(),
                tags::TRAINING_STEPS => summary.training_steps = value.parse().ok(),
                tags::CHECKPOINT => summary.checkpoint = Some(value.to_string()),
                tags::SYMBOLS => summary.symbols = value.split(',').map(str::to_string).collect(),
                _ => {}
            }
        }
        summary.created_at = created_at
            .or_else(|| DateTime::from_timestamp_millis(view.creation_timestamp))
            .unwrap_or_default();
        summary
    }

    /// `models:/NAME/VERSION`.
    pub fn uri(&self) -> String {
        format!("models:/{}/{}", self.name, self.version)
    }
}

/// A comparison operator of a metric filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Equal,
}

/// `metric OP value`, e.g. parsed from `sharpe>=1.2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricFilter {
    pub metric: String,
    pub op: Comparison,
    pub value: f64,
}

impl MetricFilter {
    /// Parses `NAME>=X`, `NAME>X`, `NAME<=X`, `NAME<X` or `NAME=X`.
    pub fn parse(text: &str) -> Result<Self> {
        let ops = [
            (">=", Comparison::GreaterOrEqual),
            ("<=", Comparison::LessOrEqual),
            (">", Comparison::Greater),
            ("<", Comparison::Less),
            ("=", Comparison::Equal),
        ];
        for (symbol, op) in ops {
            if let Some((metric, value)) = text.split_once(symbol) {
                let metric = metric.trim();
                let value: f64 = value.trim().parse().map_err(|_| {
                    RegistryError::InvalidArgument(format!(
                        "metric filter {text:?}: {:?} is not a number",
                        value.trim()
                    ))
                })?;
                if metric.is_empty() {
                    break;
                }
                return Ok(MetricFilter {
                    metric: metric.to_string(),
                    op,
                    value,
                });
            }
        }
        Err(RegistryError::InvalidArgument(format!(
            "metric filter {text:?}: expected METRIC OP VALUE with OP one of >= > <= < =, e.g. sharpe>=1.2"
        )))
    }

    fn accepts(&self, value: Option<f64>) -> bool {
        let Some(v) = value else { return false };
        match self.op {
            Comparison::Greater => v > self.value,
            Comparison::GreaterOrEqual => v >= self.value,
            Comparison::Less => v < self.value,
            Comparison::LessOrEqual => v <= self.value,
            Comparison::Equal => v == self.value,
        }
    }
}

/// Which versions [`Registry::list`] returns. Empty filter = all live versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionFilter {
    pub status: Option<VersionStatus>,
    /// Every filter must hold (a version without the metric fails).
    pub metrics: Vec<MetricFilter>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Matches a feature hash that starts with this (so short prefixes work).
    pub feature_hash: Option<String>,
    pub algorithm: Option<String>,
    /// Only universe versions that include this symbol.
    pub symbol: Option<String>,
}

impl VersionFilter {
    pub fn matches(&self, v: &VersionSummary) -> bool {
        self.status.is_none_or(|s| v.status == Some(s))
            && self
                .metrics
                .iter()
                .all(|f| f.accepts(v.metrics.get(&f.metric).copied()))
            && self.created_after.is_none_or(|t| v.created_at >= t)
            && self.created_before.is_none_or(|t| v.created_at <= t)
            && self
                .symbol
                .as_ref()
                .is_none_or(|s| v.symbols.iter().any(|have| have == s))
            && self.feature_hash.as_ref().is_none_or(|h| {
                v.feature_hash
                    .as_ref()
                    .is_some_and(|f| f.starts_with(h.as_str()))
            })
            && self.algorithm.as_ref().is_none_or(|a| {
                v.algorithm
                    .as_ref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(a))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_filters() {
        let f = MetricFilter::parse("sharpe>=1.2").unwrap();
        assert_eq!(f.op, Comparison::GreaterOrEqual);
        assert!(f.accepts(Some(1.2)) && !f.accepts(Some(1.1)) && !f.accepts(None));
        assert!(
            !MetricFilter::parse("max_drawdown<0.2")
                .unwrap()
                .accepts(Some(f64::NAN))
        );
        assert!(MetricFilter::parse("sharpe").is_err());
        assert!(MetricFilter::parse(">=1").is_err());
        assert!(MetricFilter::parse("sharpe>=x").is_err());
    }
}
