//! DQN trades the bundled GOOGL daily bars better than a random policy on its training range.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use ratchet_agents::{DeviceKind, Dqn, DqnConfig, argmax};
use std::sync::atomic::AtomicBool;

#[test]
fn dqn_beats_a_random_policy_on_googl_training_range() {
    let data = common::googl();
    let train = 0..data.rows() * 4 / 5;
    let steps = 60_000;
    let config = DqnConfig {
        learning_rate: 1e-3,
        buffer_size: 100_000,
        learning_starts: 1_000,
        batch_size: 64,
        target_update_interval: 1_000,
        exploration_fraction: 0.3,
        total_timesteps: steps,
        ..DqnConfig::default()
    };
    let envs = common::training_envs(&data, train.clone(), 4);
    let mut dqn = Dqn::new(config, envs, DeviceKind::Cpu, 7).unwrap();
    dqn.train(steps, &mut |_| {}, &AtomicBool::new(false))
        .unwrap();

    let policy = dqn.policy();
    let mut q = vec![0.0f32; policy.output_size()];
    let trained = common::full_range_return(&data, train.clone(), |obs| {
        policy.forward(obs, &mut q);
        argmax(&q)
    });
    let random = common::random_policy_return(&data, train.clone(), 20);
    eprintln!("log growth on the training range: DQN {trained:.3}, random policy {random:.3}");
    assert!(
        trained > random + 0.5,
        "DQN's log growth {trained:.3} does not beat the random policy's {random:.3}"
    );
}
