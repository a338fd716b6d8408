//! Every parser of user input in the data crate, fed arbitrary text: bars or one error line
//! that names the file, never a panic.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;

use proptest::prelude::*;
use ratchet_data::{FeatureConfig, LoadOptions, compute_features, parse_bars, parse_timestamp};

/// A cell as data files hold them, and as they go wrong.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NaN".to_string()),
        Just("-inf".to_string()),
        Just("1e309".to_string()),
        "-?[0-9]{1,20}(\\.[0-9]{0,8})?",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?",
        "[0-9]{1,2}[./-][0-9]{1,2}[./-][0-9]{2,4}",
        "\\PC{0,8}",
    ]
}

/// A CSV file: an OHLCV header (sometimes with a column missing or renamed) and rows of
/// arbitrary cells, separated by commas or semicolons.
fn csv_text() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just("timestamp,open,high,low,close,volume"),
        Just("Date,Open,High,Low,Close,Adj Close,Volume"),
        Just("time,open,high,low,close"),
        Just("timestamp;open;high;low;close;volume"),
        Just("ts,o,h,l,c,v"),
    ];
    let rows = prop::collection::vec(prop::collection::vec(cell(), 0..8), 0..12);
    (header, rows).prop_map(|(header, rows)| {
        let mut text = header.to_string();
        for row in rows {
            text.push('\n');
            text.push_str(&row.join(","));
        }
        text
    })
}

fn options() -> impl Strategy<Value = LoadOptions> {
    let format = prop_oneof![
        Just(None),
        Just(Some("epoch_s".to_string())),
        Just(Some("epoch_ms".to_string())),
        Just(Some("%d.%m.%Y".to_string())),
        "\\PC{0,6}".prop_map(Some),
    ];
    (format, any::<bool>(), any::<bool>()).prop_map(|(timestamp_format, use_adj_close, repair)| {
        LoadOptions {
            timestamp_format,
            use_adj_close,
            repair,
        }
    })
}

fn one_line_naming(err: impl std::fmt::Display, file: &str) {
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message:?}");
    assert!(
        message.starts_with(file),
        "{message:?} does not name {file}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn csv_files_load_or_say_why(text in csv_text(), opts in options()) {
        if let Err(e) = parse_bars(Path::new("bars.csv"), text.into_bytes(), &opts) {
            one_line_naming(e, "bars.csv");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for name in ["bars.csv", "bars.parquet"] {
            if let Err(e) = parse_bars(Path::new(name), bytes.clone(), &LoadOptions::default()) {
                one_line_naming(e, name);
            }
        }
    }

    /// One timestamp on its own (as `ratchet serve` reads a bar's): a time, or one line.
    #[test]
    fn single_timestamps_parse_or_say_why(text in cell()) {
        if let Err(e) = parse_timestamp(&text) {
            prop_assert!(!e.is_empty() && !e.contains('\n'), "{e}");
        }
    }

    /// Feature parameters of any size, zero included: a config error, or features.
    #[test]
    fn feature_configs_validate_or_say_why(
        window in 0u64..40,
        normalization in 0u64..40,
        k in 0u64..40,
        period in 0u64..40,
        fast in 0u64..40,
        slow in 0u64..40,
    ) {
        let text = format!(
            "[features]\nwindow = {window}\nnormalization = {{ kind = \"rolling_zscore\", window = {normalization} }}\n\
             features = [{{ kind = \"log_return\", k = {k} }}, {{ kind = \"rsi\", period = {period} }}, \
             {{ kind = \"sma_ratio\", fast = {fast}, slow = {slow} }}, {{ kind = \"atr\", period = {period} }}]"
        );
        let config = match FeatureConfig::from_toml_str(&text) {
            Ok(config) => config,
            Err(e) => {
                prop_assert!(!e.to_string().contains('\n'), "{e}");
                return Ok(());
            }
        };
        if let Err(e) = config.validate() {
            prop_assert!(!e.to_string().contains('\n'), "{e}");
            return Ok(());
        }
        if let Err(e) = compute_features(googl_bars(), &config) {
            prop_assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}

/// The first 120 bundled GOOGL bars, read once.
fn googl_bars() -> &'static ratchet_data::Bars {
    static BARS: std::sync::OnceLock<ratchet_data::Bars> = std::sync::OnceLock::new();
    BARS.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/STOCKS_GOOGL.csv");
        let loaded = ratchet_data::load_bars(&path, &LoadOptions::default()).unwrap();
        loaded.bars.slice(0..120)
    })
}

/// The forms a data file's timestamps take, read one at a time, as the data loader reads a
/// column of them.
#[test]
fn single_timestamps_read_as_the_loader_reads_them() {
    let midnight = 1_535_587_200_000; // 2018-08-30T00:00:00Z
    for (text, layout) in [
        ("2018-08-30", "%Y-%m-%d"),
        ("2018-08-30 00:00:00", "%Y-%m-%d %H:%M:%S%.f"),
        ("2018-08-30T00:00:00Z", "rfc3339"),
        ("2018-08-30T02:00:00+02:00", "rfc3339"),
        ("1535587200", "epoch_s"),
        ("1535587200000", "epoch_ms"),
    ] {
        assert_eq!(
            parse_timestamp(text),
            Ok((midnight, layout.to_string())),
            "{text}"
        );
    }
    assert_eq!(
        parse_timestamp("30/08/2018x"),
        Err(
            "\"30/08/2018x\" is not a timestamp the data loader reads (epoch seconds or milliseconds, \
             RFC 3339, 2018-08-30, 2018-08-30 00:00:00, …)"
                .to_string()
        )
    );
}
