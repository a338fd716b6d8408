#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use super::*;
use proto as p;

fn spec_field(name: &str, value_type: i32) -> p::FeatureSpec {
    p::FeatureSpec {
        name: name.into(),
        value_type,
    }
}

fn file_source(uri: &str) -> p::DataSource {
    p::DataSource {
        r#type: 1,
        field_mapping: [("px".to_string(), "price".to_string())].into(),
        timestamp_field: "ts".into(),
        created_timestamp_column: "written".into(),
        file_options: Some(p::FileOptions {
            uri: uri.into(),
            s3_endpoint_override: String::new(),
        }),
        data_source_class_type: "feast.infra.offline_stores.file_source.FileSource".into(),
        name: "prices_source".into(),
    }
}

fn view(name: &str, project: &str, entity: &str, source: p::DataSource) -> p::FeatureView {
    p::FeatureView {
        spec: Some(p::FeatureViewSpec {
            name: name.into(),
            project: project.into(),
            entities: vec![entity.into()],
            features: vec![
                spec_field("price", 6),
                spec_field("volume", 4),
                spec_field("note", 2),
            ],
            ttl: Some(p::Duration {
                seconds: 3 * 86_400,
                nanos: 0,
            }),
            batch_source: Some(source),
            entity_columns: vec![spec_field("symbol", 2)],
        }),
    }
}

fn registry() -> p::Registry {
    let entity = |name: &str, key: &str, value_type, project: &str| p::Entity {
        spec: Some(p::EntitySpec {
            name: name.into(),
            value_type,
            join_key: key.into(),
            project: project.into(),
        }),
    };
    let mut no_ttl = view(
        "daily",
        "markets",
        "instrument",
        file_source("/abs/daily.parquet"),
    );
    no_ttl.spec.as_mut().unwrap().ttl = Some(p::Duration {
        seconds: 0,
        nanos: 0,
    });
    let mut bigquery = file_source("");
    bigquery.r#type = 2;
    bigquery.file_options = None;
    let mut by_account = view(
        "accounts",
        "markets",
        "account",
        file_source("data/a.parquet"),
    );
    by_account.spec.as_mut().unwrap().entity_columns = vec![spec_field("account_id", 5)];
    p::Registry {
        entities: vec![
            entity("instrument", "symbol", 2, "markets"),
            entity("account", "account_id", 0, "markets"),
            entity("instrument", "other_key", 2, "elsewhere"),
        ],
        feature_views: vec![
            view(
                "prices",
                "markets",
                "instrument",
                file_source("data/prices.parquet"),
            ),
            view(
                "prices",
                "elsewhere",
                "instrument",
                file_source("x.parquet"),
            ),
            no_ttl,
            view("warehouse", "markets", "instrument", bigquery),
            by_account,
            view(
                "remote",
                "markets",
                "instrument",
                file_source("s3://bucket/r.parquet"),
            ),
            view(
                "market",
                "markets",
                "__dummy",
                file_source("data/vix.parquet"),
            ),
        ],
        feature_services: vec![p::FeatureService {
            spec: Some(p::FeatureServiceSpec {
                name: "signals".into(),
                project: "markets".into(),
                features: vec![
                    p::FeatureViewProjection {
                        feature_view_name: "prices".into(),
                        feature_columns: vec![spec_field("price", 6)],
                        feature_view_name_alias: String::new(),
                        join_key_map: BTreeMap::new(),
                    },
                    p::FeatureViewProjection {
                        feature_view_name: "daily".into(),
                        feature_columns: vec![spec_field("volume", 4), spec_field("price", 6)],
                        feature_view_name_alias: "daily_alias".into(),
                        join_key_map: BTreeMap::new(),
                    },
                ],
            }),
        }],
        on_demand_feature_views: vec![p::Named {
            spec: Some(p::NamedSpec {
                name: "scaled".into(),
                project: "markets".into(),
            }),
        }],
        stream_feature_views: vec![],
    }
}

/// A repository directory with `yaml` as feature_store.yaml and `registry` at data/registry.db.
fn repo(yaml: &str, registry: &p::Registry) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feature_store.yaml"), yaml).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/registry.db"),
        registry.encode_to_vec(),
    )
    .unwrap();
    dir
}

const YAML: &str = "project: markets\nprovider: local\nregistry: data/registry.db\nonline_store:\n  type: sqlite\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n";

#[test]
fn reads_the_projects_definitions() {
    let dir = repo(YAML, &registry());
    let repo = FeatureRepo::open(dir.path()).unwrap();
    assert_eq!(repo.project, "markets");
    assert_eq!(repo.registry, dir.path().join("data/registry.db"));
    assert_eq!(
        repo.entities,
        [
            Entity {
                name: "instrument".into(),
                join_key: "symbol".into(),
                value_type: ValueType::String
            },
            Entity {
                name: "account".into(),
                join_key: "account_id".into(),
                value_type: ValueType::Other(0)
            }
        ]
    );
    let names: Vec<&str> = repo.feature_views.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "prices",
            "daily",
            "warehouse",
            "accounts",
            "remote",
            "market"
        ]
    );
    let prices = &repo.feature_views[0];
    assert_eq!(prices.ttl, Some(Duration::from_secs(3 * 86_400)));
    assert_eq!(repo.feature_views[1].ttl, None);
    let BatchSource::File(source) = &prices.source else {
        panic!("{:?}", prices.source)
    };
    assert_eq!(source.path, dir.path().join("data/prices.parquet"));
    assert_eq!(source.created_timestamp_column.as_deref(), Some("written"));
    assert_eq!(source.source_column("price"), "px");
    assert_eq!(source.source_column("ts"), "ts");
    let BatchSource::File(daily) = &repo.feature_views[1].source else {
        panic!()
    };
    assert_eq!(daily.path, Path::new("/abs/daily.parquet"));
    assert_eq!(
        repo.feature_views[2].source,
        BatchSource::Other("BATCH_BIGQUERY".into())
    );
}

#[test]
fn a_service_gives_its_views_features() {
    let dir = repo(YAML, &registry());
    let repo = FeatureRepo::open(dir.path()).unwrap();
    let views = repo.service("signals").unwrap();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].name, "prices");
    assert_eq!(views[0].join_key.name, "symbol");
    assert_eq!(views[0].join_key.value_type, ValueType::String);
    assert_eq!(
        views[0].features,
        [Field {
            name: "price".into(),
            value_type: ValueType::Float
        }]
    );
    assert_eq!(views[1].name, "daily_alias");
    assert_eq!(views[1].view.name, "daily");
    let names: Vec<&str> = views[1].features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["volume", "price"]);

    let refs = repo
        .features(&["prices:volume", "daily:price", "prices:price"])
        .unwrap();
    let got: Vec<(&str, Vec<&str>)> = refs
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.features.iter().map(|f| f.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("prices", vec!["volume", "price"]),
            ("daily", vec!["price"])
        ]
    );
}

#[test]
fn what_cannot_be_joined_is_refused_by_name() {
    let dir = repo(YAML, &registry());
    let repo = FeatureRepo::open(dir.path()).unwrap();
    let registry = dir.path().join("data/registry.db");
    let err = |refs: &[&str]| {
        let e = repo.features(refs).unwrap_err();
        assert_eq!(e.path, registry);
        e.message
    };
    assert_eq!(
        repo.service("nope").unwrap_err().message,
        "project \"markets\" has no feature service \"nope\" (it has: \"signals\")"
    );
    assert_eq!(
        err(&["warehouse:price"]),
        "feature view \"warehouse\" has a BATCH_BIGQUERY batch source, not a file source; Ratchet reads FileSource views (Parquet)"
    );
    assert_eq!(
        err(&["remote:price"]),
        "feature view \"remote\" reads \"s3://bucket/r.parquet\", a remote file; Ratchet reads file sources on the local disk"
    );
    assert_eq!(
        err(&["accounts:price"]),
        "entity \"account\" of feature view \"accounts\" has join key \"account_id\" of type DOUBLE; Ratchet's symbols are STRING or INT64 keys"
    );
    assert_eq!(
        err(&["prices:note"]),
        "feature \"note\" of view \"prices\" is of type STRING; Ratchet's features are numbers (FLOAT, DOUBLE, INT32, INT64)"
    );
    assert_eq!(
        err(&["prices:open"]),
        "feature view \"prices\" has no feature \"open\" (it has: \"price\", \"volume\", \"note\")"
    );
    // Feast records a view without entities as keyed by its own `__dummy` entity.
    assert_eq!(
        err(&["market:price"]),
        "feature view \"market\" has no entity; Ratchet joins views keyed by one entity (the symbol); for market-wide values declare the file as [[features.external]] without a symbol column"
    );
    assert_eq!(
        err(&["scaled:x"]),
        "feature view \"scaled\" is an on-demand feature view; Ratchet joins batch feature views with a file source"
    );
    assert_eq!(
        err(&["gone:x"]),
        "project \"markets\" has no feature view \"gone\" (it has: \"prices\", \"daily\", \"warehouse\", \"accounts\", \"remote\", \"market\")"
    );
    assert_eq!(
        err(&["price"]),
        "feature reference \"price\" is not \"view:feature\""
    );
    assert_eq!(
        err(&["prices:price", "prices:price"]),
        "feature \"prices:price\" is named twice"
    );
}

#[test]
fn unsupported_configs_are_refused_naming_the_setting() {
    let open = |yaml: &str| {
        let dir = repo(yaml, &registry());
        let e = FeatureRepo::open(dir.path()).unwrap_err();
        assert_eq!(e.path, dir.path().join("feature_store.yaml"));
        e.message
    };
    assert_eq!(
        open("project: p\nregistry:\n  registry_type: sql\n  path: postgresql://u@h/db\n"),
        "registry_type \"sql\" is not supported; Ratchet reads a file registry (registry_type: file) on the local disk"
    );
    assert_eq!(
        open("project: p\nregistry: gs://bucket/registry.db\n"),
        "registry \"gs://bucket/registry.db\" is a gs:// path; Ratchet reads a registry file on the local disk (copy it here and name its path)"
    );
    assert_eq!(
        open("project: p\nregistry: data/registry.db\noffline_store:\n  type: bigquery\n"),
        "offline_store type \"bigquery\" is not supported; Ratchet reads the file offline store's Parquet sources (type \"file\" or \"dask\", Feast's default)"
    );
    assert_eq!(
        open("project: p\n"),
        "no registry; Feast needs one, e.g. `registry: data/registry.db`"
    );
    assert_eq!(
        open("registry: data/registry.db\n"),
        "no project; Feast needs `project: NAME`"
    );
    assert!(open("project: [\n").starts_with("not a Feast repository config: "));

    // A registry table of type file, and a repository of another project: nothing of ours.
    let dir = repo(
        "project: empty\nregistry:\n  registry_type: file\n  path: data/registry.db\n  cache_ttl_seconds: 60\n",
        &registry(),
    );
    let repo = FeatureRepo::open(dir.path()).unwrap();
    assert!(repo.feature_views.is_empty() && repo.entities.is_empty());
}

#[test]
fn a_missing_or_foreign_registry_names_the_file() {
    let dir = repo(YAML, &registry());
    let registry = dir.path().join("data/registry.db");
    std::fs::write(&registry, b"\xff\xff\xff").unwrap();
    let e = FeatureRepo::open(dir.path()).unwrap_err();
    assert_eq!(e.path, registry);
    assert!(
        e.message
            .starts_with("not a Feast registry (protobuf feast.core.Registry): "),
        "{e}"
    );
    std::fs::remove_file(&registry).unwrap();
    let e = FeatureRepo::open(dir.path()).unwrap_err();
    assert!(e.message.starts_with("cannot read the registry ("), "{e}");
    assert!(e.message.ends_with(&format!(
        "run `feast apply` in {} first",
        dir.path().display()
    )));
    let e = FeatureRepo::open(&dir.path().join("nowhere")).unwrap_err();
    assert_eq!(e.path, dir.path().join("nowhere/feature_store.yaml"));
}
