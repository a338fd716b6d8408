//! What is live: the production version, an optional canary taking a stable share of the
//! symbols, an optional shadow, and the history of changes.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ratchet_registry::ModelRef;
use serde::Serialize;

use crate::model::{ModelInfo, ServedModel};
use crate::slo::Recorder;

/// A version's part in the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Production,
    Canary,
    Shadow,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Production, Role::Canary, Role::Shadow];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Production => "production",
            Role::Canary => "canary",
            Role::Shadow => "shadow",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The models answering right now. Replaced whole on every change (requests hold an `Arc` of
/// the one they started with, so a swap never mixes versions within a request).
#[derive(Clone)]
pub struct Live {
    pub production: Arc<ServedModel>,
    pub canary: Option<Arc<ServedModel>>,
    pub shadow: Option<Arc<ServedModel>>,
    /// Share of symbols the canary answers, in percent.
    pub canary_percent: f64,
    /// Where the production and canary versions' decisions are recorded for the SLO watch
    /// (with an SLO only): new with each version, so a version is judged on its own.
    pub production_record: Option<Arc<Recorder>>,
    pub canary_record: Option<Arc<Recorder>>,
}

impl Live {
    /// The model answering for `symbol`: the canary for a stable share of symbols (by hash of
    /// the symbol, so a symbol never flips between models mid-stream), production otherwise.
    pub fn route(&self, symbol: &str) -> (Role, &Arc<ServedModel>) {
        match &self.canary {
            Some(canary) if in_canary_share(symbol, self.canary_percent) => (Role::Canary, canary),
            _ => (Role::Production, &self.production),
        }
    }

    /// The SLO recorder of `role` (the shadow is not judged).
    pub fn recorder(&self, role: Role) -> Option<&Arc<Recorder>> {
        match role {
            Role::Production => self.production_record.as_ref(),
            Role::Canary => self.canary_record.as_ref(),
            Role::Shadow => None,
        }
    }

    pub fn model(&self, role: Role) -> Option<&Arc<ServedModel>> {
        match role {
            Role::Production => Some(&self.production),
            Role::Canary => self.canary.as_ref(),
            Role::Shadow => self.shadow.as_ref(),
        }
    }
}

/// Whether `symbol` falls in the first `percent` of the hash space: the first 8 bytes of its
/// BLAKE3 hash, compared in units of 0.01%.
pub fn in_canary_share(symbol: &str, percent: f64) -> bool {
    let hash = blake3::hash(symbol.as_bytes());
    let bucket = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes")) % 10_000;
    (bucket as f64) < percent * 100.0
}

/// One change of what is served, as `/v1/deployment` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// `loaded`, `swapped`, `refused`, `load_failed`, `rolled_back`, `canary_stopped`.
    pub event: &'static str,
    pub role: Role,
    pub version: Option<u64>,
    pub previous: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The body of `GET /v1/deployment`.
#[derive(Serialize)]
pub struct DeploymentView {
    pub server: String,
    pub production: RoleView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<RoleView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RoleView>,
    pub canary_percent: f64,
    pub sessions: usize,
    pub history: Vec<Event>,
}

/// One role: what it follows (`models:/NAME@ALIAS`) and what it serves.
#[derive(Serialize)]
pub struct RoleView {
    pub follows: String,
    /// `None` when nothing is served in this role (e.g. the canary was stopped).
    pub serving: Option<ModelInfo>,
}

/// The references each role follows.
#[derive(Clone, Debug)]
pub struct Targets {
    pub production: ModelRef,
    pub canary: Option<ModelRef>,
    pub shadow: Option<ModelRef>,
}

impl Targets {
    pub fn get(&self, role: Role) -> Option<&ModelRef> {
        match role {
            Role::Production => Some(&self.production),
            Role::Canary => self.canary.as_ref(),
            Role::Shadow => self.shadow.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_share_is_a_stable_hash_of_the_symbol() {
        let symbols: Vec<String> = (0..20_000).map(|i| format!("SYM{i}")).collect();
        let count = |percent: f64| {
            symbols
                .iter()
                .filter(|s| in_canary_share(s, percent))
                .count()
        };
        // Pinned: the first 8 bytes of BLAKE3 (little-endian) mod 10,000, below percent x 100;
        // within a binomial standard deviation or two of the share.
        assert_eq!(count(0.0), 0);
        assert_eq!(count(10.0), 1981);
        assert_eq!(count(50.0), 9986);
        assert_eq!(count(100.0), 20_000);
        // A symbol in a share is in every larger one: raising the percentage only adds symbols.
        for s in &symbols {
            if in_canary_share(s, 10.0) {
                assert!(in_canary_share(s, 50.0), "{s}");
            }
        }
    }
}
