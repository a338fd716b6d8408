//! The scratch store every test binary of the `ratchet` command runs against: a temporary
//! directory with the store and the feature cache, and the binary started from the
//! repository root. Each test binary uses the part it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch store and feature cache, and the binary run from the repository root (where
/// the default config finds `data/STOCKS_GOOGL.csv`).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// The tracking URI every command gets (default: `mlruns` in the scratch directory).
    tracking_uri: Option<String>,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            tracking_uri: None,
        }
    }

    /// Commands go to an MLflow tracking server instead of a local store.
    pub fn remote(url: &str) -> Self {
        Self {
            tracking_uri: Some(url.to_string()),
            ..Self::new()
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("mlruns")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ratchet"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--tracking-uri")
            .arg(
                self.tracking_uri
                    .clone()
                    .unwrap_or_else(|| self.store().display().to_string()),
            )
            .args(args)
            .env_remove("MLFLOW_TRACKING_URI")
            .env("RATCHET_CACHE_DIR", self.dir.path().join("cache"));
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ratchet {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ratchet {args:?} printed no JSON ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs a command that must succeed; returns what it printed on stderr.
    pub fn succeeds(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "ratchet {args:?} failed:\n{stderr}");
        stderr
    }

    /// Runs a command that must fail with one clear error line.
    pub fn fails(&self, args: &[&str], expected: &str) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "ratchet {args:?} should fail");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected '{expected}' in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    pub fn checkpoint_dir(&self, uri: &str) -> PathBuf {
        let shown = self.json(&["models", "show", uri, "--json"]);
        PathBuf::from(
            shown["checkpoint_path"]
                .as_str()
                .unwrap_or_else(|| panic!("no checkpoint_path in {shown}")),
        )
    }
}

/// Tensor name -> raw little-endian bytes, read straight from a safetensors file.
pub fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out: Vec<(String, Vec<u8>)> = header
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .map(|(k, v)| {
            let o = v["data_offsets"].as_array().unwrap();
            let (a, b) = (
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            );
            (k.clone(), data[a..b].to_vec())
        })
        .collect();
    out.sort();
    out
}

/// The weights and optimizer state of two checkpoints are the same, bit for bit.
pub fn assert_same_training_state(a: &Path, b: &Path) {
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let (ta, tb) = (tensors(&a.join(file)), tensors(&b.join(file)));
        assert!(!ta.is_empty(), "{file} holds no tensors");
        assert_eq!(ta.len(), tb.len(), "{file}: different tensor sets");
        for ((na, da), (nb, db)) in ta.iter().zip(&tb) {
            assert_eq!(na, nb);
            assert!(da == db, "{file}: tensor {na} differs");
        }
    }
}

/// Waits until `child` has written a run checkpoint and the store holds `count` of them
/// (true), or has ended before that (false). Only a checkpoint in place counts: the store's
/// staging copies live under hidden (`.`) directories, and a SIGKILL may land before one is
/// moved into place.
pub fn wait_for_checkpoints(sb: &Sandbox, child: &mut Child, count: usize) -> bool {
    let start = Instant::now();
    let store = sb.store();
    loop {
        let found = walk(&store)
            .into_iter()
            .filter(|p| {
                let in_place = p.strip_prefix(&store).is_ok_and(|relative| {
                    !relative
                        .components()
                        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
                });
                in_place && p.ends_with("artifacts/checkpoint/MANIFEST.json")
            })
            .count();
        if found >= count {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Sends `sig` (`-KILL`, `-INT`) to `child`.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// The Python of the pinned Feast venv (scripts/feast_venv.sh): `$RATCHET_FEAST_PYTHON`, else
/// ~/.cache/ratchet/feast-venv's; `None` when it is not there.
pub fn feast_python() -> Option<PathBuf> {
    let python = std::env::var_os("RATCHET_FEAST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/ratchet/feast-venv/bin/python")
        });
    python.exists().then_some(python)
}
