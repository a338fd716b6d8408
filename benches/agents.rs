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
//! - `ppo/cartpole_sb3_defaults_fma`: the same with `arithmetic = "fma"`.
//! - `dqn/cartpole_rl_zoo` and `dqn/cartpole_rl_zoo_plain`: one iteration = one DQN training
//!   interval with rl-baselines3-zoo's CartPole-v1 settings (256 environment steps with
//!   epsilon-greedy acting, then 128 gradient steps on 64-sample minibatches of a 256x256 ReLU
//!   Q-network), measured after `learning_starts`; double DQN (our default) and plain DQN (SB3's
//!   algorithm). `dqn/cartpole_rl_zoo_fma`: double DQN with `arithmetic = "fma"`.
//! - `peak/fma_avx512_one_core`: one iteration = 12 independent chains of 2^20 fused
//!   multiply-adds on 16-float AVX-512 vectors, the FP32 peak of one core; its throughput is in
//!   FLOPs (elements = FLOPs).
//! - `peak/mul_add_avx512_one_core`: the same with 12 chains of multiplies beside 12 chains of
//!   adds, no fused instruction: the bound of kernels that round every product (the exact
//!   arithmetic). Half the FMA peak where adds and multiplies share the FMA ports (Intel), the
//!   whole of it where adds have ports of their own (AMD Zen).
//!
//! At the end it prints a report: the CPU (model, caches, vector instructions), both peaks,
//! and DQN's FLOP rate as a fraction of each, all from the medians of this process's own
//! samples (the last [`SAMPLES`] timings of each, after criterion's warm-up), so that a figure
//! always names its machine and its peak was measured beside it.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion, Throughput, criterion_group, criterion_main};
use ratchet_agents::{Agent, Arithmetic, DeviceKind, Dqn, DqnConfig, Ppo, PpoConfig};
use ratchet_env::CartPole;

// ---------------------------------------------------------------------------------------------
// Rates measured in this process, for the report
// ---------------------------------------------------------------------------------------------

/// Samples per benchmark: criterion's measurements after its warm-up.
const SAMPLES: usize = 10;

/// Elements per second of every batch criterion timed (warm-up, then [`SAMPLES`] samples), by
/// benchmark.
static RATES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Times `f` for criterion (each call is one iteration of `elements` elements) and keeps each
/// batch's rate for [`report`].
fn timed(b: &mut Bencher, id: &str, elements: u64, mut f: impl FnMut()) {
    b.iter_custom(|iterations| {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        let elapsed = start.elapsed();
        let rate = (elements * iterations) as f64 / elapsed.as_secs_f64();
        let mut rates = RATES
            .lock()
            .expect("no benchmark panicked holding the rates");
        rates.entry(id.to_string()).or_default().push(rate);
        elapsed
    })
}

/// The median rate of benchmark `id`'s samples in this process, if it ran.
fn median_rate(id: &str) -> Option<f64> {
    let rates = RATES
        .lock()
        .expect("no benchmark panicked holding the rates");
    let all = rates.get(id)?;
    let mut r = all[all.len().saturating_sub(SAMPLES)..].to_vec();
    r.sort_by(f64::total_cmp);
    Some(r[r.len() / 2])
}

// ---------------------------------------------------------------------------------------------
// PPO
// ---------------------------------------------------------------------------------------------

/// Times `steps` more training steps of `agent` per iteration.
fn bench_training(b: &mut Bencher, id: &str, steps: u64, agent: &mut dyn Agent) {
    timed(b, id, steps, || {
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
}

/// PPO's workloads: name and arithmetic.
const PPO_WORKLOADS: [(&str, Arithmetic); 2] = [
    ("cartpole_sb3_defaults", Arithmetic::Exact),
    ("cartpole_sb3_defaults_fma", Arithmetic::Fma),
];

fn ppo(c: &mut Criterion) {
    let mut group = c.benchmark_group("ppo");
    group.sample_size(SAMPLES);
    group.measurement_time(Duration::from_secs(20));
    for (name, arithmetic) in PPO_WORKLOADS {
        let config = PpoConfig {
            arithmetic,
            ..PpoConfig::default()
        };
        let steps = config.n_steps as u64;
        group.throughput(Throughput::Elements(steps));
        let mut agent = Ppo::new(config, vec![CartPole::default()], DeviceKind::Cpu, 0)
            .expect("PPO on CartPole builds");
        group.bench_function(name, |b| {
            bench_training(b, &format!("ppo/{name}"), steps, &mut agent)
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// DQN
// ---------------------------------------------------------------------------------------------

/// DQN's workloads: name, double DQN, arithmetic.
const DQN_WORKLOADS: [(&str, bool, Arithmetic); 3] = [
    ("cartpole_rl_zoo", true, Arithmetic::Exact),
    ("cartpole_rl_zoo_fma", true, Arithmetic::Fma),
    ("cartpole_rl_zoo_plain", false, Arithmetic::Exact),
];

fn dqn_config(double_q: bool, arithmetic: Arithmetic) -> DqnConfig {
    DqnConfig {
        double_q,
        arithmetic,
        ..DqnConfig::rl_zoo_cartpole()
    }
}

fn dqn(c: &mut Criterion) {
    let mut group = c.benchmark_group("dqn");
    group.sample_size(SAMPLES);
    group.measurement_time(Duration::from_secs(20));
    for (name, double_q, arithmetic) in DQN_WORKLOADS {
        let config = dqn_config(double_q, arithmetic);
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
            bench_training(b, &format!("dqn/{name}"), steps, &mut agent)
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

/// [`fma_loop_avx512`]'s FLOPs as separate multiplies and adds: `CHAINS` chains of each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn mul_add_loop_avx512(iterations: usize) -> f32 {
    use std::arch::x86_64::*;
    let (x, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut products = [_mm512_set1_ps(0.5); CHAINS];
    let mut sums = [_mm512_set1_ps(0.5); CHAINS];
    for _ in 0..iterations {
        for (p, s) in products.iter_mut().zip(&mut sums) {
            *p = _mm512_mul_ps(*p, x);
            *s = _mm512_add_ps(*s, c);
        }
    }
    products
        .iter()
        .chain(&sums)
        .map(|&a| _mm512_reduce_add_ps(a))
        .sum()
}

fn peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let mut group = c.benchmark_group("peak");
        group.sample_size(SAMPLES);
        let flops = (FMA_ITERATIONS * CHAINS * 16 * 2) as u64;
        group.throughput(Throughput::Elements(flops));
        group.bench_function("fma_avx512_one_core", |b| {
            timed(b, "peak/fma_avx512_one_core", flops, || {
                // SAFETY: the CPU has AVX-512F (checked just above).
                black_box(unsafe { fma_loop_avx512(black_box(FMA_ITERATIONS)) });
            })
        });
        group.bench_function("mul_add_avx512_one_core", |b| {
            timed(b, "peak/mul_add_avx512_one_core", flops, || {
                // SAFETY: as above.
                black_box(unsafe { mul_add_loop_avx512(black_box(FMA_ITERATIONS)) });
            })
        });
        group.finish();
        return;
    }
    eprintln!("peak: skipped, this CPU has no AVX-512F");
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// FLOPs of DQN per environment step with `config` on CartPole (4 inputs, 2 actions): each
/// gradient step's forward passes (the online network on s, the target network on s', and for
/// double DQN the online network on s' too) and backward pass (weight gradients: one forward
/// pass's worth; input gradients of every layer but the first), two FLOPs per multiply-add.
fn dqn_flops_per_step(config: &DqnConfig) -> f64 {
    let widths: Vec<usize> = [4]
        .iter()
        .chain(&config.hidden)
        .chain(&[2])
        .copied()
        .collect();
    let products: Vec<usize> = widths.windows(2).map(|w| w[0] * w[1]).collect();
    let forward: usize = products.iter().sum();
    let backward = forward + products[1..].iter().sum::<usize>();
    let passes = if config.double_q { 3 } else { 2 };
    let per_gradient_step = 2 * config.batch_size * (passes * forward + backward);
    (per_gradient_step as u64 * config.gradient_steps) as f64 / config.train_freq as f64
}

/// Prints the CPU, the peaks and DQN's fraction of them, from what this process measured.
fn report(_: &mut Criterion) {
    println!("report: cpu: {}", ratchet_agents::cpu::cpu());
    println!("report: load average: {}", load_average());
    let fma = median_rate("peak/fma_avx512_one_core");
    let exact = median_rate("peak/mul_add_avx512_one_core");
    for (label, peak) in [("FMA peak", fma), ("no-FMA bound", exact)] {
        match peak {
            Some(p) => println!("report: one core's {label}: {:.1} GFLOP/s", p / 1e9),
            None => println!("report: one core's {label}: not measured in this run"),
        }
    }
    for (name, double_q, arithmetic) in DQN_WORKLOADS {
        let Some(steps) = median_rate(&format!("dqn/{name}")) else {
            continue;
        };
        let per_step = dqn_flops_per_step(&dqn_config(double_q, arithmetic));
        let flops = steps * per_step;
        let fraction = |peak: Option<f64>| match peak {
            Some(p) => format!("{:.0}%", 100.0 * flops / p),
            None => "unmeasured".to_string(),
        };
        println!(
            "report: dqn/{name}: {steps:.0} env steps/s x {:.1} MFLOP = {:.1} GFLOP/s: {} of the \
             FMA peak, {} of the no-FMA bound",
            per_step / 1e6,
            flops / 1e9,
            fraction(fma),
            fraction(exact),
        );
    }
    for (name, _) in PPO_WORKLOADS {
        if let Some(steps) = median_rate(&format!("ppo/{name}")) {
            println!("report: ppo/{name}: {steps:.0} env steps/s");
        }
    }
}

/// The 1-, 5- and 15-minute load averages (Linux), or why not.
fn load_average() -> String {
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(s) => s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        Err(e) => format!("unknown ({e})"),
    }
}

criterion_group!(benches, peak, ppo, dqn, report);
criterion_main!(benches);
