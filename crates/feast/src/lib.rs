//! Reads a Feast feature repository's definitions without Python: `feature_store.yaml` (the
//! project, the registry's path, the offline store) and the file registry `feast apply`
//! wrote, a protobuf `feast.core.Registry`. Only what a point-in-time join of file sources
//! needs is read: entities, batch feature views with their file source and TTL, and feature
//! services. What is not supported (a SQL or remote registry, another offline store, a view
//! whose source is not a file) is refused with an error naming the file and the setting.
//!
//! ```no_run
//! let repo = ratchet_feast::FeatureRepo::open("feature_repo".as_ref())?;
//! for view in repo.service("prices_service")? {
//!     println!("{} from {}", view.name, view.source.path.display());
//! }
//! # Ok::<(), ratchet_feast::FeastError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use serde::Deserialize;

mod proto;

/// An error reading a repository: the file it concerns and what is wrong or unsupported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct FeastError {
    pub path: PathBuf,
    pub message: String,
}

fn error(path: &Path, message: impl Into<String>) -> FeastError {
    FeastError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A Feast value type (`feast.types.ValueType.Enum`), the scalar ones by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Bytes,
    String,
    Int32,
    Int64,
    Double,
    Float,
    Bool,
    UnixTimestamp,
    /// Lists, sets, maps, JSON and the rest, by their number.
    Other(i32),
}

impl ValueType {
    fn of(number: i32) -> ValueType {
        match number {
            1 => ValueType::Bytes,
            2 => ValueType::String,
            3 => ValueType::Int32,
            4 => ValueType::Int64,
            5 => ValueType::Double,
            6 => ValueType::Float,
            7 => ValueType::Bool,
            8 => ValueType::UnixTimestamp,
            n => ValueType::Other(n),
        }
    }

    /// Feast's name of the type (`FLOAT` is Feast's `Float32`, `DOUBLE` its `Float64`).
    pub fn name(self) -> String {
        match self {
            ValueType::Bytes => "BYTES".into(),
            ValueType::String => "STRING".into(),
            ValueType::Int32 => "INT32".into(),
            ValueType::Int64 => "INT64".into(),
            ValueType::Double => "DOUBLE".into(),
            ValueType::Float => "FLOAT".into(),
            ValueType::Bool => "BOOL".into(),
            ValueType::UnixTimestamp => "UNIX_TIMESTAMP".into(),
            ValueType::Other(0) => "INVALID (unset)".into(),
            ValueType::Other(n) => format!("value type {n} (not a scalar number or string)"),
        }
    }

    /// Whether values of this type are numbers a feature can hold.
    pub fn is_number(self) -> bool {
        matches!(
            self,
            ValueType::Int32 | ValueType::Int64 | ValueType::Float | ValueType::Double
        )
    }
}

/// A column with its Feast type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value_type: ValueType,
}

/// An entity of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub name: String,
    /// The column that holds the entity's key, in the entity frame and the sources.
    pub join_key: String,
    pub value_type: ValueType,
}

/// A file source (Feast's `FileSource`): a Parquet file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSource {
    /// As declared.
    pub uri: String,
    /// Where Feast reads it: the URI, relative to the repository directory unless absolute.
    pub path: PathBuf,
    /// Event timestamps (after `field_mapping`).
    pub timestamp_field: String,
    /// When each row was written (after `field_mapping`), if declared.
    pub created_timestamp_column: Option<String>,
    /// Source column to the name Feast gives it.
    pub field_mapping: BTreeMap<String, String>,
}

impl FileSource {
    /// The file's column that Feast reads as `name`: `field_mapping` undone.
    pub fn source_column<'a>(&'a self, name: &'a str) -> &'a str {
        self.field_mapping
            .iter()
            .find(|(_, to)| *to == name)
            .map_or(name, |(from, _)| from.as_str())
    }
}

/// A view's batch source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSource {
    File(FileSource),
    /// Another kind of source, by Feast's name of its type.
    Other(String),
}

/// A batch feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureView {
    pub name: String,
    /// Entity names.
    pub entities: Vec<String>,
    /// The entity columns with their types.
    pub entity_columns: Vec<Field>,
    pub features: Vec<Field>,
    /// `None` for a TTL of 0 (Feast's "no limit").
    pub ttl: Option<Duration>,
    pub source: BatchSource,
}

/// One view's part of a feature service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    pub view: String,
    pub alias: Option<String>,
    pub features: Vec<String>,
    /// Entity column renames; not supported when joining.
    pub join_key_map: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureService {
    pub name: String,
    pub projections: Vec<Projection>,
}

/// A repository's definitions for its project, as `feast apply` registered them.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRepo {
    pub dir: PathBuf,
    pub project: String,
    /// The registry file read.
    pub registry: PathBuf,
    pub entities: Vec<Entity>,
    pub feature_views: Vec<FeatureView>,
    pub feature_services: Vec<FeatureService>,
    /// On-demand and stream feature views: name and kind, only to refuse them by name.
    other_views: Vec<(String, &'static str)>,
}

/// Features of one view to join, checked for a point-in-time join on one entity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFeatures<'a> {
    pub view: &'a FeatureView,
    /// The projection's alias, else the view's name.
    pub name: String,
    pub source: &'a FileSource,
    /// The entity's join key (string or int64 values).
    pub join_key: Field,
    pub features: Vec<Field>,
}

/// `feature_store.yaml`, the keys read (others are Feast's business).
#[derive(Deserialize)]
struct StoreConfig {
    project: Option<String>,
    registry: Option<RegistrySetting>,
    offline_store: Option<OfflineStoreSetting>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RegistrySetting {
    Path(String),
    Table {
        registry_type: Option<String>,
        path: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OfflineStoreSetting {
    Type(String),
    Table {
        #[serde(rename = "type")]
        kind: Option<String>,
    },
}

/// Feast's names of `DataSource.SourceType`.
fn source_type_name(number: i32) -> String {
    match number {
        0 => "INVALID (unset)".into(),
        1 => "BATCH_FILE".into(),
        2 => "BATCH_BIGQUERY".into(),
        3 => "STREAM_KAFKA".into(),
        4 => "STREAM_KINESIS".into(),
        5 => "BATCH_REDSHIFT".into(),
        6 => "CUSTOM_SOURCE".into(),
        7 => "REQUEST_SOURCE".into(),
        8 => "BATCH_SNOWFLAKE".into(),
        9 => "PUSH_SOURCE".into(),
        10 => "BATCH_TRINO".into(),
        11 => "BATCH_SPARK".into(),
        12 => "BATCH_ATHENA".into(),
        13 => "BATCH_ICEBERG".into(),
        n => format!("source type {n}"),
    }
}

impl FeatureRepo {
    /// Reads `dir/feature_store.yaml` and the registry it names.
    pub fn open(dir: &Path) -> Result<FeatureRepo, FeastError> {
        let yaml_path = dir.join("feature_store.yaml");
        let text = std::fs::read_to_string(&yaml_path).map_err(|e| {
            error(
                &yaml_path,
                format!("cannot read it ({e}); name a Feast repository directory (the one holding feature_store.yaml)"),
            )
        })?;
        let config: StoreConfig = serde_yaml_ng::from_str(&text)
            .map_err(|e| error(&yaml_path, format!("not a Feast repository config: {e}")))?;
        let project = config
            .project
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| error(&yaml_path, "no project; Feast needs `project: NAME`"))?;
        let unsupported_store = |kind: &str| {
            error(
                &yaml_path,
                format!(
                    "offline_store type {kind:?} is not supported; Ratchet reads the file offline store's Parquet sources (type \"file\" or \"dask\", Feast's default)"
                ),
            )
        };
        match config.offline_store {
            None | Some(OfflineStoreSetting::Table { kind: None }) => {}
            Some(
                OfflineStoreSetting::Type(kind) | OfflineStoreSetting::Table { kind: Some(kind) },
            ) => {
                if kind != "file" && kind != "dask" {
                    return Err(unsupported_store(&kind));
                }
            }
        }
        let registry = match config.registry {
            None => {
                return Err(error(
                    &yaml_path,
                    "no registry; Feast needs one, e.g. `registry: data/registry.db`",
                ));
            }
            Some(RegistrySetting::Path(path)) => path,
            Some(RegistrySetting::Table {
                registry_type,
                path,
            }) => {
                if let Some(kind) = registry_type.filter(|k| k != "file") {
                    return Err(error(
                        &yaml_path,
                        format!(
                            "registry_type {kind:?} is not supported; Ratchet reads a file registry (registry_type: file) on the local disk"
                        ),
                    ));
                }
                path.ok_or_else(|| error(&yaml_path, "registry has no path"))?
            }
        };
        if let Some((scheme, _)) = registry.split_once("://") {
            return Err(error(
                &yaml_path,
                format!(
                    "registry {registry:?} is a {scheme}:// path; Ratchet reads a registry file on the local disk (copy it here and name its path)"
                ),
            ));
        }
        let registry = dir.join(registry);
        let bytes = std::fs::read(&registry).map_err(|e| {
            error(
                &registry,
                format!(
                    "cannot read the registry ({e}); run `feast apply` in {} first",
                    dir.display()
                ),
            )
        })?;
        let proto = proto::Registry::decode(bytes.as_slice()).map_err(|e| {
            error(
                &registry,
                format!("not a Feast registry (protobuf feast.core.Registry): {e}"),
            )
        })?;
        Self::of_registry(dir, project, registry, proto)
    }

    fn of_registry(
        dir: &Path,
        project: String,
        registry: PathBuf,
        proto: proto::Registry,
    ) -> Result<FeatureRepo, FeastError> {
        let ours = |p: &str| p == project;
        let entities = proto
            .entities
            .into_iter()
            .filter_map(|e| e.spec)
            .filter(|s| ours(&s.project))
            .map(|s| Entity {
                name: s.name,
                join_key: s.join_key,
                value_type: ValueType::of(s.value_type),
            })
            .collect();
        let field = |f: proto::FeatureSpec| Field {
            name: f.name,
            value_type: ValueType::of(f.value_type),
        };
        let mut feature_views = Vec::new();
        for spec in proto.feature_views.into_iter().filter_map(|v| v.spec) {
            if !ours(&spec.project) {
                continue;
            }
            let ttl = match spec.ttl {
                None => None,
                Some(d) if d.seconds == 0 && d.nanos == 0 => None,
                Some(d) => Some(
                    u64::try_from(d.seconds)
                        .ok()
                        .zip(u32::try_from(d.nanos).ok())
                        .map(|(s, n)| Duration::new(s, n))
                        .ok_or_else(|| {
                            error(
                                &registry,
                                format!("feature view {:?} has a negative ttl", spec.name),
                            )
                        })?,
                ),
            };
            let source = match spec.batch_source {
                Some(source) if source.r#type == 1 => match source.file_options {
                    Some(file) => BatchSource::File(FileSource {
                        path: file_path(dir, &file.uri),
                        uri: file.uri,
                        timestamp_field: source.timestamp_field,
                        created_timestamp_column: Some(source.created_timestamp_column)
                            .filter(|c| !c.is_empty()),
                        field_mapping: source.field_mapping,
                    }),
                    None => BatchSource::Other("BATCH_FILE without file options".into()),
                },
                Some(source) => BatchSource::Other(source_type_name(source.r#type)),
                None => BatchSource::Other("none".into()),
            };
            feature_views.push(FeatureView {
                name: spec.name,
                entities: spec.entities,
                entity_columns: spec.entity_columns.into_iter().map(field).collect(),
                features: spec.features.into_iter().map(field).collect(),
                ttl,
                source,
            });
        }
        let feature_services = proto
            .feature_services
            .into_iter()
            .filter_map(|s| s.spec)
            .filter(|s| ours(&s.project))
            .map(|s| FeatureService {
                name: s.name,
                projections: s
                    .features
                    .into_iter()
                    .map(|p| Projection {
                        view: p.feature_view_name,
                        alias: Some(p.feature_view_name_alias).filter(|a| !a.is_empty()),
                        features: p.feature_columns.into_iter().map(|f| f.name).collect(),
                        join_key_map: p.join_key_map,
                    })
                    .collect(),
            })
            .collect();
        let other_views = (proto.on_demand_feature_views.into_iter())
            .map(|v| (v, "an on-demand feature view"))
            .chain(
                proto
                    .stream_feature_views
                    .into_iter()
                    .map(|v| (v, "a stream feature view")),
            )
            .filter_map(|(v, kind)| v.spec.map(|s| (s, kind)))
            .filter(|(s, _)| ours(&s.project))
            .map(|(s, kind)| (s.name, kind))
            .collect();
        Ok(FeatureRepo {
            dir: dir.to_path_buf(),
            project,
            registry,
            entities,
            feature_views,
            feature_services,
            other_views,
        })
    }

    fn error(&self, message: impl Into<String>) -> FeastError {
        error(&self.registry, message)
    }

    /// The views and features of feature service `name`, each checked for a join.
    pub fn service(&self, name: &str) -> Result<Vec<ViewFeatures<'_>>, FeastError> {
        let service = self
            .feature_services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                self.error(format!(
                    "project {:?} has no feature service {name:?} (it has: {})",
                    self.project,
                    list(self.feature_services.iter().map(|s| &s.name))
                ))
            })?;
        service
            .projections
            .iter()
            .map(|p| {
                if !p.join_key_map.is_empty() {
                    return Err(self.error(format!(
                        "feature service {name:?} renames the join keys of view {:?} (with_join_key_map); not supported, join on the entity's own key",
                        p.view
                    )));
                }
                let view = self.view(&p.view)?;
                self.view_features(
                    view,
                    p.alias.clone().unwrap_or_else(|| view.name.clone()),
                    &p.features,
                )
            })
            .collect()
    }

    /// Features named `view:feature`, grouped by view in the order each view first appears.
    pub fn features<S: AsRef<str>>(&self, refs: &[S]) -> Result<Vec<ViewFeatures<'_>>, FeastError> {
        let mut by_view: Vec<(&str, Vec<String>)> = Vec::new();
        for reference in refs {
            let reference = reference.as_ref();
            let Some((view, feature)) = reference.split_once(':') else {
                return Err(self.error(format!(
                    "feature reference {reference:?} is not \"view:feature\""
                )));
            };
            match by_view.iter_mut().find(|(v, _)| *v == view) {
                Some((_, features)) if features.iter().any(|f| f == feature) => {
                    return Err(self.error(format!("feature {reference:?} is named twice")));
                }
                Some((_, features)) => features.push(feature.to_string()),
                None => by_view.push((view, vec![feature.to_string()])),
            }
        }
        by_view
            .into_iter()
            .map(|(view, features)| {
                let view = self.view(view)?;
                self.view_features(view, view.name.clone(), &features)
            })
            .collect()
    }

    fn view(&self, name: &str) -> Result<&FeatureView, FeastError> {
        if let Some(view) = self.feature_views.iter().find(|v| v.name == name) {
            return Ok(view);
        }
        Err(self.error(match self.other_views.iter().find(|(n, _)| n == name) {
            Some((_, kind)) => format!(
                "feature view {name:?} is {kind}; Ratchet joins batch feature views with a file source"
            ),
            None => format!(
                "project {:?} has no feature view {name:?} (it has: {})",
                self.project,
                list(self.feature_views.iter().map(|v| &v.name))
            ),
        }))
    }

    fn view_features<'a>(
        &'a self,
        view: &'a FeatureView,
        name: String,
        features: &[String],
    ) -> Result<ViewFeatures<'a>, FeastError> {
        let source = match &view.source {
            BatchSource::File(source) => source,
            BatchSource::Other(kind) => {
                return Err(self.error(format!(
                    "feature view {:?} has a {kind} batch source, not a file source; Ratchet reads FileSource views (Parquet)",
                    view.name
                )));
            }
        };
        if source.uri.contains("://") {
            return Err(self.error(format!(
                "feature view {:?} reads {:?}, a remote file; Ratchet reads file sources on the local disk",
                view.name, source.uri
            )));
        }
        let entity = match view.entities.as_slice() {
            [entity] if entity != "__dummy" => entity,
            [] | [_] => {
                return Err(self.error(format!(
                    "feature view {:?} has no entity; Ratchet joins views keyed by one entity (the symbol); for market-wide values declare the file as [[features.external]] without a symbol column",
                    view.name
                )));
            }
            more => {
                return Err(self.error(format!(
                    "feature view {:?} has {} entities ({}); Ratchet joins views keyed by one entity (the symbol)",
                    view.name,
                    more.len(),
                    list(more.iter())
                )));
            }
        };
        let entity = self
            .entities
            .iter()
            .find(|e| &e.name == entity)
            .ok_or_else(|| {
                self.error(format!(
                    "feature view {:?} names entity {entity:?}, which project {:?} does not have",
                    view.name, self.project
                ))
            })?;
        // `feast apply` records the key's type on the view (inferred from the source when the
        // entity declares none).
        let key_type = view
            .entity_columns
            .iter()
            .find(|c| c.name == entity.join_key)
            .map_or(entity.value_type, |c| c.value_type);
        if !matches!(key_type, ValueType::String | ValueType::Int64) {
            return Err(self.error(format!(
                "entity {:?} of feature view {:?} has join key {:?} of type {}; Ratchet's symbols are STRING or INT64 keys",
                entity.name,
                view.name,
                entity.join_key,
                key_type.name()
            )));
        }
        let features = features
            .iter()
            .map(|wanted| {
                let feature = view.features.iter().find(|f| &f.name == wanted).ok_or_else(|| {
                    self.error(format!(
                        "feature view {:?} has no feature {wanted:?} (it has: {})",
                        view.name,
                        list(view.features.iter().map(|f| &f.name))
                    ))
                })?;
                if !feature.value_type.is_number() {
                    return Err(self.error(format!(
                        "feature {:?} of view {:?} is of type {}; Ratchet's features are numbers (FLOAT, DOUBLE, INT32, INT64)",
                        feature.name,
                        view.name,
                        feature.value_type.name()
                    )));
                }
                Ok(feature.clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if features.is_empty() {
            return Err(self.error(format!("no features asked of view {:?}", view.name)));
        }
        Ok(ViewFeatures {
            view,
            name,
            source,
            join_key: Field {
                name: entity.join_key.clone(),
                value_type: key_type,
            },
            features,
        })
    }
}

/// Feast's `FileSource.get_uri_for_file_path` for a local path: relative to the repository
/// unless absolute.
fn file_path(dir: &Path, uri: &str) -> PathBuf {
    dir.join(uri)
}

fn list<S: AsRef<str>>(names: impl Iterator<Item = S>) -> String {
    let names: Vec<String> = names.map(|n| format!("{:?}", n.as_ref())).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
