//! The tags Ratchet writes on a registered version (all values strings), and the encodings
//! of the ones that are not plain text.

use std::collections::BTreeMap;

use ratchet_mlflow::StoredVersion;
use serde::{Deserialize, Serialize};

pub const VERSION_ID: &str = "ratchet.version_id";
pub const SEMVER: &str = "ratchet.semver";
pub const STATUS: &str = "ratchet.status";
pub const CREATED_AT: &str = "ratchet.created_at";
pub const ALGORITHM: &str = "ratchet.algorithm";
pub const FEATURE_HASH: &str = "ratchet.feature_hash";
pub const NETWORK_HASH: &str = "ratchet.network_hash";
pub const WEIGHTS_SHA256: &str = "ratchet.weights_sha256";
pub const PARENT: &str = "ratchet.parent";
/// JSON object of metric name → value.
pub const METRICS: &str = "ratchet.metrics";
pub const TRAINING_STEPS: &str = "ratchet.training_steps";
/// The symbols of a universe version, sorted, comma-separated (absent for one instrument).
pub const SYMBOLS: &str = "ratchet.symbols";
pub const OBSERVATION_SHAPE: &str = "ratchet.observation_shape";
pub const ACTION_COUNT: &str = "ratchet.action_count";
/// Artifact path of the checkpoint inside the run.
pub const CHECKPOINT: &str = "ratchet.checkpoint";
/// How many times the version's test range has been looked at (backtests over it,
/// sweeps' final tests, walk-forward folds on it); absent = 0.
pub const TEST_LOOKS: &str = "ratchet.test_looks";
/// Registered-model tag prefix: `ratchet.alias_history.<alias>` holds a JSON list of
/// [`crate::AliasEvent`]s.
pub const ALIAS_HISTORY_PREFIX: &str = "ratchet.alias_history.";

/// The [`TEST_LOOKS`] count of a stored version (0 when absent or unreadable).
pub fn test_looks_of(stored: &StoredVersion) -> u64 {
    stored
        .tags
        .get(TEST_LOOKS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[derive(Serialize, Deserialize)]
struct MetricsTag(#[serde(with = "crate::model_version::metric_map")] BTreeMap<String, f64>);

/// The version's headline metrics for listings: a universe's per-symbol figures
/// (`SYMBOL/sharpe`) stay in its metadata, or the tag would grow with the universe.
pub(crate) fn metrics_tag(metrics: &BTreeMap<String, f64>) -> String {
    let headline = metrics
        .iter()
        .filter(|(key, _)| !key.contains('/'))
        .map(|(key, value)| (key.clone(), *value))
        .collect();
    serde_json::to_string(&MetricsTag(headline)).expect("metrics serialise")
}

pub(crate) fn parse_metrics_tag(text: &str) -> Option<BTreeMap<String, f64>> {
    serde_json::from_str::<MetricsTag>(text).ok().map(|m| m.0)
}
