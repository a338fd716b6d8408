//! [`ModelVersion`]: everything needed to trace a registered model back to the data,
//! features, configuration and parent that produced it.
//!
//! The caller fills a [`TrainingRecord`] (what it knows after training); registration adds
//! the registry's facts — MLflow version number, unique human id (`v2026-11-22--14h05`),
//! [`SemVer`], status and creation time — and writes the whole thing as the checkpoint's
//! `metadata.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;

/// `major.minor.patch` (the `semver` crate's, serialised as its text): major when the feature
/// config or the network shape changes, minor for continue-training, patch for re-registering
/// the same weights.
pub type SemVer = semver::Version;

/// Where a version is in its life. Kept in sync with the store's `ratchet.status` tag,
/// which is authoritative (the checkpoint records the status at registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    Registered,
    Validated,
    Production,
    Archived,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Registered => "registered",
            VersionStatus::Validated => "validated",
            VersionStatus::Production => "production",
            VersionStatus::Archived => "archived",
        }
    }
}

impl fmt::Display for VersionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VersionStatus {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "registered" => Ok(VersionStatus::Registered),
            "validated" => Ok(VersionStatus::Validated),
            "production" => Ok(VersionStatus::Production),
            "archived" => Ok(VersionStatus::Archived),
            _ => Err(RegistryError::InvalidArgument(format!(
                "status {text:?} is not one of registered, validated, production, archived"
            ))),
        }
    }
}

/// An inclusive span of the data, as ISO dates or timestamps (as the data crate prints
/// them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    pub start: String,
    pub end: String,
    /// SHA-256 of the bars inside the range (the data crate's `Bars::digest`), so that a
    /// command judging the version can tell whether a data file still holds the bars it saw
    /// there. Absent in versions registered before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bars_sha256: Option<String>,
}

/// The market data a version was trained and evaluated on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataSource {
    pub path: String,
    /// sha256 of the data file, lowercase hex (a universe's: its universe hash).
    pub sha256: String,
    pub train: Option<DateRange>,
    pub validation: Option<DateRange>,
    pub test: Option<DateRange>,
    /// The instruments of a universe, each with its file and ranges; absent for one
    /// instrument (and in versions from before universes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<SymbolSource>,
    /// The outside sources its features joined (`[[features.external]]`), in the feature
    /// config's order; absent without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside: Vec<OutsideSource>,
}

/// An outside source a version's features read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideSource {
    /// The declaration's name (`vix`).
    pub name: String,
    pub path: String,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// The version's last bar, and the SHA-256 of the source's rows known by then
    /// (`ExternalSource::digest_until`): a file that changed only by rows after it continues.
    pub until: String,
    pub rows_sha256: String,
}

/// One instrument of a universe a version was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolSource {
    pub symbol: String,
    pub path: String,
    /// sha256 of its file (shared by the symbols of a long-format file).
    pub sha256: String,
    pub train: DateRange,
    pub validation: DateRange,
    /// `None` when no test range was held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<DateRange>,
}

/// The version a continue-training started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// Registered model name.
    pub name: String,
    /// MLflow version number.
    pub version: u64,
}

impl ParentRef {
    /// `models:/NAME/VERSION`.
    pub fn uri(&self) -> String {
        format!("models:/{}/{}", self.name, self.version)
    }

    /// Inverse of [`ParentRef::uri`].
    pub fn parse(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("models:/")?;
        let (name, version) = rest.rsplit_once('/')?;
        Some(ParentRef {
            name: name.to_string(),
            version: version.parse().ok()?,
        })
    }
}

/// What training knows about the weights it produced: everything except the registry's
/// own facts. The CLI fills this; [`crate::Registry::register`] wraps it in a
/// [`ModelVersion`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingRecord {
    /// The full feature configuration (the data crate's `FeatureConfig` as JSON).
    pub feature_config: serde_json::Value,
    /// Canonical hash of `feature_config`.
    pub feature_hash: String,
    pub data: DataSource,
    /// `dqn`, `ppo`, …
    pub algorithm: String,
    /// Every hyperparameter of the algorithm, as its config struct serialises.
    pub hyperparameters: serde_json::Value,
    pub seed: u64,
    /// `cpu`, `wgpu:…`.
    pub device: String,
    /// Crate name → version of the code that trained (ratchet, burn, …).
    pub crate_versions: BTreeMap<String, String>,
    pub training_steps: u64,
    pub wall_time_secs: f64,
    /// Shape of one observation.
    pub observation_shape: Vec<usize>,
    pub action_count: usize,
    /// Evaluation metrics (`sharpe`, `max_drawdown`, …). Non-finite values are kept
    /// (stored as `"NaN"`, `"Infinity"`, `"-Infinity"` in JSON).
    #[serde(with = "metric_map")]
    pub metrics: BTreeMap<String, f64>,
    /// The version this one continued training from.
    pub parent: Option<ParentRef>,
}

/// A registered model version: the registry's facts plus the [`TrainingRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Registered model name.
    pub name: String,
    /// MLflow's version number. Assigned by the store when the version is created, so a
    /// checkpoint's `metadata.json` leaves it empty; versions read through
    /// [`crate::Registry`] always carry it.
    pub version: Option<u64>,
    /// Unique human id, `v2026-11-22--14h05` (with `-2`, `-3`… when several land in the
    /// same minute).
    pub version_id: String,
    pub semver: SemVer,
    pub status: VersionStatus,
    pub created_at: DateTime<Utc>,
    /// Run that logged the training and holds the checkpoint artifact.
    pub run_id: Option<String>,
    /// sha256 of the weights' tensor bytes (names, shapes and values; not the header),
    /// used to recognise re-registration of the same weights.
    pub weights_sha256: String,
    /// sha256 of the weight tensors' names and shapes: equal hashes, same network.
    pub network_hash: String,
    /// Aliases pointing at this version (from the store; empty in `metadata.json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(flatten)]
    pub training: TrainingRecord,
}

/// The human id for a creation time: `vYYYY-MM-DD--HHhMM` (UTC).
pub fn human_id_base(at: DateTime<Utc>) -> String {
    at.format("v%Y-%m-%d--%Hh%M").to_string()
}

/// `true` when `text` looks like a human id (`v2026-11-22--14h05`, optionally `-N`).
pub fn is_human_id(text: &str) -> bool {
    // Bytes, not `str` slices: the text is user input and may hold multi-byte characters.
    let bytes = text.as_bytes();
    if bytes.len() < 18 || bytes[0] != b'v' {
        return false;
    }
    let (base, suffix) = bytes.split_at(18);
    let digits_at = [1, 2, 3, 4, 6, 7, 9, 10, 13, 14, 16, 17];
    let shape_ok = digits_at.iter().all(|&i| base[i].is_ascii_digit())
        && base[5] == b'-'
        && base[8] == b'-'
        && &base[11..13] == b"--"
        && base[15] == b'h';
    shape_ok
        && (suffix.is_empty()
            || suffix
                .strip_prefix(b"-")
                .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit)))
}

/// Metrics where a larger value is better, a smaller one, or neither (unknown names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricDirection {
    HigherIsBetter,
    LowerIsBetter,
    Unknown,
}

/// Which way a metric should move, by name (the backtest crate's names and common
/// training diagnostics). Prefixes like `test_`/`val_` and suffixes are ignored.
pub fn metric_direction(name: &str) -> MetricDirection {
    const HIGHER: [&str; 18] = [
        "sharpe",
        "sortino",
        "calmar",
        "omega",
        "total_return",
        "annual_return",
        "cagr",
        "win_rate",
        "hit_rate",
        "profit_factor",
        "final_equity",
        "mean_return",
        "episode_return",
        "mean_episode_return",
        "reward",
        "explained_variance",
        "accuracy",
        "information_ratio",
    ];
    const LOWER: [&str; 11] = [
        "max_drawdown",
        "max_drawdown_duration_bars",
        "max_drawdown_duration_days",
        "volatility",
        "annual_volatility",
        "downside_deviation",
        "ulcer_index",
        "value_at_risk",
        "expected_shortfall",
        "turnover",
        "annual_turnover",
    ];
    let lower = name.to_ascii_lowercase();
    let base = [
        "test_",
        "validation_",
        "val_",
        "train_",
        "eval_",
        "backtest_",
    ]
    .iter()
    .find_map(|p| lower.strip_prefix(p))
    .unwrap_or(&lower);
    let base = base.rsplit(['/', '.']).next().unwrap_or(base);
    if HIGHER.contains(&base) {
        MetricDirection::HigherIsBetter
    } else if LOWER.contains(&base) || base.ends_with("_loss") || base == "loss" {
        MetricDirection::LowerIsBetter
    } else {
        MetricDirection::Unknown
    }
}

/// serde for `BTreeMap<String, f64>` that keeps NaN and infinities, written as MLflow writes
/// metric values ([`ratchet_mlflow::MetricValue`]).
pub(crate) mod metric_map {
    use std::collections::BTreeMap;

    use ratchet_mlflow::MetricValue;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k, MetricValue(*v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let values = BTreeMap::<String, MetricValue>::deserialize(d)?;
        Ok(values.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_parses_and_orders() {
        let v: SemVer = "1.2.3".parse().unwrap();
        assert_eq!(v, SemVer::new(1, 2, 3));
        assert_eq!(v.to_string(), "1.2.3");
        assert!(SemVer::new(1, 10, 0) > SemVer::new(1, 9, 9));
        assert!("1.2".parse::<SemVer>().is_err());
    }

    #[test]
    fn human_ids() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T14:05:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(human_id_base(at), "v2026-11-22--14h05");
        assert!(is_human_id("v2026-11-22--14h05"));
        assert!(is_human_id("v2026-11-22--14h05-2"));
        assert!(!is_human_id("v2026-11-22--14h05-"));
        assert!(!is_human_id("v3"));
        assert!(!is_human_id("production"));
        // A multi-byte character where the shape wants an ASCII one: not an id, no panic.
        assert!(!is_human_id("v2026-11-22--14h0é"));
        assert!(!is_human_id("v2026-11-22--14hé5"));
    }

    #[test]
    fn metric_directions() {
        assert_eq!(metric_direction("sharpe"), MetricDirection::HigherIsBetter);
        assert_eq!(
            metric_direction("test_sortino"),
            MetricDirection::HigherIsBetter
        );
        assert_eq!(
            metric_direction("max_drawdown"),
            MetricDirection::LowerIsBetter
        );
        assert_eq!(
            metric_direction("value_loss"),
            MetricDirection::LowerIsBetter
        );
        assert_eq!(metric_direction("exposure"), MetricDirection::Unknown);
    }

    #[test]
    fn non_finite_metrics_survive_json() {
        let mut record = TrainingRecord::default();
        record.metrics.insert("a".into(), f64::NAN);
        record.metrics.insert("b".into(), f64::INFINITY);
        record.metrics.insert("c".into(), -1.5);
        let json = serde_json::to_string(&record).unwrap();
        let back: TrainingRecord = serde_json::from_str(&json).unwrap();
        assert!(back.metrics["a"].is_nan());
        assert_eq!(back.metrics["b"], f64::INFINITY);
        assert_eq!(back.metrics["c"], -1.5);
    }
}
