//! Agent training speed in environment steps per second, on CartPole with Stable-Baselines3's
//! hyperparameters. `scripts/compare_rl_speed.sh` runs this next to SB3.
//!
//! ```text
//! cargo bench --bench agents
//! ```
//!
//! - `ppo/cartpole_sb3_defaults`: one iteration = one full PPO iteration (a 2048-step rollout
//!   with one environment, then 10 epochs of 64-sample minibatches on a 64x64 tanh actor and
//!   critic), the SB3 `PPO("MlpPolicy", "CartPole-v1")` workload.
//! - `dqn/cartpole_rl_zoo` and `dqn/cartpole_rl_zoo_plain`: one iteration = one DQN training
//!   interval with rl-baselines3-zoo's CartPole-v1 settings (256 environment steps with
//!   epsilon-greedy acting, then 128 gradient steps on 64-sample minibatches of a 256x256 ReLU
//!   Q-network), measured after `learning_starts`; double DQN (our default) and plain DQN (SB3's
//!   algorithm).
//! - `peak/fma_avx512_one_core`: one iteration = 12 independent chains of 2^20 fused
//!   multiply-adds on 16-float AVX-512 vectors, the FP32 peak of one core; its throughput is in
//!   FLOPs (elements = FLOPs). `scripts/compare_rl_speed.sh` divides DQN's FLOP rate by it.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratchet_agents::{DeviceKind, Dqn, DqnConfig, Ppo, PpoConfig};
use ratchet_env::CartPole;

// ---------------------------------------------------------------------------------------------
// PPO
// ---------------------------------------------------------------------------------------------

fn ppo(c: &mut Criterion) {
    let config = PpoConfig::default();
    let steps = config.n_steps as u64;
    let mut group = c.benchmark_group("ppo");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(steps));
    let mut agent = Ppo::new(config, vec![CartPole::default()], DeviceKind::Cpu, 0)
        .expect("PPO on CartPole builds");
    group.bench_function("cartpole_sb3_defaults", |b| {
        b.iter(|| {
            agent
                .train(
                    steps,
                    &mut |log| {
                        black_box(log);
                    },
                    &AtomicBool::new(false),
                )
                .expect("training runs");
        })
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// DQN
// ---------------------------------------------------------------------------------------------

fn dqn(c: &mut Criterion) {
    let mut group = c.benchmark_group("dqn");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, double_q) in [("cartpole_rl_zoo", true), ("cartpole_rl_zoo_plain", false)] {
        let config = DqnConfig {
            double_q,
            ..DqnConfig::rl_zoo_cartpole()
        };
        let steps = config.train_freq;
        group.throughput(Throughput::Elements(steps));
        let mut agent = Dqn::new(
            config.clone(),
            vec![CartPole::default()],
            DeviceKind::Cpu,
            0,
        )
        .expect("DQN on CartPole builds");
        // Past learning_starts and the first learning phase, so that every iteration learns.
        let warm_up = config.learning_starts.div_ceil(steps) * steps;
        agent
            .train(warm_up, &mut |_| {}, &AtomicBool::new(false))
            .expect("training runs");
        group.bench_function(name, |b| {
            b.iter(|| {
                agent
                    .train(
                        steps,
                        &mut |log| {
                            black_box(log);
                        },
                        &AtomicBool::new(false),
                    )
                    .expect("training runs");
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// The FP32 peak of one core
// ---------------------------------------------------------------------------------------------

/// Independent accumulators: more than an FMA's latency times the FMAs issued per cycle, so the
/// loop is bound by throughput.
const CHAINS: usize = 12;
const FMA_ITERATIONS: usize = 1 << 20;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_loop_avx512(iterations: usize) -> f32 {
    use std::arch::x86_64::*;
    let (x, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(0.5); CHAINS];
    for _ in 0..iterations {
        for a in &mut acc {
            *a = _mm512_fmadd_ps(*a, x, c);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
}

fn peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let mut group = c.benchmark_group("peak");
        group.sample_size(10);
        group.throughput(Throughput::Elements(
            (FMA_ITERATIONS * CHAINS * 16 * 2) as u64,
        ));
        group.bench_function("fma_avx512_one_core", |b| {
            // SAFETY: the CPU has AVX-512F (checked just above).
            b.iter(|| black_box(unsafe { fma_loop_avx512(black_box(FMA_ITERATIONS)) }))
        });
        group.finish();
        return;
    }
    eprintln!("peak: skipped, this CPU has no AVX-512F");
}

criterion_group!(benches, ppo, dqn, peak);
criterion_main!(benches);
