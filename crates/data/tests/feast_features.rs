//! `[[features.feast]]` resolved to outside features (on the repository real Feast applied in
//! crates/feast/tests/fixtures), and the engine's parts a Feast view needs: no staleness limit
//! (a TTL of 0), integer entity keys, bars before the first row following the missing rule.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::{Path, PathBuf};
use std::time::Duration;

use ratchet_data::{
    EntityKey, ExportNames, ExternalColumns, ExternalFeature, ExternalSource, FeastFeatures,
    FeastLineage, FeatureConfig, parse_timestamp, write_entity_frame,
};

const DAY: i64 = 86_400_000;

fn day(d: i64) -> i64 {
    // 2024-01-01 is day 1.
    parse_timestamp("2024-01-01").unwrap().0 + (d - 1) * DAY
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../feast/tests/fixtures")
}

fn declaration(extra: &str) -> FeastFeatures {
    toml::from_str(&format!(
        "repo = \"feature_repo\"\nmissing = \"drop\"\n{extra}"
    ))
    .unwrap()
}

fn rows(cols: &ExternalColumns) -> Vec<Option<Vec<f64>>> {
    (0..cols.kept.len())
        .map(|i| cols.kept[i].then(|| cols.row(i).to_vec()))
        .collect()
}

#[test]
fn a_service_resolves_to_one_outside_feature_per_view() {
    let features = declaration("service = \"both\"")
        .resolve(&fixtures())
        .unwrap();
    let repo = fixtures().join("feature_repo");
    let names: Vec<Vec<String>> = features.iter().map(ExternalFeature::column_names).collect();
    assert_eq!(
        names,
        [vec!["prices_close", "prices_volume"], vec!["rates_ten_y"]]
    );
    assert_eq!(features[0].source, repo.join("data/prices.parquet"));
    assert_eq!(features[0].created.as_deref(), Some("created"));
    assert_eq!(features[0].max_staleness, Duration::from_secs(2 * 86_400));
    assert_eq!(features[1].timestamp, "ts");
    assert_eq!(features[1].max_staleness, ExternalFeature::NEVER_STALE);

    // The engine joins them: AAA's close on day 5 is the first version (restated on day 7),
    // day 6 still that one (day 6's row is written at noon), nothing before day 3.
    let prices = ExternalSource::load(&features[0]).unwrap();
    let cols = prices
        .join_all_bars("AAA", &[day(2), day(5), day(6), day(7)])
        .unwrap();
    let close = |x: f32, volume: f64| Some(vec![f64::from(x), volume]);
    assert_eq!(
        rows(&cols),
        [
            None,
            close(10.7, 110.0),
            close(10.7, 110.0),
            close(11.3, 120.0)
        ]
    );
    // The rates view has no TTL: a value 5 days old still counts.
    let rates = ExternalSource::load(&features[1]).unwrap();
    let cols = rates.join_all_bars("AAA", &[day(12)]).unwrap();
    assert_eq!(cols.values, [4.13]);
}

#[test]
fn feast_declarations_name_what_is_wrong() {
    let err = |extra: &str| {
        declaration(extra)
            .resolve(&fixtures())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("service = \"both\"\nviews = [\"prices:close\"]"),
        "feature config: [[features.feast]] repo \"feature_repo\" has both service and views; name one of them"
    );
    assert_eq!(
        err(""),
        "feature config: [[features.feast]] repo \"feature_repo\" has neither service nor views; name a feature service or list features as \"view:feature\""
    );
    assert_eq!(
        err("service = \"all\""),
        format!(
            "[[features.feast]] {}: project \"consume\" has no feature service \"all\" (it has: \"both\")",
            fixtures().join("feature_repo/data/registry.db").display()
        )
    );
    let unknown = toml::from_str::<FeastFeatures>("repo = \"r\"\nmissing = \"drop\"\nttl = 1")
        .unwrap_err()
        .message()
        .to_string();
    assert_eq!(
        unknown,
        "unknown field `ttl`, expected one of `repo`, `service`, `views`, `missing`"
    );
}

/// A Parquet file of `symbol` (as given) and `ts`, `balance` columns.
fn accounts(dir: &Path, symbol: polars::prelude::Series) -> PathBuf {
    use polars::prelude::*;
    let path = dir.join("accounts.parquet");
    let n = symbol.len();
    let ts = ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"];
    let mut df = DataFrame::new(
        n,
        vec![
            symbol.into(),
            Series::new("ts".into(), &ts[..n]).into(),
            Series::new("balance".into(), &[5.5, 6.5][..n]).into(),
        ],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
    path
}

#[test]
fn integer_symbols_read_as_decimal_text() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let declared: ExternalFeature = toml::from_str(
        r#"
        name = "acct"
        source = "accounts.parquet"
        timestamp = "ts"
        symbol = "account_id"
        columns = ["balance"]
        max_staleness = "none"
        missing = "drop"
        "#,
    )
    .unwrap();
    declared.validate().unwrap();
    let ints = Series::new("account_id".into(), [1001i64, -7]);
    let feature = ExternalFeature {
        source: accounts(dir.path(), ints),
        ..declared.clone()
    };
    let source = ExternalSource::load(&feature).unwrap();
    assert_eq!(source.symbols().collect::<Vec<_>>(), ["-7", "1001"]);
    // No staleness limit: a year later the value still counts.
    let cols = source
        .join_all_bars("1001", &[day(0), day(1), day(366)])
        .unwrap();
    assert_eq!(rows(&cols), [None, Some(vec![5.5]), Some(vec![5.5])]);
    // `join` still refuses bars that start before the source.
    let err = source.join("1001", &[day(0)]).unwrap_err().to_string();
    assert!(
        err.contains("its first row is known at 2024-01-01T00:00:00Z"),
        "{err}"
    );
    // Other types are refused naming both that work.
    let floats = Series::new("account_id".into(), [1.5f64]);
    let feature = ExternalFeature {
        source: accounts(dir.path(), floats),
        ..declared
    };
    let err = ExternalSource::load(&feature).unwrap_err().to_string();
    assert!(err.contains("text or integer symbols"), "{err}");
}

/// The default feature config with the `[[features.feast]]` tables `feast` (each `service =
/// …` or `views = […]`) on the fixture repository, read.
fn config_reading(feast: &[&str]) -> FeatureConfig {
    let repo = fixtures().join("feature_repo");
    let mut config = FeatureConfig {
        feast: feast
            .iter()
            .map(|entry| {
                toml::from_str(&format!(
                    "repo = {:?}\nmissing = \"drop\"\n{entry}",
                    repo.display().to_string()
                ))
                .unwrap()
            })
            .collect(),
        ..FeatureConfig::default()
    };
    config.resolve_feast().unwrap();
    config.validate().unwrap();
    config
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_model_names_the_feast_service_it_read_and_its_refs() {
    let lineage = FeastLineage::of(&config_reading(&["service = \"both\""]));
    assert_eq!(
        lineage.tags(),
        tags(&[
            ("feast.project", "consume"),
            ("feast.feature_service", "both"),
            (
                "feast.feature_refs",
                "prices:close,prices:volume,rates:ten_year"
            ),
        ])
    );
    assert_eq!(
        lineage.features_json(),
        r#"["prices:close","prices:volume","rates:ten_year"]"#
    );

    // Features listed as view:feature came through no service: refs and project only.
    let listed = FeastLineage::of(&config_reading(&["views = [\"rates:ten_year\"]"]));
    assert_eq!(
        listed.tags(),
        tags(&[
            ("feast.project", "consume"),
            ("feast.feature_refs", "rates:ten_year"),
        ])
    );

    // A service and listed features: every ref, no service (it would not cover them all),
    // and the entity frame holds each view's join key.
    let both = FeastLineage::of(&config_reading(&[
        "service = \"both\"",
        "views = [\"balances:balance\"]",
    ]));
    assert_eq!(both.feature_service, None);
    assert_eq!(
        both.entity_keys,
        [
            EntityKey {
                name: "symbol".into(),
                int64: false
            },
            EntityKey {
                name: "account_id".into(),
                int64: true
            }
        ]
    );
    assert_eq!(both.project.as_deref(), Some("consume"));
    assert_eq!(
        both.feature_refs,
        [
            "prices:close",
            "prices:volume",
            "rates:ten_year",
            "balances:balance"
        ]
    );
}

#[test]
fn a_model_without_feast_sources_names_what_features_export_writes() {
    let config = FeatureConfig::from_toml_str(
        "[features]\nfeatures = [{ kind = \"log_return\", k = 1 }, { kind = \"rsi\", period = 14 }]\n",
    )
    .unwrap();
    let names = ExportNames::of(&config);
    let short = config.short_hash();
    assert_eq!(names.project, format!("ratchet_{short}"));
    assert_eq!(names.feature_service, format!("ratchet_{short}"));
    assert_eq!(names.feature_view, format!("ratchet_{short}_bars"));
    let lineage = FeastLineage::of(&config);
    assert_eq!(
        lineage.entity_keys,
        [EntityKey {
            name: "symbol".into(),
            int64: false
        }]
    );
    assert_eq!(
        lineage.tags(),
        tags(&[
            ("feast.project", &names.project),
            ("feast.feature_service", &names.feature_service),
            (
                "feast.feature_refs",
                &format!(
                    "{view}:log_return_1,{view}:rsi_14",
                    view = names.feature_view
                )
            ),
        ])
    );
}

#[test]
fn long_refs_are_cut_in_the_tag_as_feast_cuts_them_and_kept_whole_in_the_json() {
    let lineage = FeastLineage {
        project: None,
        feature_service: None,
        feature_refs: (0..500).map(|i| format!("view:feature_{i:04}")).collect(),
        entity_keys: Vec::new(),
    };
    let refs = &lineage.tags()[0].1;
    assert_eq!(refs.chars().count(), 4990);
    assert!(refs.ends_with("..."), "{refs}");
    assert!(refs.starts_with("view:feature_0000,view:feature_0001,"));
    let json: Vec<String> = serde_json::from_str(&lineage.features_json()).unwrap();
    assert_eq!(json, lineage.feature_refs);
}

#[test]
fn the_entity_frame_holds_each_symbol_s_bars_as_utc_nanoseconds() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entity_df.parquet");
    let key = |name: &str, int64: bool| EntityKey {
        name: name.into(),
        int64,
    };
    let keys = [key("symbol", false), key("account_id", true)];
    write_entity_frame(
        &path,
        &keys,
        &[("1001", &[day(1), day(2)][..]), ("-7", &[day(3)][..])],
    )
    .unwrap();
    let df = ParquetReader::new(std::fs::File::open(&path).unwrap())
        .finish()
        .unwrap();
    assert_eq!(
        df.get_column_names(),
        ["symbol", "account_id", "event_timestamp"]
    );
    let symbols: Vec<Option<&str>> = df.column("symbol").unwrap().str().unwrap().iter().collect();
    assert_eq!(symbols, [Some("1001"), Some("1001"), Some("-7")]);
    let ids: Vec<Option<i64>> = df
        .column("account_id")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(ids, [Some(1001), Some(1001), Some(-7)]);
    let time = df.column("event_timestamp").unwrap();
    assert_eq!(
        time.dtype(),
        &DataType::Datetime(TimeUnit::Nanoseconds, Some(TimeZone::UTC))
    );
    let nanos: Vec<Option<i64>> = time.datetime().unwrap().physical().iter().collect();
    assert_eq!(
        nanos,
        [day(1), day(2), day(3)].map(|ms| Some(ms * 1_000_000))
    );
    // Refused, naming the symbol, with nothing written: a time beyond what nanoseconds hold,
    // and a symbol that is no integer for an INT64 key.
    let refused = dir.path().join("refused.parquet");
    let err = |keys: &[EntityKey], rows: &[(&str, &[i64])]| {
        let message = write_entity_frame(&refused, keys, rows)
            .unwrap_err()
            .to_string();
        assert!(!refused.exists());
        message
    };
    assert!(
        err(&keys[..1], &[("CCC", &[i64::MAX / 1000])]).contains("CCC's bar at"),
        "too late"
    );
    assert!(err(&keys, &[("GOOGL", &[day(1)])]).ends_with(
        "symbol \"GOOGL\" is not an integer, and the Feast join key account_id is INT64"
    ));
}
