//! `ratchet train` against a real `mlflow server` behind a proxy that loses answers (it
//! forwards the request, then answers `502 Bad Gateway`): the first answer to every create
//! and to the first metric and tag batches. The run, the model and its version must exist
//! once each, with no metric point logged twice, as MLflow's own client reads them. The
//! server keeps a file store, which (unlike the SQL store) stores a point sent twice twice.
//!
//! Needs the venv with `mlflow` (`$RATCHET_PYTHON`); fails, never skips, without it.

#[path = "../crates/mlflow/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::Command;

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
    // 4 creates and 3 batches lost their answers, and each create reached the server once.
    assert_eq!(proxy.lost(), 7, "{:#?}", proxy.seen());
    for create in CREATES {
        assert_eq!(proxy.count(create), 1, "{create}");
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
