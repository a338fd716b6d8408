//! [`Registry::lineage`]: where a version came from and what continued from it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::listing::{VersionFilter, VersionSummary};
use crate::model_ref::ModelRef;
use crate::model_version::ParentRef;
use crate::registry::Registry;

/// One node of a lineage: a version reference and what is known of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineageNode {
    pub name: String,
    pub version: u64,
    /// Generations away from the version asked about (1 = parent or child).
    pub depth: usize,
    /// `None` when the version was deleted or cannot be read.
    pub summary: Option<VersionSummary>,
    /// For descendants: the version it continued from.
    pub parent: Option<ParentRef>,
}

/// [`Registry::lineage`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub version: VersionSummary,
    /// Parent first, then grandparent, …
    pub ancestors: Vec<LineageNode>,
    /// Breadth-first: children, then grandchildren, …
    pub descendants: Vec<LineageNode>,
}

impl Registry {
    /// Ancestors (following `parent` links, across models) and descendants (versions of any
    /// registered model that continued from this one, transitively).
    pub fn lineage(&self, reference: &ModelRef) -> Result<Lineage> {
        let version = self.summary(reference)?;
        let mut ancestors = Vec::new();
        let mut seen = BTreeSet::from([(version.name.clone(), version.version)]);
        let mut next = version.parent.clone();
        while let Some(parent) = next.take() {
            if !seen.insert((parent.name.clone(), parent.version)) {
                break; // a cycle can only come from hand-edited tags
            }
            let summary = match self.summary(&ModelRef::number(&parent.name, parent.version)) {
                Ok(s) => Some(s),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            };
            next = summary.as_ref().and_then(|s| s.parent.clone());
            ancestors.push(LineageNode {
                name: parent.name,
                version: parent.version,
                depth: ancestors.len() + 1,
                summary,
                parent: None,
            });
        }
        // Children index over every model's live versions.
        let mut children: BTreeMap<(String, u64), Vec<VersionSummary>> = BTreeMap::new();
        for model in self.models()? {
            for v in self.list(&model, &VersionFilter::default())? {
                if let Some(p) = &v.parent {
                    children
                        .entry((p.name.clone(), p.version))
                        .or_default()
                        .push(v);
                }
            }
        }
        let mut descendants = Vec::new();
        let mut queue = VecDeque::from([((version.name.clone(), version.version), 0usize)]);
        while let Some((key, depth)) = queue.pop_front() {
            for child in children.get(&key).into_iter().flatten() {
                let child_key = (child.name.clone(), child.version);
                if seen.insert(child_key.clone()) {
                    descendants.push(LineageNode {
                        name: child.name.clone(),
                        version: child.version,
                        depth: depth + 1,
                        parent: child.parent.clone(),
                        summary: Some(child.clone()),
                    });
                    queue.push_back((child_key, depth + 1));
                }
            }
        }
        Ok(Lineage {
            version,
            ancestors,
            descendants,
        })
    }
}
