//! Environment steps per second: a single `TradingEnv`, a `VecEnv` of 64, and `CartPole`.
//!
//! The trading observation matches gym-anytrading's `stocks-v0` at window 10: two features
//! per bar (close and its one-bar difference), over 100,000 synthetic bars. Actions are
//! random (drawn up front, so the generator is not timed) and episodes reset when they end,
//! as in a training loop. `scripts/compare_env_speed.sh` runs this next to gym-anytrading.
//!
//! ```text
//! cargo bench --bench env_step
//! ```

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_env::{
    CartPole, Env, EpisodeMode, MarketData, RewardKind, Rng, TradingConfig, TradingEnv, VecEnv,
};

const BARS: usize = 100_000;
const STEPS: usize = 100_000;
const N_ENVS: usize = 64;

fn synthetic_market() -> Arc<MarketData> {
    let mut rng = Rng::seed_from(2024);
    let (mut open, mut close, mut features) = (vec![], vec![], vec![]);
    let mut price = 100.0f64;
    for _ in 0..BARS {
        let o = price * (1.0 + 0.001 * rng.normal());
        let c = o * (1.0 + 0.01 * rng.normal());
        features.extend([c as f32, (c - price) as f32]);
        open.push(o);
        close.push(c);
        price = c;
    }
    Arc::new(MarketData::new(features, 2, open, close).expect("synthetic data is valid"))
}

fn random_actions(n: usize, actions: usize) -> Vec<usize> {
    let mut rng = Rng::seed_from(7);
    (0..n).map(|_| rng.below(actions as u64) as usize).collect()
}

fn trading(c: &mut Criterion) {
    let data = synthetic_market();
    let mut group = c.benchmark_group("trading_env");
    for reward in [
        RewardKind::LogReturn,
        RewardKind::Pnl,
        RewardKind::DifferentialSharpe,
    ] {
        let config = TradingConfig {
            reward,
            ..TradingConfig::default()
        };
        let name = serde_json::to_value(reward).unwrap();
        let name = name.as_str().unwrap();

        let mut env = TradingEnv::new(
            data.clone(),
            0..BARS,
            config.clone(),
            EpisodeMode::RandomStarts,
        )
        .unwrap();
        let actions = random_actions(STEPS, env.action_count());
        let mut obs = vec![0.0f32; env.observation_size()];
        let mut rng = Rng::seed_from(1);
        env.reset(&mut rng, &mut obs);
        group.throughput(Throughput::Elements(STEPS as u64));
        group.bench_function(format!("single/{name}"), |b| {
            b.iter(|| {
                for &a in &actions {
                    if env.step(a, &mut obs).done() {
                        env.reset(&mut rng, &mut obs);
                    }
                }
                black_box(&obs);
            })
        });

        let envs = (0..N_ENVS)
            .map(|_| {
                TradingEnv::new(
                    data.clone(),
                    0..BARS,
                    config.clone(),
                    EpisodeMode::RandomStarts,
                )
                .unwrap()
            })
            .collect();
        let mut vec_env = VecEnv::new(envs, 1);
        let batches = STEPS / N_ENVS;
        let actions = random_actions(batches * N_ENVS, vec_env.action_count());
        group.throughput(Throughput::Elements((batches * N_ENVS) as u64));
        group.bench_function(format!("vec{N_ENVS}/{name}"), |b| {
            b.iter(|| {
                for batch in actions.chunks_exact(N_ENVS) {
                    black_box(vec_env.step(batch).rewards);
                }
            })
        });
    }
    group.finish();
}

fn cartpole(c: &mut Criterion) {
    let mut group = c.benchmark_group("cartpole");
    let mut env = CartPole::default();
    let actions = random_actions(STEPS, 2);
    let mut obs = [0.0f32; 4];
    let mut rng = Rng::seed_from(1);
    env.reset(&mut rng, &mut obs);
    group.throughput(Throughput::Elements(STEPS as u64));
    group.bench_function("single", |b| {
        b.iter(|| {
            for &a in &actions {
                if env.step(a, &mut obs).done() {
                    env.reset(&mut rng, &mut obs);
                }
            }
            black_box(&obs);
        })
    });
    group.finish();
}

criterion_group!(benches, trading, cartpole);
criterion_main!(benches);
