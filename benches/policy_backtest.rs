//! A trained policy backtested over 1M bars: the per-bar work of `ratchet backtest`
//! (observation from the shared layout, a 64x64 tanh network, argmax, the shared fill rule)
//! plus buy-and-hold and every metric.
//!
//! Also one live decision of `ratchet serve`: a bar pushed into a symbol's session (online
//! features, window) and the served network's decision, the work of `POST /v1/bars` minus HTTP
//! (`serve/one_decision_default_features`; `serve/one_decision_with_outside_value` takes an
//! outside value into the session's join before each bar, as `"external"` gives it);
//! and `inference/forward_one_row_112x64x64x3`, the network alone on one observation of the
//! default trading features (`InferenceMlp::forward`).
//!
//! Run: `cargo bench --workspace --bench policy_backtest`. Targets: under 1 s for 1M bars on one
//! core; under 5 µs per live decision.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_agents::{Activation, InferenceMlp, NamedTensor, TradingPolicy};
use ratchet_backtest::{Backtest, Frequency, MarketPolicy, PriceSeries, simulate_policy};
use ratchet_env::execution::Costs;
use ratchet_env::{MarketData, Rng};

const BARS: usize = 1_000_000;
/// The default feature set's width and window.
const WIDTH: usize = 11;
const WINDOW: usize = 10;

fn network(rng: &mut Rng) -> InferenceMlp {
    network_of(rng, WINDOW * WIDTH + 2)
}

/// A 64x64 tanh network with `inputs` inputs and 3 outputs.
fn network_of(rng: &mut Rng, inputs: usize) -> InferenceMlp {
    let sizes = [inputs, 64, 64, 3];
    let tensors: Vec<NamedTensor> = sizes
        .windows(2)
        .enumerate()
        .flat_map(|(i, io)| {
            let scale = 1.0 / (io[0] as f64).sqrt();
            let w: Vec<f32> = (0..io[0] * io[1])
                .map(|_| (rng.normal() * scale) as f32)
                .collect();
            [
                NamedTensor::new(format!("layers.{i}.weight"), vec![io[0], io[1]], w),
                NamedTensor::new(format!("layers.{i}.bias"), vec![io[1]], vec![0.0; io[1]]),
            ]
        })
        .collect();
    InferenceMlp::from_tensors(&tensors, "", Activation::Tanh, Default::default()).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng::seed_from(1);
    let mut close = Vec::with_capacity(BARS);
    let mut price = 100.0;
    for _ in 0..BARS {
        price *= 1.0 + 0.01 * rng.normal();
        close.push(price);
    }
    let open: Vec<f64> = std::iter::once(100.0)
        .chain(close[..BARS - 1].iter().copied())
        .collect();
    let features: Vec<f32> = (0..BARS * WIDTH).map(|_| rng.normal() as f32).collect();
    let data = MarketData::new(features, WIDTH, open.clone(), close.clone()).unwrap();
    let timestamps: Vec<i64> = (0..BARS as i64).map(|i| i * 3_600_000).collect();
    let start = WINDOW - 1;
    let prices = PriceSeries::new(
        timestamps[start..].to_vec(),
        open[start..].to_vec(),
        close[start..].to_vec(),
    )
    .unwrap();
    let net = network(&mut rng);

    let mut group = c.benchmark_group("policy_backtest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(prices.len() as u64));
    group.bench_function("mlp_64x64_1M_bars", |b| {
        b.iter(|| {
            let mut policy = MarketPolicy::new(
                TradingPolicy::new(net.clone(), true).unwrap(),
                &data,
                start,
                WINDOW,
            )
            .unwrap();
            let sim = simulate_policy(&prices, &mut policy, Costs::default()).unwrap();
            black_box(Backtest::new(&prices, sim, Frequency::infer(prices.timestamps())).unwrap())
        })
    });
    group.finish();

    serve_decision(c, net, &mut rng);
}

/// One bar through a served session with the default feature config (11 features, window 10:
/// the same 112-input network), then the decision; and the same with one outside value taken
/// in before each bar (a market-wide source with `missing = "last"`: 2 more columns, a
/// 132-input network), as `"external": {"vix": 13.2}` gives it.
fn serve_decision(c: &mut Criterion, net: InferenceMlp, rng: &mut Rng) {
    let plain = ratchet_data::FeatureConfig::default();
    assert_eq!(plain.window * plain.column_names().len(), WINDOW * WIDTH);
    let mut outside = plain.clone();
    outside.external.push(
        toml::from_str(
            "name = \"vix\"\nsource = \"vix.csv\"\ntimestamp = \"ts\"\ncolumns = [\"close\"]\n\
             max_staleness = \"5d\"\nmissing = \"last\"",
        )
        .unwrap(),
    );
    let outside_net = network_of(rng, outside.window * outside.column_names().len() + 2);
    let mut group = c.benchmark_group("serve");
    group.throughput(Throughput::Elements(1));
    for (name, features, net, vix) in [
        ("one_decision_default_features", plain, net, false),
        (
            "one_decision_with_outside_value",
            outside,
            outside_net,
            true,
        ),
    ] {
        let model = std::sync::Arc::new(ratchet_serve::ServedModel {
            name: "bench".into(),
            version: 1,
            version_id: "v2026-01-01--00h00".into(),
            status: ratchet_registry::VersionStatus::Production,
            feature_hash: features.hash(),
            costs: Costs::default(),
            policy: ratchet_agents::TradingPolicy::new(net, true).unwrap(),
            symbols: Vec::new(),
            loaded_at: chrono::Utc::now(),
            features,
        });
        let mut session = ratchet_serve::session::Session::new(&model).unwrap();
        let mut bars = Rng::seed_from(2);
        let mut price = 100.0;
        let mut t = 0i64;
        let mut take_bar = move |session: &mut ratchet_serve::session::Session| {
            let open = price;
            price *= 1.0 + 0.01 * bars.normal();
            t += 60_000;
            if vix {
                session
                    .observe_outside("vix", t, None, &[15.0 + bars.normal()])
                    .unwrap();
            }
            let bar = ratchet_data::Bar {
                timestamp: t,
                open,
                high: open.max(price) * 1.001,
                low: open.min(price) * 0.999,
                close: price,
                volume: 1e4,
            };
            session.push(&bar, None).unwrap();
        };
        while !session.ready() {
            take_bar(&mut session);
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                take_bar(&mut session);
                let target = session.decide(&model, false);
                session.commit(target, model.clone(), ratchet_serve::Role::Production);
                black_box(target)
            })
        });
    }
    group.finish();
}

fn forward_one_row(c: &mut Criterion) {
    let mut rng = Rng::seed_from(2);
    let net = network(&mut rng);
    let obs: Vec<f32> = (0..net.input_size()).map(|_| rng.normal() as f32).collect();
    let mut out = vec![0.0f32; net.output_size()];
    let mut group = c.benchmark_group("inference");
    group.throughput(Throughput::Elements(1));
    group.bench_function("forward_one_row_112x64x64x3", |b| {
        b.iter(|| {
            net.forward(black_box(&obs), &mut out);
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group!(benches, bench, forward_one_row);
criterion_main!(benches);
