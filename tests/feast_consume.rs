//! Reading a Feast repository (`[[features.feast]]`) against real Feast (0.67, from the venv
//! scripts/feast_venv.sh makes): tests/feast/consume.py writes a repository with restated rows
//! (some restated after the bars that ask), a TTL that expires values, a view without TTL and
//! with a field_mapping, and bars before the first rows, runs `feast apply` and asks
//! `get_historical_features` for an entity frame of two symbols' bars (and for a view keyed by
//! an INT64 entity, on a frame of two accounts). Ratchet reads the
//! registry (no Python), resolves the service to outside features and joins them with its one
//! engine; the values equal Feast's value for value. Skipped, with a message, only when that
//! venv is missing.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ratchet_data::{
    ExternalFeature, ExternalSource, FeastFeatures, FeastView, MissingRule, Transform,
};
use serde_json::Value;

mod sandbox;
use sandbox::feast_python;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Per entity row, Ratchet's values for `features` in order (the view's columns), `None`
/// where the bar has no value: each symbol's bars joined through `join_all_bars`.
fn ratchet_rows(
    features: &[ExternalFeature],
    symbols: &[String],
    timestamps: &[i64],
) -> Vec<Vec<Option<Vec<f64>>>> {
    let sources: Vec<ExternalSource> = features
        .iter()
        .map(|f| ExternalSource::load(f).unwrap())
        .collect();
    let mut rows = vec![Vec::new(); symbols.len()];
    let mut distinct = symbols.to_vec();
    distinct.dedup();
    for symbol in &distinct {
        let of_symbol: Vec<usize> = (0..symbols.len())
            .filter(|&i| symbols[i] == *symbol)
            .collect();
        let bars: Vec<i64> = of_symbol.iter().map(|&i| timestamps[i]).collect();
        for source in &sources {
            let joined = source.join_all_bars(symbol, &bars).unwrap();
            for (k, &i) in of_symbol.iter().enumerate() {
                rows[i].push(joined.kept[k].then(|| joined.row(k).to_vec()));
            }
        }
    }
    rows
}

/// Feast's answer for one request: which rows it returned, and per Feast column its values.
struct Answer<'a> {
    returned: Vec<bool>,
    columns: &'a serde_json::Map<String, Value>,
}

fn answer<'a>(feast: &'a Value, request: &str) -> Answer<'a> {
    let request = &feast[request];
    Answer {
        returned: request["returned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect(),
        columns: request["columns"].as_object().unwrap(),
    }
}

impl Answer<'_> {
    fn value(&self, column: &str, row: usize) -> Option<f64> {
        self.columns[column]["values"][row].as_f64()
    }

    fn dtype(&self, column: &str) -> &str {
        self.columns[column]["dtype"].as_str().unwrap()
    }
}

/// Compares Feast's answer with Ratchet's rows, `views` naming each feature's Feast column
/// in order; returns (rows Feast returned, returned rows with a missing value).
fn compare(
    feast: &Answer<'_>,
    ratchet: &[Vec<Option<Vec<f64>>>],
    views: &[&[&str]],
    symbols: &[String],
) -> (usize, usize) {
    let (mut returned, mut with_missing) = (0, 0);
    for (i, row) in ratchet.iter().enumerate() {
        if !feast.returned[i] {
            // Feast's file store leaves out a row whose key has rows, none fresh, in a view.
            assert!(
                row.iter().any(Option::is_none),
                "row {i} ({}): Feast left it out but Ratchet has every view's values {row:?}",
                symbols[i]
            );
            continue;
        }
        returned += 1;
        with_missing += usize::from(row.iter().any(Option::is_none));
        for (view, columns) in row.iter().zip(views) {
            for (c, column) in columns.iter().enumerate() {
                assert_eq!(
                    view.as_ref().map(|v| v[c]),
                    feast.value(column, i),
                    "row {i} ({}), {column}",
                    symbols[i]
                );
            }
        }
    }
    (returned, with_missing)
}

#[test]
fn feast_repository_features_join_as_feast_gives_them() {
    let Some(python) = feast_python() else {
        eprintln!(
            "skipped: no Feast venv at ~/.cache/ratchet/feast-venv (or $RATCHET_FEAST_PYTHON); make it with scripts/feast_venv.sh (scripts/test.sh does)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("feature_repo");
    let out = dir.path().join("feast.json");
    let run = Command::new(&python)
        .arg(root().join("tests/feast/consume.py"))
        .arg(&repo)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "consume.py failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let feast: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let symbols: Vec<String> = serde_json::from_value(feast["symbols"].clone()).unwrap();
    let timestamps: Vec<i64> = serde_json::from_value(feast["timestamps"].clone()).unwrap();
    assert_eq!(symbols.len(), 26);

    // The service resolves, through the registry alone, to the declarations an engine joins.
    let service = FeastFeatures {
        repo: "feature_repo".into(),
        service: Some("both".into()),
        views: vec![],
        missing: MissingRule::Drop,
    };
    let features = service.resolve(dir.path()).unwrap();
    // Each keeps its Feast names: what a version's `feast.*` tags are made of.
    let in_feast = |service: Option<&str>, view: &str, features: &[&str]| {
        Some(FeastView {
            project: "consume".into(),
            service: service.map(String::from),
            view: view.into(),
            alias: None,
            features: features.iter().map(|f| f.to_string()).collect(),
            join_key: "symbol".into(),
            integer_key: false,
        })
    };
    let prices = ExternalFeature {
        name: "prices".into(),
        source: repo.join("data/prices.parquet"),
        timestamp: "event_timestamp".into(),
        symbol: Some("symbol".into()),
        created: Some("created".into()),
        timestamp_format: None,
        columns: vec!["close".into(), "volume".into()],
        max_staleness: Duration::from_secs(2 * 86_400),
        missing: MissingRule::Drop,
        transform: Transform::Raw,
        window: None,
        // Where Feast names it: what a feature server is asked for, what a version's tags say.
        feast: in_feast(Some("both"), "prices", &["close", "volume"]),
    };
    let rates = ExternalFeature {
        name: "rates".into(),
        source: repo.join("data/rates.parquet"),
        timestamp: "ts".into(),
        created: None,
        columns: vec!["ten_y".into()],
        max_staleness: ExternalFeature::NEVER_STALE,
        feast: in_feast(Some("both"), "rates", &["ten_year"]),
        ..prices.clone()
    };
    assert_eq!(features, [prices.clone(), rates.clone()]);

    let both = answer(&feast, "service both");
    assert_eq!(both.dtype("close"), "float32");
    let rows = ratchet_rows(&features, &symbols, &timestamps);
    let counts = compare(
        &both,
        &rows,
        &[&["close", "volume"], &["ten_year"]],
        &symbols,
    );
    // 8 rows left out (bars before the first rows, prices expired by the TTL); BBB's last
    // two bars returned with no price (its only fresh row is written after them).
    assert_eq!(counts, (18, 2));

    // The same features named `view:feature`.
    let listed = FeastFeatures {
        service: None,
        views: vec!["prices:close".into(), "rates:ten_year".into()],
        ..service.clone()
    };
    let features = listed.resolve(dir.path()).unwrap();
    let close_only = ExternalFeature {
        columns: vec!["close".into()],
        feast: in_feast(None, "prices", &["close"]),
        ..prices
    };
    let rates = ExternalFeature {
        feast: in_feast(None, "rates", &["ten_year"]),
        ..rates
    };
    assert_eq!(features, [close_only, rates]);
    let counts = compare(
        &answer(&feast, "features prices:close rates:ten_year"),
        &ratchet_rows(&features, &symbols, &timestamps),
        &[&["close"], &["ten_year"]],
        &symbols,
    );
    assert_eq!(counts, (18, 2));

    // Feast's default (no `filter_by_created_timestamp`) uses a row written after the bar:
    // BBB's bar of 2024-01-11 gets the row restated on 2024-01-13. Ratchet never does.
    let default = answer(&feast, "service both, Feast's default");
    let bbb_day_11 = (0..symbols.len())
        .find(|&i| symbols[i] == "BBB" && timestamps[i] == 1_704_931_200_000)
        .unwrap();
    assert_eq!(
        default.value("close", bbb_day_11),
        Some(f64::from(54.4_f32))
    );
    assert_eq!(both.value("close", bbb_day_11), None);
    assert_eq!(rows[bbb_day_11][0], None);

    // An INT64 entity key: the account ids are the symbols, in decimal.
    let features = FeastFeatures {
        service: None,
        views: vec!["balances:balance".into()],
        ..service
    }
    .resolve(dir.path())
    .unwrap();
    assert_eq!(
        features,
        [ExternalFeature {
            name: "balances".into(),
            source: repo.join("data/balances.parquet"),
            timestamp: "event_timestamp".into(),
            symbol: Some("account_id".into()),
            created: None,
            timestamp_format: None,
            columns: vec!["balance".into()],
            max_staleness: Duration::from_secs(86_400),
            missing: MissingRule::Drop,
            transform: Transform::Raw,
            window: None,
            feast: Some(FeastView {
                join_key: "account_id".into(),
                integer_key: true,
                ..in_feast(None, "balances", &["balance"]).unwrap()
            }),
        }]
    );
    let accounts: Vec<String> = feast["account_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap().to_string())
        .collect();
    let times: Vec<i64> = serde_json::from_value(feast["account_timestamps"].clone()).unwrap();
    let counts = compare(
        &answer(&feast, "features balances:balance"),
        &ratchet_rows(&features, &accounts, &times),
        &[&["balance"]],
        &accounts,
    );
    assert_eq!(counts, (8, 0));
}
