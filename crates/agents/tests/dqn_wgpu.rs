//! DQN on the `wgpu` device gives the losses and weights it gives on the CPU.
//!
//! As for PPO's wgpu test: on CI, Debian's `mesa-vulkan-drivers` (lavapipe) supplies a software
//! Vulkan adapter; without any adapter this fails, and `RATCHET_SKIP_WGPU=1` skips it explicitly.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_agents::{DeviceKind, Dqn, DqnConfig};
use ratchet_env::CartPole;
use std::sync::atomic::AtomicBool;

/// Four learning phases of eight gradient steps, double DQN with a dueling head and Polyak
/// updates. Acting stays uniformly random (epsilon 1 throughout), so both devices see the same
/// transitions and only the arithmetic can differ.
fn run(kind: DeviceKind) -> (Vec<f64>, Vec<f32>) {
    let config = DqnConfig {
        hidden: vec![32, 32],
        learning_starts: 64,
        batch_size: 32,
        train_freq: 16,
        gradient_steps: 8,
        target_update_interval: 16,
        tau: 0.5,
        dueling: true,
        learning_rate: 1e-3,
        exploration_final_eps: 1.0,
        ..DqnConfig::default()
    };
    let envs = vec![CartPole::default(), CartPole::default()];
    let mut dqn = Dqn::new(config, envs, kind, 5).unwrap_or_else(|e| {
        panic!("{e} (to skip the wgpu tests explicitly, set RATCHET_SKIP_WGPU=1)")
    });
    let mut losses = Vec::new();
    dqn.train(
        64 + 4 * 32,
        &mut |log| losses.push(log.get("train/loss").unwrap()),
        &AtomicBool::new(false),
    )
    .unwrap();
    let weights = dqn
        .state()
        .unwrap()
        .tensors
        .into_iter()
        .filter(|t| t.name.starts_with("q_network."))
        .flat_map(|t| t.data.into_owned())
        .collect();
    (losses, weights)
}

#[test]
fn dqn_updates_on_wgpu_match_flex() {
    if std::env::var("RATCHET_SKIP_WGPU").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: RATCHET_SKIP_WGPU=1 was set, wgpu is not tested");
        return;
    }
    let (gpu, gpu_weights) = run(DeviceKind::Wgpu);
    let (cpu, cpu_weights) = run(DeviceKind::Cpu);
    assert_eq!(gpu.len(), 4);
    assert_eq!(gpu.len(), cpu.len());
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!(
            (g - c).abs() <= 1e-3 * c.abs().max(1e-3),
            "loss on wgpu {g} vs flex {c}"
        );
    }
    let max_diff = gpu_weights
        .iter()
        .zip(&cpu_weights)
        .map(|(g, c)| (g - c).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-3, "weights differ by up to {max_diff}");
}
