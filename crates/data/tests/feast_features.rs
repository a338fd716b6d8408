//! `[[features.feast]]` resolved to outside features (on the repository real Feast applied in
//! crates/feast/tests/fixtures), and the engine's parts a Feast view needs: no staleness limit
//! (a TTL of 0), integer entity keys, bars before the first row following the missing rule.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::{Path, PathBuf};
use std::time::Duration;

use ratchet_data::{
    ExternalColumns, ExternalFeature, ExternalSource, FeastFeatures, parse_timestamp,
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
