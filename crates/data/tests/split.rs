//! Train/validation/test splits by fraction and by date.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;

use ratchet_data::{
    DataError, FeatureConfig, FeatureFrame, LoadOptions, Segment, SplitSpec, Splits,
    compute_features, load_bars, split,
};

fn frame(file: &str) -> FeatureFrame {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(file);
    let loaded = load_bars(&path, &LoadOptions::default()).unwrap();
    compute_features(&loaded.bars, &FeatureConfig::default()).unwrap()
}

/// The three segments of `s` (which must hold back a test range), checked to cover `rows`
/// end to end.
fn assert_partition(s: &Splits, rows: usize) -> &Segment {
    let test = s.test.as_ref().unwrap();
    assert_eq!(s.train.start, 0);
    assert_eq!(s.train.end, s.validation.start);
    assert_eq!(s.validation.end, test.start);
    assert_eq!(test.end, rows);
    assert!(!s.train.is_empty() && !s.validation.is_empty() && !test.is_empty());
    assert!(s.train.last_date < s.validation.first_date);
    assert!(s.validation.last_date < test.first_date);
    test
}

#[test]
fn by_fraction() {
    let f = frame("STOCKS_GOOGL.csv");
    let n = f.rows();
    let s = split(&f, &SplitSpec::default()).unwrap();
    let test = assert_partition(&s, n);
    assert_eq!(s.train.len(), (n as f64 * 0.7).round() as usize);
    assert_eq!(s.validation.end, (n as f64 * 0.85).round() as usize);
    // Daily data: plain dates; the test segment ends at the last bar.
    assert_eq!(test.last_date, "2018-08-29");
    assert_eq!(s.train.first_date.len(), 10);
    assert_eq!(
        s.train.first_date,
        ratchet_data::format_date(f.timestamps[0])
    );
}

#[test]
fn by_date() {
    let f = frame("STOCKS_GOOGL.csv");
    let spec = SplitSpec::Dates {
        train_start: None,
        train_end: "2015-12-31".into(),
        validation_end: Some("2016-12-31".into()),
    };
    let s = split(&f, &spec).unwrap();
    let test = assert_partition(&s, f.rows());
    assert_eq!(s.train.last_date, "2015-12-31");
    assert_eq!(s.validation.first_date, "2016-01-04"); // first trading day of 2016
    assert_eq!(s.validation.last_date, "2016-12-30");
    assert_eq!(test.first_date, "2017-01-03");

    // Intraday data: date-times, and a date-time boundary is inclusive.
    let f = frame("FOREX_EURUSD_1H_ASK.csv");
    let s = split(
        &f,
        &SplitSpec::Dates {
            train_start: None,
            train_end: "2017-09-29T12:00:00Z".into(),
            validation_end: Some("2017-11-30".into()),
        },
    )
    .unwrap();
    let test = assert_partition(&s, f.rows());
    assert_eq!(s.train.last_date, "2017-09-29T12:00:00Z");
    assert_eq!(s.validation.first_date, "2017-09-29T13:00:00Z");
    assert!(
        s.validation.last_date.starts_with("2017-11-30T"),
        "{}",
        s.validation.last_date
    );
    assert!(
        test.first_date.starts_with("2017-12-"),
        "{}",
        test.first_date
    );
    assert_eq!(test.last_date, "2017-12-29T21:00:00Z");
}

#[test]
fn spec_from_toml_and_json() {
    let spec: SplitSpec = toml::from_str(
        "kind = \"dates\"\ntrain_end = \"2015-12-31\"\nvalidation_end = \"2016-12-31\"\n",
    )
    .unwrap();
    assert_eq!(
        spec,
        SplitSpec::Dates {
            train_start: None,
            train_end: "2015-12-31".into(),
            validation_end: Some("2016-12-31".into())
        }
    );
    let spec: SplitSpec =
        serde_json::from_str(r#"{"kind":"fraction","train":0.6,"validation":0.2}"#).unwrap();
    assert_eq!(
        spec,
        SplitSpec::Fraction {
            train: 0.6,
            validation: 0.2
        }
    );
    let splits = split(&frame("STOCKS_GOOGL.csv"), &spec).unwrap();
    let json = serde_json::to_string(&splits).unwrap();
    assert_eq!(serde_json::from_str::<Splits>(&json).unwrap(), splits);
}

fn split_error(spec: SplitSpec) -> String {
    match split(&frame("STOCKS_GOOGL.csv"), &spec) {
        Err(e @ DataError::Split(_)) => e.to_string(),
        other => panic!("expected a split error, got {other:?}"),
    }
}

#[test]
fn impossible_splits_are_errors() {
    let frac = |train, validation| SplitSpec::Fraction { train, validation };
    let dates = |t: &str, v: &str| SplitSpec::Dates {
        train_start: None,
        train_end: t.into(),
        validation_end: Some(v.into()),
    };
    assert!(split_error(frac(0.9, 0.1)).contains("sum below 1"));
    assert!(split_error(frac(-0.1, 0.5)).contains("positive"));
    assert!(split_error(frac(0.5, f64::NAN)).contains("positive"));
    assert!(split_error(frac(0.9999, 0.00001)).contains("empty"));
    let msg = split_error(dates("2001-01-01", "2016-12-31"));
    assert!(
        msg.contains("train segment would be empty") && msg.contains("2009-"),
        "{msg}"
    );
    assert!(split_error(dates("2015-12-31", "2030-01-01")).contains("test segment would be empty"));
    assert!(split_error(dates("2016-12-31", "2015-12-31")).contains("must be before"));
    assert!(split_error(dates("31/12/2015", "2016-12-31")).contains("not an ISO date"));
}

#[test]
fn train_start_cuts_a_rolling_window() {
    let f = frame("STOCKS_GOOGL.csv");
    let dates = |start: &str| SplitSpec::Dates {
        train_start: Some(start.into()),
        train_end: "2015-12-31".into(),
        validation_end: Some("2016-12-31".into()),
    };
    let s = split(&f, &dates("2014-01-01")).unwrap();
    assert_eq!(s.train.first_date, "2014-01-02"); // first trading day of 2014
    assert_eq!(s.train.last_date, "2015-12-31");
    assert_eq!(
        s.train.start,
        f.timestamps
            .iter()
            .filter(|&&t| t < ratchet_data::parse_date("2014-01-01", false).unwrap())
            .count()
    );
    assert_eq!(s.validation.first_date, "2016-01-04");
    assert!(
        split(&f, &dates("2016-02-01"))
            .unwrap_err()
            .to_string()
            .contains("the train segment would be empty"),
    );
}

#[test]
fn no_validation_end_holds_back_no_test_range() {
    let f = frame("STOCKS_GOOGL.csv");
    let spec: SplitSpec = toml::from_str("kind = \"dates\"\ntrain_end = \"2015-12-31\"\n").unwrap();
    let s = split(&f, &spec).unwrap();
    assert_eq!(s.test, None);
    assert_eq!(s.train.last_date, "2015-12-31");
    assert_eq!(s.validation.first_date, "2016-01-04");
    assert_eq!(
        (s.validation.end, s.validation.last_date.as_str()),
        (f.rows(), "2018-08-29")
    );
    // Recorded without a validation end, so old configs and their hashes are unchanged.
    assert_eq!(
        toml::to_string(&spec).unwrap(),
        "kind = \"dates\"\ntrain_end = \"2015-12-31\"\n"
    );
    // A train_end at the last row leaves nothing to validate.
    let at_end = SplitSpec::Dates {
        train_start: None,
        train_end: "2018-08-29".into(),
        validation_end: None,
    };
    assert!(
        split(&f, &at_end)
            .unwrap_err()
            .to_string()
            .contains("the validation segment would be empty"),
    );
}
