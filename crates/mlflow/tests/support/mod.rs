//! Helpers for the tests that talk to a real `mlflow server`: starting one
//! ([`mlflow_server`]), putting a proxy that loses answers in front of it ([`fault_proxy`]),
//! and the Python with MLflow's own client that checks what the server holds.
//!
//! Also included by the workspace's CLI tests (`#[path]`), so it uses only std, `ureq`,
//! `tiny_http`, `tempfile`, `serde_json` and `socket2`.
#![allow(dead_code)] // each test binary uses a different subset

pub mod closed_port;
pub mod fault_proxy;
pub mod mlflow_server;

use std::path::PathBuf;
use std::process::Command;

/// The Python with `mlflow`: `$RATCHET_PYTHON`, else `~/.cache/ratchet/venv/bin/python`.
/// Panics with instructions when it is missing — these tests never skip.
pub fn python() -> PathBuf {
    let python = std::env::var_os("RATCHET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
                .join(".cache/ratchet/venv/bin/python")
        });
    assert!(
        python.exists(),
        "no Python at {} — this test needs a venv with mlflow (scripts/test.sh creates ~/.cache/ratchet/venv), or RATCHET_PYTHON pointing at one",
        python.display()
    );
    python
}

/// Runs Python with `args` (a script and its arguments, or `-c` and code) and parses its
/// stdout as JSON; panics with its stderr when it fails.
pub fn run_python(args: &[&str]) -> serde_json::Value {
    let output = Command::new(python())
        .args(args)
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("MLFLOW_REGISTRY_URI")
        .output()
        .expect("cannot run Python");
    assert!(
        output.status.success(),
        "Python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "Python printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Everything the server at `url` holds, as MLflow's own client reads it (see
/// `server_contents.py` for the layout).
pub fn server_contents(url: &str) -> serde_json::Value {
    run_python(&["-c", include_str!("server_contents.py"), url])
}
