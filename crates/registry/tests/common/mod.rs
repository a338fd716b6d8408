//! Helpers shared by the registry's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

use ratchet_registry::{
    CheckpointState, DataSource, DateRange, NamedTensor, ParentRef, TrainingRecord,
};

/// The Python with `mlflow` and `safetensors`: `RATCHET_PYTHON`, else the project venv.
/// Panics with instructions when it is missing — these tests never skip.
pub fn python() -> PathBuf {
    let path = match std::env::var_os("RATCHET_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/ratchet/venv/bin/python")
        }
    };
    assert!(
        path.exists(),
        "Python for the MLflow compatibility tests not found at {}. Create it with \
         `python3 -m venv ~/.cache/ratchet/venv && ~/.cache/ratchet/venv/bin/pip install mlflow safetensors numpy` \
         or point RATCHET_PYTHON at an interpreter that has them.",
        path.display()
    );
    path
}

/// Runs a Python script from this tests directory and parses its stdout as JSON.
pub fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let output = Command::new(python())
        .arg(&script_path)
        .args(args)
        .env("MLFLOW_ALLOW_FILE_STORE", "true")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_REGISTRY_URI")
        .output()
        .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{script} printed invalid JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    })
}

/// A deterministic pseudo-random vector (xorshift), so tests need no RNG crate.
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// A small but complete training state: an MLP's weights, Adam moments for each, a
/// replay buffer and JSON counters.
pub fn sample_state(seed: u64, hidden: usize) -> CheckpointState<'static> {
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("q_network.layers.0.weight", vec![hidden, 6]),
        ("q_network.layers.0.bias", vec![hidden]),
        ("q_network.layers.1.weight", vec![3, hidden]),
        ("q_network.layers.1.bias", vec![3]),
    ];
    let weights: Vec<NamedTensor<'static>> = shapes
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            NamedTensor::new(
                *name,
                shape.clone(),
                values(seed * 100 + i as u64, shape.iter().product()),
            )
        })
        .collect();
    let optimizer = weights
        .iter()
        .flat_map(|w| {
            [
                NamedTensor::new(
                    format!("optim.{}.moment_1", w.name),
                    w.shape.clone(),
                    values(seed + 7, w.data.len()),
                ),
                NamedTensor::new(
                    format!("optim.{}.moment_2", w.name),
                    w.shape.clone(),
                    values(seed + 8, w.data.len()),
                ),
            ]
        })
        .collect();
    CheckpointState {
        weights,
        optimizer,
        state_tensors: vec![
            NamedTensor::new("replay.observations", vec![16, 6], values(seed + 9, 96)),
            NamedTensor::new(
                "replay.actions",
                vec![16],
                (0..16).map(|i| (i % 3) as f32).collect::<Vec<f32>>(),
            ),
            NamedTensor::new("replay.position", vec![], vec![5.0]),
        ],
        state: serde_json::json!({
            "total_steps": 1000 + seed,
            "rng": { "state": [1u64, 2, 3, 4] },
            "epsilon_schedule": { "position": 0.25 },
            "episode_returns": [1.5, -0.25],
        }),
    }
}

/// A complete training record.
pub fn sample_record(feature_hash: &str, sharpe: f64, parent: Option<ParentRef>) -> TrainingRecord {
    TrainingRecord {
        feature_config: serde_json::json!({
            "window": 32, "features": ["log_return", "rsi_14", "volume_z"], "normalise": "rolling_z"
        }),
        feature_hash: feature_hash.to_string(),
        data: DataSource {
            path: "data/GOOGL.csv".into(),
            sha256: "ab".repeat(32),
            train: Some(DateRange {
                start: "2015-01-02".into(),
                end: "2020-12-31".into(),
                bars_sha256: None,
            }),
            validation: Some(DateRange {
                start: "2021-01-04".into(),
                end: "2022-12-30".into(),
                bars_sha256: None,
            }),
            test: Some(DateRange {
                start: "2023-01-03".into(),
                end: "2024-12-31".into(),
                bars_sha256: None,
            }),
            symbols: Vec::new(),
            outside: Vec::new(),
        },
        algorithm: "dqn".into(),
        hyperparameters: serde_json::json!({ "learning_rate": 0.0003, "gamma": 0.99, "batch_size": 64 }),
        seed: 42,
        device: "cpu".into(),
        crate_versions: [
            ("ratchet".to_string(), "0.1.0".to_string()),
            ("burn".to_string(), "0.22.1".to_string()),
        ]
        .into_iter()
        .collect(),
        training_steps: 20_000,
        wall_time_secs: 12.5,
        observation_shape: vec![6],
        action_count: 3,
        metrics: [
            ("sharpe".to_string(), sharpe),
            ("max_drawdown".to_string(), 0.2),
            ("total_return".to_string(), 0.1),
        ]
        .into_iter()
        .collect(),
        parent,
    }
}
