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
            .map(|view| {
                external_feature(view, self.missing, &repo.project, self.service.as_deref())
            })
            .collect();
        ExternalFeature::validate_all(&features, &[])?;
        Ok(features)
    }
}

/// Where an outside source read from `[[features.feast]]` comes from in Feast: what a feature
/// server (`feast serve`, `POST /get-online-features`) is asked for it, and what Feast's MLflow
/// integration names a model's features by (the `feast.*` tags of a version). Part of the
/// declaration, so a version records it and its feature hash covers it.
///
/// ```toml
/// feast = { project = "desk", view = "prices", features = ["close", "volume"], join_key = "symbol" }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeastView {
    /// The repository's Feast project.
    pub project: String,
    /// The feature service asked for; `None` for features listed as `view:feature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The feature view's name in the registry.
    pub view: String,
    /// The name the service gives the view, where it differs (`with_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Feast's names of the features, one per value column of the source, in its order.
    pub features: Vec<String>,
    /// The entity's join key; a symbol is its value.
    pub join_key: String,
    /// The key's values are integers (an INT64 or INT32 entity): a symbol is sent as the
    /// number it spells.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub integer_key: bool,
}

impl FeastView {
    /// What is wrong with it for a source with `columns`, if anything.
    pub(super) fn problem(&self, columns: &[String]) -> Option<String> {
        if self.features.len() != columns.len() {
            return Some(format!(
                "feast names {} features for {} columns; name one Feast feature per column",
                self.features.len(),
                columns.len()
            ));
        }
        [&self.view, &self.join_key]
            .into_iter()
            .chain(&self.features)
            .any(|name| name.trim().is_empty())
            .then(|| {
                "feast holds an empty name; give the view, its features and the join key".into()
            })
    }

    /// The `view:feature` references a feature server is asked for.
    pub fn references(&self) -> impl Iterator<Item = String> + '_ {
        self.features.iter().map(|f| format!("{}:{f}", self.view))
    }

    /// The references as the service names them (`alias:feature` where the view has an
    /// alias): what Feast's MLflow integration compares a version's features with.
    pub fn service_references(&self) -> impl Iterator<Item = String> + '_ {
        let name = self.alias.as_deref().unwrap_or(&self.view);
        self.features.iter().map(move |f| format!("{name}:{f}"))
    }
}

/// The outside feature that joins `view` as Feast does: file columns are the view's after
/// `field_mapping` undone; a TTL of 0 is no limit. It records where the view comes from in
/// Feast: `project`, and `service` when it was asked for through one.
pub fn external_feature(
    view: &ViewFeatures<'_>,
    missing: MissingRule,
    project: &str,
    service: Option<&str>,
) -> ExternalFeature {
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
        feast: Some(FeastView {
            project: project.to_string(),
            service: service.map(str::to_string),
            view: view.view.name.clone(),
            alias: (view.name != view.view.name).then(|| view.name.clone()),
            features: view.features.iter().map(|f| f.name.clone()).collect(),
            join_key: view.join_key.name.clone(),
            integer_key: matches!(
                view.join_key.value_type,
                ValueType::Int64 | ValueType::Int32
            ),
        }),
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
