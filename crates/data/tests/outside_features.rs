//! Outside features inside a feature config: the batch frames of a universe equal, bit for
//! bit, the rows of streams given the sources' rows as they become known (what a server
//! does), the first row waits for every outside value, a gap after it is an error, and the
//! hash covers the declarations.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;

use ratchet_data::{
    Bars, DataError, FeatureConfig, FeatureStream, OutsideSources, compute_universe_features,
    format_timestamp,
};

const HOUR: i64 = 3_600_000;

/// `n` hourly bars from hour `start` on, a slow walk.
fn bars(start: i64, n: usize, drift: f64) -> Bars {
    let mut bars = Bars::default();
    let mut price = 100.0;
    for i in 0..n {
        let open = price;
        price *= 1.0 + drift * ((i as f64) * 0.7).sin();
        bars.timestamps.push((start + i as i64) * HOUR);
        bars.open.push(open);
        bars.close.push(price);
        bars.high.push(open.max(price) * 1.002);
        bars.low.push(open.min(price) * 0.998);
        bars.volume.push(1000.0 + i as f64);
    }
    bars
}

/// A market-wide source every 3 hours with some rows restated later, and a per-symbol one
/// every 2 hours, written next to the config.
fn config(dir: &Path, missing: &str) -> FeatureConfig {
    let mut vix = String::from("ts,created,close\n");
    for h in (0..120).step_by(3) {
        let t = format_timestamp(h * HOUR);
        vix.push_str(&format!("{t},{t},{}\n", 15.0 + (h % 7) as f64));
        if h % 9 == 0 {
            let later = format_timestamp((h + 4) * HOUR);
            vix.push_str(&format!("{t},{later},{}\n", 16.5 + (h % 5) as f64));
        }
    }
    std::fs::write(dir.join("vix.csv"), vix).unwrap();
    let mut signal = String::from("ts,symbol,value\n");
    for h in (0..120).step_by(2) {
        for (s, symbol) in ["AAA", "BBB"].iter().enumerate() {
            let t = format_timestamp(h * HOUR);
            signal.push_str(&format!(
                "{t},{symbol},{}\n",
                (h as f64 * 0.3 + s as f64).cos()
            ));
        }
    }
    std::fs::write(dir.join("signal.csv"), signal).unwrap();
    let text = format!(
        r#"
        [features]
        window = 2
        normalization = {{ kind = "rolling_zscore", window = 5 }}
        features = [{{ kind = "log_return", k = 1 }}, {{ kind = "rsi", period = 4 }}]

        [[features.external]]
        name = "vix"
        source = "{vix}"
        timestamp = "ts"
        created = "created"
        columns = ["close"]
        max_staleness = "4h"
        missing = "last"
        transform = "zscore"
        window = 6

        [[features.external]]
        name = "signal"
        source = "{signal}"
        timestamp = "ts"
        symbol = "symbol"
        columns = ["value"]
        max_staleness = "3h"
        missing = "{missing}"
        transform = "diff"
        "#,
        vix = dir.join("vix.csv").display(),
        signal = dir.join("signal.csv").display(),
    );
    FeatureConfig::from_toml_str(&text).unwrap()
}

#[test]
fn batch_frames_equal_streams_fed_rows_as_they_become_known() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "drop");
    assert_eq!(
        cfg.column_names(),
        [
            "log_return_1",
            "rsi_4",
            "vix_close",
            "vix_carried",
            "signal_value"
        ]
    );
    let outside = OutsideSources::load(&cfg).unwrap();
    let universe = [("AAA", bars(1, 100, 0.01)), ("BBB", bars(5, 90, -0.02))];
    let members: Vec<(&str, &Bars)> = universe.iter().map(|(s, b)| (*s, b)).collect();
    let frames = compute_universe_features(&members, &cfg, &outside).unwrap();

    for ((symbol, bars), frame) in universe.iter().zip(&frames) {
        // The vix z-score needs six of its rows (hours 0 to 15): the first row waits for
        // them, then for the rolling normalisation's 5 rows.
        let first_vix_bar = bars
            .timestamps
            .iter()
            .position(|&t| t == 15 * HOUR)
            .unwrap();
        assert_eq!(frame.first_bar, first_vix_bar + 4);
        assert!(frame.first_bar > cfg.warm_up());
        assert_eq!(frame.first_bar + frame.rows(), bars.len());
        let mut stream = FeatureStream::new(&cfg).unwrap();
        let series = outside.series(symbol);
        let mut taken = vec![0; series.len()];
        let mut rows = Vec::new();
        for t in 0..bars.len() {
            let now = bars.timestamps[t];
            for (i, source) in cfg.external.iter().enumerate() {
                let series = series[i].unwrap();
                while let Some(row) = series.row(taken[i])
                    && row.known_at <= now
                {
                    let state = stream.outside_mut(&source.name).unwrap();
                    state
                        .observe(row.timestamp, row.created, row.values)
                        .unwrap();
                    taken[i] += 1;
                }
            }
            if let Some(row) = stream.push(&bars.bar(t)).unwrap() {
                rows.extend_from_slice(row);
            }
        }
        assert_eq!(rows, frame.values, "{symbol}");
    }
    // The outside column moves with the source's rows (a join that stood still would not).
    let vix = frames[0].column("vix_close").unwrap();
    assert!(vix.windows(2).any(|w| w[0] != w[1]));
}

#[test]
fn a_gap_after_the_first_row_is_an_error_and_sources_must_cover_the_bars() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "drop");
    let outside = OutsideSources::load(&cfg).unwrap();
    // Bars past the sources' end: the signal goes stale (3 h) after its last row at hour 118.
    let long = bars(1, 130, 0.01);
    let err = compute_universe_features(&[("AAA", &long)], &cfg, &outside).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("symbol AAA: ")
            && message.contains("outside feature signal has no fresh value")
            && message.contains("set missing = \"last\""),
        "{message}"
    );
    // Bars that start before a source's first row.
    let early = bars(-3, 50, 0.01);
    let err = compute_universe_features(&[("AAA", &early)], &cfg, &outside).unwrap_err();
    assert!(
        err.to_string().contains("its first row is known at"),
        "{err}"
    );
    // A symbol the per-symbol source does not have.
    let err = compute_universe_features(&[("ZZZ", &long)], &cfg, &outside).unwrap_err();
    assert!(err.to_string().contains("no row for this symbol"), "{err}");
    // Sources not loaded for the config.
    let err =
        compute_universe_features(&[("AAA", &long)], &cfg, &OutsideSources::default()).unwrap_err();
    assert!(matches!(err, DataError::Config(_)), "{err}");
}

#[test]
fn the_hash_covers_the_declarations() {
    let dir = tempfile::tempdir().unwrap();
    let (drop, last) = (config(dir.path(), "drop"), config(dir.path(), "last"));
    let plain = FeatureConfig {
        external: Vec::new(),
        ..drop.clone()
    };
    let hashes = [drop.hash(), last.hash(), plain.hash()];
    assert!(hashes[0] != hashes[1] && hashes[1] != hashes[2] && hashes[0] != hashes[2]);
    // Without outside sources the canonical form is the one from before they existed.
    assert!(!plain.canonical_json().contains("external"));
}
