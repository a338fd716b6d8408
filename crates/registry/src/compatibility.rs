//! Compatibility: what a version must match to be used with some data and environment.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model_ref::ModelRef;
use crate::model_version::ModelVersion;
use crate::registry::Registry;

/// What a version must match to be used with some data / environment. `None` fields are
/// not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompatibilityTarget {
    pub feature_hash: Option<String>,
    pub observation_shape: Option<Vec<usize>>,
    pub action_count: Option<usize>,
    pub algorithm: Option<String>,
}

/// One mismatch found by a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub field: String,
    pub model: String,
    pub target: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the model has {}, the target has {}",
            self.field, self.model, self.target
        )
    }
}

/// Differences between a version's metadata and a target (empty = compatible).
pub fn compatibility(version: &ModelVersion, target: &CompatibilityTarget) -> Vec<Difference> {
    let t = &version.training;
    let mut out = Vec::new();
    let mut check = |field: &str, model: String, target: Option<String>| {
        if let Some(target) = target
            && model != target
        {
            out.push(Difference {
                field: field.into(),
                model,
                target,
            });
        }
    };
    check(
        "feature_hash",
        t.feature_hash.clone(),
        target.feature_hash.clone(),
    );
    check(
        "observation_shape",
        format!("{:?}", t.observation_shape),
        target.observation_shape.as_ref().map(|s| format!("{s:?}")),
    );
    check(
        "action_count",
        t.action_count.to_string(),
        target.action_count.map(|a| a.to_string()),
    );
    check(
        "algorithm",
        t.algorithm.to_ascii_lowercase(),
        target.algorithm.as_ref().map(|a| a.to_ascii_lowercase()),
    );
    out
}

impl Registry {
    /// Differences between a version and what it would be used with (empty = compatible).
    pub fn check_compatibility(
        &self,
        reference: &ModelRef,
        target: &CompatibilityTarget,
    ) -> Result<Vec<Difference>> {
        Ok(compatibility(&self.get(reference)?, target))
    }
}
