//! PPO on the `wgpu` device gives the losses it gives on the CPU.
//!
//! On CI, Debian's `mesa-vulkan-drivers` (lavapipe) supplies a software Vulkan adapter, so these
//! tests run for real there. Without any adapter they fail; `RATCHET_SKIP_WGPU=1` skips them
//! explicitly (and says so).

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_agents::{AgentError, DeviceKind, Ppo, PpoConfig, device};
use ratchet_env::CartPole;
use std::sync::atomic::AtomicBool;

fn skipped() -> bool {
    let skip = std::env::var("RATCHET_SKIP_WGPU").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("SKIPPED: RATCHET_SKIP_WGPU=1 was set, wgpu is not tested");
    }
    skip
}

fn config() -> PpoConfig {
    PpoConfig {
        n_steps: 128,
        batch_size: 64,
        n_epochs: 2,
        ent_coef: 0.01,
        ..PpoConfig::default()
    }
}

/// Per update: (policy_loss, value_loss, entropy, approx_kl).
fn run(kind: DeviceKind) -> (Vec<[f64; 4]>, Vec<f32>) {
    let envs = vec![CartPole::default(), CartPole::default()];
    let mut ppo = Ppo::new(config(), envs, kind, 11).unwrap_or_else(|e| {
        panic!("{e} (to skip the wgpu tests explicitly, set RATCHET_SKIP_WGPU=1)")
    });
    let mut losses = Vec::new();
    ppo.train(
        3 * 256,
        &mut |log| {
            let get = |name| log.get(name).unwrap();
            losses.push([
                get("train/policy_loss"),
                get("train/value_loss"),
                get("train/entropy"),
                get("train/approx_kl"),
            ]);
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    let weights = ppo.state().unwrap().tensors;
    let actor = weights
        .into_iter()
        .filter(|t| t.name.starts_with("actor."))
        .flat_map(|t| t.data.into_owned())
        .collect();
    (losses, actor)
}

#[test]
fn ppo_updates_on_wgpu_match_flex() {
    if skipped() {
        return;
    }
    let (gpu, gpu_weights) = run(DeviceKind::Wgpu);
    let (cpu, cpu_weights) = run(DeviceKind::Cpu);
    assert_eq!(gpu.len(), 3);
    eprintln!("wgpu: {gpu:?}\nflex: {cpu:?}");
    for (update, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        for (name, (x, y)) in ["policy_loss", "value_loss", "entropy", "approx_kl"]
            .iter()
            .zip(g.iter().zip(c))
        {
            let tolerance = 1e-6 + 1e-4 * y.abs();
            assert!(
                (x - y).abs() <= tolerance,
                "update {update}: {name} on wgpu {x} vs flex {y}"
            );
        }
    }
    let max_diff = gpu_weights
        .iter()
        .zip(&cpu_weights)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("largest weight difference after 3 updates: {max_diff:e}");
    assert!(max_diff < 1e-5, "weights differ by up to {max_diff}");
}

/// Asking for wgpu where no adapter matches is an error that says what to do, not a panic.
/// Checked in a child process, because a process initialises wgpu once.
#[test]
fn a_missing_adapter_is_a_clear_error() {
    if std::env::var_os("RATCHET_WGPU_CHILD").is_some() {
        match device(DeviceKind::Wgpu) {
            Err(AgentError::Device(msg)) => {
                assert!(msg.contains("no usable wgpu adapter"), "{msg}");
                assert!(msg.contains("mesa-vulkan-drivers") && msg.contains("--device cpu"));
            }
            other => panic!("expected a device error, got {other:?}"),
        }
        // The cached answer is the same error.
        assert!(device(DeviceKind::Wgpu).is_err());
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_missing_adapter_is_a_clear_error",
            "--nocapture",
        ])
        .env("RATCHET_WGPU_CHILD", "1")
        // Ask for a discrete GPU that no machine has.
        .env("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(99)")
        .status()
        .unwrap();
    assert!(status.success(), "the child process failed: {status}");
}
