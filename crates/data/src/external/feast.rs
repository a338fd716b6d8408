//! Features of a Feast repository as outside features: a feature service (or a list of
//! `view:feature`) read with `ratchet-feast` becomes one [`ExternalFeature`] per view, joined
//! by the same engine as any outside source.

use std::path::{Path, PathBuf};

use ratchet_feast::{FeatureRepo, ValueType, ViewFeatures};
use serde::{Deserialize, Serialize};

use super::{ExternalFeature, MissingRule, Transform};
use crate::DataError;

/// One `[[features.feast]]` table: a feature service, or features by `view:feature`, of a
/// Feast repository.
///
/// ```toml
/// [[features.feast]]
/// repo = "feature_repo"          # holds feature_store.yaml; its registry must be applied
/// service = "prices_service"     # or views = ["prices:close", "rates:ten_year"]
/// missing = "drop"               # or "error", "last", as for [[features.external]]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeastFeatures {
    /// The repository directory (a relative path from the working directory, as every path of
    /// a config).
    pub repo: PathBuf,
    /// A feature service of the repository's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Features as `view:feature`, when no service is named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<String>,
    /// What a bar without a value gets (none known yet, or older than the view's TTL).
    pub missing: MissingRule,
}

impl FeastFeatures {
    /// Reads the repository (`base` joined with `repo`) and gives one outside feature per
    /// view: its Parquet source, timestamp, entity key as the symbol, created column, the
    /// features' source columns, the view's TTL as `max_staleness`, `transform = "raw"`.
    pub fn resolve(&self, base: &Path) -> Result<Vec<ExternalFeature>, DataError> {
        let what = match (&self.service, self.views.is_empty()) {
            (Some(_), false) => "both service and views; name one of them",
            (None, true) => {
                "neither service nor views; name a feature service or list features as \"view:feature\""
            }
            _ => "",
        };
        if !what.is_empty() {
            return Err(DataError::Config(format!(
                "[[features.feast]] repo {:?} has {what}",
                self.repo
            )));
        }
        let repo = FeatureRepo::open(&base.join(&self.repo))?;
        let views = match &self.service {
            Some(service) => repo.service(service)?,
            None => repo.features(&self.views)?,
        };
        let features: Vec<ExternalFeature> = views
            .iter()
            .map(|view| ExternalFeature {
                feast: Some(FeastOrigin {
                    project: repo.project.clone(),
                    service: self.service.clone(),
                    join_key: view.join_key.name.clone(),
                    join_key_int64: view.join_key.value_type == ValueType::Int64,
                    refs: view
                        .features
                        .iter()
                        .map(|f| format!("{}:{}", view.name, f.name))
                        .collect(),
                }),
                ..external_feature(view, self.missing)
            })
            .collect();
        ExternalFeature::validate_all(&features, &[])?;
        Ok(features)
    }
}

/// Where the features of an outside source resolved from `[[features.feast]]` come from in
/// Feast: what Feast's MLflow integration names a model's features by (the `feast.*` tags of a
/// version). Part of the declaration, so a version records it and its feature hash covers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeastOrigin {
    /// The repository's Feast project.
    pub project: String,
    /// The feature service asked for; `None` for features listed as `view:feature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The view's entity join key: the entity frame's column of the symbols.
    pub join_key: String,
    /// Whether the key is a Feast `INT64` (the symbols are its values in decimal); else a
    /// string.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join_key_int64: bool,
    /// Feast's reference of each value column, in order: `view:feature`, the view named as
    /// the service names it (its alias when it has one).
    pub refs: Vec<String>,
}

/// The outside feature that joins `view` as Feast does: file columns are the view's after
/// `field_mapping` undone; a TTL of 0 is no limit.
pub fn external_feature(view: &ViewFeatures<'_>, missing: MissingRule) -> ExternalFeature {
    let source = view.source;
    let column = |name: &str| source.source_column(name).to_string();
    ExternalFeature {
        name: column_prefix(&view.name),
        source: source.path.clone(),
        timestamp: column(&source.timestamp_field),
        symbol: Some(column(&view.join_key.name)),
        created: source.created_timestamp_column.as_deref().map(column),
        timestamp_format: None,
        columns: view.features.iter().map(|f| column(&f.name)).collect(),
        max_staleness: view.view.ttl.unwrap_or(ExternalFeature::NEVER_STALE),
        missing,
        transform: Transform::Raw,
        window: None,
        feast: None,
    }
}

/// A view name as a column prefix: lowercase, other characters than letters and digits as `_`.
fn column_prefix(view: &str) -> String {
    view.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}
