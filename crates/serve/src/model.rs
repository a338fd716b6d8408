//! A registered version ready to decide: loaded from the registry, checked, warmed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratchet_agents::TradingPolicy;
use ratchet_config::{ConfigError, TrainConfig};
use ratchet_data::FeatureConfig;
use ratchet_env::execution::Costs;
use ratchet_registry::{ModelRef, Registry, RegistryError, VersionStatus, VersionSummary};
use serde::Serialize;

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
    /// A universe version's symbols, sorted (the only ones it decides for unless the
    /// server runs with `--any-symbol`); empty for a single-instrument version.
    pub symbols: Vec<String>,
    pub loaded_at: DateTime<Utc>,
}

/// Why a version cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Its tags say it may not be served here: its lifecycle status, or features other than
    /// the sessions compute. Nothing was downloaded.
    #[error("{0}")]
    Refused(String),
    /// The version itself is broken: its files fail their checksums, its network does not
    /// fit its features, its outputs are not finite.
    #[error(transparent)]
    Failed(#[from] BrokenVersion),
    /// The store could not be reached (or answered with a server error) within its retry
    /// budget: nothing is known about the version, so it is tried again later.
    #[error(transparent)]
    Unavailable(RegistryError),
}

/// What is wrong with a version that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BrokenVersion {
    /// The registry refused it: not found, a checksum mismatch, unreadable files.
    #[error(transparent)]
    Registry(RegistryError),
    /// Its recorded configuration cannot be read, or its weights do not make its network.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Its parts disagree: the feature hash, the network's input size, or its outputs on a
    /// warm-up window.
    #[error("{0}")]
    Inconsistent(String),
}

impl From<RegistryError> for LoadError {
    fn from(e: RegistryError) -> Self {
        let transient = matches!(
            &e,
            RegistryError::Remote { status, .. }
                if status.is_none_or(|s| s == 408 || s == 429 || s >= 500)
        );
        if transient {
            LoadError::Unavailable(e)
        } else {
            LoadError::Failed(BrokenVersion::Registry(e))
        }
    }
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        LoadError::Failed(e.into())
    }
}

/// What the server's sessions compute, which every version served beside the first
/// production one must compute too.
pub struct SessionFeatures {
    /// The feature config's hash.
    pub hash: String,
    /// With cross-sectional features, the symbols they read.
    pub universe: Option<Vec<String>>,
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
    /// Loads the version `reference` names. Its tags are checked first: a version whose
    /// status is not `validated` or `production` (unless `allow_unvalidated`), or whose
    /// features differ from `features` (the sessions' hash, when there are sessions), is
    /// refused before anything is downloaded. Then its weights and metadata only are read,
    /// checksums verified by the registry, and the policy is warmed with one decision, which
    /// must be finite.
    pub fn load(
        registry: &Registry,
        reference: &ModelRef,
        allow_unvalidated: bool,
        sessions: Option<&SessionFeatures>,
    ) -> Result<Arc<ServedModel>, LoadError> {
        let tags = VersionSummary::from_stored(&registry.resolve(reference)?);
        let uri = format!("models:/{}/{}", tags.name, tags.version);
        let status = tags
            .status
            .map_or("untagged".to_string(), |s| s.to_string());
        if !allow_unvalidated
            && !matches!(
                tags.status,
                Some(VersionStatus::Validated | VersionStatus::Production)
            )
        {
            return Err(LoadError::Refused(format!(
                "{uri} is {status}: only validated or production versions are served \
                 (run `ratchet models validate {uri}`, or pass --allow-unvalidated)"
            )));
        }
        if let Some(sessions) = sessions {
            let expected = sessions.hash.as_str();
            if tags.feature_hash.as_deref() != Some(expected) {
                return Err(LoadError::Refused(format!(
                    "{uri} computes features {} but the sessions compute {}; restart the server \
                     to serve it",
                    tags.feature_hash
                        .as_deref()
                        .map_or("(untagged)", short_hash),
                    short_hash(expected)
                )));
            }
            if let Some(universe) = &sessions.universe
                && &tags.symbols != universe
            {
                return Err(LoadError::Refused(format!(
                    "{uri} trades the symbols {} but the sessions' cross-sectional features read \
                     {}; restart the server to serve it",
                    tags.symbols.join(","),
                    universe.join(",")
                )));
            }
        }
        // By number: the version whose tags were checked, even if the alias moves meanwhile.
        let loaded = registry.load_weights(&ModelRef::number(&tags.name, tags.version))?;
        let meta = &loaded.metadata;
        let version = tags.version;
        // The features it reads, its decision rule and the costs its paper PnL is charged, as
        // its recorded configuration says.
        let config = TrainConfig::from_version(meta)?;
        let policy = config.trading_policy(&loaded.weights)?;
        let (features, costs) = (config.features, config.trading.costs);
        if tags.feature_hash.as_deref() != Some(features.hash().as_str()) {
            return Err(inconsistent(format!(
                "{uri}: its feature config hashes to {} but its tag says {}",
                short_hash(&features.hash()),
                tags.feature_hash
                    .as_deref()
                    .map_or("(untagged)", short_hash)
            )));
        }
        let model = ServedModel {
            name: meta.name.clone(),
            version,
            version_id: meta.version_id.clone(),
            status: meta.status,
            feature_hash: features.hash(),
            features,
            costs,
            policy,
            symbols: meta
                .training
                .data
                .symbols
                .iter()
                .map(|s| s.symbol.clone())
                .collect(),
            loaded_at: Utc::now(),
        };
        let window_values = model.features.window * model.features.column_names().len();
        if model.policy.window_values() != window_values {
            return Err(inconsistent(format!(
                "models:/{}/{version}: the network reads {} feature values but its feature config \
                 gives {window_values}",
                model.name,
                model.policy.window_values()
            )));
        }
        // Warm-up: one decision on an all-zero window exercises every layer once.
        let zeros = vec![0.0; window_values];
        let position = model
            .policy
            .decide(&zeros, 0.0, 0.0, &mut model.policy.scratch());
        if !position.is_finite() {
            return Err(inconsistent(format!(
                "models:/{}/{version} gives non-finite outputs on an all-zero window",
                model.name
            )));
        }
        Ok(Arc::new(model))
    }

    /// What sessions computing this version's features compute.
    pub fn session_features(&self) -> SessionFeatures {
        SessionFeatures {
            hash: self.feature_hash.clone(),
            universe: self
                .features
                .cross_sectional()
                .map(|_| self.symbols.clone()),
        }
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

/// The first 12 characters of a hash, as messages show it.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn inconsistent(why: String) -> LoadError {
    LoadError::Failed(BrokenVersion::Inconsistent(why))
}
