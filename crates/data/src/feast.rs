//! Feature frames as a Feast repository: a Parquet offline source, `feature_store.yaml` and
//! the definitions (entity, file source, feature view with an explicit schema, feature
//! service), all named by the feature hash; and what Feast's MLflow integration reads of a
//! model trained on a feature config ([`FeastLineage`], [`write_entity_frame`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;

use crate::{DataError, FeastView, FeatureConfig, FeatureFrame};

/// The Feast names [`write_feast_repo`] gives a feature config's features.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportNames {
    /// `ratchet_<short feature hash>`.
    pub project: String,
    /// `ratchet_<short feature hash>_bars`: its features are the config's columns.
    pub feature_view: String,
    /// `ratchet_<short feature hash>`.
    pub feature_service: String,
}

impl ExportNames {
    pub fn of(config: &FeatureConfig) -> ExportNames {
        let short = config.short_hash();
        ExportNames {
            project: format!("ratchet_{short}"),
            feature_view: format!("ratchet_{short}_bars"),
            feature_service: format!("ratchet_{short}"),
        }
    }
}

/// The features of a model trained on a feature config, by the names Feast's MLflow
/// integration reads (`feast.project`, `feast.feature_service`, `feast.feature_refs` and the
/// artifact `feast_features.json`), so that `resolve_features("models:/NAME/VERSION")` finds
/// the feature service to ask for.
///
/// A config that reads Feast repositories (`[[features.feast]]`) names their features: every
/// `view:feature` in column order; the project when they all come from one project; the service
/// when every one of them came through the same feature service (features listed as
/// `view:feature` name no service, and two services are not one). The bars' own features and
/// `[[features.external]]` files are not Feast's and are left out. Any other config names what
/// `ratchet features export --feast` writes for it: every column, in the view and service
/// `ratchet_<short feature hash>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeastLineage {
    pub project: Option<String>,
    pub feature_service: Option<String>,
    /// `view:feature`, in column order.
    pub feature_refs: Vec<String>,
    /// The entity frame's key columns: the export's `symbol`, or the join keys of the Feast
    /// views read (each distinct one once, in column order), each holding the symbols.
    pub entity_keys: Vec<EntityKey>,
}

/// A key column of an entity frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntityKey {
    pub name: String,
    /// Feast `INT64` values (the symbols parsed as integers); else strings.
    pub int64: bool,
}

/// Feast's cap on a tag it writes: longer values are cut to this many characters less 3, and
/// `...` appended (its `MLFLOW_TAG_TRUNCATION_LIMIT` and `_SLICE`).
const FEAST_TAG_LIMIT: usize = 4990;

impl FeastLineage {
    pub fn of(config: &FeatureConfig) -> FeastLineage {
        let origins: Vec<&FeastView> = config
            .external
            .iter()
            .filter_map(|f| f.feast.as_ref())
            .collect();
        let Some(first) = origins.first() else {
            let names = ExportNames::of(config);
            return FeastLineage {
                feature_refs: config
                    .column_names()
                    .iter()
                    .map(|column| format!("{}:{column}", names.feature_view))
                    .collect(),
                project: Some(names.project),
                feature_service: Some(names.feature_service),
                entity_keys: vec![EntityKey {
                    name: "symbol".into(),
                    int64: false,
                }],
            };
        };
        let mut entity_keys: Vec<EntityKey> = Vec::new();
        for origin in &origins {
            if !entity_keys.iter().any(|k| k.name == origin.join_key) {
                entity_keys.push(EntityKey {
                    name: origin.join_key.clone(),
                    int64: origin.integer_key,
                });
            }
        }
        let project = origins
            .iter()
            .all(|o| o.project == first.project)
            .then(|| first.project.clone());
        let feature_service = first
            .service
            .clone()
            .filter(|service| origins.iter().all(|o| o.service.as_ref() == Some(service)));
        FeastLineage {
            project,
            feature_service,
            feature_refs: origins
                .iter()
                .flat_map(|o| o.service_references())
                .collect(),
            entity_keys,
        }
    }

    /// The `feast.*` tags, as Feast writes them: refs comma-separated, a value over Feast's
    /// limit cut as Feast cuts it (`feast_features.json` holds them all).
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags = Vec::new();
        if let Some(project) = &self.project {
            tags.push(("feast.project".to_string(), project.clone()));
        }
        if let Some(service) = &self.feature_service {
            tags.push(("feast.feature_service".to_string(), service.clone()));
        }
        let mut refs = self.feature_refs.join(",");
        if refs.chars().count() > FEAST_TAG_LIMIT {
            refs = refs.chars().take(FEAST_TAG_LIMIT - 3).collect::<String>() + "...";
        }
        tags.push(("feast.feature_refs".to_string(), refs));
        tags
    }

    /// `feast_features.json`: the refs as a JSON list.
    pub fn features_json(&self) -> String {
        serde_json::to_string(&self.feature_refs).expect("strings serialise")
    }
}

/// Writes Feast's training entity frame to `path` (Parquet): per symbol, one row for each of
/// its `timestamps` (epoch ms), as the `keys` columns (each holding the symbol: a string, or
/// an `INT64` key's integer) and `event_timestamp` (UTC, nanoseconds: pandas' own unit, which
/// Feast's file offline store joins against any source).
pub fn write_entity_frame(
    path: &Path,
    keys: &[EntityKey],
    rows: &[(&str, &[i64])],
) -> Result<(), DataError> {
    let fail = |message: String| DataError::Feast {
        path: path.to_path_buf(),
        message,
    };
    let count: usize = rows.iter().map(|(_, t)| t.len()).sum();
    let symbols: Vec<&str> = rows
        .iter()
        .flat_map(|(s, t)| std::iter::repeat_n(*s, t.len()))
        .collect();
    let mut nanos = Vec::with_capacity(count);
    for (symbol, timestamps) in rows {
        for &ms in *timestamps {
            nanos.push(ms.checked_mul(1_000_000).ok_or_else(|| {
                fail(format!(
                    "{symbol}'s bar at {ms} ms since 1970 is beyond what a nanosecond timestamp holds"
                ))
            })?);
        }
    }
    let mut columns: Vec<Column> = Vec::with_capacity(keys.len() + 1);
    for key in keys {
        let column: Column = if key.int64 {
            let ids = rows
                .iter()
                .map(|(symbol, timestamps)| {
                    let id = symbol.parse::<i64>().map_err(|_| {
                        fail(format!(
                            "symbol {symbol:?} is not an integer, and the Feast join key {} is INT64",
                            key.name
                        ))
                    })?;
                    Ok(std::iter::repeat_n(id, timestamps.len()))
                })
                .collect::<Result<Vec<_>, DataError>>()?;
            let ids: Vec<i64> = ids.into_iter().flatten().collect();
            Series::new(key.name.as_str().into(), ids).into()
        } else {
            Series::new(key.name.as_str().into(), &symbols).into()
        };
        columns.push(column);
    }
    columns.push(
        Int64Chunked::new("event_timestamp".into(), &nanos)
            .into_datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
            .into_series()
            .into(),
    );
    let mut df = DataFrame::new(count, columns).map_err(|e| fail(e.to_string()))?;
    let mut file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    ParquetWriter::new(&mut file)
        .finish(&mut df)
        .map_err(|e| fail(format!("cannot write Parquet: {e}")))?;
    Ok(())
}

/// What [`write_feast_repo`] wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeastRepo {
    pub dir: PathBuf,
    /// `ratchet_<short feature hash>`.
    pub project: String,
    /// `ratchet_<short feature hash>_bars`: its features are the config's columns.
    pub feature_view: String,
    /// `ratchet_<short feature hash>`.
    pub feature_service: String,
    /// The full feature hash.
    pub feature_hash: String,
    /// The offline source, relative to `dir`.
    pub source: PathBuf,
    pub rows: usize,
    pub symbols: Vec<String>,
}

/// The offline source's path inside the repository.
const SOURCE: &str = "data/features.parquet";
/// The definitions file `feast apply` reads.
const DEFINITIONS: &str = "ratchet_features.py";

/// Where a Feast repository will be written: a directory that is absent or empty (checked
/// before any work, so a command can refuse at once).
#[derive(Clone, Debug)]
pub struct FeastTarget {
    dir: PathBuf,
}

impl FeastTarget {
    pub fn new(dir: &Path) -> Result<FeastTarget, DataError> {
        if let Ok(mut entries) = std::fs::read_dir(dir)
            && entries.next().is_some()
        {
            return Err(DataError::Feast {
                path: dir.to_path_buf(),
                message: "the directory is not empty; name a new directory for the repository"
                    .into(),
            });
        }
        if dir.file_name().is_none() {
            return Err(DataError::Feast {
                path: dir.to_path_buf(),
                message: "the path names no directory; give a directory name".into(),
            });
        }
        Ok(FeastTarget {
            dir: dir.to_path_buf(),
        })
    }

    /// Writes the repository ([`write_feast_repo`]).
    pub fn write(
        &self,
        config: &FeatureConfig,
        frames: &[(String, &FeatureFrame)],
        tracking_uri: &str,
    ) -> Result<FeastRepo, DataError> {
        write_feast_repo(&self.dir, config, frames, tracking_uri)
    }
}

/// Writes a Feast repository to `dir` (absent or empty) holding `frames` (one per symbol,
/// computed with `config`): every feature row as one row of the offline source, keyed by
/// the entity `symbol` and the bar's time (`event_timestamp`, UTC; `created` the same, as
/// a row is never restated), the features as float32, exactly the frame's values.
/// `feature_store.yaml` turns Feast's MLflow integration on for the MLflow store at
/// `tracking_uri` (absolute: a server's URL or a `file://` URI), where the versions trained on
/// these features are. Written into a sibling directory first and moved into place, so `dir`
/// is never half-written.
pub fn write_feast_repo(
    dir: &Path,
    config: &FeatureConfig,
    frames: &[(String, &FeatureFrame)],
    tracking_uri: &str,
) -> Result<FeastRepo, DataError> {
    FeastTarget::new(dir)?;
    let fail = |message: String| DataError::Feast {
        path: dir.to_path_buf(),
        message,
    };
    let names = config.column_names();
    if let Some((symbol, _)) = frames.iter().find(|(_, f)| f.names != names) {
        return Err(fail(format!(
            "the features of {symbol} are not those of the config; compute them with it"
        )));
    }
    let ExportNames {
        project,
        feature_view,
        feature_service,
    } = ExportNames::of(config);
    let repo = FeastRepo {
        dir: dir.to_path_buf(),
        project,
        feature_view,
        feature_service,
        feature_hash: config.hash(),
        source: PathBuf::from(SOURCE),
        rows: frames.iter().map(|(_, f)| f.rows()).sum(),
        symbols: frames.iter().map(|(s, _)| s.clone()).collect(),
    };

    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = dir.file_name().unwrap_or_default();
    let staging = parent.join(format!(
        ".{}.partial-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| -> Result<(), String> {
        std::fs::create_dir_all(staging.join("data")).map_err(|e| e.to_string())?;
        let mut df = offline_frame(&names, frames).map_err(|e| e.to_string())?;
        let mut file = std::fs::File::create(staging.join(SOURCE)).map_err(|e| e.to_string())?;
        ParquetWriter::new(&mut file)
            .finish(&mut df)
            .map_err(|e| format!("cannot write Parquet: {e}"))?;
        file.sync_all().map_err(|e| e.to_string())?;
        std::fs::write(
            staging.join("feature_store.yaml"),
            store_yaml(&repo, tracking_uri),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(staging.join(DEFINITIONS), definitions(&repo, &names))
            .map_err(|e| e.to_string())?;
        // An empty directory left for the repository is replaced; a non-empty one was refused.
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(|e| e.to_string())?;
        }
        std::fs::rename(&staging, dir).map_err(|e| e.to_string())
    })();
    if let Err(message) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(fail(message));
    }
    Ok(repo)
}

/// The offline source: `symbol`, `event_timestamp`, `created`, then the features as float32.
fn offline_frame(names: &[String], frames: &[(String, &FeatureFrame)]) -> PolarsResult<DataFrame> {
    let rows: usize = frames.iter().map(|(_, f)| f.rows()).sum();
    let symbols: Vec<&str> = frames
        .iter()
        .flat_map(|(s, f)| std::iter::repeat_n(s.as_str(), f.rows()))
        .collect();
    let times: Vec<i64> = frames
        .iter()
        .flat_map(|(_, f)| f.timestamps.iter().copied())
        .collect();
    // A logical type keeps the zone (a cast to it would drop it without polars' timezones).
    let utc = |name: &str| {
        Int64Chunked::new(name.into(), &times)
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_series()
            .into()
    };
    let mut columns: Vec<Column> = vec![
        Series::new("symbol".into(), symbols).into(),
        utc("event_timestamp"),
        utc("created"),
    ];
    for (c, name) in names.iter().enumerate() {
        let values: Vec<f32> = frames
            .iter()
            .flat_map(|(_, f)| (0..f.rows()).map(move |r| f.row(r)[c]))
            .collect();
        columns.push(Series::new(name.into(), values).into());
    }
    DataFrame::new(rows, columns)
}

fn store_yaml(repo: &FeastRepo, tracking_uri: &str) -> String {
    format!(
        "# Written by `ratchet features export`: features {hash}.\n\
         project: {project}\n\
         provider: local\n\
         registry: data/registry.db\n\
         offline_store:\n  type: file\n\
         online_store:\n  type: sqlite\n  path: data/online_store.db\n\
         entity_key_serialization_version: 3\n\
         # `store.mlflow.resolve_features(\"models:/NAME/VERSION\")` finds the versions here.\n\
         mlflow:\n  enabled: true\n  tracking_uri: {uri}\n",
        hash = repo.feature_hash,
        project = repo.project,
        // A JSON string is a YAML double-quoted scalar.
        uri = serde_json::Value::from(tracking_uri),
    )
}

/// The Python definitions: the schema is explicit, so Feast never infers a type from the
/// Parquet file (it would read polars' large strings as Json).
fn definitions(repo: &FeastRepo, names: &[String]) -> String {
    let mut fields = String::new();
    for name in names {
        let _ = writeln!(fields, "        Field(name={name:?}, dtype=Float32),");
    }
    format!(
        r#""""Feast definitions of Ratchet's features {hash} (written by `ratchet features export`)."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, String

symbol = Entity(name="symbol", join_keys=["symbol"], value_type=ValueType.STRING)

bars = FileSource(
    name="{view}_source",
    path="{source}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

# One row per bar and symbol; a row holds until the next one (no TTL).
{view} = FeatureView(
    name="{view}",
    entities=[symbol],
    ttl=timedelta(0),
    schema=[
        Field(name="symbol", dtype=String),
{fields}    ],
    source=bars,
    online=True,
    tags={{"ratchet.feature_hash": "{hash}"}},
)

{service} = FeatureService(name="{service}", features=[{view}])
"#,
        hash = repo.feature_hash,
        view = repo.feature_view,
        service = repo.feature_service,
        source = SOURCE,
    )
}
