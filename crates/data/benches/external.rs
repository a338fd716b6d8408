//! The point-in-time join of outside features: 10 columns of a market-wide source (a row every
//! 5 minutes) onto 1M one-minute bars, 10 columns of a per-symbol daily source onto a
//! 500-symbol x 2,520-day universe (1.26M bars, symbols in parallel as a universe's features
//! are), and one bar of a warmed-up `ExternalStream` (the online cost per outside feature).
//!
//! `cargo bench --workspace --bench external`; `scripts/compare_external_join.sh` compares
//! the same joins with polars and pandas on files (BENCHMARKS.md has the figures).

#![allow(clippy::unwrap_used)] // a bench that unwraps fails with the value it did not expect

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_data::{ExternalFeature, ExternalSource, ExternalStream, MissingRule, Transform};
use rayon::prelude::*;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
const START: i64 = 1_577_836_800_000;

fn feature(by_symbol: bool) -> ExternalFeature {
    ExternalFeature {
        name: "x".into(),
        source: "source.csv".into(),
        timestamp: "ts".into(),
        symbol: by_symbol.then(|| "symbol".into()),
        created: None,
        timestamp_format: Some("epoch_ms".into()),
        columns: (0..10).map(|i| format!("c{i}")).collect(),
        max_staleness: Duration::from_secs(5 * 86_400),
        missing: MissingRule::Drop,
        transform: Transform::Raw,
        window: None,
        feast: None,
    }
}

/// A source CSV: rows `(timestamp, symbol)` with 10 random values each.
fn source(
    f: &ExternalFeature,
    rows: impl Iterator<Item = (i64, Option<String>)>,
) -> ExternalSource {
    let mut unit = support::uniform();
    let mut csv = String::from(if f.symbol.is_some() {
        "ts,symbol"
    } else {
        "ts"
    });
    for i in 0..10 {
        csv.push_str(&format!(",c{i}"));
    }
    csv.push('\n');
    for (t, symbol) in rows {
        csv.push_str(&t.to_string());
        if let Some(s) = symbol {
            csv.push(',');
            csv.push_str(&s);
        }
        for _ in 0..10 {
            csv.push_str(&format!(",{:.6}", unit() - 0.5));
        }
        csv.push('\n');
    }
    ExternalSource::parse(f, Path::new("source.csv"), csv.into_bytes()).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("external_join");
    group.sample_size(10);

    let market = source(
        &feature(false),
        (0..200_001).map(|i| (START - 3 * MINUTE + i * 5 * MINUTE, None)),
    );
    let bars: Vec<i64> = (0..1_000_000).map(|i| START + i * MINUTE).collect();
    group.throughput(Throughput::Elements(bars.len() as u64));
    group.bench_function("10_columns/1m_bars", |b| {
        b.iter(|| black_box(market.join("S000", &bars).unwrap().dropped))
    });

    let symbols: Vec<String> = (0..500).map(|i| format!("S{i:03}")).collect();
    let days: Vec<i64> = (0..2520)
        .map(|d| START + d * DAY + 21 * 3_600_000)
        .collect();
    let per_symbol = source(
        &feature(true),
        days.iter().flat_map(|&t| {
            symbols
                .iter()
                .map(move |s| (t - 8 * 3_600_000, Some(s.clone())))
        }),
    );
    group.throughput(Throughput::Elements((symbols.len() * days.len()) as u64));
    group.bench_function("10_columns/500_symbols_daily", |b| {
        b.iter(|| {
            let dropped: usize = symbols
                .par_iter()
                .map(|s| per_symbol.join(s, &days).unwrap().dropped)
                .sum();
            black_box(dropped)
        })
    });

    // One more bar of a stream that has taken in half the market-wide source.
    let series = market.series("S000");
    let mut stream = ExternalStream::new(&market.feature, None);
    for &t in &bars[..500_000] {
        stream.push(series, t).unwrap();
    }
    let mut next = bars[500_000];
    group.throughput(Throughput::Elements(1));
    group.bench_function("10_columns/one_bar_online", |b| {
        b.iter(|| {
            next += MINUTE;
            black_box(stream.push(series, next).unwrap().map(|row| row[0]))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
