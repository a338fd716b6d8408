//! ratchet-backtest's fast path on one million bars of an SMA(10/50) crossover — the
//! workload of vectorbt's own benchmark: compute the signal, simulate it, compute the
//! metrics. `scripts/compare_backtest_speed.sh` runs the same workload in vectorbt and in
//! plain numpy, on the same prices, next to this benchmark.
//!
//! - `sma_cross/one_shot`: signal + simulation + metrics, allocating everything afresh, as a
//!   single call does (the figure compared with the peers);
//! - `sma_cross/sweep`: the same reusing the buffers of the previous run, as a parameter
//!   sweep does (`sma_crossover_into`, `Simulation::resimulate`);
//! - `sma_cross/policy_path`: the positions fed bar by bar through `simulate_policy` (the
//!   path a trained network takes), plus metrics;
//! - `sma_cross/with_buy_and_hold`: one-shot plus buy-and-hold and its metrics, i.e. all
//!   the numbers of a report.
//!
//! The prices' frequency (periods per year) is inferred once outside the timed code, as
//! vectorbt is given its `freq`.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_backtest::{
    Backtest, Frequency, Metrics, PriceSeries, simulate_policy, simulate_positions, sma_crossover,
    sma_crossover_into,
};
use ratchet_env::execution::Costs;

const BARS: usize = 1_000_000;
const FAST: usize = 10;
const SLOW: usize = 50;
/// Monday 2000-01-03 00:00 UTC.
const START_MS: i64 = 946_857_600_000;
const HOUR_MS: i64 = 3_600_000;

/// A uniform number in [0, 1) from bar `t` and `stream`: splitmix64's output function over
/// a counter, so numpy can reproduce it exactly (see the comparison script).
fn uniform(t: u64, stream: u64) -> f64 {
    let mut z = (2 * t + stream + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Hourly bars on weekdays (FX-like): a log-random walk of closes, opens a small gap away
/// from the previous close.
fn prices() -> PriceSeries {
    let mut timestamps = Vec::with_capacity(BARS);
    let mut t = START_MS;
    while timestamps.len() < BARS {
        if (t.div_euclid(24 * HOUR_MS) + 3).rem_euclid(7) < 5 {
            timestamps.push(t);
        }
        t += HOUR_MS;
    }
    let mut log_price = 0.0f64;
    let close: Vec<f64> = (0..BARS as u64)
        .map(|t| {
            log_price += 0.01 * (uniform(t, 0) - 0.5);
            100.0 * log_price.exp()
        })
        .collect();
    let open = (0..BARS)
        .map(|t| match t {
            0 => 100.0,
            _ => close[t - 1] * (0.001 * (uniform(t as u64, 1) - 0.5)).exp(),
        })
        .collect();
    PriceSeries::new(timestamps, open, close).expect("valid synthetic prices")
}

fn sma_cross(c: &mut Criterion) {
    let prices = prices();
    let costs = Costs::default();
    let ppy = Frequency::infer(prices.timestamps()).periods_per_year;

    let signal = sma_crossover(prices.close(), FAST, SLOW).unwrap();
    let sim = simulate_positions(&prices, &signal, costs).unwrap();
    let m = Metrics::compute(&prices, &sim, ppy);
    // Read by scripts/compare_backtest_speed.sh to check the peers computed the same thing.
    println!(
        "ratchet result: bars {BARS} trades {} final_equity {:.6} sharpe {:.4} max_drawdown {:.4} periods_per_year {ppy}",
        m.trades,
        sim.equity[BARS - 1],
        m.sharpe.unwrap_or(f64::NAN),
        m.max_drawdown,
    );

    let mut group = c.benchmark_group("sma_cross");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(30);

    group.bench_function("one_shot", |b| {
        b.iter(|| {
            let positions = sma_crossover(prices.close(), FAST, SLOW).unwrap();
            let sim = simulate_positions(&prices, &positions, costs).unwrap();
            black_box(Metrics::compute(&prices, &sim, ppy))
        })
    });

    group.bench_function("sweep", |b| {
        let mut positions = Vec::new();
        let mut sim = simulate_positions(&prices, &signal, costs).unwrap();
        b.iter(|| {
            sma_crossover_into(prices.close(), FAST, SLOW, &mut positions).unwrap();
            sim.resimulate(&prices, &positions, costs).unwrap();
            black_box(Metrics::compute(&prices, &sim, ppy))
        })
    });

    group.bench_function("policy_path", |b| {
        b.iter(|| {
            let mut policy = |bar: usize, _position: f64, _unrealised: f64| signal[bar];
            let sim = simulate_policy(&prices, &mut policy, costs).unwrap();
            black_box(Metrics::compute(&prices, &sim, ppy))
        })
    });

    group.bench_function("with_buy_and_hold", |b| {
        b.iter(|| {
            let positions = sma_crossover(prices.close(), FAST, SLOW).unwrap();
            let sim = simulate_positions(&prices, &positions, costs).unwrap();
            black_box(Backtest::new(&prices, sim, Frequency::fixed(ppy)).unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, sma_cross);
criterion_main!(benches);
