//! MLflow's REST wire format: protobuf JSON, where unset fields are omitted (so nearly all
//! are optional), and its conversion to and from the store's types.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::RestStore;
use crate::error::Result;
use crate::metric_value::MetricValue;
use crate::store::{Experiment, Metric, RegisteredModel, Run, RunInfo, RunStatus, StoredVersion};

impl RestStore {
    pub(super) fn version_from_wire(
        &self,
        w: WireModelVersion,
        endpoint: &str,
    ) -> Result<StoredVersion> {
        let version = w.version.parse().map_err(|_| {
            self.protocol(endpoint, format!("version {:?} is not a number", w.version))
        })?;
        Ok(StoredVersion {
            name: w.name,
            version,
            creation_timestamp: w.creation_timestamp.unwrap_or_default(),
            last_updated_timestamp: w
                .last_updated_timestamp
                .or(w.creation_timestamp)
                .unwrap_or_default(),
            source: w.source.unwrap_or_default(),
            run_id: w.run_id.filter(|r| !r.is_empty()),
            description: w.description.filter(|d| !d.is_empty()),
            status: w.status.unwrap_or_else(|| "READY".into()),
            tags: pair_map(w.tags),
            aliases: w.aliases,
        })
    }

    pub(super) fn model_version_answer(&self, v: Value, endpoint: &str) -> Result<StoredVersion> {
        let answer: ModelVersionAnswer = self.decode(endpoint, v)?;
        self.version_from_wire(answer.model_version, endpoint)
    }

    pub(super) fn run_info(&self, w: WireRunInfo, endpoint: &str) -> Result<RunInfo> {
        let status_text = w.status.unwrap_or_else(|| "RUNNING".into());
        let status = RunStatus::parse(&status_text).ok_or_else(|| {
            self.protocol(endpoint, format!("unknown run status {status_text:?}"))
        })?;
        Ok(RunInfo {
            run_id: w.run_id,
            experiment_id: w.experiment_id,
            run_name: w.run_name.unwrap_or_default(),
            user_id: w.user_id.unwrap_or_default(),
            status,
            start_time: w.start_time.unwrap_or_default(),
            end_time: w.end_time,
            artifact_uri: w.artifact_uri.unwrap_or_default(),
            lifecycle_stage: w.lifecycle_stage.unwrap_or_else(|| "active".into()),
        })
    }

    pub(super) fn run_from_wire(&self, w: WireRun, endpoint: &str) -> Result<Run> {
        Ok(Run {
            info: self.run_info(w.info, endpoint)?,
            params: pair_map(w.data.params),
            tags: pair_map(w.data.tags),
            metrics: w
                .data
                .metrics
                .into_iter()
                .map(|m| {
                    let m = m.into_metric();
                    (m.key.clone(), m)
                })
                .collect(),
        })
    }
}

pub(super) fn metric_json(m: &Metric) -> Value {
    json!({"key": m.key, "value": MetricValue(m.value), "timestamp": m.timestamp, "step": m.step})
}

pub(super) fn pair_list(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

pub(super) fn pair_map(tags: Vec<WireTag>) -> BTreeMap<String, String> {
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

#[derive(Deserialize)]
pub(super) struct WireTag {
    pub(super) key: String,
    #[serde(default)]
    pub(super) value: String,
}

#[derive(Deserialize)]
pub(super) struct WireExperiment {
    pub(super) experiment_id: String,
    pub(super) name: String,
    pub(super) artifact_location: Option<String>,
    pub(super) lifecycle_stage: Option<String>,
    pub(super) creation_time: Option<i64>,
    pub(super) last_update_time: Option<i64>,
    #[serde(default)]
    pub(super) tags: Vec<WireTag>,
}

impl From<WireExperiment> for Experiment {
    fn from(w: WireExperiment) -> Self {
        Experiment {
            experiment_id: w.experiment_id,
            name: w.name,
            artifact_location: w.artifact_location.unwrap_or_default(),
            lifecycle_stage: w.lifecycle_stage.unwrap_or_else(|| "active".into()),
            creation_time: w.creation_time,
            last_update_time: w.last_update_time,
            tags: pair_map(w.tags),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ExperimentAnswer {
    pub(super) experiment: WireExperiment,
}

#[derive(Deserialize)]
pub(super) struct CreateExperimentAnswer {
    pub(super) experiment_id: String,
}

#[derive(Deserialize)]
pub(super) struct SearchExperimentsAnswer {
    #[serde(default)]
    pub(super) experiments: Vec<WireExperiment>,
    pub(super) next_page_token: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireRunInfo {
    pub(super) run_id: String,
    pub(super) experiment_id: String,
    pub(super) run_name: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) status: Option<String>,
    pub(super) start_time: Option<i64>,
    pub(super) end_time: Option<i64>,
    pub(super) artifact_uri: Option<String>,
    pub(super) lifecycle_stage: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct WireRunData {
    #[serde(default)]
    pub(super) metrics: Vec<WireMetric>,
    #[serde(default)]
    pub(super) params: Vec<WireTag>,
    #[serde(default)]
    pub(super) tags: Vec<WireTag>,
}

#[derive(Deserialize)]
pub(super) struct WireRun {
    pub(super) info: WireRunInfo,
    #[serde(default)]
    pub(super) data: WireRunData,
}

#[derive(Deserialize)]
pub(super) struct RunAnswer {
    pub(super) run: WireRun,
}

#[derive(Deserialize)]
pub(super) struct SearchRunsAnswer {
    #[serde(default)]
    pub(super) runs: Vec<WireRun>,
    pub(super) next_page_token: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireMetric {
    pub(super) key: String,
    pub(super) value: MetricValue,
    #[serde(default)]
    pub(super) timestamp: i64,
    #[serde(default)]
    pub(super) step: i64,
}

impl WireMetric {
    pub(super) fn into_metric(self) -> Metric {
        Metric {
            key: self.key,
            value: self.value.0,
            timestamp: self.timestamp,
            step: self.step,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct MetricHistoryAnswer {
    #[serde(default)]
    pub(super) metrics: Vec<WireMetric>,
    pub(super) next_page_token: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireArtifact {
    pub(super) path: String,
    #[serde(default)]
    pub(super) is_dir: bool,
    pub(super) file_size: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct ListArtifactsAnswer {
    #[serde(default)]
    pub(super) files: Vec<WireArtifact>,
}

#[derive(Deserialize)]
pub(super) struct WireAlias {
    pub(super) alias: String,
    pub(super) version: String,
}

#[derive(Deserialize)]
pub(super) struct WireRegisteredModel {
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) creation_timestamp: Option<i64>,
    pub(super) last_updated_timestamp: Option<i64>,
    #[serde(default)]
    pub(super) tags: Vec<WireTag>,
    #[serde(default)]
    pub(super) aliases: Vec<WireAlias>,
}

impl From<WireRegisteredModel> for RegisteredModel {
    fn from(w: WireRegisteredModel) -> Self {
        RegisteredModel {
            name: w.name,
            creation_timestamp: w.creation_timestamp,
            last_updated_timestamp: w.last_updated_timestamp,
            description: w.description.filter(|d| !d.is_empty()),
            tags: pair_map(w.tags),
            aliases: w
                .aliases
                .into_iter()
                .filter_map(|a| Some((a.alias, a.version.parse().ok()?)))
                .collect(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RegisteredModelAnswer {
    pub(super) registered_model: WireRegisteredModel,
}

#[derive(Deserialize)]
pub(super) struct SearchRegisteredModelsAnswer {
    #[serde(default)]
    pub(super) registered_models: Vec<WireRegisteredModel>,
    pub(super) next_page_token: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireModelVersion {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) source: Option<String>,
    pub(super) run_id: Option<String>,
    pub(super) status: Option<String>,
    pub(super) description: Option<String>,
    pub(super) creation_timestamp: Option<i64>,
    pub(super) last_updated_timestamp: Option<i64>,
    #[serde(default)]
    pub(super) tags: Vec<WireTag>,
    #[serde(default)]
    pub(super) aliases: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct ModelVersionAnswer {
    pub(super) model_version: WireModelVersion,
}

#[derive(Deserialize)]
pub(super) struct SearchModelVersionsAnswer {
    #[serde(default)]
    pub(super) model_versions: Vec<WireModelVersion>,
    pub(super) next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_use_mlflow_strings() {
        let mut m = Metric::now("loss", f64::NAN, 0);
        assert_eq!(metric_json(&m)["value"], json!("NaN"));
        m.value = f64::NEG_INFINITY;
        assert_eq!(metric_json(&m)["value"], json!("-Infinity"));
        let wire: WireMetric =
            serde_json::from_value(json!({"key": "x", "value": "NaN", "timestamp": 1})).unwrap();
        assert!(wire.into_metric().value.is_nan());
    }

    #[test]
    fn metric_values_parse_exactly() {
        let body = br#"{"metrics": [{"key": "value", "value" : 0.09090909090909091, "timestamp": 17, "step": -2},
            {"key": "k", "value": "NaN", "timestamp": 1}, {"key": "x", "value": -1.5e-7},
            {"key": "y", "value": "-Infinity"}, {"key": "z", "value": 3}]}"#;
        let history: MetricHistoryAnswer = serde_json::from_slice(body).unwrap();
        let points: Vec<Metric> = history
            .metrics
            .into_iter()
            .map(WireMetric::into_metric)
            .collect();
        assert_eq!(points[0].value.to_bits(), (1.0f64 / 11.0).to_bits());
        assert_eq!((points[0].timestamp, points[0].step), (17, -2));
        assert!(points[1].value.is_nan());
        assert_eq!(points[2].value, -1.5e-7);
        assert_eq!(points[3].value, f64::NEG_INFINITY);
        assert_eq!(points[4].value, 3.0);
    }
}
