//! PPO trades the bundled GOOGL daily bars better than a random policy on its training range.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use ratchet_agents::{DeviceKind, InferenceMlp, Ppo, PpoConfig, argmax};
use std::sync::atomic::AtomicBool;

#[test]
fn ppo_beats_a_random_policy_on_googl_training_range() {
    let data = common::googl();
    let train = 0..data.rows() * 4 / 5;
    let envs = common::training_envs(&data, train.clone(), 4);
    let config = PpoConfig {
        n_steps: 512,
        ent_coef: 0.01,
        ..PpoConfig::default()
    };
    let mut ppo = Ppo::new(config, envs, DeviceKind::Cpu, 7).unwrap();
    ppo.train(60_000, &mut |_| {}, &AtomicBool::new(false))
        .unwrap();

    let policy: InferenceMlp = ppo.policy();
    let mut logits = vec![0.0f32; policy.output_size()];
    let trained = common::full_range_return(&data, train.clone(), |obs| {
        policy.forward(obs, &mut logits);
        argmax(&logits)
    });
    let random = common::random_policy_return(&data, train.clone(), 20);
    eprintln!("log growth on the training range: PPO {trained:.3}, random policy {random:.3}");
    assert!(
        trained > random + 0.5,
        "PPO's log growth {trained:.3} does not beat the random policy's {random:.3}"
    );
}
