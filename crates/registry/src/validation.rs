//! [`Registry::validate`]: a version checked end to end, from its checkpoint files to its
//! store tags.

use ratchet_mlflow::{StoredVersion, mlmodel};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint};
use crate::error::Result;
use crate::listing::VersionSummary;
use crate::model_ref::ModelRef;
use crate::model_version::{ModelVersion, VersionStatus, is_human_id};
use crate::registry::Registry;
use crate::tags;

/// One check of [`Registry::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationCheck {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

/// [`Registry::validate`]'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub name: String,
    pub version: u64,
    pub checks: Vec<ValidationCheck>,
    /// Whether the status moved from `registered` to `validated`.
    pub status_updated: bool,
}

impl ValidationReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

impl Registry {
    /// Checks a version end to end: checkpoint files present with matching checksums,
    /// metadata complete and consistent with the store and the weights header, tensors load
    /// with finite weights, MLmodel readable. A version that passes and is `registered`
    /// becomes `validated`.
    pub fn validate(&self, reference: &ModelRef) -> Result<ValidationReport> {
        let stored = self.resolve(reference)?;
        let summary = VersionSummary::from_stored(&stored);
        let mut checks = Vec::new();
        let mut add = |check: &str, result: std::result::Result<String, String>| {
            let ok = result.is_ok();
            checks.push(ValidationCheck {
                check: check.into(),
                ok,
                detail: result.unwrap_or_else(|e| e),
            });
            ok
        };
        let dir = self.checkpoint_dir_of(&stored);
        let dir = match dir {
            Ok(dir) => {
                add("checkpoint reachable", Ok(dir.path().display().to_string()));
                dir
            }
            Err(e) => {
                add("checkpoint reachable", Err(e.to_string()));
                return Ok(self.finish_validation(&stored, checks));
            }
        };
        let path = dir.path();
        if !add(
            "files and checksums",
            checkpoint::verify(path)
                .map(|m| format!("{} files match MANIFEST.json", m.files.len()))
                .map_err(|e| e.to_string()),
        ) {
            return Ok(self.finish_validation(&stored, checks));
        }
        let loaded = Checkpoint::load(path);
        let checkpoint = match loaded {
            Ok(c) => {
                add(
                    "tensors load",
                    Ok(format!(
                        "{} weight, {} optimizer and {} state tensors",
                        c.state.weights.len(),
                        c.state.optimizer.len(),
                        c.state.state_tensors.len()
                    )),
                );
                c
            }
            Err(e) => {
                add("tensors load", Err(e.to_string()));
                return Ok(self.finish_validation(&stored, checks));
            }
        };
        let m = &checkpoint.metadata;
        add(
            "metadata fields",
            metadata_problems(m).map(|()| "complete".into()),
        );
        let mut mismatches = Vec::new();
        let mut expect = |what: &str, store: Option<String>, file: String| {
            if let Some(store) = store
                && store != file
            {
                mismatches.push(format!(
                    "{what}: store tag {store:?}, metadata.json {file:?}"
                ));
            }
        };
        expect("name", Some(stored.name.clone()), m.name.clone());
        expect(
            "version_id",
            summary.version_id.clone(),
            m.version_id.clone(),
        );
        expect(
            "semver",
            summary.semver.map(|s| s.to_string()),
            m.semver.to_string(),
        );
        expect(
            "feature_hash",
            summary.feature_hash.clone(),
            m.training.feature_hash.clone(),
        );
        expect(
            "algorithm",
            summary.algorithm.clone(),
            m.training.algorithm.clone(),
        );
        expect(
            "run_id",
            stored.run_id.clone(),
            m.run_id.clone().unwrap_or_default(),
        );
        add(
            "metadata matches the store",
            if mismatches.is_empty() {
                Ok("consistent".into())
            } else {
                Err(mismatches.join("; "))
            },
        );
        let header = checkpoint::read_header_metadata(path).map_err(|e| e.to_string());
        let header_check = header.and_then(|h| {
            let expected = checkpoint.header_metadata();
            let wrong: Vec<String> = expected
                .iter()
                .filter(|(k, v)| h.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: header {:?}, metadata {v:?}", h.get(k)))
                .collect();
            if wrong.is_empty() {
                Ok("consistent".to_string())
            } else {
                Err(wrong.join("; "))
            }
        });
        add("weights header matches metadata", header_check);
        let weights_hash = checkpoint::weights_sha256(&checkpoint.state.weights);
        let network_hash = checkpoint::network_hash(&checkpoint.state.weights);
        add(
            "weights hash",
            if weights_hash == m.weights_sha256 && network_hash == m.network_hash {
                Ok(weights_hash)
            } else {
                Err(format!(
                    "weights hash {weights_hash} / network hash {network_hash} differ from metadata ({} / {})",
                    m.weights_sha256, m.network_hash
                ))
            },
        );
        let non_finite: Vec<&str> = checkpoint
            .state
            .weights
            .iter()
            .filter(|t| t.data.iter().any(|x| !x.is_finite()))
            .map(|t| t.name.as_str())
            .collect();
        add(
            "weights finite",
            if non_finite.is_empty() {
                Ok("no NaN or infinite weights".into())
            } else {
                Err(format!(
                    "NaN or infinite values in {}",
                    non_finite.join(", ")
                ))
            },
        );
        let mlmodel = std::fs::read_to_string(path.join(checkpoint::MLMODEL_FILE))
            .map_err(|e| e.to_string())
            .and_then(|text| mlmodel::check(&text))
            .map(|()| "flavors and artifact_path present".to_string());
        add("MLmodel", mlmodel);
        Ok(self.finish_validation(&stored, checks))
    }

    fn finish_validation(
        &self,
        stored: &StoredVersion,
        checks: Vec<ValidationCheck>,
    ) -> ValidationReport {
        let mut report = ValidationReport {
            name: stored.name.clone(),
            version: stored.version,
            checks,
            status_updated: false,
        };
        let registered = stored.tags.get(tags::STATUS).map(String::as_str)
            == Some(VersionStatus::Registered.as_str());
        if report.passed() && registered {
            let updated = self.store().set_model_version_tag(
                &stored.name,
                stored.version,
                tags::STATUS,
                VersionStatus::Validated.as_str(),
            );
            match updated {
                Ok(()) => report.status_updated = true,
                Err(e) => report.checks.push(ValidationCheck {
                    check: "status update".into(),
                    ok: false,
                    detail: e.to_string(),
                }),
            }
        }
        report
    }
}

fn metadata_problems(m: &ModelVersion) -> std::result::Result<(), String> {
    let t = &m.training;
    let mut missing = Vec::new();
    for (field, empty) in [
        ("name", m.name.is_empty()),
        ("version_id", !is_human_id(&m.version_id)),
        ("algorithm", t.algorithm.is_empty()),
        ("feature_hash", t.feature_hash.is_empty()),
        ("feature_config", t.feature_config.is_null()),
        ("observation_shape", t.observation_shape.is_empty()),
        ("action_count", t.action_count == 0),
        ("weights_sha256", m.weights_sha256.is_empty()),
        ("network_hash", m.network_hash.is_empty()),
        ("data.path", t.data.path.is_empty()),
        ("data.sha256", t.data.sha256.is_empty()),
        ("device", t.device.is_empty()),
    ] {
        if empty {
            missing.push(field);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing or invalid: {}", missing.join(", ")))
    }
}
