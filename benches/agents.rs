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

use std::hint::black_box;
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
                .train(steps, &mut |log| {
                    black_box(log);
                })
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
        agent.train(warm_up, &mut |_| {}).expect("training runs");
        group.bench_function(name, |b| {
            b.iter(|| {
                agent
                    .train(steps, &mut |log| {
                        black_box(log);
                    })
                    .expect("training runs");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ppo, dqn);
criterion_main!(benches);
