//! A create whose answer is lost must not create twice. A real `mlflow server` sits behind
//! a proxy that forwards chosen requests and then answers `502 Bad Gateway` (see
//! `support/fault_proxy.rs`); afterwards MLflow's own client counts what the server holds:
//! exactly one experiment, run, registered model and version, and no metric point twice.
//!
//! Run against both server backends: the SQL store happens to ignore a metric point sent
//! twice, the file store appends it again.
//!
//! Needs the venv with `mlflow` (`$RATCHET_PYTHON`); fails, never skips, without it.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod support;

use std::time::Duration;

use ratchet_mlflow::rest::{REQUEST_ID_TAG, RestConfig, RestStore};
use ratchet_mlflow::{Metric, TrackingStore};
use serde_json::{Value, json};

use support::fault_proxy::{CREATES, FaultProxy, lose_first_answers};
use support::mlflow_server::{Backend, MlflowServer};

fn config(retry_budget: Duration) -> RestConfig {
    RestConfig {
        retry_budget,
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        ..RestConfig::default()
    }
}

fn lost_answers_leave_exactly_one_of_everything(backend: Backend) {
    let server = MlflowServer::start(backend);
    let proxy = FaultProxy::start(&server.url, lose_first_answers);
    let store = RestStore::with_config(&proxy.url, config(Duration::from_secs(20))).unwrap();

    let experiment = store.get_or_create_experiment("lost-answers").unwrap();
    let run = store
        .create_run(
            &experiment.experiment_id,
            "flaky",
            &[("team".into(), "quant".into())],
        )
        .unwrap();
    let params = vec![("learning_rate".to_string(), "0.0003".to_string())];
    store.log_params(&run.run_id, &params).unwrap();
    // 1500 points: two requests of at most 1000.
    let metrics: Vec<Metric> = (0..1500)
        .map(|i| Metric {
            key: "loss".into(),
            value: 1.0 / (1.0 + i as f64),
            timestamp: 1_790_000_000_000 + i,
            step: i,
        })
        .collect();
    store.log_metrics(&run.run_id, &metrics).unwrap();
    let model = store.create_registered_model("lost-answers-model").unwrap();
    let source = store.artifact_uri(&run.run_id, "checkpoint").unwrap();
    let version = store
        .create_model_version(&model.name, &source, &run.run_id, &[], None)
        .unwrap();

    // The proxy lost 1 answer per create and 3 batches' answers.
    assert_eq!(proxy.lost(), 7, "{:#?}", proxy.seen());
    // Each create went to the server once: the lookup after the lost answer found it.
    for create in CREATES {
        assert_eq!(proxy.count(create), 1, "{create}");
    }
    // Params are safe to send again (same value); a batch of metrics is first looked for.
    assert_eq!(proxy.count("POST runs/log-batch"), 4);
    // One page of history for the first lookup, two (1500 points) for the second.
    assert_eq!(proxy.count("GET metrics/get-history"), 3);

    let held = support::server_contents(&server.url);
    assert_eq!(held["experiments"], json!(["Default", "lost-answers"]));
    let runs = held["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let only = &runs[0];
    assert_eq!(only["run_id"], run.run_id.as_str());
    assert_eq!(only["experiment"], "lost-answers");
    assert_eq!(only["tags"]["team"], "quant");
    assert_eq!(only["tags"][REQUEST_ID_TAG].as_str().unwrap().len(), 32);
    assert_eq!(only["params"], json!({"learning_rate": "0.0003"}));
    let loss = only["histories"]["loss"].as_array().unwrap();
    assert_eq!(loss.len(), 1500, "every point exactly once");
    for (point, m) in loss.iter().zip(&metrics) {
        assert_eq!(point[0], m.step);
        assert_eq!(point[1], m.timestamp);
        let value: f64 = point[2].as_str().unwrap().parse().unwrap();
        assert_eq!(value.to_bits(), m.value.to_bits(), "step {}", m.step);
    }
    let versions = held["models"]["lost-answers-model"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{versions:#?}");
    assert_eq!(versions[0]["version"], "1");
    assert_eq!(versions[0]["run_id"], run.run_id.as_str());
    assert_eq!(
        (version.name.as_str(), version.version),
        ("lost-answers-model", 1)
    );
    assert_eq!(held["models"].as_object().unwrap().len(), 1);

    // When the lookup itself cannot be done, nothing is sent twice: the error says what
    // may exist on the server.
    let blind = FaultProxy::start(&server.url, |seen| {
        seen.endpoint() == "POST runs/create" || seen.endpoint() == "POST runs/search"
    });
    let impatient = RestStore::with_config(&blind.url, config(Duration::from_millis(300))).unwrap();
    let error = impatient
        .create_run(&experiment.experiment_id, "unsure", &[])
        .unwrap_err()
        .to_string();
    assert_eq!(blind.count("POST runs/create"), 1, "sent once only");
    for needle in [
        "POST /api/2.0/mlflow/runs/create",
        "may have been created",
        &format!("experiment {}", experiment.experiment_id),
        REQUEST_ID_TAG,
    ] {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    let held = support::server_contents(&server.url);
    let unsure: Vec<&Value> = held["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "unsure")
        .collect();
    assert_eq!(unsure.len(), 1);
    let request_id = unsure[0]["tags"][REQUEST_ID_TAG].as_str().unwrap();
    assert!(error.contains(request_id), "{error}");
}

#[test]
fn lost_answers_leave_exactly_one_of_everything_on_a_sql_backed_server() {
    lost_answers_leave_exactly_one_of_everything(Backend::Sqlite);
}

#[test]
fn lost_answers_leave_exactly_one_of_everything_on_a_file_backed_server() {
    lost_answers_leave_exactly_one_of_everything(Backend::FileStore);
}
