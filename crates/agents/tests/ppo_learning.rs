//! PPO learns CartPole with Stable-Baselines3's default hyperparameters.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_agents::{DeviceKind, Ppo, PpoConfig};
use ratchet_env::CartPole;
use std::sync::atomic::AtomicBool;

/// SB3 with the same defaults reached a mean return of 475 after 65,536 steps on this machine;
/// the issue asks for it within 100,000. The mean is over the last 100 training episodes
/// (SB3's `rollout/ep_rew_mean`), as logged after each update.
#[test]
fn ppo_reaches_475_on_cartpole_within_100k_steps() {
    let mut ppo = Ppo::new(
        PpoConfig::default(),
        vec![CartPole::default()],
        DeviceKind::Cpu,
        1,
    )
    .unwrap();
    let mut reached = None;
    let mut history = Vec::new();
    ppo.train(
        100_000,
        &mut |log| {
            if let Some(r) = log.get("rollout/ep_return_mean") {
                history.push((log.step, r.round()));
                if r >= 475.0 && reached.is_none() {
                    reached = Some(log.step);
                }
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(ppo.total_steps(), 100_000);
    let step = reached.unwrap_or_else(|| {
        panic!("mean episode return never reached 475 within 100k steps: {history:?}")
    });
    eprintln!("PPO reached a mean return of 475 after {step} steps");
}
