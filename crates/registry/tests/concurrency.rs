//! Several processes writing one store at once, and processes killed mid-write.
//!
//! Writers are real processes: this test binary re-invoked with `--exact writer` and a
//! `RATCHET_REGISTRY_WRITER` configuration. Without that variable `writer` runs one writer
//! in-process as an ordinary test.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratchet_mlflow::{FileStore, Metric, TrackingStore};
use ratchet_registry::{ModelRef, Registry, VersionFilter, VersionSummary};
use serde::{Deserialize, Serialize};
use serde_json::json;

const WRITER_ENV: &str = "RATCHET_REGISTRY_WRITER";

#[derive(Serialize, Deserialize, Clone)]
struct WriterConfig {
    store: String,
    writer: u64,
    /// Versions to write; `None` = until killed.
    count: Option<u64>,
    /// `register` (full registration), `raw` (store-level create_model_version only) or
    /// `mixed` (registrations, tags, promotions, runs, metrics — for the crash test).
    mode: String,
}

fn run_writer(config: &WriterConfig) {
    let store = Arc::new(FileStore::open(&config.store).unwrap());
    let registry = Registry::new(store.clone());
    let exp = store.get_or_create_experiment("concurrency").unwrap();
    let run = store
        .create_run(
            &exp.experiment_id,
            &format!("writer-{}", config.writer),
            &[],
        )
        .unwrap();
    let mut seq = 0u64;
    while config.count.is_none_or(|n| seq < n) {
        match config.mode.as_str() {
            "raw" => {
                store.create_registered_model("raw").unwrap();
                let tags = [
                    ("writer".to_string(), config.writer.to_string()),
                    ("seq".to_string(), seq.to_string()),
                ];
                store
                    .create_model_version(
                        "raw",
                        &format!("runs:/{}/model", run.run_id),
                        &run.run_id,
                        &tags,
                        None,
                    )
                    .unwrap();
            }
            "register" | "mixed" => {
                let hidden = if config.mode == "mixed" { 64 } else { 4 };
                let mut state = common::sample_state(config.writer * 1000 + seq, hidden);
                if config.mode == "mixed" {
                    // A replay buffer big enough that kills often land inside a write.
                    state.state_tensors.push(ratchet_registry::NamedTensor::new(
                        "replay.next_observations",
                        vec![50_000, 6],
                        common::values(seq, 300_000),
                    ));
                }
                let mut record = common::sample_record("features-a", 1.0, None);
                record.metrics.insert("writer".into(), config.writer as f64);
                record.metrics.insert("seq".into(), seq as f64);
                let name = if config.mode == "mixed" {
                    "crashy"
                } else {
                    "concurrent"
                };
                let version = registry.register(name, &run.run_id, state, record).unwrap();
                if config.mode == "mixed" {
                    let number = version.version.unwrap();
                    store
                        .set_model_version_tag(name, number, "writer", &config.writer.to_string())
                        .unwrap();
                    registry
                        .promote(&ModelRef::number(name, number), "production")
                        .unwrap();
                    store
                        .log_metrics(&run.run_id, &[Metric::now("seq", seq as f64, seq as i64)])
                        .unwrap();
                    let extra = store
                        .create_run(
                            &exp.experiment_id,
                            &format!("w{}-{seq}", config.writer),
                            &[],
                        )
                        .unwrap();
                    store
                        .log_params(&extra.run_id, &[("seq".into(), seq.to_string())])
                        .unwrap();
                }
            }
            other => panic!("unknown writer mode {other}"),
        }
        seq += 1;
    }
}

/// Child-process entry point; as a plain test, one writer registering five versions.
#[test]
fn writer() {
    if let Ok(config) = std::env::var(WRITER_ENV) {
        run_writer(&serde_json::from_str(&config).unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = WriterConfig {
        store: dir.path().join("mlruns").to_string_lossy().into(),
        writer: 0,
        count: Some(5),
        mode: "register".into(),
    };
    run_writer(&config);
    let registry = Registry::open(&config.store).unwrap();
    let versions = registry
        .list("concurrent", &VersionFilter::default())
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
}

fn spawn_writer(config: &WriterConfig) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, serde_json::to_string(config).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("test binary re-runs itself")
}

fn wait_ok(child: Child) {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "writer failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn metric(v: &VersionSummary, key: &str) -> u64 {
    v.metrics[key] as u64
}

#[test]
fn eight_processes_register_two_hundred_versions() {
    const WRITERS: u64 = 8;
    const EACH: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mlruns");
    FileStore::open(&root).unwrap();
    let children: Vec<Child> = (0..WRITERS)
        .flat_map(|writer| {
            ["register", "raw"].map(|mode| {
                spawn_writer(&WriterConfig {
                    store: root.to_string_lossy().into(),
                    writer,
                    count: Some(EACH),
                    mode: mode.into(),
                })
            })
        })
        .collect();
    for child in children {
        wait_ok(child);
    }

    let store = Arc::new(FileStore::open(&root).unwrap());
    let registry = Registry::new(store.clone());
    let expected_numbers: Vec<u64> = (1..=WRITERS * EACH).collect();
    let expected_pairs: BTreeSet<(u64, u64)> = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |s| (w, s)))
        .collect();

    // Full registrations: consecutive numbers, nothing lost, ids and semvers unique.
    let versions = registry
        .list("concurrent", &VersionFilter::default())
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        expected_numbers
    );
    let pairs: BTreeSet<(u64, u64)> = versions
        .iter()
        .map(|v| (metric(v, "writer"), metric(v, "seq")))
        .collect();
    assert_eq!(pairs, expected_pairs);
    let ids: BTreeSet<&str> = versions
        .iter()
        .map(|v| v.version_id.as_deref().unwrap())
        .collect();
    assert_eq!(ids.len(), versions.len(), "human ids are unique");
    let semvers: BTreeSet<String> = versions
        .iter()
        .map(|v| v.semver.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(semvers.len(), versions.len(), "semvers are unique");
    for v in [
        &versions[0],
        &versions[versions.len() / 2],
        &versions[versions.len() - 1],
    ] {
        let loaded = registry
            .load_checkpoint(&ModelRef::number("concurrent", v.version))
            .unwrap();
        assert_eq!(loaded.metadata.version_id, v.version_id.clone().unwrap());
    }

    // Store-level creation alone (the atomic claim of version-N).
    let raw = store.list_model_versions("raw").unwrap();
    assert_eq!(
        raw.iter().map(|v| v.version).collect::<Vec<_>>(),
        expected_numbers
    );
    let raw_pairs: BTreeSet<(u64, u64)> = raw
        .iter()
        .map(|v| {
            (
                v.tags["writer"].parse().unwrap(),
                v.tags["seq"].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(raw_pairs, expected_pairs);

    // MLflow reads them all.
    let out = common::run_python("mlflow_read.py", &[root.to_str().unwrap()]);
    assert_eq!(out["warnings"], json!([]));
    for model in out["registered_models"].as_array().unwrap() {
        let numbers: Vec<u64> = model["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, expected_numbers, "{}", model["name"]);
    }
    assert_eq!(out["registered_models"].as_array().unwrap().len(), 2);
}

/// Deterministic pauses between 100 and 700 ms.
fn pause(round: u64) -> Duration {
    Duration::from_millis(100 + (round * 7919 + 13) % 600)
}

fn kill_all(children: Vec<Child>) {
    for mut child in children {
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
    }
}

fn assert_store_readable(root: &Path) -> usize {
    let store = Arc::new(FileStore::open(root).unwrap());
    let registry = Registry::new(store.clone());
    let versions = match registry.list("crashy", &VersionFilter::default()) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => panic!("listing after kills: {e}"),
    };
    // Every visible version is complete: all checks pass on its checkpoint.
    for v in &versions {
        let report = registry
            .validate(&ModelRef::number("crashy", v.version))
            .unwrap();
        let failed: Vec<_> = report
            .checks
            .iter()
            .filter(|c| !c.ok && c.check != "status update")
            .collect();
        assert!(
            failed.is_empty(),
            "version {} is partial: {failed:?}",
            v.version
        );
    }
    if let Ok(production) = registry.summary(&ModelRef::parse("models:/crashy@production").unwrap())
    {
        assert!(versions.iter().any(|v| v.version == production.version));
    }
    for exp in store.list_experiments().unwrap() {
        for run in store.list_runs(&exp.experiment_id).unwrap() {
            store.get_run(&run.run_id).unwrap();
        }
    }
    versions.len()
}

#[test]
fn killed_writers_leave_a_store_both_readers_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mlruns");
    FileStore::open(&root).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while round < 8 && Instant::now() < deadline {
        let children: Vec<Child> = (0..3)
            .map(|w| {
                spawn_writer(&WriterConfig {
                    store: root.to_string_lossy().into(),
                    writer: round * 10 + w,
                    count: None,
                    mode: "mixed".into(),
                })
            })
            .collect();
        std::thread::sleep(pause(round));
        kill_all(children);
        assert_store_readable(&root);
        round += 1;
    }
    let ours = assert_store_readable(&root);
    assert!(
        ours > 0,
        "the writers registered nothing before being killed; the test proves nothing"
    );

    let out = common::run_python("mlflow_read.py", &[root.to_str().unwrap(), "--load-models"]);
    assert_eq!(out["warnings"], json!([]), "MLflow logged warnings");
    let model = out["registered_models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "crashy")
        .unwrap();
    let theirs: Vec<u64> = model["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    let registry = Registry::open(root.to_str().unwrap()).unwrap();
    let mine: Vec<u64> = registry
        .list("crashy", &VersionFilter::default())
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(theirs, mine, "MLflow and Ratchet see the same versions");
    for v in model["versions"].as_array().unwrap() {
        assert_eq!(v["mlmodel"]["flavors"], json!(["ratchet"]));
    }
}
