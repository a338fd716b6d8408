//! Creates that survive a lost answer. MLflow's creates are not idempotent: when a request
//! reached the server but its answer never came back (a proxy's 502 after the upstream
//! applied it, a dropped connection, a response timeout), sending it again would make a
//! second run or model version, or store a batch's metric points twice (a file-backed
//! server appends them again; the SQL store ignores exact repeats). So before such a
//! request is sent again, the retry loop asks the server whether it took effect, and uses
//! what it finds as the answer:
//!
//! | request | found again by |
//! | --- | --- |
//! | `experiments/create` | its name, unique on a server |
//! | `registered-models/create` | its name, unique on a server |
//! | `runs/create` | the tag [`REQUEST_ID_TAG`]: a fresh random id sent with the request |
//! | `model-versions/create` | the same tag, on the version |
//! | `runs/log-batch` with metrics | the batch's last point, in its metric's history |
//!
//! When the lookup itself fails, the request is not sent again: the error names what may
//! exist on the server. Everything else the store sends is the same done twice (reads,
//! uploads, tag and status updates, params with their same values) and is simply resent.

use serde_json::{Value, json};
use uuid::Uuid;

use super::http::LostAnswer;
use super::{NOT_FOUND, RestStore, has_code, quote_filter_value};
use crate::error::Result;
use crate::store::{Metric, TrackingStore};

/// Tag carrying the random id of the request that created a run or a model version, so a
/// retry can find what the create did when its answer was lost (see the
/// [module docs](self)).
pub const REQUEST_ID_TAG: &str = "ratchet.request_id";

/// A fresh id for one create request: a random UUID, as 32 hex digits.
pub(super) fn new_request_id() -> String {
    Uuid::new_v4().simple().to_string()
}

impl RestStore {
    pub(super) fn experiment_created<'a>(&'a self, name: &'a str) -> LostAnswer<'a> {
        LostAnswer {
            find: Box::new(move || {
                Ok(self
                    .experiment_by_name(name)?
                    .map(|e| json!({"experiment_id": e.experiment_id})))
            }),
            what: format!("an experiment named {name:?} may have been created"),
        }
    }

    pub(super) fn registered_model_created<'a>(&'a self, name: &'a str) -> LostAnswer<'a> {
        LostAnswer {
            find: Box::new(move || {
                match self.get_json("registered-models/get", &[("name", name.into())]) {
                    Ok(answer) => Ok(Some(answer)),
                    Err(e) if has_code(&e, NOT_FOUND) => Ok(None),
                    Err(e) => Err(e),
                }
            }),
            what: format!("a registered model named {name:?} may have been created"),
        }
    }

    pub(super) fn run_created<'a>(
        &'a self,
        experiment_id: &'a str,
        request_id: &'a str,
    ) -> LostAnswer<'a> {
        LostAnswer {
            find: Box::new(move || {
                let body = json!({
                    "experiment_ids": [experiment_id],
                    "filter": format!("tags.`{REQUEST_ID_TAG}` = '{request_id}'"),
                    "run_view_type": "ALL",
                    "max_results": 1,
                });
                let found = self.post_json("runs/search", &body)?;
                Ok(first_of(found, "runs").map(|run| json!({"run": run})))
            }),
            what: format!(
                "a run tagged {REQUEST_ID_TAG}={request_id} may have been created in experiment {experiment_id}"
            ),
        }
    }

    pub(super) fn version_created<'a>(
        &'a self,
        name: &'a str,
        request_id: &'a str,
    ) -> Result<LostAnswer<'a>> {
        let filter = format!(
            "name = {} and tags.`{REQUEST_ID_TAG}` = '{request_id}'",
            quote_filter_value(name)?
        );
        Ok(LostAnswer {
            find: Box::new(move || {
                let query = [("filter", filter.clone()), ("max_results", "1".into())];
                let found = self.get_json("model-versions/search", &query)?;
                Ok(first_of(found, "model_versions").map(|v| json!({"model_version": v})))
            }),
            what: format!(
                "a version of model {name:?} tagged {REQUEST_ID_TAG}={request_id} may have been created"
            ),
        })
    }

    /// A batch's metric points are stored together (in one transaction by the SQL store),
    /// so its last point tells whether it was stored.
    pub(super) fn batch_logged<'a>(
        &'a self,
        run_id: &'a str,
        metrics: &'a [Metric],
    ) -> LostAnswer<'a> {
        LostAnswer {
            find: Box::new(move || {
                let Some(last) = metrics.last() else {
                    return Ok(None);
                };
                let history = self.get_metric_history(run_id, &last.key)?;
                let stored = history.iter().any(|m| {
                    m.step == last.step
                        && m.timestamp == last.timestamp
                        && (m.value == last.value || (m.value.is_nan() && last.value.is_nan()))
                });
                Ok(stored.then(|| json!({})))
            }),
            what: format!(
                "its {} metric points may have been logged to run {run_id} already",
                metrics.len()
            ),
        }
    }
}

/// The first element of the list `key` of a search answer, if any.
fn first_of(mut answer: Value, key: &str) -> Option<Value> {
    match answer.get_mut(key).map(Value::take) {
        Some(Value::Array(items)) => items.into_iter().next(),
        _ => None,
    }
}
