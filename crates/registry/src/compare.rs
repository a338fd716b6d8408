//! [`Registry::compare`]: versions side by side, metric by metric.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::listing::VersionSummary;
use crate::model_ref::ModelRef;
use crate::model_version::{MetricDirection, metric_direction};
use crate::registry::Registry;

/// One metric across compared versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub metric: String,
    pub direction: MetricDirection,
    /// One value per compared version, in the order given.
    pub values: Vec<Option<f64>>,
    /// Index of the best version for this metric (`None` when the direction is unknown or
    /// fewer than one version has a finite value).
    pub best: Option<usize>,
}

/// [`Registry::compare`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionComparison {
    pub versions: Vec<VersionSummary>,
    pub metrics: Vec<MetricRow>,
}

impl Registry {
    /// Puts two or more versions side by side, metric by metric, marking the best value
    /// where the metric's direction is known.
    pub fn compare(&self, references: &[ModelRef]) -> Result<VersionComparison> {
        if references.len() < 2 {
            return Err(RegistryError::InvalidArgument(format!(
                "compare needs at least two versions, got {}",
                references.len()
            )));
        }
        let versions = references
            .iter()
            .map(|r| self.summary(r))
            .collect::<Result<Vec<_>>>()?;
        let names: BTreeSet<&String> = versions.iter().flat_map(|v| v.metrics.keys()).collect();
        let metrics = names
            .into_iter()
            .map(|metric| {
                let values: Vec<Option<f64>> = versions
                    .iter()
                    .map(|v| v.metrics.get(metric).copied())
                    .collect();
                let direction = metric_direction(metric);
                let finite = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.filter(|x| x.is_finite()).map(|x| (i, x)));
                let best = match direction {
                    MetricDirection::HigherIsBetter => {
                        finite.max_by(|a, b| a.1.total_cmp(&b.1)).map(|(i, _)| i)
                    }
                    MetricDirection::LowerIsBetter => {
                        finite.min_by(|a, b| a.1.total_cmp(&b.1)).map(|(i, _)| i)
                    }
                    MetricDirection::Unknown => None,
                };
                MetricRow {
                    metric: metric.clone(),
                    direction,
                    values,
                    best,
                }
            })
            .collect();
        Ok(VersionComparison { versions, metrics })
    }
}
