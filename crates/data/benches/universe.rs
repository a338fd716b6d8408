//! A universe's data preparation at scale: parsing a long-format file of many instruments
//! (each validated on its own) and computing the default features of every instrument, alone
//! and with the three cross-sectional features.
//! Targets on the 2-core machine: 500 symbols x 10 years of daily bars (1.26M bars) in
//! under 2 s, 100 symbols x 5 years of hourly bars (about 3M bars) in under 5 s.
//!
//! `cargo bench --bench universe` (BENCHMARKS.md has the figures). With `UNIVERSE_CSV=FILE`
//! it also times that file (what `scripts/compare_universe_features.sh` runs polars on).

#![allow(clippy::unwrap_used)] // a bench that unwraps fails with the value it did not expect

use std::hint::black_box;
use std::path::PathBuf;

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_data::{
    FeatureConfig, FeatureSpec, LoadOptions, OutsideSources, Universe, compute_features,
    compute_universe_features,
};
use rayon::prelude::*;

/// A long-format CSV of `symbols` random walks, `bars` each, `step_ms` apart.
fn long_csv(symbols: usize, bars: usize, step_ms: i64) -> Vec<u8> {
    let mut unit = support::uniform();
    let mut out = String::from("timestamp,symbol,open,high,low,close,volume\n");
    let mut prices = vec![100.0f64; symbols];
    for i in 0..bars {
        let t = 1_262_304_000_000 + i as i64 * step_ms;
        for (s, price) in prices.iter_mut().enumerate() {
            let open = *price;
            let close = open * (1.0 + (unit() - 0.5) * 0.02);
            let high = open.max(close) * (1.0 + unit() * 0.005);
            let low = open.min(close) * (1.0 - unit() * 0.005);
            *price = close;
            out.push_str(&format!(
                "{t},S{s:03},{open:.4},{high:.4},{low:.4},{close:.4},{:.0}\n",
                1_000.0 + unit() * 1_000.0
            ));
        }
    }
    out.into_bytes()
}

/// The default features, and the same with the three cross-sectional features over 5-bar
/// returns (as `configs/universe-ppo.toml`).
fn configs() -> [(&'static str, FeatureConfig); 2] {
    let mut cross = FeatureConfig::default();
    cross.features.extend([
        FeatureSpec::UniverseReturn { k: 5 },
        FeatureSpec::ReturnRank { k: 5 },
        FeatureSpec::ExcessReturn { k: 5 },
    ]);
    [("", FeatureConfig::default()), ("_cross_sectional", cross)]
}

fn prepare(bytes: &[u8], opts: &LoadOptions, config: &FeatureConfig) -> usize {
    let universe =
        Universe::parse(vec![(PathBuf::from("universe.csv"), bytes.to_vec())], opts).unwrap();
    // As `ratchet train` does: every instrument's features in parallel, or with
    // cross-sectional features all of them together in time order.
    if config.cross_sectional().is_some() {
        let members: Vec<_> = universe
            .members
            .iter()
            .map(|m| (m.symbol.as_str(), &m.loaded.bars))
            .collect();
        return compute_universe_features(&members, config, &OutsideSources::default())
            .unwrap()
            .iter()
            .map(|frame| frame.rows())
            .sum();
    }
    universe
        .members
        .par_iter()
        .map(|m| compute_features(&m.loaded.bars, config).unwrap().rows())
        .sum()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("universe");
    group.sample_size(10);
    let epoch_ms = LoadOptions {
        timestamp_format: Some("epoch_ms".into()),
        ..LoadOptions::default()
    };
    if let Some(path) = std::env::var_os("UNIVERSE_CSV") {
        let bytes = std::fs::read(&path).unwrap();
        let opts = LoadOptions::default();
        for (suffix, config) in configs() {
            let bars = prepare(&bytes, &opts, &config);
            group.throughput(Throughput::Elements(bars as u64));
            group.bench_function(format!("load_validate_features{suffix}/file"), |b| {
                b.iter(|| black_box(prepare(&bytes, &opts, &config)))
            });
        }
    }
    for (name, symbols, bars, step_ms) in [
        ("500_daily_10y", 500, 2520, 86_400_000),
        ("100_hourly_5y", 100, 31_000, 3_600_000),
    ] {
        let bytes = long_csv(symbols, bars, step_ms);
        group.throughput(Throughput::Elements((symbols * bars) as u64));
        for (suffix, config) in configs() {
            group.bench_function(format!("load_validate_features{suffix}/{name}"), |b| {
                b.iter(|| black_box(prepare(&bytes, &epoch_ms, &config)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
