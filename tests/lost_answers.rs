//! `ratchet train` against a real `mlflow server` behind a proxy that loses answers (it
//! forwards the request, then answers `502 Bad Gateway`): the first answer to every create
//! and to the first metric and tag batches. The run, the model and its version must exist
//! once each, with no metric point logged twice, as MLflow's own client reads them. The
//! server keeps a file store, which (unlike the SQL store) stores a point sent twice twice.
//! And a run killed part-way through uploading a checkpoint resumes from the previous one.
//!
//! Needs the venv with `mlflow` (`$RATCHET_PYTHON`); fails, never skips, without it.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

#[path = "../crates/mlflow/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use ratchet_registry::{ModelRef, NamedTensor, Registry};
use serde_json::Value;
use support::fault_proxy::{CREATES, FaultProxy, lose_first_answers};
use support::mlflow_server::{Backend, MlflowServer};

#[test]
fn training_behind_a_proxy_that_loses_answers_registers_the_result_once() {
    let server = MlflowServer::start(Backend::FileStore);
    let proxy = FaultProxy::start(&server.url, lose_first_answers);
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--tracking-uri", &proxy.url, "train", "--steps", "2048"])
        .args(["--model-name", "flaky", "--json"])
        .env_remove("MLFLOW_TRACKING_URI")
        .env("RATCHET_CACHE_DIR", scratch.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ratchet train failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trained: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trained["model_uri"], "models:/flaky/1");
    // 4 creates and 3 batches lost their answers, and each create reached the server once
    // (registration's model lock is a registered model too, created on its own).
    assert_eq!(proxy.lost(), 7, "{:#?}", proxy.seen());
    for create in CREATES {
        let sent = proxy
            .seen()
            .iter()
            .filter(|s| s.endpoint() == create)
            .filter(|s| !String::from_utf8_lossy(&s.body).contains(".ratchet-lock"))
            .count();
        assert_eq!(sent, 1, "{create}");
    }

    let held = support::server_contents(&server.url);
    let runs = held["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run["run_id"], trained["run_id"]);
    assert_eq!(run["status"], "FINISHED");
    let histories = run["histories"].as_object().unwrap();
    assert!(histories.contains_key("train/policy_loss"), "{histories:?}");
    for (key, points) in histories {
        let points = points.as_array().unwrap();
        let distinct: BTreeSet<String> = points.iter().map(Value::to_string).collect();
        assert_eq!(distinct.len(), points.len(), "{key} has a point twice");
    }
    let versions = held["models"]["flaky"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{versions:#?}");
    assert_eq!(versions[0]["run_id"], trained["run_id"]);
    assert_eq!(held["models"].as_object().unwrap().len(), 1);
}

fn ratchet(tracking_uri: &str, args: &[&str], cache: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ratchet"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--tracking-uri", tracking_uri])
        .args(args)
        .env_remove("MLFLOW_TRACKING_URI")
        .env("RATCHET_CACHE_DIR", cache);
    command
}

fn json_of(command: &mut Command) -> Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "ratchet failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The tensors of one file of a version's checkpoint, as bits (so that equality is exact).
fn bits(tensors: &[NamedTensor<'_>]) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    tensors
        .iter()
        .map(|t| {
            let values = t.data.iter().map(|v| v.to_bits()).collect();
            (t.name.clone(), t.shape.clone(), values)
        })
        .collect()
}

/// SIGKILL lands while the second run checkpoint is being uploaded (after its manifest and
/// metadata, before its tensors): the first checkpoint stays the run's, `--resume` starts
/// from it and finishes with exactly the weights and optimizer state of a run that was
/// never interrupted.
#[test]
fn a_run_killed_during_a_checkpoint_upload_resumes_from_the_previous_checkpoint() {
    const TRAIN: [&str; 8] = [
        "train",
        "--env",
        "cartpole",
        "--steps",
        "8192",
        "--checkpoint-every",
        "2048",
        "--json",
    ];
    let server = MlflowServer::start(Backend::FileStore);
    let pid = Arc::new(AtomicU32::new(0));
    let reaped = Arc::new(AtomicBool::new(false));
    let uploads = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let (p, r, u, k) = (
        Arc::clone(&pid),
        Arc::clone(&reaped),
        Arc::clone(&uploads),
        Arc::clone(&killed),
    );
    let proxy = FaultProxy::start(&server.url, move |seen| {
        let tensor_upload = seen.method == "PUT"
            && seen.path.contains("/artifacts/checkpoint")
            && seen.path.ends_with("/model.safetensors");
        if !tensor_upload || u.fetch_add(1, Ordering::SeqCst) != 1 {
            return false;
        }
        // The second checkpoint's weights: the writer dies before this request is answered
        // (the test thread reaps it), as if the machine went down mid-upload. Marked before
        // the kill: the test thread may see the run end before `kill` itself returns.
        k.store(true, Ordering::SeqCst);
        let status = Command::new("kill")
            .args(["-KILL", &p.load(Ordering::SeqCst).to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill failed");
        while !r.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    });
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("cache");

    let child = ratchet(&proxy.url, &TRAIN, &cache)
        .args(["--model-name", "resumed"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    pid.store(child.id(), Ordering::SeqCst);
    let ended = child.wait_with_output().unwrap();
    reaped.store(true, Ordering::SeqCst);
    assert!(
        killed.load(Ordering::SeqCst),
        "the run ended before its second checkpoint: {}",
        String::from_utf8_lossy(&ended.stderr)
    );

    let store = ratchet_mlflow::open_store(&server.url).unwrap();
    let runs = json_of(&mut ratchet(
        &server.url,
        &["runs", "list", "--json"],
        &cache,
    ));
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
    assert_eq!(
        runs[0]["status"], "RUNNING",
        "SIGKILL leaves the run as it was"
    );
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        store.current_artifact_dir(&run_id, "checkpoint").unwrap(),
        Some("checkpoint.1".to_string()),
        "the half-uploaded checkpoint is not the run's"
    );

    let resumed = json_of(&mut ratchet(
        &proxy.url,
        &["train", "--resume", &run_id, "--json"],
        &cache,
    ));
    assert_eq!(resumed["model_uri"], "models:/resumed/1");
    assert_eq!(resumed["total_steps"], 8192);
    let whole = json_of(ratchet(&server.url, &TRAIN, &cache).args(["--model-name", "whole"]));
    assert_eq!(whole["model_uri"], "models:/whole/1");

    let registry = Registry::open(&server.url).unwrap();
    let load = |uri: &str| {
        registry
            .load_checkpoint(&ModelRef::parse(uri).unwrap())
            .unwrap()
            .state
    };
    let (a, b) = (load("models:/resumed/1"), load("models:/whole/1"));
    assert!(!a.weights.is_empty() && !a.optimizer.is_empty());
    assert!(bits(&a.weights) == bits(&b.weights), "the weights differ");
    assert!(
        bits(&a.optimizer) == bits(&b.optimizer),
        "the optimizer states differ"
    );
    // Only the last checkpoint of each run is kept on the server.
    let kept: Vec<String> = store
        .list_artifacts(&run_id, "")
        .unwrap()
        .into_iter()
        .filter(|e| e.is_dir && !e.path.contains('/') && e.path.starts_with("checkpoint."))
        .map(|e| e.path)
        .collect();
    let last = store
        .current_artifact_dir(&run_id, "checkpoint")
        .unwrap()
        .unwrap();
    assert_eq!(kept, [last]);
}

/// Counting test looks is a read-modify-write of a version tag: against a server it holds
/// the model lock (a lock model on the server), so 8 backtests of the test range at once
/// count 8 looks. `models show` then reads the version's metadata and fetches no tensor
/// file.
#[test]
fn concurrent_backtests_against_a_server_count_every_test_look() {
    let server = MlflowServer::start(Backend::Sqlite);
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("cache");
    let trained = json_of(&mut ratchet(
        &server.url,
        &[
            "train",
            "--steps",
            "2048",
            "--model-name",
            "looked",
            "--json",
        ],
        &cache,
    ));
    assert_eq!(trained["model_uri"], "models:/looked/1");

    let backtests: Vec<_> = (0..8)
        .map(|i| {
            let out = scratch.path().join(format!("report-{i}"));
            ratchet(
                &server.url,
                &["backtest", "models:/looked/1", "--json"],
                &cache,
            )
            .args(["--out", out.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut counted: Vec<u64> = backtests
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "backtest failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(answer["test_range"], true);
            answer["test_looks"].as_u64().unwrap()
        })
        .collect();
    counted.sort_unstable();
    assert_eq!(
        counted,
        (1..=8).collect::<Vec<u64>>(),
        "each look saw its own count"
    );

    let proxy = FaultProxy::start(&server.url, |_| false);
    let shown = json_of(&mut ratchet(
        &proxy.url,
        &["models", "show", "models:/looked/1", "--json"],
        &cache,
    ));
    assert_eq!(shown["test_looks"], 8);
    let fetched: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.contains("/mlflow-artifacts/artifacts/"))
        .map(|s| s.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        fetched,
        ["MANIFEST.json", "metadata.json"],
        "{:#?}",
        proxy.seen()
    );
    // The lock models are gone, and never listed.
    let models = support::run_python(&[
        "-c",
        "import json, sys, mlflow\n\
         c = mlflow.MlflowClient(sys.argv[1])\n\
         print(json.dumps(sorted(m.name for m in c.search_registered_models())))",
        &server.url,
    ]);
    assert_eq!(models, serde_json::json!(["looked"]));
}
