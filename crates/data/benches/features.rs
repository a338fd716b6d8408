//! Feature computation speed: the default config over 1M synthetic bars (target: well under a
//! second), and loading the bundled GOOGL file.
//!
//! `cargo bench -p ratchet-data`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_data::{Bars, FeatureConfig, LoadOptions, compute_features, load_bars};

/// A deterministic random walk of `n` consistent bars.
fn random_walk(n: usize) -> Bars {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut unit = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut bars = Bars::default();
    let mut price = 100.0;
    for i in 0..n {
        let open = price;
        price *= 1.0 + (unit() - 0.5) * 0.02;
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

fn loading(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/STOCKS_GOOGL.csv");
    let opts = LoadOptions::default();
    c.bench_function("load_googl_csv", |b| {
        b.iter(|| load_bars(black_box(&path), &opts).unwrap())
    });
}

criterion_group!(benches, features, loading);
criterion_main!(benches);
