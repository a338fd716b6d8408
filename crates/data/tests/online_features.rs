//! Features computed bar by bar: the batch output is pinned byte for byte, a stream gives the
//! batch rows bit for bit (also across a snapshot), its warm-up, and the bars it refuses.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;

use ratchet_data::{
    Bar, Bars, DataError, FeatureConfig, FeatureFrame, FeatureSpec, FeatureStream, LoadOptions,
    Normalization, compute_features, load_bars,
};
use sha2::{Digest, Sha256};

mod support;
use support::{every_kind, every_kind_config};

const DATA_FILES: [&str; 2] = ["STOCKS_GOOGL.csv", "FOREX_EURUSD_1H_ASK.csv"];

fn bundled(file: &str) -> Bars {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(file);
    load_bars(&path, &LoadOptions::default()).unwrap().bars
}

/// The configs whose output is pinned: the default, all kinds raw and normalised, and each kind
/// alone (raw), so a mismatch names the indicator.
fn pinned_configs() -> Vec<(String, FeatureConfig)> {
    let all = |normalization| every_kind_config(2, normalization);
    let mut configs = vec![
        ("default".to_string(), FeatureConfig::default()),
        ("all_raw".to_string(), all(Normalization::None)),
        (
            "all_zscore_37".to_string(),
            all(Normalization::RollingZscore { window: 37 }),
        ),
    ];
    for spec in every_kind(2) {
        configs.push((
            spec.column_names()[0].clone(),
            FeatureConfig {
                window: 1,
                normalization: Normalization::None,
                features: vec![spec],
                external: Vec::new(),
                feast: Vec::new(),
            },
        ));
    }
    configs
}

/// SHA-256 of the frame's values as little-endian f32 bytes, in row-major order.
fn values_sha256(frame: &FeatureFrame) -> String {
    let mut hasher = Sha256::new();
    for v in &frame.values {
        hasher.update(v.to_le_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (data file, config name, first_bar, rows, sha256 of the values) computed by the column-wise
/// feature code before features were computed bar by bar (commit "data: pin the batch feature
/// output"). Cached feature files and trained models depend on these bytes staying the same.
const PINNED: &[(&str, &str, usize, usize, &str)] = &[
    (
        "STOCKS_GOOGL.csv",
        "default",
        132,
        2203,
        "93124fcdcaef0f42ea41df10d7ca3c57feb07355abc83b3bb9b04cec6d7ee762",
    ),
    (
        "STOCKS_GOOGL.csv",
        "all_raw",
        14,
        2321,
        "fa7f306827b44c7d7bfe1a2bf4d4b201efa41ce8284e4aebea411c7068890cfa",
    ),
    (
        "STOCKS_GOOGL.csv",
        "all_zscore_37",
        50,
        2285,
        "8a66cfcfc46d0ea268e553c8f429a4e63ab7e683d2df8ff61f35e27bef6d8446",
    ),
    (
        "STOCKS_GOOGL.csv",
        "simple_return_3",
        3,
        2332,
        "41de72a97a5a5b355f467bc910d4f03420c61659727f0d73a9ed90ebf23f9741",
    ),
    (
        "STOCKS_GOOGL.csv",
        "log_return_2",
        2,
        2333,
        "04ec89569c889c77ef07fd669cecf8caef26a3e5d91ae4d5e117e8c1e24b39e5",
    ),
    (
        "STOCKS_GOOGL.csv",
        "sma_ratio_5_15",
        14,
        2321,
        "394e7977e7753e6e0b40a493bfad71857077dfc28aae54342fffe69b77637cc8",
    ),
    (
        "STOCKS_GOOGL.csv",
        "ema_ratio_4_13",
        12,
        2323,
        "c6f528998160b88ac256816fe8680c65e2e0eb1912b112345959521079f77a40",
    ),
    (
        "STOCKS_GOOGL.csv",
        "rsi_7",
        7,
        2328,
        "b8f56d504bf0b61e49ad47f6940385746c4fed2e575059a3cb6e97f47c373b1e",
    ),
    (
        "STOCKS_GOOGL.csv",
        "macd_5_11_4_line",
        13,
        2322,
        "571ec1678ab8c08496a6502227cea92249ccd56d226f33a39649c8af759c6f19",
    ),
    (
        "STOCKS_GOOGL.csv",
        "volatility_9",
        9,
        2326,
        "2bfbf59ac29b88403dcfcbaf2bfed81b59c01d4502d381c6e9e2f5f9b1346ae5",
    ),
    (
        "STOCKS_GOOGL.csv",
        "atr_6",
        6,
        2329,
        "074f92b8d6c17de840772d42d219161bead18b8f6ae45876f0d5194b36a5d287",
    ),
    (
        "STOCKS_GOOGL.csv",
        "zscore_close_8",
        7,
        2328,
        "c97806357e76af291cf4a68fc2bd547552994e27dbe8441673683f033bf80830",
    ),
    (
        "STOCKS_GOOGL.csv",
        "zscore_volume_12",
        11,
        2324,
        "5508998e195471012ae716cc8a0bb63198e81ef75f9401a98340847993ef7b53",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "default",
        132,
        6093,
        "df825e1e2526d775b6aaf9993abb3c9aa6890522a8e926b5c539c8ada0ef477a",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "all_raw",
        14,
        6211,
        "ce5739b237d3c86cf70fa086f3b235bebaef920988868ef98f16422e75d88c4b",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "all_zscore_37",
        50,
        6175,
        "ee7a1d2cbf1fb88d4eae974ae201ba75633958f5ad04c0f04b8aae753f512f5d",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "simple_return_3",
        3,
        6222,
        "8bcc2865c9b923e688cd1635a77260bb55baaaac5df7e3ac558b1046c39d34c6",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "log_return_2",
        2,
        6223,
        "e6c3222e3c2157fe5b228080ba2d0fd8531a1518baea8365cceecb258550021c",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "sma_ratio_5_15",
        14,
        6211,
        "2efe89234a52a3cf7baf4d5d25a55583f19f5036cae7eb9d5695b850dc55d7a7",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "ema_ratio_4_13",
        12,
        6213,
        "857092ce828a9c5521feb0f345c5a3e163839ff9f3ca93880c0b29f59ef37623",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "rsi_7",
        7,
        6218,
        "fac80c9ae198918249adcae1950d960fd7bee5f0b549bfb6fecb8a0f24f6de7c",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "macd_5_11_4_line",
        13,
        6212,
        "0744758f80e0a0f154257631a83820fc9cbbc350fc6095059ee94084f85fb765",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "volatility_9",
        9,
        6216,
        "f31c99852ac73bc20e0c24a9fd86b3857bd088169f591118578e9abc149287fa",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "atr_6",
        6,
        6219,
        "9c3a293ac881a6b7d9c8515d2bdcaabcab399d60352a79d80f7737bbeca61c51",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "zscore_close_8",
        7,
        6218,
        "c271cfe13a864dbaec442b260b8d911d08ef01a9075cb889f07553d3f8954cbc",
    ),
    (
        "FOREX_EURUSD_1H_ASK.csv",
        "zscore_volume_12",
        11,
        6214,
        "78acb998b8dbf1ec696574a3597fa2888f70173faa7be172a91f8cc3a1daeedd",
    ),
];

#[test]
fn batch_output_is_pinned_byte_for_byte() {
    let mut seen = Vec::new();
    for file in DATA_FILES {
        let bars = bundled(file);
        for (name, cfg) in pinned_configs() {
            let frame = compute_features(&bars, &cfg).unwrap();
            let got = (
                file,
                name,
                frame.first_bar,
                frame.rows(),
                values_sha256(&frame),
            );
            seen.push(got);
        }
    }
    let expected: Vec<_> = PINNED
        .iter()
        .map(|&(f, n, b, r, h)| (f, n.to_string(), b, r, h.to_string()))
        .collect();
    assert_eq!(seen, expected);
}

/// Pushes every bar, checking the warm-up as it goes, and returns the rows it gave.
/// `snapshot_at`: bar indices after which the stream is replaced by a JSON round trip of itself.
fn stream_rows(bars: &Bars, cfg: &FeatureConfig, snapshot_at: &[usize]) -> Vec<f32> {
    let mut stream = FeatureStream::new(cfg).unwrap();
    let mut values = Vec::new();
    let mut warm_up_bars = 0;
    for t in 0..bars.len() {
        assert_eq!(stream.bars_needed(), (cfg.warm_up() + 1).saturating_sub(t));
        match stream.push(&bars.bar(t)).unwrap() {
            None => {
                assert!(stream.warming_up());
                warm_up_bars += 1;
            }
            Some(row) => {
                assert_eq!(row.len(), cfg.column_names().len());
                values.extend_from_slice(row);
                assert!(!stream.warming_up());
            }
        }
        assert_eq!(stream.bars_pushed(), t + 1);
        if snapshot_at.contains(&t) {
            let json = serde_json::to_string(&stream).unwrap();
            stream = serde_json::from_str(&json).unwrap();
        }
    }
    assert_eq!(warm_up_bars, cfg.warm_up());
    values
}

fn assert_same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        panic!("{what}: value {i} differs: {} vs {}", a[i], b[i]);
    }
}

#[test]
fn streaming_gives_the_batch_rows_bit_for_bit() {
    for file in DATA_FILES {
        let bars = bundled(file);
        for (name, cfg) in pinned_configs() {
            let batch = compute_features(&bars, &cfg).unwrap();
            let streamed = stream_rows(&bars, &cfg, &[]);
            assert_same_bits(&streamed, &batch.values, &format!("{file} {name}"));
        }
    }
}

#[test]
fn a_restored_snapshot_continues_exactly() {
    let bars = bundled("STOCKS_GOOGL.csv");
    for (name, cfg) in pinned_configs() {
        let batch = compute_features(&bars, &cfg).unwrap();
        // During the indicator warm-up, during normalisation warm-up, at the first row, later.
        let at = [3, 40, cfg.warm_up(), cfg.warm_up() + 57, 2000];
        let streamed = stream_rows(&bars, &cfg, &at);
        assert_same_bits(&streamed, &batch.values, &name);
    }
}

#[test]
fn warm_up_is_the_configs() {
    let bars = bundled("STOCKS_GOOGL.csv");
    for (_, cfg) in pinned_configs() {
        let mut stream = FeatureStream::new(&cfg).unwrap();
        let first_row = (0..bars.len())
            .find(|&t| stream.push(&bars.bar(t)).unwrap().is_some())
            .unwrap();
        assert_eq!(first_row, cfg.warm_up());
        assert_eq!(stream.bars_needed(), 0);
    }
    let cfg = FeatureConfig::default();
    let stream = FeatureStream::new(&cfg).unwrap();
    assert_eq!((stream.bars_needed(), cfg.warm_up()), (133, 132));
}

fn good_bar(timestamp: i64) -> Bar {
    Bar {
        timestamp,
        open: 10.0,
        high: 11.0,
        low: 9.0,
        close: 10.5,
        volume: 100.0,
    }
}

#[test]
fn bad_bars_are_rejected_with_exact_messages() {
    let day = 86_400_000;
    let mut stream = FeatureStream::new(&FeatureConfig::default()).unwrap();
    stream.push(&good_bar(0)).unwrap();
    stream.push(&good_bar(day)).unwrap();
    let next = good_bar(2 * day);
    let cases: Vec<(Bar, &str)> = vec![
        (
            Bar {
                open: f64::NAN,
                ..next
            },
            "open: price is NaN (NaN); prices must be finite and positive",
        ),
        (
            Bar {
                high: f64::INFINITY,
                ..next
            },
            "high: price is infinite (inf); prices must be finite and positive",
        ),
        (
            Bar { low: -1.0, ..next },
            "low: price is negative (-1); prices must be finite and positive",
        ),
        (
            Bar { close: 0.0, ..next },
            "close: price is zero (0); prices must be finite and positive",
        ),
        (
            Bar {
                volume: -5.0,
                ..next
            },
            "volume -5 is not a finite non-negative number",
        ),
        (
            Bar {
                volume: f64::NAN,
                ..next
            },
            "volume NaN is not a finite non-negative number",
        ),
        (Bar { high: 8.0, ..next }, "high 8 is below low 9"),
        (Bar { high: 10.2, ..next }, "high 10.2 is below close 10.5"),
        (Bar { low: 10.1, ..next }, "low 10.1 is above open 10"),
        (
            good_bar(day),
            "its timestamp repeats the previous bar's (1970-01-02T00:00:00Z)",
        ),
        (
            good_bar(day / 2),
            "its timestamp is earlier than the previous bar's (1970-01-02T00:00:00Z)",
        ),
    ];
    for (bar, problem) in cases {
        let err = stream.push(&bar).unwrap_err();
        let ts = if bar.timestamp == 2 * day {
            "1970-01-03T00:00:00Z"
        } else if bar.timestamp == day {
            "1970-01-02T00:00:00Z"
        } else {
            "1970-01-01T12:00:00Z"
        };
        assert!(
            matches!(err, DataError::RejectedBar { index: 2, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("bar 2 ({ts}): {problem}; fix or drop the bar")
        );
        assert_eq!(stream.bars_pushed(), 2, "a rejected bar is not taken");
    }
    assert_eq!(stream.last_timestamp(), Some(day));
    // The rejections changed nothing: the stream continues like one that never saw them.
    let mut clean = FeatureStream::new(&FeatureConfig::default()).unwrap();
    for t in 0..200 {
        let bar = match t {
            0 | 1 => good_bar(t * day),
            _ => Bar {
                close: 10.0 + (t % 7) as f64 * 0.1,
                ..good_bar(t * day)
            },
        };
        let expected = clean.push(&bar).unwrap().map(<[f32]>::to_vec);
        if t >= 2 {
            let got = stream.push(&bar).unwrap().map(<[f32]>::to_vec);
            assert_eq!(got, expected, "bar {t}");
        }
    }
    assert!(!stream.warming_up());
}

#[test]
fn compute_features_rejects_bad_bars_too() {
    let bars = Bars {
        timestamps: vec![0, 60_000, 60_000],
        open: vec![1.0; 3],
        high: vec![1.0; 3],
        low: vec![1.0; 3],
        close: vec![1.0; 3],
        volume: vec![0.0; 3],
    };
    let cfg = FeatureConfig {
        window: 1,
        normalization: Normalization::None,
        features: vec![FeatureSpec::LogReturn { k: 1 }],
        external: Vec::new(),
        feast: Vec::new(),
    };
    let err = compute_features(&bars, &cfg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bar 2 (1970-01-01T00:01:00Z): its timestamp repeats the previous bar's (1970-01-01T00:01:00Z); fix or drop the bar"
    );
}

#[test]
fn a_snapshot_that_does_not_fit_its_config_is_refused() {
    let mut stream = FeatureStream::new(&FeatureConfig::default()).unwrap();
    stream.push(&good_bar(0)).unwrap();
    let mut json: serde_json::Value = serde_json::to_value(&stream).unwrap();
    json["config"]["features"].as_array_mut().unwrap().pop();
    let err = serde_json::from_value::<FeatureStream>(json.clone()).unwrap_err();
    let mut shorter = FeatureConfig::default();
    shorter.features.pop();
    assert_eq!(
        err.to_string(),
        format!(
            "features: the feature stream's state does not fit its config {}; restore it from a snapshot this version wrote",
            shorter.short_hash()
        )
    );
    json["config"]["window"] = 0.into();
    let err = serde_json::from_value::<FeatureStream>(json).unwrap_err();
    assert_eq!(err.to_string(), "feature config: window must be at least 1");
}
