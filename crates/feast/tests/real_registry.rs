//! A repository real Feast (0.67) applied: tests/fixtures/feature_repo is what
//! tests/feast/consume.py at the workspace root writes (definitions.py, feature_store.yaml, the
//! two Parquet sources) with the data/registry.db `feast apply` made. No Python is needed to
//! read it back.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;
use std::time::Duration;

use ratchet_feast::{BatchSource, Entity, FeatureRepo, Field, ValueType};

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/feature_repo"
    ))
}

#[test]
fn reads_what_feast_apply_registered() {
    let repo = FeatureRepo::open(fixture()).unwrap();
    assert_eq!(repo.project, "consume");
    assert_eq!(repo.registry, fixture().join("data/registry.db"));
    // Feast registers its own `__dummy` entity for views without one.
    assert!(repo.entities.contains(&Entity {
        name: "instrument".into(),
        join_key: "symbol".into(),
        value_type: ValueType::String,
    }));
    let mut names: Vec<&str> = repo.feature_views.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["balances", "prices", "rates"]);
    assert!(repo.entities.contains(&Entity {
        name: "account".into(),
        join_key: "account_id".into(),
        value_type: ValueType::Int64,
    }));
    let balances = repo.features(&["balances:balance"]).unwrap();
    assert_eq!(
        balances[0].join_key,
        Field {
            name: "account_id".into(),
            value_type: ValueType::Int64
        }
    );
    assert_eq!(balances[0].view.ttl, Some(Duration::from_secs(86_400)));

    let views = repo.service("both").unwrap();
    assert_eq!(views.len(), 2);
    let (prices, rates) = (&views[0], &views[1]);
    assert_eq!(prices.name, "prices");
    assert_eq!(
        prices.features,
        [
            Field {
                name: "close".into(),
                value_type: ValueType::Float
            },
            Field {
                name: "volume".into(),
                value_type: ValueType::Int64
            },
        ]
    );
    assert_eq!(
        prices.join_key,
        Field {
            name: "symbol".into(),
            value_type: ValueType::String
        }
    );
    assert_eq!(prices.view.ttl, Some(Duration::from_secs(2 * 86_400)));
    assert_eq!(prices.source.path, fixture().join("data/prices.parquet"));
    assert_eq!(prices.source.timestamp_field, "event_timestamp");
    assert_eq!(
        prices.source.created_timestamp_column.as_deref(),
        Some("created")
    );

    assert_eq!(rates.name, "rates");
    assert_eq!(rates.view.ttl, None);
    assert_eq!(
        rates.features,
        [Field {
            name: "ten_year".into(),
            value_type: ValueType::Double
        }]
    );
    assert_eq!(rates.source.timestamp_field, "ts");
    assert_eq!(rates.source.created_timestamp_column, None);
    assert_eq!(rates.source.source_column("ten_year"), "ten_y");
    assert!(matches!(rates.view.source, BatchSource::File(_)));
}
