//! Loading the bundled files, other layouts, and one malformed file per error path.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::{Path, PathBuf};

use polars::prelude::*;
use ratchet_data::{DataError, FileFormat, LoadOptions, LoadedBars, load_bars, sha256_file};

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

const DAY_MS: i64 = 86_400_000;

#[test]
fn loads_bundled_googl() {
    let path = bundled("STOCKS_GOOGL.csv");
    let loaded = load_bars(&path, &LoadOptions::default()).unwrap();
    let b = &loaded.bars;
    assert_eq!(b.len(), 2335);
    assert_eq!(loaded.rows_read, 2335);
    assert_eq!(b.timestamps[0], 1_242_950_400_000); // 2009-05-22
    assert_eq!(*b.timestamps.last().unwrap(), 1_535_500_800_000); // 2018-08-29
    assert_eq!(b.open[0], 198.528534);
    assert_eq!(b.high[0], 199.524521);
    assert_eq!(b.low[0], 196.196198);
    assert_eq!(b.close[0], 196.946945);
    assert_eq!(b.volume[0], 3_433_700.0);
    assert_eq!(*b.close.last().unwrap(), 1264.650024);
    assert_eq!(loaded.timestamp_column, "Date");
    assert_eq!(loaded.timestamp_format, "%Y-%m-%d");
    assert_eq!(loaded.format, FileFormat::Csv);
    assert_eq!(loaded.rows_repaired, 0);
    assert_eq!(loaded.repair_summary(), None);
    assert!(
        loaded.sha256.starts_with("1a3d459fdbcddb93"),
        "{}",
        loaded.sha256
    );
    assert_eq!(loaded.sha256, sha256_file(&path).unwrap());
    assert!(b.timestamps.windows(2).all(|w| w[1] - w[0] >= DAY_MS));

    // Adj Close equals Close in this file, so using it changes nothing.
    let adjusted = load_bars(
        &path,
        &LoadOptions {
            use_adj_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(adjusted.bars, loaded.bars);
}

#[test]
fn loads_bundled_eurusd_without_a_format() {
    let path = bundled("FOREX_EURUSD_1H_ASK.csv");
    let loaded = load_bars(&path, &LoadOptions::default()).unwrap();
    let b = &loaded.bars;
    assert_eq!(b.len(), 6225);
    assert_eq!(b.timestamps[0], 1_483_308_000_000); // 2017-01-01 22:00 UTC
    assert_eq!(b.timestamps[1] - b.timestamps[0], 3_600_000);
    assert_eq!(*b.timestamps.last().unwrap(), 1_514_581_200_000); // 2017-12-29 21:00 UTC
    assert_eq!(b.close[0], 1.05227);
    assert_eq!(b.volume[0], 143_539_993.3);
    assert_eq!(*b.volume.last().unwrap(), 4_885_529_785.0);
    assert_eq!(loaded.timestamp_column, "Time");
    assert_eq!(loaded.timestamp_format, "%d.%m.%Y %H:%M:%S%.f");
    assert!(
        loaded.sha256.starts_with("28398b7edff9f748"),
        "{}",
        loaded.sha256
    );

    // The same result with the format given explicitly.
    let explicit = load_bars(
        &path,
        &LoadOptions {
            timestamp_format: Some("%d.%m.%Y %H:%M:%S%.f".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(explicit.bars, loaded.bars);
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn load_csv(contents: &str, opts: &LoadOptions) -> Result<LoadedBars, DataError> {
    let dir = tempfile::tempdir().unwrap();
    load_bars(&write(dir.path(), "bars.csv", contents), opts)
}

#[test]
fn column_aliases_and_layouts() {
    // Lower case, reordered, extra columns, epoch seconds.
    let loaded = load_csv(
        "symbol,volume,close,low,high,open,timestamp\nX,10,1.5,1.0,2.0,1.2,1483308000\nX,11,1.6,1.1,2.1,1.3,1483311600\n",
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(
        loaded.bars.timestamps,
        vec![1_483_308_000_000, 1_483_311_600_000]
    );
    assert_eq!(loaded.timestamp_format, "epoch_s");
    assert_eq!(loaded.bars.open, vec![1.2, 1.3]);

    // Epoch milliseconds, single-letter names.
    let loaded = load_csv("t,o,h,l,c,v\n1,1,2,0.5,1.5,0\n", &LoadOptions::default());
    assert!(matches!(
        loaded,
        Err(DataError::MissingColumn {
            field: "timestamp",
            ..
        })
    ));
    let loaded = load_csv(
        "ts,o,h,l,c,v\n1483308000000,1,2,0.5,1.5,0\n",
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(loaded.bars.timestamps, vec![1_483_308_000_000]);
    assert_eq!(loaded.timestamp_format, "epoch_ms");

    // Separate date and time columns (MetaTrader style), RFC 3339, quoted values and spaces.
    let loaded = load_csv(
        "<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<TICKVOL>,<VOL>\n2017.01.02,00:00,1,2,0.5,1.5,5,7\n2017.01.02,01:00,1,2,0.5,1.5,5,8\n",
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(loaded.timestamp_column, "<DATE>+<TIME>");
    assert_eq!(
        loaded.bars.timestamps[1] - loaded.bars.timestamps[0],
        3_600_000
    );
    assert_eq!(loaded.bars.volume, vec![7.0, 8.0]);
    let loaded = load_csv(
        "Datetime,Open,High,Low,Close,Volume\n\"2017-01-02T00:00:00+01:00\", 1 ,2,0.5,1.5,5\n",
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(loaded.bars.timestamps, vec![1_483_311_600_000]);
    assert_eq!(loaded.bars.open, vec![1.0]);

    // An explicit format.
    let loaded = load_csv(
        "Date,Open,High,Low,Close,Volume\n01/02/2017,1,2,0.5,1.5,5\n",
        &LoadOptions {
            timestamp_format: Some("%m/%d/%Y".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(loaded.bars.timestamps, vec![1_483_315_200_000]); // 2017-01-02
}

#[test]
fn adjusted_close_scales_the_bar() {
    let csv = "Date,Open,High,Low,Close,Adj Close,Volume\n2017-01-02,10,12,9,11,5.5,100\n2017-01-03,11,13,10,12,6,100\n";
    let raw = load_csv(csv, &LoadOptions::default()).unwrap();
    assert_eq!(raw.bars.close, vec![11.0, 12.0]);
    let adj = load_csv(
        csv,
        &LoadOptions {
            use_adj_close: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(adj.bars.close, vec![5.5, 6.0]);
    assert_eq!(adj.bars.open, vec![5.0, 5.5]);
    assert_eq!(adj.bars.high, vec![6.0, 6.5]);
    assert_eq!(adj.bars.low, vec![4.5, 5.0]);
    assert_eq!(adj.bars.volume, raw.bars.volume);

    let err = load_csv(
        "Date,Open,High,Low,Close,Volume\n2017-01-02,10,12,9,11,100\n",
        &LoadOptions {
            use_adj_close: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("adjusted close"), "{err}");
}

#[test]
fn repair_sorts_and_drops_duplicates() {
    let csv = "Date,Open,High,Low,Close,Volume\n\
               2017-01-03,1,2,0.5,1.5,3\n\
               2017-01-02,1,2,0.5,1.5,2\n\
               2017-01-03,1,2,0.5,1.5,33\n\
               2017-01-04,1,2,0.5,1.5,4\n";
    let err = load_csv(csv, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Unordered {
                row: 3,
                previous_row: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let loaded = load_csv(
        csv,
        &LoadOptions {
            repair: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(loaded.bars.volume, vec![2.0, 3.0, 4.0]);
    assert_eq!(loaded.rows_read, 4);
    assert_eq!(loaded.rows_reordered, 1);
    assert_eq!(loaded.duplicates_dropped, 1);
    assert_eq!(loaded.rows_repaired, 2);
    let summary = loaded.repair_summary().unwrap();
    assert!(summary.contains("repaired 2 of 4 rows"), "{summary}");
}

fn write_parquet(path: &Path, mut df: DataFrame) {
    let mut file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(&mut file).finish(&mut df).unwrap();
}

fn ohlcv_columns() -> Vec<Column> {
    vec![
        Column::new("Open".into(), vec![1.0f64, 1.1]),
        Column::new("High".into(), vec![1.2f64, 1.3]),
        Column::new("Low".into(), vec![0.9f64, 1.0]),
        Column::new("Close".into(), vec![1.1f64, 1.2]),
        Column::new("Volume".into(), vec![100i64, 200]),
    ]
}

#[test]
fn loads_parquet_with_datetime_integer_and_text_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let expected = vec![1_483_308_000_000i64, 1_483_311_600_000];

    let mut cols = ohlcv_columns();
    let ts = Column::new(
        "timestamp".into(),
        expected.iter().map(|t| t * 1000).collect::<Vec<i64>>(),
    )
    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
    .unwrap();
    cols.insert(0, ts);
    let path = dir.path().join("dt.parquet");
    write_parquet(&path, DataFrame::new(2, cols).unwrap());
    let loaded = load_bars(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.format, FileFormat::Parquet);
    assert_eq!(loaded.bars.timestamps, expected);
    assert_eq!(loaded.bars.volume, vec![100.0, 200.0]);
    assert_eq!(loaded.sha256, sha256_file(&path).unwrap());

    let mut cols = ohlcv_columns();
    cols.insert(0, Column::new("time".into(), expected.clone()));
    let path = dir.path().join("ms.parquet");
    write_parquet(&path, DataFrame::new(2, cols).unwrap());
    let loaded = load_bars(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.bars.timestamps, expected);
    assert_eq!(loaded.timestamp_format, "epoch_ms");

    let mut cols = ohlcv_columns();
    cols.insert(
        0,
        Column::new(
            "Date".into(),
            vec!["2017-01-01 22:00:00", "2017-01-01 23:00:00"],
        ),
    );
    let path = dir.path().join("text.parquet");
    write_parquet(&path, DataFrame::new(2, cols).unwrap());
    assert_eq!(
        load_bars(&path, &LoadOptions::default())
            .unwrap()
            .bars
            .timestamps,
        expected
    );

    // Row numbers in Parquet errors are 1-based data rows.
    let mut cols = ohlcv_columns();
    cols[3] = Column::new("Close".into(), vec![Some(1.1f64), None]);
    cols.insert(0, Column::new("time".into(), expected.clone()));
    let path = dir.path().join("null.parquet");
    write_parquet(&path, DataFrame::new(2, cols).unwrap());
    let err = load_bars(&path, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, DataError::InvalidValue { row: 2, column, .. } if column == "Close"),
        "{err:?}"
    );
}

/// Loads `contents` from a CSV file and checks the error is one line naming the file.
fn csv_error(contents: &str) -> DataError {
    csv_error_with(contents, &LoadOptions::default())
}

fn csv_error_with(contents: &str, opts: &LoadOptions) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.csv", contents);
    let err = load_bars(&path, opts).expect_err("malformed file must be rejected");
    check_message(&err, &path);
    err
}

fn check_message(err: &DataError, path: &Path) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "not one line: {msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "file not named: {msg}"
    );
}

const HEADER: &str = "Date,Open,High,Low,Close,Volume\n";

fn with_rows(rows: &[&str]) -> String {
    let mut s = HEADER.to_string();
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn assert_invalid_value(err: DataError, want_row: usize, want_column: &str, needle: &str) {
    let msg = err.to_string();
    match err {
        DataError::InvalidValue { row, column, .. } => {
            assert_eq!((row, column.as_str()), (want_row, want_column), "{msg}");
            assert!(msg.contains(needle), "{msg}");
        }
        other => panic!("expected InvalidValue, got {other:?}"),
    }
}

#[test]
fn missing_file_and_unsupported_extension() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.csv");
    let err = load_bars(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    check_message(&err, &path);

    let path = write(dir.path(), "bars.txt", HEADER);
    let err = load_bars(&path, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(err, DataError::UnsupportedFormat { .. }),
        "{err:?}"
    );
    check_message(&err, &path);
    assert!(err.to_string().contains(".txt"));
}

#[test]
fn empty_files() {
    assert!(matches!(csv_error(""), DataError::Empty { .. }));
    assert!(matches!(csv_error("\n\n"), DataError::Empty { .. }));
    assert!(matches!(csv_error(HEADER), DataError::Empty { .. }));
}

#[test]
fn malformed_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.parquet");
    std::fs::write(&path, b"PAR1 this is not parquet at all").unwrap();
    let err = load_bars(&path, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Malformed {
                format: "Parquet",
                ..
            }
        ),
        "{err:?}"
    );
    check_message(&err, &path);
}

#[test]
fn missing_and_ambiguous_columns() {
    let err = csv_error("Date,Open,High,Low,Volume\n2017-01-02,1,2,0.5,1.5\n");
    assert!(
        matches!(err, DataError::MissingColumn { field: "close", .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"Volume\"") && msg.contains("rename"),
        "{msg}"
    );

    let err = csv_error("Date,Open,High,Low,Close,Volume,Last\n2017-01-02,1,2,0.5,1.5,3,1.5\n");
    assert!(
        matches!(err, DataError::AmbiguousColumn { field: "close", .. }),
        "{err:?}"
    );
    let err = csv_error("Date,Timestamp,Open,High,Low,Close,Volume\n2017-01-02,1,1,2,0.5,1.5,3\n");
    assert!(
        matches!(
            err,
            DataError::AmbiguousColumn {
                field: "timestamp",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn unparseable_and_missing_values() {
    let err = csv_error(&with_rows(&[
        "2017-01-02,1,2,0.5,1.5,3",
        "2017-01-03,1,2,0.5,abc,3",
    ]));
    assert_invalid_value(err, 3, "Close", "\"abc\"");
    let err = csv_error(&with_rows(&[
        "2017-01-02,1,2,0.5,1.5,3",
        "2017-01-03,1,,0.5,1.5,3",
    ]));
    assert_invalid_value(err, 3, "High", "missing value");
    // A short line: the missing trailing field is reported, not shifted.
    let err = csv_error(&with_rows(&[
        "2017-01-02,1,2,0.5,1.5,3",
        "2017-01-03,1,2,0.5,1.5",
    ]));
    assert_invalid_value(err, 3, "Volume", "missing value");
}

#[test]
fn bad_prices_and_volumes() {
    let good = "2017-01-02,1,2,0.5,1.5,3";
    for (rows, row, column, needle) in [
        (vec!["2017-01-02,1,2,0.5,NaN,3"], 2, "Close", "NaN"),
        (
            vec![good, "2017-01-03,1,inf,0.5,1.5,3"],
            3,
            "High",
            "infinite",
        ),
        (vec!["2017-01-02,-1,2,0.5,1.5,3"], 2, "Open", "negative"),
        (vec!["2017-01-02,1,2,0,1.5,3"], 2, "Low", "zero"),
        (vec!["2017-01-02,1,2,0.5,1.5,-3"], 2, "Volume", "volume -3"),
    ] {
        assert_invalid_value(csv_error(&with_rows(&rows)), row, column, needle);
    }
}

#[test]
fn inconsistent_bars() {
    let cases = [
        ("2017-01-03,1,0.4,0.5,0.45,3", "high 0.4 is below low 0.5"),
        ("2017-01-03,1,1.2,0.5,1.5,3", "high 1.2 is below close 1.5"),
        (
            "2017-01-03,1.6,1.55,0.5,1.5,3",
            "high 1.55 is below open 1.6",
        ),
        ("2017-01-03,1,2,1.2,1.5,3", "low 1.2 is above open 1"),
        ("2017-01-03,1.5,2,1.2,1.1,3", "low 1.2 is above close 1.1"),
    ];
    for (row, needle) in cases {
        let err = csv_error(&with_rows(&["2017-01-02,1,2,0.5,1.5,3", row]));
        let msg = err.to_string();
        assert!(matches!(err, DataError::InvalidBar { row: 3, .. }), "{msg}");
        assert!(msg.contains(needle), "{msg} lacks {needle}");
    }
}

#[test]
fn bad_timestamps() {
    for (rows, row, needle) in [
        (
            vec!["2017-01-02,1,2,0.5,1.5,3", "someday,1,2,0.5,1.5,3"],
            3,
            "\"someday\"",
        ),
        (vec!["yesterday,1,2,0.5,1.5,3"], 2, "timestamp_format"),
        (vec![",1,2,0.5,1.5,3"], 2, "missing"),
    ] {
        assert_invalid_value(csv_error(&with_rows(&rows)), row, "Date", needle);
    }

    // Day and month cannot be told apart: ask for the format.
    let err = csv_error(&with_rows(&[
        "01/02/2017,1,2,0.5,1.5,3",
        "02/02/2017,1,2,0.5,1.5,3",
    ]));
    assert!(matches!(err, DataError::TimestampFormat { .. }), "{err:?}");
    assert!(err.to_string().contains("set timestamp_format"), "{err}");

    // A given format that does not fit.
    let err = csv_error_with(
        &with_rows(&["2017-01-02,1,2,0.5,1.5,3"]),
        &LoadOptions {
            timestamp_format: Some("%d.%m.%Y".into()),
            ..Default::default()
        },
    );
    assert_invalid_value(err, 2, "Date", "does not match timestamp_format");
}

#[test]
fn unordered_and_duplicate_timestamps() {
    let err = csv_error(&with_rows(&[
        "2017-01-02,1,2,0.5,1.5,3",
        "2017-01-04,1,2,0.5,1.5,3",
        "2017-01-03,1,2,0.5,1.5,3",
    ]));
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            DataError::Unordered {
                row: 4,
                previous_row: 3,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("is earlier than") && msg.contains("repair"),
        "{msg}"
    );

    let err = csv_error(&with_rows(&[
        "2017-01-02,1,2,0.5,1.5,3",
        "2017-01-02,1,2,0.5,1.5,3",
    ]));
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            DataError::Unordered {
                row: 3,
                previous_row: 2,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("repeats"), "{msg}");
}

#[test]
fn windows_line_endings_bom_and_blank_lines() {
    let loaded = load_csv(
        "\u{feff}Date,Open,High,Low,Close,Volume\r\n2017-01-02,1,2,0.5,1.5,3\r\n2017-01-03,1,2,0.5,1.5,4\r\n",
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(loaded.bars.volume, vec![3.0, 4.0]);
    assert_eq!(
        loaded.timestamp_column.trim_start_matches('\u{feff}'),
        "Date"
    );

    // Blank lines are skipped, and rows after them keep their file row numbers.
    let rows = [
        "2017-01-02,1,2,0.5,1.5,3",
        "",
        "  ",
        "2017-01-04,1,2,0.5,1.5,4",
        "",
    ];
    let loaded = load_csv(&with_rows(&rows), &LoadOptions::default()).unwrap();
    assert_eq!(loaded.bars.volume, vec![3.0, 4.0]);
    assert_eq!(loaded.rows_read, 2);
    let err = csv_error(&with_rows(&[
        "2017-01-02,1,2,0.5,1.5,3",
        "",
        "2017-01-04,1,2,0.5,x,3",
    ]));
    assert!(
        matches!(err, DataError::InvalidValue { row: 4, .. }),
        "{err}"
    );
    let err = csv_error(&with_rows(&[
        "2017-01-03,1,2,0.5,1.5,3",
        "",
        "2017-01-02,1,2,0.5,1.5,3",
    ]));
    assert!(
        matches!(
            err,
            DataError::Unordered {
                row: 4,
                previous_row: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        csv_error(&with_rows(&["", " "])),
        DataError::Empty { .. }
    ));
}

#[test]
fn volume_is_needed_only_by_a_feature_that_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "no-volume.csv",
        "Date,Open,High,Low,Close\n2017-01-02,1,2,0.5,1.5\n2017-01-03,1.5,2,1,1.8\n",
    );
    let loaded = load_bars(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.volume_column, None);
    assert_eq!(loaded.bars.close, vec![1.5, 1.8]);
    assert!(loaded.bars.volume.iter().all(|v| v.is_nan()));
    let prices_only = ratchet_data::FeatureConfig::from_toml_str(
        "window = 2\nfeatures = [{ kind = \"log_return\", k = 1 }]\n",
    )
    .unwrap();
    loaded.check_features(&prices_only).unwrap();
    let err = loaded
        .check_features(&ratchet_data::FeatureConfig::default())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: feature zscore_volume_20 reads volumes and the file has no volume column \
             (accepted names: volume, vol, v); add one, or drop the feature from [features]",
            path.display()
        )
    );
    let with_volume = load_csv(
        &with_rows(&["2017-01-02,1,2,0.5,1.5,7"]),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(with_volume.volume_column.as_deref(), Some("Volume"));
    with_volume
        .check_features(&ratchet_data::FeatureConfig::default())
        .unwrap();
}

#[test]
fn the_field_separator_is_detected() {
    let comma = load_csv(
        &with_rows(&["2017-01-02,1,2,0.5,1.5,7"]),
        &LoadOptions::default(),
    )
    .unwrap()
    .bars;
    for text in [
        "Date;Open;High;Low;Close;Volume\n2017-01-02;1;2;0.5;1.5;7\n",
        "Date\tOpen\tHigh\tLow\tClose\tVolume\n2017-01-02\t1\t2\t0.5\t1.5\t7\n",
        "Date|Open|High|Low|Close|Volume\n2017-01-02|1|2|0.5|1.5|7\n",
        // A quoted name holding another candidate does not count.
        "\"n;o;t;e;s;;\",Date,Open,High,Low,Close,Volume\nx,2017-01-02,1,2,0.5,1.5,7\n",
    ] {
        let loaded = load_csv(text, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.bars, comma, "{text}");
    }
}
