//! The real MLflow client reads what the file store writes: experiments, runs, params,
//! metric histories, artifacts, registered models, versions, tags and aliases exactly as
//! written, and each version's MLmodel through `models:/NAME/VERSION`.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::sync::Arc;

use ratchet_mlflow::{FileStore, Metric, RunStatus, TrackingStore, now_ms};
use ratchet_registry::tags;
use ratchet_registry::{ModelRef, ParentRef, Registry, VersionFilter, VersionStatus};
use serde_json::{Value, json};

fn num(x: f64) -> Value {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        json!(x)
    }
}

fn sorted_object(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}

#[test]
fn mlflow_reads_everything_exactly_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mlruns");
    let store = Arc::new(FileStore::open(&root).unwrap());
    let registry = Registry::new(store.clone());

    // Experiments.
    let exp = store.get_or_create_experiment("ratchet-tests").unwrap();
    store
        .set_experiment_tag(&exp.experiment_id, "team", "ml")
        .unwrap();
    store
        .set_experiment_tag(
            &exp.experiment_id,
            "mlflow.note.content",
            "Experiment *notes*",
        )
        .unwrap();
    let other = store.get_or_create_experiment("exp-b").unwrap();
    assert_eq!(
        store
            .get_or_create_experiment("ratchet-tests")
            .unwrap()
            .experiment_id,
        exp.experiment_id
    );

    // A finished run with everything.
    let run = store
        .create_run(
            &exp.experiment_id,
            "train-dqn",
            &[("mlflow.source.name".into(), "ratchet".into())],
        )
        .unwrap();
    let params: Vec<(String, String)> = [
        ("learning_rate", "0.0003"),
        ("opt/name", "adam"),
        ("looks_like_none", "None"),
        ("looks_like_bool", "true"),
        ("empty", ""),
        ("long", &"x".repeat(5000)),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    store.log_params(&run.run_id, &params).unwrap();
    store.log_params(&run.run_id, &params[..1]).unwrap(); // same value again: no-op
    assert!(
        store
            .log_params(&run.run_id, &[("learning_rate".into(), "0.1".into())])
            .is_err()
    );
    let t0 = 1_700_000_000_000i64;
    let mut metrics = Vec::new();
    for (step, value) in [0.9, 0.5, 0.30000000000000004, 1e-7, 1e20]
        .iter()
        .enumerate()
    {
        metrics.push(Metric {
            key: "loss".into(),
            value: *value,
            timestamp: t0 + step as i64,
            step: step as i64,
        });
    }
    metrics.push(Metric {
        key: "train/acc".into(),
        value: 0.75,
        timestamp: t0,
        step: 3,
    });
    metrics.push(Metric {
        key: "odd".into(),
        value: f64::NAN,
        timestamp: t0,
        step: 0,
    });
    metrics.push(Metric {
        key: "odd".into(),
        value: f64::INFINITY,
        timestamp: t0 + 1,
        step: 1,
    });
    metrics.push(Metric {
        key: "neg".into(),
        value: -2.5,
        timestamp: t0,
        step: -1,
    });
    store.log_metrics(&run.run_id, &metrics[..3]).unwrap();
    store.log_metrics(&run.run_id, &metrics[3..]).unwrap();
    let run_tags: Vec<(String, String)> = [
        ("stage", "dev"),
        ("nested/tag", "c"),
        ("multi", "line1\nline2"),
        ("mlflow.note.content", "A *description*"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    store.set_run_tags(&run.run_id, &run_tags).unwrap();
    let artifacts_src = dir.path().join("report");
    fs::create_dir_all(artifacts_src.join("nested")).unwrap();
    fs::write(artifacts_src.join("report.json"), "{\"sharpe\": 1.2}").unwrap();
    fs::write(artifacts_src.join("nested/plot.txt"), "plot").unwrap();
    store
        .upload_artifacts(&run.run_id, &artifacts_src, "reports")
        .unwrap();
    store
        .upload_artifacts(&run.run_id, &artifacts_src.join("report.json"), "")
        .unwrap();
    let end = now_ms();
    store
        .set_run_status(&run.run_id, RunStatus::Finished, Some(end))
        .unwrap();

    // A nested run still running, in the other experiment.
    let child = store
        .create_run(
            &other.experiment_id,
            "child",
            &[("mlflow.parentRunId".into(), run.run_id.clone())],
        )
        .unwrap();

    // Registry: three versions, one deleted; tags; aliases.
    let v1 = registry
        .register(
            "googl-dqn",
            &run.run_id,
            common::sample_state(1, 8),
            common::sample_record("f1", 1.0, None),
        )
        .unwrap();
    let v2 = registry
        .register(
            "googl-dqn",
            &run.run_id,
            common::sample_state(2, 8),
            common::sample_record(
                "f1",
                1.5,
                Some(ParentRef {
                    name: "googl-dqn".into(),
                    version: 1,
                }),
            ),
        )
        .unwrap();
    let v3 = registry
        .register(
            "googl-dqn",
            &run.run_id,
            common::sample_state(3, 8),
            common::sample_record("f2", 0.5, None),
        )
        .unwrap();
    assert_eq!(
        (v1.version, v2.version, v3.version),
        (Some(1), Some(2), Some(3))
    );
    store
        .set_registered_model_tag("googl-dqn", "owner", "rust")
        .unwrap();
    store
        .set_model_version_tag("googl-dqn", 1, "validated", "true")
        .unwrap();
    registry
        .promote(
            &ModelRef::parse("models:/googl-dqn/2").unwrap(),
            "production",
        )
        .unwrap();
    registry
        .promote(&ModelRef::parse("models:/googl-dqn/1").unwrap(), "champion")
        .unwrap();
    store.delete_model_version("googl-dqn", 3).unwrap();

    let out = common::run_python("mlflow_read.py", &[root.to_str().unwrap(), "--load-models"]);
    assert_eq!(out["warnings"], json!([]), "MLflow logged warnings");

    // ---- experiments ----
    let exps = out["experiments"].as_array().unwrap();
    let ids: Vec<&str> = exps
        .iter()
        .map(|e| e["experiment_id"].as_str().unwrap())
        .collect();
    let mut expected_ids = vec![
        "0".to_string(),
        exp.experiment_id.clone(),
        other.experiment_id.clone(),
    ];
    expected_ids.sort();
    assert_eq!(ids, expected_ids);
    let find_exp = |id: &str| exps.iter().find(|e| e["experiment_id"] == id).unwrap();
    let e = find_exp(&exp.experiment_id);
    assert_eq!(e["name"], "ratchet-tests");
    assert_eq!(e["lifecycle_stage"], "active");
    assert_eq!(e["artifact_location"], exp.artifact_location);
    assert_eq!(e["creation_time"], json!(exp.creation_time));
    assert_eq!(
        e["tags"],
        json!({"team": "ml", "mlflow.note.content": "Experiment *notes*"})
    );
    assert_eq!(find_exp("0")["name"], "Default");

    // ---- the finished run ----
    let runs = e["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r["run_id"], run.run_id);
    assert_eq!(r["run_name"], "train-dqn");
    assert_eq!(r["experiment_id"], exp.experiment_id);
    assert_eq!(r["status"], "FINISHED");
    assert_eq!(r["start_time"], json!(run.start_time));
    assert_eq!(r["end_time"], json!(end));
    assert_eq!(r["artifact_uri"], run.artifact_uri);
    assert_eq!(r["lifecycle_stage"], "active");
    assert_eq!(r["user_id"], run.user_id);
    assert_eq!(
        r["params"],
        sorted_object(params.iter().map(|(k, v)| (k.clone(), json!(v))))
    );
    let mut expected_tags: BTreeMap<String, Value> = run_tags
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    expected_tags.insert("mlflow.runName".into(), json!("train-dqn"));
    expected_tags.insert("mlflow.user".into(), json!(run.user_id));
    expected_tags.insert("mlflow.source.name".into(), json!("ratchet"));
    let logged = store.get_run(&run.run_id).unwrap().tags["mlflow.log-model.history"].clone();
    let logged_models: Value = serde_json::from_str(&logged).unwrap();
    assert_eq!(logged_models.as_array().unwrap().len(), 3);
    expected_tags.insert("mlflow.log-model.history".into(), json!(logged));
    assert_eq!(
        r["tags"],
        Value::Object(expected_tags.into_iter().collect())
    );
    let mut history: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in &metrics {
        history
            .entry(m.key.clone())
            .or_default()
            .push(json!([m.timestamp, num(m.value), m.step]));
    }
    assert_eq!(
        r["history"],
        sorted_object(history.into_iter().map(|(k, v)| (k, Value::Array(v))))
    );
    assert_eq!(
        r["metrics"],
        json!({"loss": 1e20, "train/acc": 0.75, "odd": "inf", "neg": -2.5}),
        "latest = largest (step, timestamp, value)"
    );
    let listed: Vec<(String, bool)> = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["is_dir"].as_bool().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("report.json", false),
        ("reports", true),
        ("reports/report.json", false),
        ("reports/nested", true),
        ("reports/nested/plot.txt", false),
        ("checkpoints", true),
        (&*format!("checkpoints/{}", v1.version_id), true),
        (
            &*format!("checkpoints/{}/model.safetensors", v2.version_id),
            false,
        ),
        (&*format!("checkpoints/{}/MLmodel", v3.version_id), false),
    ] {
        assert!(
            listed.contains(&(expected.0.to_string(), expected.1)),
            "{expected:?} missing from {listed:?}"
        );
    }
    assert!(
        !listed.iter().any(|(p, _)| p.contains(".ratchet")),
        "temporaries visible: {listed:?}"
    );
    let report_size = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == "report.json")
        .unwrap()["size"]
        .clone();
    assert_eq!(report_size, json!(15));

    // ---- the child run ----
    let c = &find_exp(&other.experiment_id)["runs"][0];
    assert_eq!(c["run_id"], child.run_id);
    assert_eq!(c["status"], "RUNNING");
    assert_eq!(c["end_time"], Value::Null);
    assert_eq!(c["tags"]["mlflow.parentRunId"], run.run_id);
    assert_eq!(c["params"], json!({}));
    assert_eq!(c["metrics"], json!({}));

    // ---- the registry ----
    let models = out["registered_models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    let m = &models[0];
    assert_eq!(m["name"], "googl-dqn");
    let model = store.get_registered_model("googl-dqn").unwrap();
    assert_eq!(m["creation_timestamp"], json!(model.creation_timestamp));
    assert_eq!(
        m["last_updated_timestamp"],
        json!(model.last_updated_timestamp)
    );
    assert_eq!(m["tags"]["owner"], "rust");
    let history: Value = serde_json::from_str(
        m["tags"]["ratchet.alias_history.production"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(history[0]["version"], 2);
    assert_eq!(m["aliases"], json!({"production": 2, "champion": 1}));
    assert_eq!(m["alias_lookup"], json!({"production": 2, "champion": 1}));
    let versions = m["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "the deleted version 3 is invisible");
    for (v, written) in versions.iter().zip([&v1, &v2]) {
        let number = written.version.unwrap();
        let stored = store.get_model_version("googl-dqn", number).unwrap();
        assert_eq!(v["version"], json!(number));
        assert_eq!(v["source"], stored.source);
        assert_eq!(v["download_uri"], stored.source);
        assert!(
            v["source"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/artifacts/checkpoints/{}", written.version_id))
        );
        assert_eq!(v["run_id"], run.run_id);
        assert_eq!(v["status"], "READY");
        assert_eq!(v["current_stage"], "None");
        assert_eq!(v["creation_timestamp"], json!(stored.creation_timestamp));
        assert_eq!(v["description"], json!(stored.description));
        assert_eq!(
            v["tags"],
            sorted_object(stored.tags.iter().map(|(k, v)| (k.clone(), json!(v))))
        );
        assert_eq!(v["tags"]["ratchet.version_id"], written.version_id);
        assert_eq!(v["tags"]["ratchet.semver"], written.semver.to_string());
        assert_eq!(
            v["tags"]["ratchet.feature_hash"],
            written.training.feature_hash
        );
        let mlmodel = &v["mlmodel"];
        assert_eq!(mlmodel["flavors"], json!(["ratchet"]));
        assert_eq!(
            mlmodel["artifact_path"],
            format!("checkpoints/{}", written.version_id)
        );
        assert_eq!(mlmodel["run_id"], run.run_id);
        assert_eq!(mlmodel["model_uuid"].as_str().unwrap().len(), 32);
    }
    assert_eq!(versions[0]["tags"]["validated"], "true");
    assert_eq!(versions[0]["aliases"], json!(["champion"]));
    assert_eq!(versions[1]["aliases"], json!(["production"]));
    assert_eq!(versions[1]["tags"]["ratchet.status"], "production");
    assert_eq!(versions[1]["tags"]["ratchet.parent"], "models:/googl-dqn/1");
}

/// MLflow changing versions behind Ratchet's back (a tag, a deletion, an alias): the next
/// listing shows it, because the version cache no longer matches and is rebuilt; so is a
/// damaged cache file.
#[test]
fn listing_sees_what_mlflow_changed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mlruns");
    let store = Arc::new(FileStore::open(&root).unwrap());
    let registry = Registry::new(store.clone());
    let exp = store.get_or_create_experiment("e").unwrap();
    let run = store.create_run(&exp.experiment_id, "r", &[]).unwrap();
    store.create_registered_model("m").unwrap();
    for v in 1..=3 {
        let source = store
            .artifact_uri(&run.run_id, &format!("checkpoints/v{v}"))
            .unwrap();
        let tags = [(tags::STATUS.to_string(), "registered".to_string())];
        store
            .create_model_version("m", &source, &run.run_id, &tags, None)
            .unwrap();
    }
    let listed = || {
        registry
            .list("m", &VersionFilter::default())
            .unwrap()
            .into_iter()
            .map(|v| (v.version, v.status, v.aliases))
            .collect::<Vec<_>>()
    };
    assert_eq!(listed().len(), 3, "the first listing builds the cache");
    common::run_python("mlflow_change.py", &[root.to_str().unwrap()]);
    let expected = vec![
        (
            1,
            Some(VersionStatus::Registered),
            vec!["champion".to_string()],
        ),
        (2, Some(VersionStatus::Archived), vec![]),
    ];
    assert_eq!(listed(), expected);
    let cache = root.join("models/m/.ratchet-versions.bin");
    let bytes = fs::read(&cache).unwrap();
    fs::write(&cache, &bytes[..bytes.len() - 1]).unwrap();
    assert_eq!(listed(), expected, "truncated cache");
    fs::write(&cache, b"not a cache").unwrap();
    assert_eq!(listed(), expected, "garbage cache");
    assert_eq!(fs::read(&cache).unwrap(), bytes, "rebuilt the same");
}
