//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The Python with `mlflow`: `$RATCHET_PYTHON`, else the project venv. Panics with
/// instructions when it is missing: these tests never skip.
pub fn python() -> PathBuf {
    let python = std::env::var_os("RATCHET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
                .join(".cache/ratchet/venv/bin/python")
        });
    assert!(
        python.exists(),
        "no Python at {} — this test needs a venv with mlflow (python3 -m venv ~/.cache/ratchet/venv && ~/.cache/ratchet/venv/bin/pip install mlflow), or RATCHET_PYTHON pointing at one",
        python.display()
    );
    python
}
