//! Feature computation speed: the default config over 1M synthetic bars (target: well under a
//! second), one live bar pushed through a warmed-up `FeatureStream` (the feature half of a
//! served decision, whose target is under 5 µs), and loading the bundled GOOGL file.
//!
//! `cargo bench -p ratchet-data`

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::hint::black_box;
use std::path::Path;

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_data::{Bars, FeatureConfig, FeatureStream, LoadOptions, compute_features, load_bars};

/// A deterministic, mean-reverting random walk of `n` consistent bars.
fn random_walk(n: usize) -> Bars {
    let mut unit = support::uniform();
    let mut bars = Bars::default();
    let (mut price, mut log_move) = (100.0, 0.0);
    for i in 0..n {
        let open = price;
        // Mean-reverting in log space, so a million steps stay near 100.
        log_move = 0.999 * log_move + (unit() - 0.5) * 0.02;
        price = 100.0 * f64::exp(log_move);
        bars.timestamps.push(i as i64 * 60_000);
        bars.open.push(open);
        bars.close.push(price);
        bars.high.push(open.max(price) * (1.0 + unit() * 0.005));
        bars.low.push(open.min(price) * (1.0 - unit() * 0.005));
        bars.volume.push(1_000.0 + unit() * 1_000.0);
    }
    bars
}

fn features(c: &mut Criterion) {
    let bars = random_walk(1_000_000);
    let cfg = FeatureConfig::default();
    let mut group = c.benchmark_group("features");
    group.sample_size(10);
    group.throughput(Throughput::Elements(bars.len() as u64));
    group.bench_function("default_config_1m_bars", |b| {
        b.iter(|| compute_features(black_box(&bars), black_box(&cfg)).unwrap())
    });
    group.finish();
}

fn stream(c: &mut Criterion) {
    let bars = random_walk(10_000);
    let mut stream = FeatureStream::new(&FeatureConfig::default()).unwrap();
    for t in 0..bars.len() {
        stream.push(&bars.bar(t)).unwrap();
    }
    // Keep pushing the walk's bars again, at later timestamps.
    let mut next = bars.len();
    let mut group = c.benchmark_group("feature_stream");
    group.throughput(Throughput::Elements(1));
    group.bench_function("push_default_config", |b| {
        b.iter(|| {
            let mut bar = bars.bar(next % bars.len());
            bar.timestamp = next as i64 * 60_000;
            next += 1;
            stream.push(black_box(&bar)).unwrap().map(|row| row[0])
        })
    });
    group.finish();
}

fn loading(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/STOCKS_GOOGL.csv");
    let opts = LoadOptions::default();
    c.bench_function("load_googl_csv", |b| {
        b.iter(|| load_bars(black_box(&path), &opts).unwrap())
    });

    // 1M hourly bars with day-first timestamps, a layout detection has to find.
    let bars = random_walk(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("bars.csv");
    let mut csv = String::from("Time,Open,High,Low,Close,Volume\n");
    for i in 0..bars.len() {
        let hour = chrono::DateTime::from_timestamp_millis(bars.timestamps[i] * 60).unwrap();
        csv.push_str(&format!(
            "{},{:.5},{:.5},{:.5},{:.5},{:.1}\n",
            hour.format("%d.%m.%Y %H:%M:%S.000"),
            bars.open[i],
            bars.high[i] + 1e-5,
            bars.low[i] - 1e-5,
            bars.close[i],
            bars.volume[i]
        ));
    }
    std::fs::write(&big, csv).unwrap();
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.throughput(Throughput::Elements(bars.len() as u64));
    group.bench_function("csv_1m_bars_day_first", |b| {
        b.iter(|| load_bars(black_box(&big), &opts).unwrap())
    });
    group.finish();
}

criterion_group!(benches, features, stream, loading);
criterion_main!(benches);
