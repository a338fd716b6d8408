//! A version's Feast features, against real Feast (0.67) and MLflow's own client (from the
//! venv scripts/feast_venv.sh makes). Feast's MLflow integration finds what a version was
//! trained on: a version is trained, `ratchet features export` writes its Feast repository,
//! and tests/feast/resolve.py, through `FeatureStore(repo).mlflow` alone, resolves
//! `models:/NAME/VERSION` to the exported feature service, reads back the training entity
//! frame (exactly the training bars) and gets Ratchet's own values from
//! `get_historical_features` on it; once over a local `mlruns` store, once over a real `mlflow
//! server`. And a model of a Feast service (`[[features.feast]]`) names that service, and
//! `train --from` joins the rows the desk appended for new bars but refuses a restated day.
//! Skipped, with a message, only when that venv is missing.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod sandbox;
#[path = "../crates/mlflow/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use ratchet_config::TrainConfig;
use sandbox::{Sandbox, feast_python};
use serde_json::{Value, json};
use support::mlflow_server::{Backend, MlflowServer};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const CONFIG: &str = "configs/universe-ppo.toml";

/// Runs tests/feast/resolve.py on `repo` for `model_uri` with the Feast venv's `python`;
/// `ranges` maps each symbol to its training range. Returns what it wrote.
fn resolve(python: &Path, sb: &Sandbox, repo: &Path, model_uri: &str, ranges: &Value) -> Value {
    let ranges_path = sb.path("train_ranges.json");
    std::fs::write(&ranges_path, ranges.to_string()).unwrap();
    let out = sb.path("resolved.json");
    let run = Command::new(python)
        .arg(root().join("tests/feast/resolve.py"))
        .arg(repo)
        .arg(model_uri)
        .arg(&ranges_path)
        .arg(&out)
        // MLflow 3.13 and later read a file store only when allowed.
        .env("MLFLOW_ALLOW_FILE_STORE", "true")
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "resolve.py failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

/// Each symbol's training range as `models show` gives it.
fn train_ranges(shown: &Value) -> Value {
    let mut ranges = serde_json::Map::new();
    for symbol in shown["data"]["symbols"].as_array().unwrap() {
        let train = &symbol["train"];
        ranges.insert(
            symbol["symbol"].as_str().unwrap().to_string(),
            json!([train["start"], train["end"]]),
        );
    }
    Value::Object(ranges)
}

/// Trains a version of the universe example in `sb`, exports its features, and checks what
/// Feast's integration makes of it.
fn feast_resolves_the_version(sb: &Sandbox, python: &Path) {
    let trained = sb.json(&[
        "train",
        "--config",
        CONFIG,
        "--steps",
        "8192",
        "--model-name",
        "u",
        "--json",
    ]);
    let uri = trained["model_uri"].as_str().unwrap();
    assert_eq!(uri, "models:/u/1");
    let repo = sb.path("feature_repo");
    let written = sb.json(&[
        "features",
        "export",
        uri,
        "--feast",
        repo.to_str().unwrap(),
        "--json",
    ]);
    let shown = sb.json(&["models", "show", uri, "--json"]);
    let got = resolve(python, sb, &repo, uri, &train_ranges(&shown));

    let features = TrainConfig::load(&root().join(CONFIG)).unwrap().features;
    let service = format!("ratchet_{}", features.short_hash());
    let refs: Vec<String> = features
        .column_names()
        .iter()
        .map(|c| format!("{service}_bars:{c}"))
        .collect();
    assert_eq!(written["feature_service"], service.as_str());
    assert_eq!(got["service"], service.as_str());
    let tags = json!({
        "feast.project": service,
        "feast.feature_service": service,
        "feast.feature_refs": refs.join(","),
    });
    assert_eq!(got["version_tags"], tags);
    assert_eq!(got["run_tags"], tags);
    assert_eq!(got["features_json"], json!(refs));
    assert_eq!(got["entity_columns"], json!(["symbol", "event_timestamp"]));
    assert_eq!(
        got["entity_dtypes"],
        json!({"symbol": "object", "event_timestamp": "datetime64[ns, UTC]"})
    );
    assert_eq!(
        got["entity_is_the_training_bars"], true,
        "first difference (row, entity frame, training bar): {}",
        got["entity_first_difference"]
    );
    // Every symbol's training bars, and only those: fewer than the exported rows (which hold
    // the validation and test ranges too).
    let bars = got["training_bars"].as_u64().unwrap();
    assert_eq!(got["entity_rows"], bars);
    assert!(bars > 0 && bars < written["rows"].as_u64().unwrap());
    assert_eq!(got["historical_rows"], bars);
    assert_eq!(got["historical_features"], refs.len());
    assert_eq!(got["historical_differ"], json!([]));
}

fn feast_venv() -> Option<std::path::PathBuf> {
    let python = feast_python();
    if python.is_none() {
        eprintln!(
            "skipped: no Feast venv at ~/.cache/ratchet/feast-venv (or $RATCHET_FEAST_PYTHON); make it with scripts/feast_venv.sh (scripts/test.sh does)"
        );
    }
    python
}

#[test]
fn feast_resolves_a_version_in_a_local_store() {
    let Some(python) = feast_venv() else { return };
    feast_resolves_the_version(&Sandbox::new(), &python);
}

#[test]
fn feast_resolves_a_version_on_an_mlflow_server() {
    let Some(python) = feast_venv() else { return };
    let server = MlflowServer::start(Backend::Sqlite);
    feast_resolves_the_version(&Sandbox::remote(&server.url), &python);
}

/// Runs tests/feast/signals_repo.py: writes or grows the desk's repository `repo` with a row
/// for each date of `bars` (`restate`: that row's value changed).
fn signals_repo(
    python: &Path,
    repo: &Path,
    bars: &Path,
    tracking_uri: &str,
    restate: Option<usize>,
) {
    let mut command = Command::new(python);
    command
        .arg(root().join("tests/feast/signals_repo.py"))
        .arg(repo)
        .arg(bars)
        .arg("GOOGL")
        .arg(tracking_uri);
    if let Some(row) = restate {
        command.args(["--restate", &row.to_string()]);
    }
    let run = command.output().unwrap();
    assert!(
        run.status.success(),
        "signals_repo.py failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A model of GOOGL's bars and a Feast feature service: trained, its Feast names resolved by
/// Feast's integration to the service it read, continued with `train --from` over a longer
/// data file once the desk appended its new days (the new bars get the service's new rows;
/// the version records the source's new digests), backtested; and refused, naming the source,
/// once a day the parent joined is restated.
#[test]
fn a_feast_service_is_re_pulled_for_new_bars_and_its_history_is_held() {
    let Some(python) = feast_venv() else { return };
    let sb = Sandbox::new();
    let googl = std::fs::read_to_string(root().join("data/STOCKS_GOOGL.csv")).unwrap();
    let lines: Vec<&str> = googl.lines().collect();
    let part = sb.path("part/GOOGL.csv");
    let whole = sb.path("whole/GOOGL.csv");
    for (path, text) in [
        (&part, lines[..=1800].join("\n") + "\n"),
        (&whole, googl.clone()),
    ] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let repo = sb.path("desk_repo");
    let store_uri = format!("file://{}", sb.store().display());
    signals_repo(&python, &repo, &part, &store_uri, None);
    let config = sb.path("desk.toml");
    std::fs::write(
        &config,
        format!(
            "[run]\nn_envs = 1\nseed = 5\n\n[data]\nfile = {part:?}\n\n\
             [[features.feast]]\nrepo = {repo:?}\nservice = \"desk\"\nmissing = \"drop\"\n"
        ),
    )
    .unwrap();
    let first = sb.json(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "2048",
        "--model-name",
        "desk",
        "--json",
    ]);
    assert_eq!(first["model_uri"], "models:/desk/1");

    // The version names the service it read, and Feast's own integration resolves it.
    let got = resolve(&python, &sb, &repo, "models:/desk/1", &json!({}));
    assert_eq!(got["service"], "desk");
    let tags = json!({
        "feast.project": "desk_signals",
        "feast.feature_service": "desk",
        "feast.feature_refs": "signals:momentum",
    });
    assert_eq!(got["version_tags"], tags);
    assert_eq!(got["run_tags"], tags);
    assert_eq!(got["features_json"], json!(["signals:momentum"]));
    // The entity frame names the symbol by the view's join key; Feast joins every training
    // bar with it.
    assert_eq!(got["entity_columns"], json!(["ticker", "event_timestamp"]));
    let bars = got["entity_rows"].as_u64().unwrap();
    assert!(bars > 1000, "{bars} training bars");
    assert_eq!(got["historical_rows"], bars);
    assert_eq!(got["historical_missing"], 0);

    let source = repo.join("data/signals.parquet");
    let shown = sb.json(&["models", "show", "models:/desk/1", "--json"]);
    let recorded = &shown["data"]["outside"][0];
    assert_eq!(recorded["name"], "signals");
    assert_eq!(recorded["path"], source.display().to_string());
    assert_eq!(
        recorded["sha256"],
        ratchet_data::sha256_file(&source).unwrap()
    );
    let part_end = lines[1800].split(',').next().unwrap();
    assert_eq!(recorded["until"], format!("{part_end}T00:00:00Z"));

    // The desk appends its new days; the model continues over the longer file.
    signals_repo(&python, &repo, &whole, &store_uri, None);
    let out = sb.run(&[
        "train",
        "--from",
        "models:/desk/1",
        "--data",
        whole.to_str().unwrap(),
        "--steps",
        "2048",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "outside source signals: rows after {part_end}T00:00:00Z are new since models:/desk/1"
        )),
        "{stderr}"
    );
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(second["model_uri"], "models:/desk/2");
    assert_eq!(second["parent"], "models:/desk/1");
    let shown = sb.json(&["models", "show", "models:/desk/2", "--json"]);
    let recorded = &shown["data"]["outside"][0];
    assert_eq!(
        recorded["sha256"],
        ratchet_data::sha256_file(&source).unwrap()
    );
    assert_eq!(recorded["until"], "2018-08-29T00:00:00Z");
    assert_eq!(shown["data"]["test"]["end"], "2018-08-29");
    let got = resolve(&python, &sb, &repo, "models:/desk/2", &json!({}));
    assert_eq!(got["service"], "desk");

    let report = sb.path("report");
    sb.succeeds(&[
        "backtest",
        "models:/desk/2",
        "--out",
        report.to_str().unwrap(),
    ]);

    // A day the version joined is restated at the desk: refused before any work.
    signals_repo(&python, &repo, &whole, &store_uri, Some(1500));
    sb.fails(
        &[
            "train",
            "--from",
            "models:/desk/2",
            "--steps",
            "2048",
        ],
        &format!(
            "outside source signals ({}, the file of Feast features signals:momentum of project desk_signals) changed at or before 2018-08-29T00:00:00Z, the last bar models:/desk/2 saw",
            source.display()
        ),
    );
    assert_eq!(
        sb.json(&["models", "list", "desk", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
