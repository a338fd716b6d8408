//! A registered version ready to decide: loaded from the registry, checked, warmed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratchet_agents::TradingPolicy;
use ratchet_agents::trading_policy::Scratch;
use ratchet_data::FeatureConfig;
use ratchet_env::execution::Costs;
use ratchet_registry::{ModelRef, ModelVersion, NamedTensor, Registry, VersionStatus};
use serde::Serialize;

/// What serving needs of a version besides its identity, made from the version's metadata and
/// weights by [`BuildModel`]: the features it reads, its decision rule and the costs its paper
/// PnL is charged.
pub struct ModelSpec {
    pub features: FeatureConfig,
    pub policy: TradingPolicy,
    pub costs: Costs,
}

/// Turns a version's metadata and weights into a [`ModelSpec`]. Supplied by the caller (the
/// `ratchet` binary knows how its training configuration is laid out in the metadata).
pub type BuildModel =
    dyn Fn(&ModelVersion, &[NamedTensor]) -> anyhow::Result<ModelSpec> + Send + Sync;

/// A version being served.
pub struct ServedModel {
    pub name: String,
    pub version: u64,
    /// The human id, `v2026-11-22--14h05`.
    pub version_id: String,
    pub status: VersionStatus,
    /// The feature config's hash: sessions carry over between versions only when equal.
    pub feature_hash: String,
    pub features: FeatureConfig,
    pub costs: Costs,
    pub policy: TradingPolicy,
    pub loaded_at: DateTime<Utc>,
}

/// Why a version cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The version's lifecycle status does not allow serving.
    #[error("{0}")]
    Refused(String),
    /// Reading, verifying or building it failed.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// Identity and load time, as `/v1/deployment` shows a version.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub version: u64,
    pub version_id: String,
    pub status: String,
    pub feature_hash: String,
    pub loaded_at: DateTime<Utc>,
}

impl ServedModel {
    /// Loads the version `reference` names: its weights and metadata only, checksums verified
    /// by the registry. Refuses a version whose status is not `validated` or `production`
    /// unless `allow_unvalidated`. Warms the policy with one decision, which must be finite.
    pub fn load(
        registry: &Registry,
        reference: &ModelRef,
        build: &BuildModel,
        allow_unvalidated: bool,
    ) -> Result<Arc<ServedModel>, LoadError> {
        let loaded = registry
            .load_weights(reference)
            .map_err(|e| LoadError::Failed(anyhow::Error::new(e)))?;
        let meta = &loaded.metadata;
        let version = meta.version.ok_or_else(|| {
            LoadError::Failed(anyhow::anyhow!(
                "the store returned {reference} without a number"
            ))
        })?;
        if !allow_unvalidated
            && !matches!(
                meta.status,
                VersionStatus::Validated | VersionStatus::Production
            )
        {
            return Err(LoadError::Refused(format!(
                "models:/{}/{version} is {}: only validated or production versions are served \
                 (run `ratchet models validate models:/{}/{version}`, or pass --allow-unvalidated)",
                meta.name, meta.status, meta.name
            )));
        }
        let spec = build(meta, &loaded.weights).map_err(LoadError::Failed)?;
        let model = ServedModel {
            name: meta.name.clone(),
            version,
            version_id: meta.version_id.clone(),
            status: meta.status,
            feature_hash: spec.features.hash(),
            features: spec.features,
            costs: spec.costs,
            policy: spec.policy,
            loaded_at: Utc::now(),
        };
        let window_values = model.features.window * model.features.column_names().len();
        if model.policy.window_values() != window_values {
            return Err(LoadError::Failed(anyhow::anyhow!(
                "models:/{}/{version}: the network reads {} feature values but its feature config \
                 gives {window_values}",
                model.name,
                model.policy.window_values()
            )));
        }
        // Warm-up: one decision on an all-zero window exercises every layer once.
        let position = model.decide(&vec![0.0; window_values], 0.0, 0.0, &mut model.scratch());
        if !position.is_finite() {
            return Err(LoadError::Failed(anyhow::anyhow!(
                "models:/{}/{version} gives non-finite outputs on an all-zero window",
                model.name
            )));
        }
        Ok(Arc::new(model))
    }

    pub fn scratch(&self) -> Scratch {
        self.policy.scratch()
    }

    /// The target position after a bar (NaN when the network's outputs are not finite).
    #[inline]
    pub fn decide(
        &self,
        window_rows: &[f32],
        position: f64,
        unrealised_return: f64,
        scratch: &mut Scratch,
    ) -> f64 {
        self.policy
            .decide(window_rows, position, unrealised_return, scratch)
    }

    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            version: self.version,
            version_id: self.version_id.clone(),
            status: self.status.to_string(),
            feature_hash: self.feature_hash.clone(),
            loaded_at: self.loaded_at,
        }
    }

    /// `models:/NAME/VERSION`.
    pub fn uri(&self) -> String {
        format!("models:/{}/{}", self.name, self.version)
    }
}
