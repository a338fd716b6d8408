//! [`Registry::cleanup`]: retention of a model's versions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::aliases::PRODUCTION;
use crate::error::{RegistryError, Result};
use crate::listing::{VersionFilter, VersionSummary};
use crate::registry::Registry;

/// Which versions retention cleanup keeps. A version is kept when it is among the
/// `keep_last` newest **or** younger than `max_age_days` (each rule applies only when set);
/// versions holding an alias, the production version and its ancestors are always kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub keep_last: Option<usize>,
    pub max_age_days: Option<f64>,
    pub dry_run: bool,
}

/// [`Registry::cleanup`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    /// Deleted (or, in a dry run, would be deleted).
    pub deleted: Vec<VersionSummary>,
    /// Versions the policy would have deleted but that are protected, with why.
    pub protected: Vec<(u64, String)>,
    /// Leftovers of killed writers removed from the store.
    pub temporaries_removed: usize,
}

impl Registry {
    /// Deletes versions the policy does not keep (unless `dry_run`), never the production
    /// version, an ancestor of it, or a version holding any alias. Deleting a version also
    /// removes its checkpoint artifact when no other live version uses it.
    pub fn cleanup(&self, name: &str, policy: &RetentionPolicy) -> Result<CleanupReport> {
        if policy.keep_last.is_none() && policy.max_age_days.is_none() {
            return Err(RegistryError::InvalidArgument(
                "cleanup needs keep_last and/or max_age_days; with neither, nothing is selected"
                    .into(),
            ));
        }
        if let Some(days) = policy.max_age_days
            && !(days.is_finite() && days >= 0.0)
        {
            return Err(RegistryError::InvalidArgument(format!(
                "max_age_days {days} must be a non-negative number"
            )));
        }
        let _lock = self.store().lock_model(name)?;
        let versions = self.list(name, &VersionFilter::default())?;
        let now = Utc::now();
        let mut by_age: Vec<&VersionSummary> = versions.iter().collect();
        by_age.sort_by_key(|v| std::cmp::Reverse(v.version));
        let newest: BTreeSet<u64> = by_age
            .iter()
            .take(policy.keep_last.unwrap_or(0))
            .map(|v| v.version)
            .collect();
        let young = |v: &VersionSummary| {
            policy.max_age_days.is_some_and(|days| {
                (now - v.created_at).num_milliseconds() as f64 / 86_400_000.0 < days
            })
        };
        let protected = self.protected_versions(name, &versions)?;
        let mut report = CleanupReport {
            dry_run: policy.dry_run,
            deleted: Vec::new(),
            protected: Vec::new(),
            temporaries_removed: 0,
        };
        for v in &versions {
            if newest.contains(&v.version) || young(v) {
                continue;
            }
            if let Some(reason) = protected.get(&v.version) {
                report.protected.push((v.version, reason.clone()));
                continue;
            }
            report.deleted.push(v.clone());
        }
        if policy.dry_run {
            return Ok(report);
        }
        for v in &report.deleted {
            self.store().delete_model_version(name, v.version)?;
        }
        // Free checkpoint artifacts no live version points at any more.
        let live_sources: BTreeSet<String> = self
            .list(name, &VersionFilter::default())?
            .into_iter()
            .map(|v| v.source)
            .collect();
        for v in &report.deleted {
            if let (Some(run_id), Some(path)) = (&v.run_id, &v.checkpoint)
                && !live_sources.contains(&v.source)
            {
                match self.store().delete_artifacts(run_id, path) {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        report.temporaries_removed = self
            .store()
            .remove_stale_temporaries(std::time::Duration::from_secs(24 * 3600))?;
        Ok(report)
    }

    /// Versions cleanup must not delete, with the reason.
    fn protected_versions(
        &self,
        name: &str,
        versions: &[VersionSummary],
    ) -> Result<BTreeMap<u64, String>> {
        let mut out = BTreeMap::new();
        let by_number: BTreeMap<u64, &VersionSummary> =
            versions.iter().map(|v| (v.version, v)).collect();
        for v in versions {
            if !v.aliases.is_empty() {
                out.insert(v.version, format!("holds alias {}", v.aliases.join(", ")));
            }
        }
        if let Some(production) = self.alias_holder(name, PRODUCTION)? {
            let mut next = by_number.get(&production).and_then(|v| v.parent.clone());
            let mut guard = BTreeSet::new();
            while let Some(parent) = next.take() {
                if parent.name != name || !guard.insert(parent.version) {
                    break;
                }
                out.entry(parent.version)
                    .or_insert_with(|| format!("ancestor of the production version {production}"));
                next = by_number
                    .get(&parent.version)
                    .and_then(|v| v.parent.clone());
            }
        }
        Ok(out)
    }
}
