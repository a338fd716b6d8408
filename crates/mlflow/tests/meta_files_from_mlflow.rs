//! `meta.yaml` files written by the real MLflow client read back exactly: long quoted
//! strings that PyYAML folds across lines, escapes, tabs, quotes and non-ASCII white space
//! at the fold points, through both of PyYAML's emitters (libyaml's, which MLflow uses when
//! PyYAML has it, and PyYAML's own).
//!
//! Needs Python with `mlflow` at `$RATCHET_PYTHON` (default
//! `$HOME/.cache/ratchet/venv/bin/python`); fails, never skips, without it.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod support;

use std::path::Path;

use ratchet_mlflow::{FileStore, TrackingStore};
use serde_json::Value;

/// Has MLflow write a store with `emitter` and returns what MLflow reads back from it.
fn write_with_mlflow(store: &Path, emitter: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlflow_meta_files.py");
    support::run_python(&[script.to_str().unwrap(), store.to_str().unwrap(), emitter])
}

fn field(expected: &Value, key: &str) -> String {
    expected[key].as_str().expect("a string field").to_string()
}

fn reads_back_what_mlflow_wrote(emitter: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mlruns");
    let expected = write_with_mlflow(&root, emitter);
    let model_meta = std::fs::read_to_string(root.join("models/m/meta.yaml")).unwrap();
    let version_meta = std::fs::read_to_string(root.join("models/m/version-1/meta.yaml")).unwrap();
    // The cases this test is about are really in the files: the description is folded
    // across continuation lines, the single-quoted one has lines ending in U+00A0 and
    // continuing with U+3000, and PyYAML's own emitter escapes the line breaks.
    let continuation_lines = model_meta.lines().filter(|l| l.starts_with("  ")).count();
    assert!(continuation_lines >= 3, "{model_meta}");
    assert!(
        version_meta.contains("\u{a0}\n  \u{3000}cd"),
        "{version_meta}"
    );
    if emitter == "python" {
        assert!(model_meta.contains("\\\n  \\ "), "{model_meta}");
    }

    let store = FileStore::open(&root).unwrap();
    let experiment = store
        .get_experiment(&field(&expected, "experiment_id"))
        .unwrap();
    assert_eq!(experiment.name, field(&expected, "experiment_name"));
    let run = store.get_run(&field(&expected, "run_id")).unwrap();
    assert_eq!(run.info.run_name, field(&expected, "run_name"));
    let model = store.get_registered_model("m").unwrap();
    assert_eq!(
        model.description.as_deref(),
        Some(field(&expected, "model_description").as_str())
    );
    let version = store.get_model_version("m", 1).unwrap();
    assert_eq!(
        version.description.as_deref(),
        Some(field(&expected, "version_description").as_str())
    );
}

#[test]
fn folded_strings_from_libyaml_read_back_exactly() {
    reads_back_what_mlflow_wrote("c");
}

#[test]
fn folded_strings_from_pyyaml_read_back_exactly() {
    reads_back_what_mlflow_wrote("python");
}
