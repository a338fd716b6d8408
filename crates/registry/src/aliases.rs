//! Status and aliases: promotion, rollback through the alias history, removal, and the
//! `production` alias's effect on version statuses.

use chrono::{DateTime, Utc};
use ratchet_mlflow::names;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::{RegistryError, Result};
use crate::listing::VersionSummary;
use crate::model_ref::ModelRef;
use crate::model_version::VersionStatus;
use crate::registry::Registry;
use crate::tags;

/// The alias whose holder is the production version.
pub const PRODUCTION: &str = "production";
/// Alias history entries kept per alias (oldest dropped first).
const MAX_ALIAS_EVENTS: usize = 500;

/// One change of an alias, kept in the registered model's `ratchet.alias_history.<alias>`
/// tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasEvent {
    pub action: AliasAction,
    /// The holder after the event (`None` after a removal).
    pub version: Option<u64>,
    /// The holder before it.
    pub previous: Option<u64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AliasAction {
    Promote,
    Rollback,
    Remove,
}

/// The result of a promotion or rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasChange {
    pub name: String,
    pub alias: String,
    pub version: u64,
    pub previous: Option<u64>,
}

impl Registry {
    /// Sets a version's status tag.
    pub fn set_status(
        &self,
        reference: &ModelRef,
        status: VersionStatus,
    ) -> Result<VersionSummary> {
        let stored = self.resolve(reference)?;
        self.store().set_model_version_tag(
            &stored.name,
            stored.version,
            tags::STATUS,
            status.as_str(),
        )?;
        self.summary(&ModelRef::number(&stored.name, stored.version))
    }

    /// Points `alias` at the referenced version and records it in the alias history. For
    /// `production`, the new holder's status becomes `production` and the previous
    /// holder's `archived`.
    pub fn promote(&self, reference: &ModelRef, alias: &str) -> Result<AliasChange> {
        names::validate_alias(alias)?;
        let target = self.resolve(reference)?;
        let name = target.name.clone();
        let _lock = self.store().lock_model(&name)?;
        let previous = self.alias_holder(&name, alias)?;
        if previous != Some(target.version) {
            self.store().set_alias(&name, alias, target.version)?;
            self.update_statuses(&name, alias, Some(target.version), previous)?;
        }
        self.append_alias_event(
            &name,
            alias,
            AliasAction::Promote,
            Some(target.version),
            previous,
        )?;
        Ok(AliasChange {
            name,
            alias: alias.to_string(),
            version: target.version,
            previous,
        })
    }

    /// Moves `alias` back to the holder it had before the last promotion (skipping deleted
    /// versions). Repeated rollbacks walk further back.
    pub fn rollback(&self, name: &str, alias: &str) -> Result<AliasChange> {
        names::validate_alias(alias)?;
        let _lock = self.store().lock_model(name)?;
        let current = self.alias_holder(name, alias)?;
        let mut stack = holder_stack(&self.alias_history(name, alias)?);
        if let Some(current) = current
            && stack.last() != Some(&current)
        {
            // Moved outside Ratchet (e.g. in MLflow's UI): the actual holder is current.
            stack.push(current);
        }
        stack.pop();
        let target = loop {
            let Some(candidate) = stack.pop() else {
                return Err(RegistryError::NotFound(format!(
                    "an earlier holder of alias {alias:?} of model {name:?} to roll back to"
                )));
            };
            if Some(candidate) == current {
                continue;
            }
            match self.store().get_model_version(name, candidate) {
                Ok(_) => break candidate,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        };
        self.store().set_alias(name, alias, target)?;
        self.update_statuses(name, alias, Some(target), current)?;
        self.append_alias_event(name, alias, AliasAction::Rollback, Some(target), current)?;
        Ok(AliasChange {
            name: name.to_string(),
            alias: alias.to_string(),
            version: target,
            previous: current,
        })
    }

    /// Removes an alias, recording it in the history.
    pub fn remove_alias(&self, name: &str, alias: &str) -> Result<()> {
        names::validate_alias(alias)?;
        let _lock = self.store().lock_model(name)?;
        let previous = self.alias_holder(name, alias)?;
        self.store().delete_alias(name, alias)?;
        self.update_statuses(name, alias, None, previous)?;
        self.append_alias_event(name, alias, AliasAction::Remove, None, previous)
    }

    /// The recorded changes of an alias, oldest first.
    pub fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasEvent>> {
        let model = self.store().get_registered_model(name)?;
        let key = format!("{}{alias}", tags::ALIAS_HISTORY_PREFIX);
        match model.tags.get(&key) {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                RegistryError::corrupt(
                    PathBuf::from(format!("models:/{name} tag {key}")),
                    format!("alias history is not valid JSON: {e}"),
                )
            }),
        }
    }

    pub(crate) fn alias_holder(&self, name: &str, alias: &str) -> Result<Option<u64>> {
        Ok(self
            .store()
            .get_registered_model(name)?
            .aliases
            .get(alias)
            .copied())
    }

    fn append_alias_event(
        &self,
        name: &str,
        alias: &str,
        action: AliasAction,
        version: Option<u64>,
        previous: Option<u64>,
    ) -> Result<()> {
        let mut history = self.alias_history(name, alias)?;
        history.push(AliasEvent {
            action,
            version,
            previous,
            at: Utc::now(),
        });
        if history.len() > MAX_ALIAS_EVENTS {
            history.drain(..history.len() - MAX_ALIAS_EVENTS);
        }
        let key = format!("{}{alias}", tags::ALIAS_HISTORY_PREFIX);
        let value = serde_json::to_string(&history).expect("alias events serialise");
        self.store().set_registered_model_tag(name, &key, &value)
    }

    fn update_statuses(
        &self,
        name: &str,
        alias: &str,
        new: Option<u64>,
        old: Option<u64>,
    ) -> Result<()> {
        if alias != PRODUCTION || new == old {
            return Ok(());
        }
        if let Some(old) = old {
            match self.store().set_model_version_tag(
                name,
                old,
                tags::STATUS,
                VersionStatus::Archived.as_str(),
            ) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        if let Some(new) = new {
            self.store().set_model_version_tag(
                name,
                new,
                tags::STATUS,
                VersionStatus::Production.as_str(),
            )?;
        }
        Ok(())
    }
}

/// The alias holders implied by a history: promotions push, rollbacks pop back to their
/// target, removals clear.
fn holder_stack(history: &[AliasEvent]) -> Vec<u64> {
    let mut stack: Vec<u64> = Vec::new();
    for event in history {
        match (event.action, event.version) {
            (AliasAction::Promote, Some(v)) => {
                if stack.last() != Some(&v) {
                    stack.push(v);
                }
            }
            (AliasAction::Rollback, Some(v)) => {
                while stack.last().is_some_and(|top| *top != v) {
                    stack.pop();
                }
                if stack.is_empty() {
                    stack.push(v);
                }
            }
            _ => stack.clear(),
        }
    }
    stack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_stack_follows_promotions_and_rollbacks() {
        let event = |action, version| AliasEvent {
            action,
            version,
            previous: None,
            at: Utc::now(),
        };
        let history = vec![
            event(AliasAction::Promote, Some(1)),
            event(AliasAction::Promote, Some(2)),
            event(AliasAction::Promote, Some(3)),
            event(AliasAction::Rollback, Some(2)),
        ];
        assert_eq!(holder_stack(&history), vec![1, 2]);
        let mut cleared = history.clone();
        cleared.push(event(AliasAction::Remove, None));
        assert!(holder_stack(&cleared).is_empty());
    }
}
