//! MLflow's `MLmodel` file: the YAML at the root of a model directory that names its
//! flavor (how to load it), where it was logged and by which run.

use crate::yaml::{self, quote};

/// The fields of an `MLmodel` file, in the order they are written.
pub struct MlModel<'a> {
    pub artifact_path: &'a str,
    /// The flavor's name and its fields (`flavors: {name: {key: value, …}}`).
    pub flavor: &'a str,
    pub flavor_fields: &'a [(&'a str, &'a str)],
    /// Free-form `metadata: {key: value, …}`.
    pub metadata: &'a [(&'a str, &'a str)],
    pub model_uuid: &'a str,
    pub run_id: Option<&'a str>,
    /// `%Y-%m-%d %H:%M:%S%.6f`, UTC, as MLflow writes it.
    pub utc_time_created: &'a str,
}

impl MlModel<'_> {
    /// The file's text; every value quoted, so none is read back as another type.
    pub fn to_yaml(&self) -> String {
        let mut text = format!(
            "artifact_path: {}\nflavors:\n  {}:\n",
            quote(self.artifact_path),
            self.flavor
        );
        for (key, value) in self.flavor_fields {
            text.push_str(&format!("    {key}: {}\n", quote(value)));
        }
        text.push_str("metadata:\n");
        for (key, value) in self.metadata {
            text.push_str(&format!("  {key}: {}\n", quote(value)));
        }
        text.push_str(&format!("model_uuid: {}\n", quote(self.model_uuid)));
        if let Some(run_id) = self.run_id {
            text.push_str(&format!("run_id: {}\n", quote(run_id)));
        }
        text.push_str(&format!(
            "utc_time_created: {}\n",
            quote(self.utc_time_created)
        ));
        text
    }
}

/// Checks that `text` reads as an `MLmodel` file (YAML with `flavors` and an
/// `artifact_path`); the error says what is missing.
pub fn check(text: &str) -> Result<(), String> {
    let map = yaml::parse(text)?;
    if map.get("flavors").is_some() && map.str("artifact_path").is_some() {
        Ok(())
    } else {
        Err("missing flavors or artifact_path".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_check_and_quote_their_values() {
        let text = MlModel {
            artifact_path: "checkpoints/v1",
            flavor: "ratchet",
            flavor_fields: &[("format", "ratchet-checkpoint/1"), ("algorithm", "ppo")],
            metadata: &[("semver", "1.0.0")],
            model_uuid: "abc",
            run_id: Some("r1"),
            utc_time_created: "2026-12-06 18:00:00.000000",
        }
        .to_yaml();
        assert_eq!(
            text,
            "artifact_path: 'checkpoints/v1'\nflavors:\n  ratchet:\n    format: 'ratchet-checkpoint/1'\n    algorithm: 'ppo'\nmetadata:\n  semver: '1.0.0'\nmodel_uuid: 'abc'\nrun_id: 'r1'\nutc_time_created: '2026-12-06 18:00:00.000000'\n"
        );
        assert_eq!(check(&text), Ok(()));
        assert_eq!(
            check("flavors: {}\n"),
            Err("missing flavors or artifact_path".to_string())
        );
    }
}
