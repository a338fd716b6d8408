//! Where and when a version served: `ratchet serve` records each event that concerns a
//! version (loaded, swapped in, refused, rolled back) in the version's
//! `ratchet.deployments` tag, newest last, so `ratchet models show` can list them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::{RegistryError, Result};
use crate::model_ref::ModelRef;
use crate::registry::Registry;

/// The version tag that holds a JSON list of [`DeploymentEvent`]s.
pub const DEPLOYMENTS_TAG: &str = "ratchet.deployments";
/// MLflow's limit on a model version tag's value, in characters; the oldest events are
/// dropped to stay under it.
const MAX_TAG_CHARS: usize = 5000;

/// One thing a server did with a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentEvent {
    /// `loaded`, `swapped`, `refused`, `load_failed` or `rolled_back`.
    pub event: String,
    /// The version's part in the deployment: `production`, `canary` or `shadow`.
    pub role: String,
    /// The server's listening address.
    pub server: String,
    pub at: DateTime<Utc>,
    /// Why (refusals, rollbacks, failures); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Registry {
    /// Appends `event` to the version's deployment history.
    pub fn record_deployment(
        &self,
        name: &str,
        version: u64,
        event: &DeploymentEvent,
    ) -> Result<()> {
        let _lock = self.store().lock_model(name)?;
        let mut events = self.deployments(name, version)?;
        events.push(event.clone());
        let mut value = serde_json::to_string(&events).expect("JSON values serialise");
        while value.chars().count() > MAX_TAG_CHARS && events.len() > 1 {
            events.remove(0);
            value = serde_json::to_string(&events).expect("JSON values serialise");
        }
        self.store()
            .set_model_version_tag(name, version, DEPLOYMENTS_TAG, &value)
    }

    /// The recorded deployment events of a version, oldest first.
    pub fn deployments(&self, name: &str, version: u64) -> Result<Vec<DeploymentEvent>> {
        let stored = self.resolve(&ModelRef::number(name, version))?;
        match stored.tags.get(DEPLOYMENTS_TAG) {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                RegistryError::corrupt(
                    PathBuf::from(format!("models:/{name}/{version} tag {DEPLOYMENTS_TAG}")),
                    format!("deployment history is not valid JSON: {e}"),
                )
            }),
        }
    }
}
