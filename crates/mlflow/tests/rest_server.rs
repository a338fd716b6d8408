//! `RestStore` against a real `mlflow server` started on 127.0.0.1 (sqlite backend, artifact
//! proxy), checked both through our own reads and through MLflow's Python client; plus the
//! retry behaviour against a closed port and a small fake server that answers 503/429 first,
//! on a virtual clock that records each wait; and the model lock on a real server.
//!
//! Needs the venv with `mlflow` whose python is `$RATCHET_PYTHON` (default
//! `$HOME/.cache/ratchet/venv/bin/python`); fails, never skips, without it.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ratchet_mlflow::rest::{Clock, REQUEST_ID_TAG, RestConfig, RestStore};
use ratchet_mlflow::{Error, Metric, RunStatus, TrackingStore};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::closed_port::ClosedPort;
use support::mlflow_server::{Backend, MlflowServer};

// ---- harness ------------------------------------------------------------------------------

fn budget(retry_budget: Duration) -> RestConfig {
    RestConfig {
        retry_budget,
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..RestConfig::default()
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `{relative path: bytes}` of every file below `root`.
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A checkpoint-like directory: nested files, an empty file, spaces and non-ASCII names.
fn write_checkpoint(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let weights: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("model.safetensors", weights),
        (
            "metadata.json",
            br#"{"algorithm": "ppo", "version": 1}"#.to_vec(),
        ),
        (
            "MLmodel",
            b"artifact_path: checkpoint\nflavors:\n  ratchet:\n    data: model.safetensors\n"
                .to_vec(),
        ),
        ("state/replay buffer.safetensors", vec![7u8; 4096]),
        ("state/deeper/rng-é.json", b"[1, 2, 3]".to_vec()),
        ("state/empty.bin", Vec::new()),
    ];
    for (rel, bytes) in &files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
    files.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Equal point by point; reports the first difference instead of two long vectors.
fn assert_same_points(got: &[Metric], want: &[Metric]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "metric point {i} differs: got {:?}, wrote {:?}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "history length");
}

fn run_python_verify(url: &str, run_id: &str, model: &str, download_dir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rest_verify.py");
    support::run_python(&[
        script.to_str().unwrap(),
        url,
        run_id,
        model,
        download_dir.to_str().unwrap(),
    ])
}

// ---- the real server ------------------------------------------------------------------------

#[test]
fn everything_written_through_rest_reads_back_from_a_real_mlflow_server() {
    let started = Instant::now();
    let mut server = MlflowServer::start(Backend::Sqlite);
    let store = RestStore::with_config(&server.url, budget(Duration::from_secs(20))).unwrap();
    let work = tempfile::tempdir().unwrap();

    // Experiment: get-or-create is idempotent.
    let experiment = store.get_or_create_experiment("ratchet-rest").unwrap();
    assert_eq!(
        store
            .get_or_create_experiment("ratchet-rest")
            .unwrap()
            .experiment_id,
        experiment.experiment_id
    );
    assert!(
        experiment
            .artifact_location
            .starts_with("mlflow-artifacts:"),
        "{experiment:?}"
    );
    store
        .set_experiment_tag(&experiment.experiment_id, "team", "quant")
        .unwrap();
    assert!(
        store
            .list_experiments()
            .unwrap()
            .iter()
            .any(|e| e.name == "ratchet-rest")
    );

    // Run with params (> 100: two batches), tags (> 100) and metric history (> 1000 points).
    let run = store
        .create_run(
            &experiment.experiment_id,
            "ppo-googl",
            &pairs(&[
                ("mlflow.source.name", "ratchet"),
                ("mlflow.source.type", "LOCAL"),
            ]),
        )
        .unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert!(
        run.artifact_uri.starts_with("mlflow-artifacts:/"),
        "{run:?}"
    );
    let mut params: Vec<(String, String)> = (0..150)
        .map(|i| (format!("hp/p{i:03}"), format!("{}", i as f64 * 0.5)))
        .collect();
    params.push(("learning_rate".into(), "0.0003".into()));
    store.log_params(&run.run_id, &params).unwrap();
    store.log_params(&run.run_id, &params[..3]).unwrap(); // same values again: a no-op
    let tags: Vec<(String, String)> = (0..120)
        .map(|i| (format!("ratchet.t{i:03}"), format!("value {i}")))
        .collect();
    store.set_run_tags(&run.run_id, &tags).unwrap();
    let t0 = 1_790_000_000_000i64;
    let mut metrics: Vec<Metric> = (0..2600)
        .map(|i| Metric {
            key: "loss".into(),
            value: 1.0 / (1.0 + i as f64),
            timestamp: t0 + i,
            step: i,
        })
        .collect();
    metrics.extend((0..700).map(|i| Metric {
        key: "train/episode_return".into(),
        value: if i == 5 {
            f64::NAN
        } else {
            i as f64 * 0.25 - 10.0
        },
        timestamp: t0 + i,
        step: i,
    }));
    store.log_metrics(&run.run_id, &metrics).unwrap();
    let end_time = t0 + 10_000;
    store
        .set_run_status(&run.run_id, RunStatus::Finished, Some(end_time))
        .unwrap();

    let loss = store.get_metric_history(&run.run_id, "loss").unwrap();
    assert_same_points(&loss, &metrics[..2600]);
    let returns = store
        .get_metric_history(&run.run_id, "train/episode_return")
        .unwrap();
    assert_eq!(returns.len(), 700);
    assert!(returns[5].value.is_nan());
    assert_eq!(returns[6], metrics[2606]);

    let read = store.get_run(&run.run_id).unwrap();
    assert_eq!(read.info.status, RunStatus::Finished);
    assert_eq!(read.info.end_time, Some(end_time));
    assert_eq!(read.info.run_name, "ppo-googl");
    assert_eq!(
        read.params,
        params.iter().cloned().collect::<BTreeMap<_, _>>()
    );
    for (k, v) in &tags {
        assert_eq!(read.tags.get(k), Some(v), "tag {k}");
    }
    assert_eq!(
        read.tags.get("mlflow.runName").map(String::as_str),
        Some("ppo-googl")
    );
    assert_eq!(read.metrics["loss"].step, 2599);
    assert!(
        store
            .list_runs(&experiment.experiment_id)
            .unwrap()
            .iter()
            .any(|r| r.run_id == run.run_id)
    );

    // Errors are one line, with MLflow's code; missing objects are NotFound.
    let changed = store
        .log_params(&run.run_id, &pairs(&[("learning_rate", "0.1")]))
        .unwrap_err();
    let message = changed.to_string();
    assert!(
        matches!(&changed, Error::Remote { code: Some(c), status: Some(400), .. } if c == "INVALID_PARAMETER_VALUE"),
        "{changed:?}"
    );
    assert!(
        message.contains(&server.url) && !message.contains('\n'),
        "{message}"
    );
    assert!(
        store
            .create_run("987654", "x", &[])
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .get_run("0123456789abcdef0123456789abcdef")
            .unwrap_err()
            .is_not_found()
    );

    // Artifacts: a nested directory up and back down, byte for byte.
    let checkpoint = work.path().join("checkpoint");
    let written = write_checkpoint(&checkpoint);
    store
        .upload_artifacts(&run.run_id, &checkpoint, "checkpoint")
        .unwrap();
    store
        .upload_artifacts(&run.run_id, &checkpoint.join("metadata.json"), "")
        .unwrap();
    let listed = store.list_artifacts(&run.run_id, "").unwrap();
    let listed_files: BTreeMap<String, Option<u64>> = listed
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| (e.path.clone(), e.size))
        .collect();
    let mut expected_files: BTreeMap<String, Option<u64>> = written
        .iter()
        .map(|(k, v)| (format!("checkpoint/{k}"), Some(v.len() as u64)))
        .collect();
    expected_files.insert(
        "metadata.json".into(),
        Some(written["metadata.json"].len() as u64),
    );
    assert_eq!(listed_files, expected_files);
    assert!(
        listed
            .iter()
            .any(|e| e.is_dir && e.path == "checkpoint/state/deeper")
    );
    let sorted: Vec<&String> = listed.iter().map(|e| &e.path).collect();
    assert!(sorted.windows(2).all(|w| w[0] < w[1]), "{sorted:?}");

    let downloaded = work.path().join("downloaded");
    store
        .download_artifacts(&run.run_id, "checkpoint", &downloaded)
        .unwrap();
    assert_eq!(read_tree(&downloaded), written);
    // A file lands inside the destination directory, as with the file store; more files
    // can join it.
    let single = work.path().join("single");
    for file in ["metadata.json", "MLmodel"] {
        store
            .download_artifacts(&run.run_id, &format!("checkpoint/{file}"), &single)
            .unwrap();
    }
    assert_eq!(
        fs::read(single.join("metadata.json")).unwrap(),
        written["metadata.json"]
    );
    assert_eq!(
        fs::read(single.join("MLmodel")).unwrap(),
        written["MLmodel"]
    );
    let one = store
        .list_artifacts(&run.run_id, "checkpoint/state/empty.bin")
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].path.as_str(), one[0].is_dir, one[0].size),
        ("checkpoint/state/empty.bin", false, Some(0))
    );
    assert!(
        store
            .list_artifacts(&run.run_id, "checkpoint/nothing")
            .unwrap_err()
            .is_not_found()
    );
    // Existing local data is never overwritten, and no temporary is left behind.
    let refused = store
        .download_artifacts(&run.run_id, "checkpoint", &downloaded)
        .unwrap_err();
    assert!(matches!(refused, Error::AlreadyExists(_)), "{refused:?}");
    assert_eq!(read_tree(&downloaded), written);
    let missing =
        store.download_artifacts(&run.run_id, "no/such/file", &work.path().join("nothing"));
    assert!(missing.unwrap_err().is_not_found());
    let leftovers: Vec<String> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}"); // checkpoint, downloaded, single

    // Registry: model, two versions from the run's checkpoint, tags, aliases.
    let model = store.create_registered_model("ratchet-rest-model").unwrap();
    assert_eq!(
        store
            .create_registered_model("ratchet-rest-model")
            .unwrap()
            .name,
        model.name
    );
    store
        .set_registered_model_tag(&model.name, "owner", "quant-team")
        .unwrap();
    store
        .set_registered_model_tag(&model.name, "scratch", "x")
        .unwrap();
    store
        .delete_registered_model_tag(&model.name, "scratch")
        .unwrap();
    let source = store.artifact_uri(&run.run_id, "checkpoint").unwrap();
    assert_eq!(source, format!("{}/checkpoint", run.artifact_uri));
    let v1 = store
        .create_model_version(
            &model.name,
            &source,
            &run.run_id,
            &pairs(&[("ratchet.semver", "1.0.0")]),
            Some("first"),
        )
        .unwrap();
    let v2 = store
        .create_model_version(
            &model.name,
            &source,
            &run.run_id,
            &pairs(&[("ratchet.semver", "1.1.0")]),
            None,
        )
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.status, "READY");
    assert_eq!(v1.source, source);
    assert_eq!(v1.run_id.as_deref(), Some(run.run_id.as_str()));
    store
        .set_model_version_tag(&model.name, 2, "validated", "true")
        .unwrap();
    store
        .set_model_version_tag(&model.name, 2, "scratch", "y")
        .unwrap();
    store
        .delete_model_version_tag(&model.name, 2, "scratch")
        .unwrap();
    store.set_alias(&model.name, "production", 1).unwrap();
    store.set_alias(&model.name, "production", 2).unwrap(); // moves
    store.set_alias(&model.name, "champion", 1).unwrap();
    assert_eq!(
        store
            .get_version_by_alias(&model.name, "production")
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        store
            .get_version_by_alias(&model.name, "champion")
            .unwrap()
            .version,
        1
    );
    store.delete_alias(&model.name, "champion").unwrap();
    assert!(
        store
            .get_version_by_alias(&model.name, "champion")
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .get_model_version(&model.name, 99)
            .unwrap_err()
            .is_not_found()
    );
    assert!(store.set_alias(&model.name, "latest", 1).is_err());

    let versions = store.list_model_versions(&model.name).unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(versions[1].aliases, ["production"]);
    assert!(versions[0].aliases.is_empty());
    assert_eq!(versions[0].description.as_deref(), Some("first"));
    // Each version carries the id of the request that created it, and nothing else added.
    let mut version_tags = versions[1].tags.clone();
    let request_id = version_tags.remove(REQUEST_ID_TAG).unwrap();
    assert!(
        request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{request_id}"
    );
    assert_ne!(versions[0].tags[REQUEST_ID_TAG], request_id);
    assert_eq!(
        version_tags,
        pairs(&[("ratchet.semver", "1.1.0"), ("validated", "true")])
            .into_iter()
            .collect()
    );
    let read_model = store.get_registered_model(&model.name).unwrap();
    assert_eq!(
        read_model.tags,
        pairs(&[("owner", "quant-team")]).into_iter().collect()
    );
    assert_eq!(
        read_model.aliases,
        [("production".to_string(), 2u64)].into_iter().collect()
    );
    assert!(
        store
            .list_registered_models()
            .unwrap()
            .iter()
            .any(|m| m.name == model.name)
    );

    // MLflow's own client sees exactly the same.
    let python_download = work.path().join("python-download");
    fs::create_dir(&python_download).unwrap();
    let seen = run_python_verify(&server.url, &run.run_id, &model.name, &python_download);
    assert_eq!(seen["experiment"]["name"], "ratchet-rest");
    assert_eq!(seen["experiment"]["tags"]["team"], "quant");
    let py_run = &seen["run"];
    assert_eq!(py_run["name"], "ppo-googl");
    assert_eq!(py_run["status"], "FINISHED");
    assert_eq!(py_run["end_time"], end_time);
    assert_eq!(py_run["artifact_uri"], run.artifact_uri.as_str());
    let py_params: BTreeMap<String, String> =
        serde_json::from_value(py_run["params"].clone()).unwrap();
    assert_eq!(py_params, params.iter().cloned().collect());
    for (k, v) in &tags {
        assert_eq!(py_run["tags"][k], v.as_str(), "tag {k}");
    }
    let py_loss = py_run["histories"]["loss"].as_array().unwrap();
    assert_eq!(py_loss.len(), 2600);
    for (point, m) in py_loss.iter().zip(&metrics) {
        assert_eq!(point[0], m.step);
        assert_eq!(point[1], m.timestamp);
        let value: f64 = point[2].as_str().unwrap().parse().unwrap();
        assert_eq!(value.to_bits(), m.value.to_bits(), "step {}", m.step);
    }
    let py_returns = py_run["histories"]["train/episode_return"]
        .as_array()
        .unwrap();
    assert_eq!(py_returns.len(), 700);
    assert_eq!(py_returns[5][2], "nan");
    let py_artifacts: BTreeMap<String, Option<u64>> =
        serde_json::from_value(seen["artifacts"].clone()).unwrap();
    // MLflow's client reports an empty file's size as None (protobuf drops zeros).
    let py_expected: BTreeMap<String, Option<u64>> = expected_files
        .iter()
        .map(|(k, v)| (k.clone(), v.filter(|&n| n > 0)))
        .collect();
    assert_eq!(py_artifacts, py_expected);
    let py_digests: BTreeMap<String, String> =
        serde_json::from_value(seen["downloaded"].clone()).unwrap();
    let our_digests: BTreeMap<String, String> = written
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Sha256::digest(v)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(py_digests, our_digests);
    let py_model = &seen["model"];
    assert_eq!(py_model["tags"], serde_json::json!({"owner": "quant-team"}));
    assert_eq!(py_model["aliases"], serde_json::json!({"production": "2"}));
    assert_eq!(py_model["by_alias"]["production"], "2");
    let py_versions = py_model["versions"].as_array().unwrap();
    assert_eq!(py_versions.len(), 2);
    for (v, expected_semver) in py_versions.iter().zip(["1.0.0", "1.1.0"]) {
        assert_eq!(v["source"], source.as_str());
        assert_eq!(v["run_id"], run.run_id.as_str());
        assert_eq!(v["status"], "READY");
        assert_eq!(v["tags"]["ratchet.semver"], expected_semver);
    }
    assert_eq!(py_versions[0]["description"], "first");
    assert_eq!(py_versions[1]["tags"]["validated"], "true");

    // The server goes away mid-session: the error says so, names the local copy, and the
    // local files are untouched.
    // Having answered once, a server that refuses connections is restarting: retried.
    let impatient = RestStore::with_config(&server.url, budget(Duration::from_secs(1))).unwrap();
    impatient.check().unwrap();
    server.stop();
    let failed = impatient
        .upload_artifacts(&run.run_id, &checkpoint, "checkpoint-2")
        .unwrap_err()
        .to_string();
    assert!(
        failed.contains("unavailable") && failed.contains("connection refused"),
        "{failed}"
    );
    assert_eq!(read_tree(&checkpoint), written);
    eprintln!(
        "real-server test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A fake server that knows one run, takes one PUT, then answers 503 until the retry
/// budget is spent.
fn server_failing_after_one_file(run_id: &str) -> FakeServer {
    let run_json = format!(
        r#"{{"run": {{"info": {{"run_id": "{run_id}", "experiment_id": "1", "status": "FINISHED", "artifact_uri": "mlflow-artifacts:/1/{run_id}/artifacts"}}, "data": {{}}}}}}"#
    );
    let puts = AtomicUsize::new(0);
    FakeServer::start(move |_, request| {
        if request.method == "GET" {
            return (200, run_json.clone());
        }
        match puts.fetch_add(1, Ordering::SeqCst) {
            0 => (200, String::new()),
            _ => (
                503,
                r#"{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "maintenance"}"#.into(),
            ),
        }
    })
}

#[test]
fn an_upload_that_stops_half_way_keeps_the_local_checkpoint_and_says_where() {
    let run_id = "0123456789abcdef0123456789abcdef";
    let work = tempfile::tempdir().unwrap();
    let checkpoint = work.path().join("checkpoint");
    let written = write_checkpoint(&checkpoint);
    let unsent = work.path().join("unsent");
    let config = RestConfig {
        unsent_dir: unsent.clone(),
        ..budget(Duration::from_millis(600))
    };

    // A plain upload only reads: the files stay where they are, and the error says so.
    let fake = server_failing_after_one_file(run_id);
    let store = RestStore::with_config(&fake.url, config.clone()).unwrap();
    let error = store
        .upload_artifacts(run_id, &checkpoint, "checkpoints/v1")
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::Remote {
                status: Some(503),
                ..
            }
        ),
        "{error:?}"
    );
    for needle in [
        "stopped after 1 of 6 files",
        &format!("the local copy is intact at {}", checkpoint.display()),
        "mlflow artifacts log-artifacts",
        "maintenance",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    assert_eq!(read_tree(&checkpoint), written);

    // A handed-over directory (the registry's scratch copy, about to be cleaned up) is
    // moved out of harm's way first, complete.
    let fake = server_failing_after_one_file(run_id);
    let store = RestStore::with_config(&fake.url, config).unwrap();
    let message = store
        .upload_artifacts_owned(run_id, &checkpoint, "checkpoints/v1")
        .unwrap_err()
        .to_string();
    let kept = unsent.join(run_id).join("checkpoints/v1");
    assert!(
        message.contains(&format!("the local copy was kept at {}", kept.display())),
        "{message}"
    );
    assert_eq!(read_tree(&kept), written);
}

/// The model lock on a real server: 8 clients × 10 read-modify-writes of one tag under it
/// lose nothing; while held it is not listed; released it is gone; and a lock whose holder
/// died (no beat) is taken over once it has shown no life for `lock_stale_after`.
#[test]
fn the_model_lock_on_a_server_serialises_writers_and_outlives_a_dead_holder() {
    let server = MlflowServer::start(Backend::Sqlite);
    let config = RestConfig {
        lock_beat: Duration::from_millis(100),
        lock_stale_after: Duration::from_millis(1500),
        ..budget(Duration::from_secs(20))
    };
    let store = RestStore::with_config(&server.url, config.clone()).unwrap();
    store.create_registered_model("m").unwrap();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = RestStore::with_config(&server.url, config.clone()).unwrap();
            thread::spawn(move || {
                for _ in 0..10 {
                    let _lock = store.lock_model("m").unwrap();
                    let model = store.get_registered_model("m").unwrap();
                    let count: u64 = model.tags.get("count").map_or(0, |c| c.parse().unwrap());
                    store
                        .set_registered_model_tag("m", "count", &(count + 1).to_string())
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let model = store.get_registered_model("m").unwrap();
    assert_eq!(model.tags.get("count").map(String::as_str), Some("80"));
    assert!(
        store
            .get_registered_model("m.ratchet-lock")
            .unwrap_err()
            .is_not_found()
    );

    // A holder that died: its lock stays, with no beat.
    store.create_registered_model("m.ratchet-lock").unwrap();
    store
        .set_registered_model_tag("m.ratchet-lock", "ratchet.lock.holder", "dead")
        .unwrap();
    let names = || -> Vec<String> {
        store
            .list_registered_models()
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    };
    assert_eq!(names(), ["m"]);
    let lock = store.lock_model("m").unwrap();
    let holder = store.get_registered_model("m.ratchet-lock").unwrap().tags;
    assert_ne!(
        holder.get("ratchet.lock.holder").map(String::as_str),
        Some("dead")
    );
    assert_eq!(names(), ["m"]);
    drop(lock);
    assert!(
        store
            .get_registered_model("m.ratchet-lock")
            .unwrap_err()
            .is_not_found()
    );

    // The lock of long work is a lock model of its own, left out of listings; its holder
    // takes the model lock meanwhile.
    let work = store.lock_model_work("m", "retrain").unwrap();
    assert!(store.get_registered_model("m.retrain.ratchet-lock").is_ok());
    assert_eq!(names(), ["m"]);
    drop(store.lock_model("m").unwrap());
    drop(work);
    assert!(
        store
            .get_registered_model("m.retrain.ratchet-lock")
            .unwrap_err()
            .is_not_found()
    );
}

// ---- retries ----------------------------------------------------------------------------------

/// A clock that moves only when the client sleeps, and remembers each sleep: the retry
/// schedule is checked exactly, without waiting for it.
#[derive(Default)]
struct VirtualClock {
    sleeps: Mutex<Vec<Duration>>,
}

impl VirtualClock {
    fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        self.sleeps().iter().sum()
    }

    fn sleep(&self, duration: Duration) {
        self.sleeps.lock().unwrap().push(duration);
    }
}

/// [`budget`]'s configuration on a virtual clock.
fn on_virtual_clock(retry_budget: Duration) -> (RestConfig, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::default());
    let config = RestConfig {
        clock: clock.clone(),
        ..budget(retry_budget)
    };
    (config, clock)
}

/// Checks that `sleeps` follow [`budget`]'s schedule — wait n within [d/2, d] for
/// d = min(100 ms · 2ⁿ, 1 s) — and that the client gave up only when the next wait could
/// overrun `retry_budget`.
fn assert_backoff_schedule(sleeps: &[Duration], retry_budget: Duration) {
    let mut delay = Duration::from_millis(100);
    for (n, wait) in sleeps.iter().enumerate() {
        assert!(
            *wait >= delay / 2 && *wait <= delay,
            "wait {n} was {wait:?}, not within [{:?}, {delay:?}]: {sleeps:?}",
            delay / 2
        );
        delay = (delay * 2).min(Duration::from_secs(1));
    }
    let waited: Duration = sleeps.iter().sum();
    assert!(waited < retry_budget, "{sleeps:?}");
    assert!(waited + delay >= retry_budget, "gave up early: {sleeps:?}");
}

/// The number in "failed N times".
fn attempts_in(message: &str) -> usize {
    message
        .split("failed ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in: {message}"))
}

/// A refused connection to a server that never answered is a wrong address or a server
/// not started: one attempt, no wait, and an error naming the address and what to do.
#[test]
fn a_refused_connection_fails_at_once_naming_the_address() {
    let closed = ClosedPort::reserve();
    let port = closed.port;
    let url = format!("http://127.0.0.1:{port}");
    let (config, clock) = on_virtual_clock(Duration::from_secs(30));
    let store = RestStore::with_config(&url, config).unwrap();
    let message = store
        .get_or_create_experiment("anything")
        .unwrap_err()
        .to_string();
    assert_eq!(clock.sleeps(), [], "no retry");
    assert_eq!(
        message,
        format!(
            "MLflow server {url}: GET /api/2.0/mlflow/experiments/get-by-name: connection refused: \
             nothing is listening at {url}. Start the server (`mlflow server --host <host> \
             --port <port>`) or point --tracking-uri or MLFLOW_TRACKING_URI at a running one"
        )
    );
}

/// One request as the fake server saw it.
struct SeenRequest {
    method: String,
    path: String,
    body: String,
}

/// A small HTTP server on 127.0.0.1: `answer(n, request)` (n counts from 1) gives the
/// status and JSON body of each response; a 429 comes with `Retry-After: 0`.
struct FakeServer {
    url: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    server: Arc<tiny_http::Server>,
}

impl FakeServer {
    fn start(answer: impl Fn(usize, &SeenRequest) -> (u16, String) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = Arc::new(tiny_http::Server::from_listener(listener, None).unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (accepting, log) = (Arc::clone(&server), Arc::clone(&seen));
        thread::spawn(move || {
            for mut request in accepting.incoming_requests() {
                let mut body = String::new();
                if request.as_reader().read_to_string(&mut body).is_err() {
                    continue;
                }
                let seen = SeenRequest {
                    method: request.method().as_str().to_string(),
                    path: request.url().to_string(),
                    body,
                };
                let (status, body) = answer(log.lock().unwrap().len() + 1, &seen);
                log.lock().unwrap().push(seen);
                let header = |name: &str, value: &str| {
                    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
                };
                let mut response = tiny_http::Response::from_string(body)
                    .with_status_code(status)
                    .with_header(header("Content-Type", "application/json"));
                if status == 429 {
                    response = response.with_header(header("Retry-After", "0"));
                }
                let _ = request.respond(response);
            }
        });
        FakeServer { url, seen, server }
    }

    fn requests(&self) -> Vec<(String, String, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.method.clone(), r.path.clone(), r.body.clone()))
            .collect()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

#[test]
fn unavailable_and_rate_limited_answers_are_retried_until_the_server_recovers() {
    let fake = FakeServer::start(|n, _| match n {
        1 => (
            503,
            r#"{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "starting"}"#.into(),
        ),
        2 => (
            429,
            r#"{"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}"#.into(),
        ),
        _ => (200, "{}".into()),
    });
    let (config, clock) = on_virtual_clock(Duration::from_secs(10));
    let store = RestStore::with_config(&fake.url, config).unwrap();
    let run_id = "0123456789abcdef0123456789abcdef";
    store
        .log_params(run_id, &pairs(&[("learning_rate", "0.0003")]))
        .unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "one failure each, then success");
    for (method, path, body) in &requests {
        // The same request, body included, every time.
        assert_eq!(method, "POST");
        assert_eq!(path, "/api/2.0/mlflow/runs/log-batch");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["run_id"], run_id);
        assert_eq!(body["params"][0]["key"], "learning_rate");
    }
    // The first backoff after the 503, then what `Retry-After: 0` asks for.
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert!(
        sleeps[0] >= Duration::from_millis(50) && sleeps[0] <= Duration::from_millis(100),
        "{sleeps:?}"
    );
    assert_eq!(sleeps[1], Duration::ZERO);
}

#[test]
fn client_errors_are_not_retried_and_persistent_503_gives_up_in_time() {
    let not_found = FakeServer::start(|_, _| {
        (
            404,
            r#"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=x not found"}"#
                .into(),
        )
    });
    let (config, clock) = on_virtual_clock(Duration::from_secs(10));
    let store = RestStore::with_config(&not_found.url, config).unwrap();
    assert!(store.get_run("x").unwrap_err().is_not_found());
    assert_eq!(not_found.requests().len(), 1);
    assert!(clock.sleeps().is_empty());

    let down = FakeServer::start(|_, _| (503, "<html>\n<b>Bad gateway</b>\n</html>".into()));
    let retry_budget = Duration::from_millis(1500);
    let (config, clock) = on_virtual_clock(retry_budget);
    let store = RestStore::with_config(&down.url, config).unwrap();
    let error = store.get_run("x").unwrap_err();
    let sleeps = clock.sleeps();
    assert_backoff_schedule(&sleeps, retry_budget);
    assert_eq!(down.requests().len(), sleeps.len() + 1);
    assert!(
        matches!(
            error,
            Error::Remote {
                status: Some(503),
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert_eq!(attempts_in(&message), sleeps.len() + 1, "{message}");
    assert!(
        message.contains("HTTP_503 (HTTP 503)") && message.contains("Bad gateway"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}
