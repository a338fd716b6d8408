//! End-to-end tests of the `ratchet` binary: real processes, a real `mlruns/` store in a
//! temporary directory, the bundled market data.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod sandbox;
#[path = "../crates/mlflow/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sandbox::{Sandbox, assert_same_training_state, signal, tensors, wait_for_checkpoints, walk};
use serde_json::{Value, json};
use support::mlflow_server::{Backend, MlflowServer};

#[test]
fn default_train_registers_a_version_and_backtests_it() {
    let sb = Sandbox::new();
    let out = sb.json(&[
        "train",
        "--steps",
        "2048",
        "--model-name",
        "googl",
        "--json",
    ]);
    assert_eq!(out["model_uri"], "models:/googl/1");
    assert_eq!(out["version"], 1);
    assert!(out["version_id"].as_str().unwrap().starts_with('v'));
    let eval = &out["evaluation"]["metrics"];
    for key in [
        "total_return",
        "max_drawdown",
        "buy_and_hold_total_return",
        "periods_per_year",
    ] {
        assert!(eval[key].is_number(), "missing {key} in {eval}");
    }
    assert_eq!(eval["periods_per_year"], 252.0);

    let reports = sb.path("reports");
    let bt = sb.json(&[
        "backtest",
        "models:/googl/1",
        "--out",
        reports.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        bt["leakage"],
        Value::Null,
        "the default range is the test split"
    );
    for f in ["report.json", "report.md", "report.html"] {
        assert!(reports.join(f).is_file(), "{f} missing");
    }
    // Training judged the policy on the validation range; a backtest of those dates runs
    // the same policy over the same bars.
    assert_eq!(out["evaluation"]["kind"], "validation range backtest");
    let (first, last) = (
        out["evaluation"]["range"][0].as_str().unwrap(),
        out["evaluation"]["range"][1].as_str().unwrap(),
    );
    let on_val = sb.json(&[
        "backtest",
        "models:/googl/1",
        "--from",
        first,
        "--to",
        last,
        "--out",
        sb.path("val").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(on_val["metrics"], *eval);
    assert_eq!(on_val["test_range"], false);
    assert_eq!(on_val["test_looks"], Value::Null);
    // The default range was the test split: one look.
    assert_eq!(
        (&bt["test_range"], &bt["test_looks"]),
        (&Value::Bool(true), &Value::from(1))
    );

    // An overlapping range is flagged on stderr.
    let out = sb.run(&[
        "backtest",
        "models:/googl/1",
        "--from",
        "2012-01-01",
        "--to",
        "2013-12-31",
        "--out",
        sb.path("in-sample").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("leakage"));
    // The last bar alone: nothing to fill the decision at.
    let out = sb.run(&["backtest", "models:/googl/1", "--from", "2018-08-29"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().last().unwrap();
    assert!(
        error.starts_with(
            "error: only 1 bar of data/STOCKS_GOOGL.csv between 2018-08-29 and the end"
        ) && error.ends_with(
            "a backtest needs at least 2 bars: one to decide at and the next to fill at"
        ),
        "{stderr}"
    );

    let listed = sb.json(&["models", "list", "googl", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let runs = sb.json(&["runs", "list", "--json"]);
    assert_eq!(runs[0]["status"], "FINISHED");
}

/// PPO: training 2N steps equals training N, registering, and continuing N more from the
/// registered version, bit for bit.
#[test]
fn continue_training_ppo_matches_uninterrupted_training() {
    let sb = Sandbox::new();
    let common = ["--seed", "5", "--json"];
    let args = |steps: &'static str, name: &'static str| {
        let mut v = vec!["train", "--steps", steps, "--model-name", name];
        v.extend(common);
        v
    };
    // 3000 is not a multiple of the 2048-step rollout: continuing resumes mid-rollout.
    sb.json(&args("3000", "half"));
    let cont = sb.json(&[
        "train",
        "--from",
        "models:/half/1",
        "--steps",
        "3000",
        "--json",
    ]);
    assert_eq!(cont["model_uri"], "models:/half/2");
    assert_eq!(cont["parent"], "models:/half/1");
    assert_eq!(cont["total_steps"], 6000);
    sb.json(&args("6000", "whole"));
    assert_same_training_state(
        &sb.checkpoint_dir("models:/half/2"),
        &sb.checkpoint_dir("models:/whole/1"),
    );
    let lineage = sb.json(&["models", "lineage", "models:/half/2", "--json"]);
    assert!(lineage.to_string().contains("\"half\""), "{lineage}");
}

/// `--arithmetic fma` is recorded with the version, shown by `models show`, kept by `--from`
/// (so continuing is still bit for bit), and really computes differently from `exact`.
#[test]
fn fused_arithmetic_is_recorded_and_kept_when_continuing() {
    let sb = Sandbox::new();
    let train = |steps: &str, name: &str, arithmetic: &str| {
        sb.json(&[
            "train",
            "--steps",
            steps,
            "--seed",
            "5",
            "--model-name",
            name,
            "--arithmetic",
            arithmetic,
            "--json",
        ])
    };
    train("3000", "half", "fma");
    sb.json(&[
        "train",
        "--from",
        "models:/half/1",
        "--steps",
        "3000",
        "--json",
    ]);
    train("6000", "whole", "fma");
    assert_same_training_state(
        &sb.checkpoint_dir("models:/half/2"),
        &sb.checkpoint_dir("models:/whole/1"),
    );
    let shown = sb.run(&["models", "show", "models:/half/2"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout)
            .contains("\n  algorithm     ppo (seed 5, device cpu, arithmetic fma)\n"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    train("6000", "exact", "exact");
    let show = |uri: &str| sb.json(&["models", "show", uri, "--json"]);
    let (fused, exact) = (show("models:/whole/1"), show("models:/exact/1"));
    assert_eq!(
        (&fused["arithmetic"], &exact["arithmetic"]),
        (&json!("fma"), &json!("exact"))
    );
    assert_ne!(fused["weights_sha256"], exact["weights_sha256"]);
    // An exact run's config has no `arithmetic` key: configs and hashes of earlier versions.
    assert_eq!(exact["hyperparameters"]["ppo"].get("arithmetic"), None);

    let out = sb.run(&["train", "--arithmetic", "fma", "--device", "wgpu"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: arithmetic \"fma\" chooses how the CPU kernels compute; --device wgpu trains on \
         the GPU in its own arithmetic: drop one of the two\n"
    );
}

/// Copies the directory `fixture` to `target`, with `@STORE@` (where MLflow writes a store's
/// absolute path) replaced by `store`.
fn copy_fixture(fixture: &Path, target: &Path, store: &str) {
    std::fs::create_dir_all(target).unwrap();
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        let to = target.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_fixture(&entry.path(), &to, store);
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            let bytes = match String::from_utf8(bytes) {
                Ok(text) => text.replace("@STORE@", store).into_bytes(),
                Err(binary) => binary.into_bytes(),
            };
            std::fs::write(to, bytes).unwrap();
        }
    }
}

/// A store written by the build of 2026-12-06 (`tests/fixtures/store-2026-12-06`: a PPO
/// trading version of 2,048 steps, seed 3, default config; a DQN CartPole version of 1,000
/// steps, seed 4), moved to a new directory: every later build reads it, backtests it to the
/// same figures and continues both versions bit for bit.
#[test]
fn a_store_from_an_earlier_build_loads_and_continues_bit_for_bit() {
    let sb = Sandbox::new();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-2026-12-06/mlruns");
    copy_fixture(&fixture, &sb.store(), sb.store().to_str().unwrap());

    let ppo = sb.json(&["models", "show", "models:/fixture-ppo/1", "--json"]);
    assert_eq!(
        ppo["weights_sha256"],
        "a40a233fb5b5305389b6056df040a14433d5a2e818d2ec80c96b78fe231acdec"
    );
    assert_eq!(ppo["arithmetic"], "exact");
    let out = sb.path("report");
    let backtest = sb.json(&[
        "backtest",
        "models:/fixture-ppo/1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        backtest["range"],
        json!(["2017-05-10T00:00:00+00:00", "2018-08-29T00:00:00+00:00"])
    );
    assert_eq!(backtest["metrics"]["sharpe"], json!(-0.3489582917565243));
    assert_eq!(
        backtest["metrics"]["total_return"],
        json!(-0.07878199340663783)
    );

    sb.json(&[
        "train",
        "--from",
        "models:/fixture-ppo/1",
        "--steps",
        "2048",
        "--json",
    ]);
    sb.json(&[
        "train",
        "--steps",
        "4096",
        "--seed",
        "3",
        "--model-name",
        "whole-ppo",
        "--json",
    ]);
    assert_same_training_state(
        &sb.checkpoint_dir("models:/fixture-ppo/2"),
        &sb.checkpoint_dir("models:/whole-ppo/1"),
    );

    let config = sb.path("dqn.toml");
    std::fs::write(
        &config,
        "[run]\nalgo = \"dqn\"\nenv = \"cartpole\"\nseed = 4\n\n[dqn]\nlearning_starts = 200\n\
         buffer_size = 2000\ntrain_freq = 4\ntarget_update_interval = 250\ntotal_timesteps = 2000\n",
    )
    .unwrap();
    sb.json(&[
        "train",
        "--from",
        "models:/fixture-dqn/1",
        "--steps",
        "1000",
        "--json",
    ]);
    sb.json(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "2000",
        "--model-name",
        "whole-dqn",
        "--json",
    ]);
    assert_same_training_state(
        &sb.checkpoint_dir("models:/fixture-dqn/2"),
        &sb.checkpoint_dir("models:/whole-dqn/1"),
    );
}

/// DQN (replay buffer, target network, epsilon schedule): the same property on CartPole.
#[test]
fn continue_training_dqn_matches_uninterrupted_training() {
    let sb = Sandbox::new();
    let config = sb.path("dqn.toml");
    std::fs::write(
        &config,
        "[run]\nalgo = \"dqn\"\nenv = \"cartpole\"\nseed = 2\n\n[dqn]\nlearning_starts = 200\n\
         buffer_size = 5000\ntrain_freq = 4\ntarget_update_interval = 250\ntotal_timesteps = 4000\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    sb.json(&[
        "train",
        "--config",
        c,
        "--steps",
        "1500",
        "--model-name",
        "half",
        "--json",
    ]);
    sb.json(&[
        "train",
        "--from",
        "models:/half/1",
        "--steps",
        "1500",
        "--json",
    ]);
    sb.json(&[
        "train",
        "--config",
        c,
        "--steps",
        "3000",
        "--model-name",
        "whole",
        "--json",
    ]);
    let (a, b) = (
        sb.checkpoint_dir("models:/half/2"),
        sb.checkpoint_dir("models:/whole/1"),
    );
    assert_same_training_state(&a, &b);
    let (sa, sb_) = (
        tensors(&a.join("state.safetensors")),
        tensors(&b.join("state.safetensors")),
    );
    let replay: Vec<_> = sa
        .iter()
        .filter(|(n, _)| n.starts_with("replay."))
        .collect();
    assert!(
        !replay.is_empty(),
        "the replay buffer is part of the checkpoint"
    );
    assert_eq!(sa, sb_, "replay buffer and environment state match");
}

/// Starts a PPO CartPole run of `steps` that checkpoints every rollout, as model `resumed`.
fn spawn_training(sb: &Sandbox, steps: u64, stderr: fn() -> Stdio) -> Child {
    sb.command(&[
        "train",
        "--env",
        "cartpole",
        "--algo",
        "ppo",
        "--steps",
        &steps.to_string(),
        "--checkpoint-every",
        "2048",
        "--model-name",
        "resumed",
    ])
    .stdout(Stdio::null())
    .stderr(stderr())
    .spawn()
    .unwrap()
}

/// A training run of at least `steps` caught running after its first checkpoint, in a fresh
/// sandbox, and its step budget. A machine fast enough to finish a run before the test
/// looks gets a run ten times longer.
fn training_caught_running(mut steps: u64, stderr: fn() -> Stdio) -> (Sandbox, Child, u64) {
    loop {
        let sb = Sandbox::new();
        let mut child = spawn_training(&sb, steps, stderr);
        if wait_for_checkpoints(&sb, &mut child, 1) {
            return (sb, child, steps);
        }
        assert!(
            steps < 100_000_000,
            "every training run ended before the test saw it"
        );
        steps *= 10;
    }
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let (sb, child, steps) = training_caught_running(30_000, Stdio::null);
    signal(&child, "-KILL");
    child.wait_with_output().unwrap();
    let runs = sb.json(&["runs", "list", "--json"]);
    assert_eq!(
        runs[0]["status"], "RUNNING",
        "SIGKILL leaves the run as it was"
    );
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let resumed = sb.run(&["train", "--resume", &run_id, "--json"]);
    assert!(resumed.status.success());
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    let from = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "resuming run {run_id} from its checkpoint at step "
            ))
        })
        .unwrap_or_else(|| panic!("no resume line in {stderr}"));
    let (step, of) = from.split_once(" of ").unwrap();
    let step: u64 = step.parse().unwrap();
    assert!(
        step > 0 && step < steps && step.is_multiple_of(2048),
        "{from}"
    );
    assert_eq!(of, steps.to_string());
    let out: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(out["run_id"], run_id.as_str());
    assert_eq!(out["model_uri"], "models:/resumed/1");
    assert_eq!(
        out["total_steps"], steps,
        "the run finishes its original budget"
    );
    let runs = sb.json(&["runs", "list", "--json"]);
    assert_eq!(runs[0]["status"], "FINISHED");
}

#[test]
fn ctrl_c_keeps_the_checkpoint_and_marks_the_run_killed() {
    // A budget no machine finishes between the first checkpoint and the signal.
    let (sb, child, _) = training_caught_running(1_000_000_000, Stdio::piped);
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "Ctrl-C stops the run: {stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let runs = sb.json(&["runs", "list", "--json"]);
    assert_eq!(runs[0]["status"], "KILLED");
    assert!(
        walk(&sb.store())
            .iter()
            .any(|p| p.ends_with("checkpoint/model.safetensors"))
    );
}

/// The bundled data sets are built into the binary: the default run and a backtest work
/// from a directory without `data/`, and record the same data (path and sha256) as a run
/// in the repository.
#[test]
fn the_binary_works_outside_the_repository() {
    let sb = Sandbox::new();
    let elsewhere = |args: &[&str]| {
        let out = sb
            .command(args)
            .current_dir(sb.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ratchet {args:?} failed outside the repository:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let trained = elsewhere(&["train", "--steps", "2048", "--json"]);
    assert_eq!(trained["model_uri"], "models:/stocks-googl-ppo/1");
    let shown = sb.json(&["models", "show", "models:/stocks-googl-ppo/1", "--json"]);
    let data = &shown["data"];
    assert_eq!(data["path"], "data/STOCKS_GOOGL.csv");
    let repository_copy = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/STOCKS_GOOGL.csv");
    assert_eq!(
        data["sha256"],
        ratchet_data::sha256_file(&repository_copy).unwrap()
    );
    let report = sb.path("report");
    elsewhere(&[
        "backtest",
        "models:/stocks-googl-ppo/1",
        "--out",
        report.to_str().unwrap(),
        "--json",
    ]);
    assert!(report.join("report.html").is_file());
    let out = sb
        .command(&["train", "--data", "data/NOT_BUNDLED.csv"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data/NOT_BUNDLED.csv"), "{stderr}");
}

/// The README's `--config configs/…` and `sweep configs/…` commands work from a directory
/// without the repository (the configs are built in, as the data is), and a sweep's base
/// finds its data exactly as `train` does.
#[test]
fn built_in_configs_work_from_any_directory() {
    let sb = Sandbox::new();
    let elsewhere = |args: &[&str]| {
        sb.command(args)
            .current_dir(sb.dir.path())
            .output()
            .unwrap()
    };
    let out = elsewhere(&[
        "train",
        "--config",
        "configs/cartpole-dqn.toml",
        "--steps",
        "1024",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trained: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trained["model_uri"], "models:/cartpole-dqn/1");
    // A sweep that plans gets as far as the Ray address (nothing listens on port 1).
    let reaches_ray = |out: Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            stderr.starts_with("error: cannot reach a Ray dashboard at http://127.0.0.1:1 ("),
            "{stderr}"
        );
    };
    for sweep in ["configs/sweep-cartpole.toml", "./configs/sweep-googl.toml"] {
        reaches_ray(elsewhere(&["sweep", sweep, "--ray", "http://127.0.0.1:1"]));
    }
    // Copied configs: the base beside the sweep file, the data built in.
    let mine = sb.path("mine");
    std::fs::create_dir(&mine).unwrap();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    for file in ["sweep-googl.toml", "ppo-googl.toml"] {
        std::fs::copy(repository.join(file), mine.join(file)).unwrap();
    }
    reaches_ray(elsewhere(&[
        "sweep",
        "mine/sweep-googl.toml",
        "--ray",
        "http://127.0.0.1:1",
    ]));
    let out = elsewhere(&["train", "--config", "configs/nope.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error: cannot read config file configs/nope.toml: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without a terminal (a CI log), training prints a progress line on stderr every
/// `RATCHET_PROGRESS_SECONDS` (0 here: one per update), with whole-number rates.
#[test]
fn progress_without_a_terminal_is_a_line_on_stderr() {
    let sb = Sandbox::new();
    let out = sb
        .command(&["train", "--env", "cartpole", "--steps", "4096", "--json"])
        .env("RATCHET_PROGRESS_SECONDS", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("step 2,048/4,096 (50%), "), "{stderr}");
    assert!(
        lines[1].starts_with("step 4,096/4,096 (100%), "),
        "{stderr}"
    );
    for line in lines {
        let rate = line.split(", ").nth(1).unwrap();
        let digits = rate.strip_suffix(" steps/s").unwrap();
        assert!(
            digits.chars().all(|c| c.is_ascii_digit() || c == ','),
            "{line}"
        );
    }
}

#[test]
fn model_management_commands() {
    let sb = Sandbox::new();
    for seed in ["1", "2", "3"] {
        sb.json(&[
            "train",
            "--env",
            "cartpole",
            "--steps",
            "2048",
            "--seed",
            seed,
            "--model-name",
            "cp",
            "--json",
        ]);
    }
    // CartPole's figure is an episode return, not a percentage.
    let table = sb.run(&["models", "list", "cp"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    for row in rows {
        assert!(row.contains("/episode") && !row.contains('%'), "{table}");
    }
    // Metric filters take the names runs log (`val/…`) and those versions record.
    let logged = sb.json(&[
        "models",
        "list",
        "cp",
        "--metric",
        "val/mean_return>=0",
        "--json",
    ]);
    assert_eq!(logged.as_array().unwrap().len(), 3);
    assert_eq!(
        logged,
        sb.json(&[
            "models",
            "list",
            "cp",
            "--metric",
            "mean_return>=0",
            "--json"
        ])
    );
    sb.fails(
        &["models", "list", "cp", "--metric", "val/mean_retrun>0"],
        "error: --metric \"val/mean_retrun>0\": versions record no metric `val/mean_retrun` (did \
         you mean `val/mean_return`?); they record val/annual_volatility, val/buy_and_hold_sharpe, ",
    );
    let promoted = sb.json(&["models", "promote", "models:/cp/1", "--json"]);
    assert_eq!(promoted["version"], 1);
    sb.json(&["models", "promote", "models:/cp/3", "--json"]);
    let shown = sb.json(&["models", "show", "models:/cp@production", "--json"]);
    assert_eq!(shown["version"], 3);
    sb.json(&["models", "rollback", "cp", "--json"]);
    let shown = sb.json(&["models", "show", "models:/cp@production", "--json"]);
    assert_eq!(
        shown["version"], 1,
        "rollback returns to the previous holder"
    );

    let compared = sb.json(&[
        "models",
        "compare",
        "models:/cp/1",
        "models:/cp/2",
        "--json",
    ]);
    assert!(compared.to_string().contains("mean_return"), "{compared}");
    let valid = sb.json(&["models", "validate", "models:/cp/2", "--json"]);
    assert_eq!(valid["ok"], true, "{valid}");

    let dry = sb.json(&[
        "models",
        "cleanup",
        "cp",
        "--keep",
        "1",
        "--dry-run",
        "--json",
    ]);
    let listed = sb.json(&["models", "list", "cp", "--json"]);
    assert_eq!(
        listed.as_array().unwrap().len(),
        3,
        "dry run deletes nothing"
    );
    assert_eq!(dry["dry_run"], true, "{dry}");
    let would_delete: Vec<&Value> = dry["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(would_delete, [2], "{dry}");
    let protected: Vec<&Value> = dry["protected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p[0])
        .collect();
    assert_eq!(protected, [1], "the production version is protected: {dry}");
    sb.json(&["models", "cleanup", "cp", "--keep", "1", "--json"]);
    let listed = sb.json(&["models", "list", "cp", "--json"]);
    let versions: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert!(
        versions.contains(&1),
        "the production version is never deleted: {versions:?}"
    );
    assert!(versions.contains(&3), "the newest is kept: {versions:?}");
    assert!(!versions.contains(&2), "{versions:?}");
}

#[test]
fn bad_input_gets_one_clear_error_line() {
    let sb = Sandbox::new();
    sb.fails(&["backtest", "models:/nothing/1"], "nothing");
    sb.fails(&["models", "show", "not-a-uri"], "models:/");
    sb.fails(
        &["train", "--data", "no/such/file.csv", "--steps", "2048"],
        "no/such/file.csv",
    );

    let bad = sb.path("bad.csv");
    std::fs::write(
        &bad,
        "Date,Open,High,Low,Close,Volume\n2020-01-01,1,2,0.5,1.5,100\n2020-01-02,1,0.5,2,1.5,100\n",
    )
    .unwrap();
    sb.fails(
        &["train", "--data", bad.to_str().unwrap(), "--steps", "2048"],
        "bad.csv",
    );
    let models = sb.json(&["models", "list", "--json"]);
    assert_eq!(
        models,
        serde_json::json!([]),
        "nothing registered after a failure"
    );
    let runs = sb.json(&["runs", "list", "--json"]);
    assert_eq!(
        runs,
        serde_json::json!([]),
        "no run is started for unreadable data"
    );

    // A config error keeps TOML's layout: the line, and a caret under the key.
    // Too few steps to update the network once: refused with the minimum.
    sb.fails(
        &["train", "--steps", "100"],
        "error: run.steps 100 is less than one PPO rollout (ppo.n_steps 2048 x run.n_envs 1 = \
         2048 steps), so the network would never be updated; train at least 2048 steps, or lower \
         ppo.n_steps",
    );
    sb.fails(
        &["train", "--algo", "dqn", "--steps", "50"],
        "error: run.steps 50 ends before DQN's first update at step 104",
    );

    let cfg = sb.path("typo.toml");
    std::fs::write(&cfg, "[run]\nstpes = 10\n").unwrap();
    let out = sb.run(&["train", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {}: TOML parse error at line 2, column 1\n  |\n2 | stpes = 10\n  | ^^^^^\n\
             unknown field `stpes`, expected one of ",
            cfg.display()
        )),
        "{stderr}"
    );

    // A store location that cannot be a directory.
    let file = sb.path("plain-file");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--tracking-uri",
            file.to_str().unwrap(),
            "train",
            "--env",
            "cartpole",
            "--steps",
            "10",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));

    // An MLflow server that is not there: a clear error within the retry budget.
    let out = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .args([
            "--tracking-uri",
            "http://127.0.0.1:9",
            "experiments",
            "list",
        ])
        .env("RATCHET_HTTP_RETRY_SECONDS", "2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("127.0.0.1:9"),
        "{stderr}"
    );

    // Continue-training with different features is refused with the difference.
    sb.json(&["train", "--steps", "2048", "--model-name", "g", "--json"]);
    let other = sb.path("other.toml");
    std::fs::write(&other, "[features]\nwindow = 20\n").unwrap();
    sb.fails(
        &[
            "train",
            "--from",
            "models:/g/1",
            "--config",
            other.to_str().unwrap(),
        ],
        "window",
    );
    sb.fails(&["train", "--from", "models:/g@nosuchalias"], "nosuchalias");
    // Continuing on a file too short for the version's saved environments says so.
    let googl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/STOCKS_GOOGL.csv"),
    )
    .unwrap();
    let short = sb.path("short.csv");
    let head: Vec<&str> = googl.lines().take(301).collect();
    std::fs::write(&short, head.join("\n") + "\n").unwrap();
    let out = sb.run(&[
        "train",
        "--from",
        "models:/g/1",
        "--data",
        short.to_str().unwrap(),
        "--steps",
        "2048",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().last().unwrap();
    assert!(
        error.starts_with(&format!(
            "error: models:/g/1 cannot continue on {}: its training range ends at ",
            short.display()
        )) && error.ends_with(
            "so the saved environments stand at bars this data does not have; continue with \
             data that covers the version's training range (--data), or train a new model on \
             this file"
        ),
        "{stderr}"
    );
}

/// Every run of a local store as MLflow's own client reads it: status and the
/// `ratchet.error` tag.
fn runs_seen_by_mlflow(tracking_uri: &str) -> Vec<(String, Option<String>)> {
    let script = r#"
import json, sys, mlflow
c = mlflow.MlflowClient(sys.argv[1])
ids = [e.experiment_id for e in c.search_experiments()]
print(json.dumps([[r.info.status, r.data.tags.get("ratchet.error")] for r in c.search_runs(ids)]))
"#;
    let out = Command::new(support::python())
        .args(["-c", script, tracking_uri])
        .env("MLFLOW_ALLOW_FILE_STORE", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one run of `sb`'s store, as MLflow reads it, ended `status` with `error` (the error
/// line `ratchet` printed, without its `error: ` prefix) as its `ratchet.error` tag.
fn assert_run_ended(sb: &Sandbox, status: &str, stderr: &str) {
    let error = (status == "FAILED").then(|| {
        stderr
            .trim_end()
            .strip_prefix("error: ")
            .unwrap_or_else(|| panic!("not an error line: {stderr}"))
            .to_string()
    });
    assert_eq!(
        runs_seen_by_mlflow(&format!("file://{}", sb.store().display())),
        [(status.to_string(), error)]
    );
}

/// Waits until `child` has created its run in `sb`'s store.
fn wait_for_run(sb: &Sandbox, child: &mut Child) {
    let start = Instant::now();
    while !walk(&sb.store())
        .iter()
        .any(|p| p.ends_with("tags/mlflow.runName"))
    {
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        assert!(start.elapsed() < Duration::from_secs(120), "no run created");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A PPO CartPole run of a million steps as model `long`, checkpointing every
/// `checkpoint_every` steps.
fn spawn_long_training(sb: &Sandbox, checkpoint_every: &str) -> Child {
    sb.command(&[
        "train",
        "--env",
        "cartpole",
        "--steps",
        "1000000",
        "--checkpoint-every",
        checkpoint_every,
        "--model-name",
        "long",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

#[test]
fn a_failed_checkpoint_marks_the_run_failed_with_the_error() {
    let sb = Sandbox::new();
    let mut child = spawn_long_training(&sb, "100000");
    wait_for_run(&sb, &mut child);
    // The store's scratch directory, where checkpoints are built, becomes a file: the next
    // checkpoint cannot be written (even by root).
    let scratch = sb.store().join("0/.ratchet-staging");
    std::fs::remove_dir_all(&scratch).unwrap();
    std::fs::write(&scratch, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(".ratchet-staging"), "{stderr}");
    assert_run_ended(&sb, "FAILED", stderr.lines().last().unwrap());
}

#[test]
fn a_failed_registration_marks_the_run_failed_with_the_error() {
    let sb = Sandbox::new();
    // A file where the registered model's directory would go.
    std::fs::create_dir_all(sb.store().join("models")).unwrap();
    std::fs::write(sb.store().join("models/blocked"), "").unwrap();
    let stderr = sb.fails(
        &[
            "train",
            "--env",
            "cartpole",
            "--steps",
            "2048",
            "--model-name",
            "blocked",
        ],
        "registering a version of blocked",
    );
    assert_run_ended(&sb, "FAILED", &stderr);
}

/// A fault in the evaluation stage (after training, before registration): a validation
/// segment of one bar, too short to judge a policy on, fails the run with the error.
#[test]
fn a_failed_evaluation_marks_the_run_failed_with_the_error() {
    let sb = Sandbox::new();
    let config = sb.path("short-validation.toml");
    std::fs::write(
        &config,
        "[run]\nsteps = 256\n[ppo]\nn_steps = 128\nbatch_size = 64\n\
         [data.split]\nkind = \"fraction\"\ntrain = 0.99\nvalidation = 0.0005\n",
    )
    .unwrap();
    let out = sb.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--model-name",
        "short",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert_eq!(
        last,
        "error: evaluating the trained policy on the validation range: the backtest range holds \
         1 bars after the 10-bar observation window; it needs at least 2",
        "{stderr}"
    );
    assert_run_ended(&sb, "FAILED", &last);
    assert!(
        sb.json(&["models", "list", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_diverging_loss_stops_the_run_and_is_logged_as_nan() {
    let sb = Sandbox::new();
    let config = sb.path("diverging.toml");
    std::fs::write(
        &config,
        "[run]\nenv = \"cartpole\"\nmodel_name = \"diverging\"\n[ppo]\nlearning_rate = 1e30\nmax_grad_norm = 1e30\n",
    )
    .unwrap();
    let stderr = sb.fails(
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--steps",
            "200000",
        ],
        "training diverged: train/value_loss is NaN at step 2048",
    );
    assert_run_ended(&sb, "FAILED", &stderr);
    // The first update's value loss is stored as MLflow writes a NaN: one point, step 2048.
    let history = walk(&sb.store())
        .into_iter()
        .find(|p| p.ends_with("metrics/train/value_loss"))
        .expect("train/value_loss was logged");
    let history = std::fs::read_to_string(history).unwrap();
    let points: Vec<Vec<&str>> = history
        .lines()
        .map(|l| l.split(' ').skip(1).collect())
        .collect();
    assert_eq!(points, [["NaN", "2048"]], "{history}");
}

#[test]
fn ctrl_c_stops_at_the_next_update_not_the_next_checkpoint() {
    let sb = Sandbox::new();
    // One checkpoint at the end of a million steps: only the interrupt writes one earlier.
    let mut child = spawn_long_training(&sb, "1000000");
    wait_for_run(&sb, &mut child);
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--resume"), "{stderr}");
    assert_run_ended(&sb, "KILLED", &stderr);
    let metadata = walk(&sb.store())
        .into_iter()
        .find(|p| p.ends_with("checkpoint/metadata.json"))
        .expect("the interrupted run keeps a checkpoint");
    let metadata: Value = serde_json::from_slice(&std::fs::read(metadata).unwrap()).unwrap();
    let steps = metadata["training_steps"].as_u64().unwrap();
    // PPO updates after every 2048-step rollout of its one CartPole.
    assert_eq!(steps % 2048, 0, "{steps}");
    assert!((2048..1_000_000).contains(&steps), "{steps}");
}

/// Training, continue-training, listing and backtesting against an MLflow tracking server
/// over REST, checked with MLflow's own client.
#[test]
fn the_product_works_against_an_mlflow_server() {
    let server = MlflowServer::start(Backend::Sqlite);
    let sb = Sandbox::remote(&server.url);
    let remote = |args: &[&str]| sb.json(args);
    let first = remote(&[
        "train",
        "--steps",
        "2048",
        "--model-name",
        "remote",
        "--json",
    ]);
    assert_eq!(first["model_uri"], "models:/remote/1");
    let second = remote(&[
        "train",
        "--from",
        "models:/remote/1",
        "--steps",
        "2048",
        "--json",
    ]);
    assert_eq!(second["parent"], "models:/remote/1");
    remote(&["models", "promote", "models:/remote/2", "--json"]);
    let listed = remote(&["models", "list", "remote", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let out = sb.path("remote-report");
    remote(&[
        "backtest",
        "models:/remote@production",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.join("report.html").is_file());

    let script = r#"
import json, sys, mlflow
c = mlflow.MlflowClient(sys.argv[1])
v = c.get_model_version_by_alias("remote", "production")
run = c.get_run(v.run_id)
arts = [a.path for a in c.list_artifacts(v.run_id, "checkpoints")]
print(json.dumps({"version": v.version, "parent": v.tags.get("ratchet.parent"),
                  "status": run.info.status, "params": len(run.data.params),
                  "metrics": sorted(run.data.metrics), "artifacts": arts}))
"#;
    let seen = support::run_python(&["-c", script, &server.url]);
    assert_eq!(seen["version"], "2");
    assert_eq!(seen["parent"], "models:/remote/1");
    assert_eq!(seen["status"], "FINISHED");
    assert!(seen["params"].as_u64().unwrap() > 20, "{seen}");
    let metrics = seen["metrics"].to_string();
    assert!(
        metrics.contains("train/policy_loss") && metrics.contains("backtest/total_return"),
        "{metrics}"
    );
    assert_eq!(seen["artifacts"].as_array().unwrap().len(), 1, "{seen}");
}

/// A copy of the bundled GOOGL bars whose rows from `from` (a date) on are scaled by
/// `factor`: a different test range, the same earlier bars.
fn perturbed_googl(path: &Path, from: &str, factor: f64) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/STOCKS_GOOGL.csv"),
    )
    .unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let columns: Vec<&str> = header.split(',').collect();
    let mut out = vec![header.to_string()];
    let mut changed = 0;
    for line in lines {
        let mut cells: Vec<String> = line.split(',').map(str::to_string).collect();
        if cells[0].as_str() >= from {
            for (i, name) in columns.iter().enumerate() {
                if ["Open", "High", "Low", "Close", "Adj Close"].contains(name) {
                    let v: f64 = cells[i].parse().unwrap();
                    cells[i] = format!("{}", v * factor);
                }
            }
            changed += 1;
        }
        out.push(cells.join(","));
    }
    assert!(changed > 100, "only {changed} rows changed");
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

/// Training reads the train range (and judges on the validation range) only: the same run
/// over data whose test range differs gives bit-identical weights and validation metrics.
#[test]
fn training_never_reads_the_test_range() {
    let sb = Sandbox::new();
    let train = |data: &str, name: &str| {
        sb.json(&[
            "train",
            "--steps",
            "2048",
            "--seed",
            "3",
            "--data",
            data,
            "--model-name",
            name,
            "--json",
        ])
    };
    let original = train("data/STOCKS_GOOGL.csv", "original");
    let shown = sb.json(&["models", "show", "models:/original/1", "--json"]);
    let test_start = shown["data"]["test"]["start"].as_str().unwrap().to_string();
    let csv = sb.path("googl-other-test.csv");
    perturbed_googl(&csv, &test_start, 1.5);
    let other = train(csv.to_str().unwrap(), "other");
    let other_shown = sb.json(&["models", "show", "models:/other/1", "--json"]);
    assert_ne!(shown["data"]["sha256"], other_shown["data"]["sha256"]);
    let (test, other_test) = (&shown["data"]["test"], &other_shown["data"]["test"]);
    assert_eq!(
        (&test["start"], &test["end"]),
        (&other_test["start"], &other_test["end"])
    );
    // The bars differ in the test range only, and the recorded digests say so.
    assert_ne!(test["bars_sha256"], other_test["bars_sha256"]);
    for range in ["train", "validation"] {
        assert_eq!(shown["data"][range], other_shown["data"][range]);
    }
    assert_eq!(original["evaluation"], other["evaluation"]);
    assert_same_training_state(
        &sb.checkpoint_dir("models:/original/1"),
        &sb.checkpoint_dir("models:/other/1"),
    );
    // The test ranges do differ: a backtest there tells them apart.
    let bt = |uri: &str, out: &str| {
        sb.json(&[
            "backtest",
            uri,
            "--out",
            sb.path(out).to_str().unwrap(),
            "--json",
        ])
    };
    assert_ne!(
        bt("models:/original/1", "a")["metrics"]["buy_and_hold_total_return"],
        bt("models:/other/1", "b")["metrics"]["buy_and_hold_total_return"]
    );
}

/// The `[run] select = "best_val_sharpe"` run registers the evaluated state with the best
/// validation Sharpe ratio, and says which.
#[test]
fn select_best_val_sharpe_registers_the_best_evaluated_state() {
    let sb = Sandbox::new();
    let config = sb.path("best.toml");
    std::fs::write(
        &config,
        "[run]\nsteps = 2048\nseed = 1\neval_every = 512\nselect = \"best_val_sharpe\"\n\
         checkpoint_every = 1024\n[ppo]\nn_steps = 256\nbatch_size = 64\n",
    )
    .unwrap();
    let out = sb.json(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--model-name",
        "best",
        "--json",
    ]);
    let selection = &out["selection"];
    assert_eq!(selection["rule"], "best_val_sharpe");
    assert_eq!(selection["evaluations"], 4);
    assert_eq!(selection["last_step"], 2048);
    // The curve as the store has it: one val_curve/sharpe point per evaluation.
    let run_id = out["run_id"].as_str().unwrap();
    let history: Vec<(u64, f64)> = walk(&sb.store())
        .into_iter()
        .filter(|p| p.ends_with(format!("{run_id}/metrics/val_curve/sharpe")))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f[2].parse().unwrap(), f[1].parse().unwrap())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let steps: Vec<u64> = history.iter().map(|h| h.0).collect();
    assert_eq!(steps, [512, 1024, 1536, 2048]);
    let best = history
        .iter()
        .copied()
        .reduce(|b, h| if h.1 > b.1 { h } else { b })
        .unwrap();
    assert_eq!(selection["step"], best.0);
    assert_eq!(selection["val_sharpe"], best.1);
    assert_eq!(out["total_steps"], best.0);
    assert_eq!(out["evaluation"]["metrics"]["sharpe"], best.1);
    // The registered weights are that state's: judged again, the same Sharpe ratio.
    let judged = sb.json(&["evaluate", "models:/best/1", "--json"]);
    assert_eq!(judged["metrics"], out["evaluation"]["metrics"]);
    let shown = sb.json(&["models", "show", "models:/best/1", "--json"]);
    assert_eq!(shown["training_steps"], best.0);
    assert_eq!(shown["selection"]["step"], best.0);
    assert_eq!(shown["selection"]["val_sharpe"], best.1);
    assert_eq!(shown["selection"]["rule"], "best_val_sharpe");
    // Printed for a person: the steps trained and their time, and the step the version holds.
    let text = sb.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--model-name",
        "best-text",
    ]);
    let text = String::from_utf8_lossy(&text.stdout);
    let steps_line = text
        .lines()
        .find(|l| l.starts_with("  steps      "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(steps_line.starts_with("  steps      2048 in "), "{text}");
    let holds = format!("; the version holds step {}", best.0);
    assert_eq!(steps_line.ends_with(&holds), best.0 != 2048, "{text}");
    // Continue-training from it works and continues from the selected step.
    let cont = sb.json(&[
        "train",
        "--from",
        "models:/best/1",
        "--steps",
        "512",
        "--json",
    ]);
    assert_eq!(cont["selection"]["last_step"], best.0 + 512);

    let bad = sb.path("bad.toml");
    std::fs::write(&bad, "[run]\nselect = \"best_val_sharpe\"\n").unwrap();
    sb.fails(
        &["train", "--config", bad.to_str().unwrap()],
        "run.select = \"best_val_sharpe\" needs run.eval_every",
    );
}

/// Every look at a version's test range is counted; walk-forward is reproducible.
#[test]
fn test_looks_are_counted_and_walk_forward_is_reproducible() {
    let sb = Sandbox::new();
    sb.json(&["train", "--steps", "2048", "--model-name", "wf", "--json"]);
    let looks = || sb.json(&["models", "show", "models:/wf/1", "--json"])["test_looks"].clone();
    assert_eq!(looks(), 0);
    let shown = sb.run(&["models", "show", "models:/wf/1"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout)
            .contains("test looks    0 (its test range is untouched)")
    );
    sb.json(&["evaluate", "models:/wf/1", "--json"]);
    assert_eq!(
        looks(),
        0,
        "judging on the validation range is no test look"
    );
    let out = sb.path("r");
    sb.json(&[
        "backtest",
        "models:/wf/1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(looks(), 1);
    // In-sample: no look.
    sb.json(&[
        "backtest",
        "models:/wf/1",
        "--from",
        "2012-01-01",
        "--to",
        "2012-12-31",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(looks(), 1);

    let wf = |extra: &[&str]| {
        let mut args = vec![
            "evaluate",
            "models:/wf/1",
            "--walk-forward",
            "--folds",
            "3",
            "--steps",
            "256",
            "--json",
        ];
        args.extend(extra);
        sb.json(&args)
    };
    let first = wf(&[]);
    assert_eq!(first["mode"], "anchored");
    assert_eq!(first["test_looks"], 2);
    let folds = first["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    // Consecutive folds; anchored training starts at the first bar and ends at the fold.
    for f in folds {
        assert_eq!(f["train"][0], folds[0]["train"][0]);
        assert!(f["bars"].as_u64().unwrap() > 100);
    }
    let again = wf(&["--anchored"]);
    assert_eq!(again["folds"], first["folds"]);
    assert_eq!(again["pooled"], first["pooled"]);
    assert_eq!(again["test_looks"], 3);
    let rolling = wf(&["--rolling"]);
    assert_eq!(rolling["mode"], "rolling");
    let (a, r) = (&first["folds"][2], &rolling["folds"][2]);
    assert_eq!(a["range"], r["range"]);
    assert_ne!(a["train"][0], r["train"][0], "the rolling window moves");
    assert_eq!(looks(), 4);
    let text = sb.run(&["models", "show", "models:/wf/1"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("test looks    4\n"));
    sb.fails(
        &["evaluate", "models:/wf/1", "--walk-forward", "--folds", "0"],
        "--folds must be at least 1",
    );
    // Too many folds is known once the data is read (its summary line comes first).
    let out = sb.run(&[
        "evaluate",
        "models:/wf/1",
        "--walk-forward",
        "--folds",
        "100000",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: --folds 100000: the "),
        "{stderr}"
    );
    // clap's own refusal (with its usage lines): --folds belongs to --walk-forward.
    let out = sb.run(&["evaluate", "models:/wf/1", "--folds", "3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--walk-forward"));
    // Folds too short to judge run, with a warning saying how many folds would do.
    let after = folds
        .iter()
        .map(|f| f["bars"].as_u64().unwrap())
        .sum::<u64>();
    let out = sb.run(&[
        "evaluate",
        "models:/wf/1",
        "--walk-forward",
        "--folds",
        "40",
        "--steps",
        "1",
        "--json",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning = format!(
        "warning: --folds 40 makes folds of {} bars, too short to judge a policy by (a Sharpe \
         ratio over fewer than 30 returns is mostly noise); use at most {} folds for the {after} \
         bars after the training range\n",
        after / 40,
        after / 30
    );
    assert!(stderr.contains(&warning), "{stderr}");
    let three = sb.run(&[
        "evaluate",
        "models:/wf/1",
        "--walk-forward",
        "--folds",
        "3",
        "--steps",
        "1",
    ]);
    assert!(!String::from_utf8_lossy(&three.stderr).contains("warning:"));
}

/// A `best_val_sharpe` run that fails at registration and is finished with `--resume`
/// registers the same best state as an uninterrupted run: the best so far travels in the
/// run checkpoint, the state in the run's `checkpoint-best` artifact.
#[test]
fn resume_keeps_the_best_val_sharpe_state() {
    let sb = Sandbox::new();
    let config = sb.path("best.toml");
    std::fs::write(
        &config,
        "[run]\nsteps = 2048\nseed = 4\neval_every = 512\nselect = \"best_val_sharpe\"\n\
         [ppo]\nn_steps = 256\nbatch_size = 64\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let whole = sb.json(&["train", "--config", c, "--model-name", "whole", "--json"]);
    // An earlier state wins with this seed, so the resumed run must read checkpoint-best.
    assert_eq!(whole["selection"]["step"], 1024);
    std::fs::create_dir_all(sb.store().join("models")).unwrap();
    std::fs::write(sb.store().join("models/blocked"), "").unwrap();
    let out = sb.run(&["train", "--config", c, "--model-name", "blocked"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .contains("registering a version of blocked"),
        "{stderr}"
    );
    std::fs::remove_file(sb.store().join("models/blocked")).unwrap();
    let failed = sb
        .json(&["runs", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "FAILED")
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let resumed = sb.json(&["train", "--resume", &failed, "--json"]);
    assert_eq!(resumed["model_uri"], "models:/blocked/1");
    assert_eq!(resumed["selection"]["step"], whole["selection"]["step"]);
    assert_eq!(
        resumed["selection"]["val_sharpe"],
        whole["selection"]["val_sharpe"]
    );
    assert_eq!(resumed["evaluation"], whole["evaluation"]);
    assert_same_training_state(
        &sb.checkpoint_dir("models:/blocked/1"),
        &sb.checkpoint_dir("models:/whole/1"),
    );
}

/// A loopback TCP forwarder to an HTTP server that can be cut: while down, it closes every
/// open connection and every new one unread, as a server that went away.
struct Switch {
    url: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Switch {
    fn start(upstream: &str) -> Self {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = upstream.trim_start_matches("http://").to_string();
        let switch = Switch {
            url,
            up: Default::default(),
            open: Default::default(),
        };
        switch.up.store(true, Ordering::SeqCst);
        let (up, open) = (switch.up.clone(), switch.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up.load(Ordering::SeqCst) {
                    continue; // dropped: closed unread
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                open.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        switch
    }

    fn set(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for stream in self.open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// The tracking server goes away mid-run: the run cannot be marked FAILED then, so its end
/// waits in the run-end journal, and the next command once the server is back records it.
#[test]
fn a_run_whose_server_went_away_is_marked_failed_when_it_is_back() {
    let server = MlflowServer::start(Backend::Sqlite);
    let switch = Switch::start(&server.url);
    let sb = Sandbox::remote(&switch.url);
    let mut child = sb
        .command(&[
            "train",
            "--env",
            "cartpole",
            "--steps",
            "1000000",
            "--checkpoint-every",
            "4096",
            "--model-name",
            "gone",
        ])
        .env("RATCHET_HTTP_RETRY_SECONDS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while runs_seen_by_mlflow(&server.url).is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        assert!(start.elapsed() < Duration::from_secs(120), "no run created");
        std::thread::sleep(Duration::from_millis(100));
    }
    switch.set(false);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("will be recorded the next time ratchet opens"),
        "{stderr}"
    );
    assert_eq!(runs_seen_by_mlflow(&server.url)[0].0, "RUNNING");

    switch.set(true);
    let listed = sb.run(&["runs", "list", "--json"]);
    let note = String::from_utf8_lossy(&listed.stderr);
    assert!(note.contains("recorded the end of run"), "{note}");
    let runs = runs_seen_by_mlflow(&server.url);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0, "FAILED");
    let error = runs[0]
        .1
        .clone()
        .expect("the error is recorded as ratchet.error");
    assert!(
        error.contains(&switch.url.replace("http://", "")) || error.contains("MLflow server"),
        "{error}"
    );
    // Recorded once: the journal is empty now.
    let again = sb.run(&["runs", "list", "--json"]);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("recorded the end"));
}

/// A version is judged on the ranges it recorded, never on a new split of whatever file is at
/// its data path now: bars appended since move nothing, and a file whose bars inside a judged
/// range differ from those the version saw is an error naming the range.
#[test]
fn a_version_is_judged_on_its_own_ranges() {
    let sb = Sandbox::new();
    let full = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/STOCKS_GOOGL.csv"),
    )
    .unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let csv = sb.path("googl.csv");
    let first_rows = |n: usize| std::fs::write(&csv, lines[..=n].join("\n") + "\n").unwrap();
    first_rows(2000);
    let data = csv.to_str().unwrap();
    sb.json(&[
        "train",
        "--steps",
        "2048",
        "--data",
        data,
        "--model-name",
        "r",
        "--json",
    ]);
    let shown = sb.json(&["models", "show", "models:/r/1", "--json"]);
    let (validation, test) = (&shown["data"]["validation"], &shown["data"]["test"]);
    assert_eq!(validation["bars_sha256"].as_str().unwrap().len(), 64);
    let evaluated = sb.json(&["evaluate", "models:/r/1", "--json"]);
    assert_eq!(
        evaluated["range"],
        serde_json::json!([validation["start"], validation["end"]])
    );
    let looks = || sb.json(&["models", "show", "models:/r/1", "--json"])["test_looks"].clone();

    // The rest of the file appended: the same ranges, the same figures to the bit.
    std::fs::write(&csv, &full).unwrap();
    assert_eq!(sb.json(&["evaluate", "models:/r/1", "--json"]), evaluated);
    assert_eq!(
        looks(),
        0,
        "the validation range never reaches the test range"
    );
    let out = sb.path("report");
    let backtest = sb.json(&[
        "backtest",
        "models:/r/1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let day = |v: &Value| v.as_str().unwrap().get(..10).unwrap().to_string();
    assert_eq!(day(&backtest["range"][0]), test["start"].as_str().unwrap());
    assert_eq!(day(&backtest["range"][1]), test["end"].as_str().unwrap());
    assert_eq!(backtest["test_looks"], 1);
    assert_eq!(looks(), 1);

    // A shorter file at the same path: the validation range is not in it.
    first_rows(1200);
    sb.fails(
        &["evaluate", "models:/r/1"],
        &format!(
            "no feature row falls in the recorded validation range {} .. {}",
            validation["start"].as_str().unwrap(),
            validation["end"].as_str().unwrap()
        ),
    );

    // Other bars inside the validation and test ranges: an error for figures there...
    perturbed_googl(&csv, validation["start"].as_str().unwrap(), 1.5);
    let last_line = |args: &[&str]| {
        let out = sb.run(args);
        assert!(!out.status.success(), "ratchet {args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr.lines().last().unwrap().to_string()
    };
    let changed = format!(
        "the bars of its validation range {} .. {} differ from those it saw",
        validation["start"].as_str().unwrap(),
        validation["end"].as_str().unwrap()
    );
    let error = last_line(&["evaluate", "models:/r/1"]);
    assert!(
        error.starts_with("error: ") && error.contains(&changed),
        "{error}"
    );
    let error = last_line(&["backtest", "models:/r/1", "--out", out.to_str().unwrap()]);
    assert!(error.contains("the bars of its test range"), "{error}");
    let error = last_line(&["evaluate", "models:/r/1", "--walk-forward", "--folds", "2"]);
    assert!(error.contains(&changed), "{error}");
    assert_eq!(looks(), 1, "a refused judgement is no look");
    // ...and a warning for a backtest inside the training range, which they do not touch.
    let inside = sb.run(&[
        "backtest",
        "models:/r/1",
        "--from",
        "2012-01-01",
        "--to",
        "2012-12-31",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&inside.stderr);
    assert!(inside.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: {data}: for models:/r/1, {changed}")),
        "{stderr}"
    );
    assert_eq!(looks(), 1);

    // A shorter file under the bundled data's name in the working directory is read in
    // its place, and cannot pass for the default version's validation range either.
    let dir = sb.path("elsewhere");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("data/STOCKS_GOOGL.csv"),
        lines[..=1200].join("\n") + "\n",
    )
    .unwrap();
    sb.json(&["train", "--steps", "2048", "--model-name", "d", "--json"]);
    let out = sb
        .command(&["evaluate", "models:/d/1"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no feature row falls in the recorded validation range"),
        "{stderr}"
    );
}

/// The README's quickstart, command for command, from an empty directory with a copy of the
/// built binary (no repository beside it): the first `train`, then every `ratchet` line of
/// its "Then:" block (the `mlflow ui` line apart).
#[test]
fn the_readme_quickstart_runs_from_an_empty_directory() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let quickstart = readme
        .split("\n## Quickstart\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    let then = quickstart.split("\nThen:\n").nth(1).unwrap();
    let block = then
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let mut commands = vec![vec!["train".to_string()]];
    for line in block.lines().filter(|l| l.starts_with("ratchet ")) {
        let command = line.split(" #").next().unwrap();
        commands.push(
            command
                .split_whitespace()
                .skip(1)
                .map(String::from)
                .collect(),
        );
    }
    assert_eq!(commands.len(), 6, "{block}");

    let dir = tempfile::tempdir().unwrap();
    let (bin, work) = (dir.path().join("bin"), dir.path().join("work"));
    std::fs::create_dir(&bin).unwrap();
    std::fs::create_dir(&work).unwrap();
    let ratchet = bin.join("ratchet");
    std::fs::copy(env!("CARGO_BIN_EXE_ratchet"), &ratchet).unwrap();
    let mut printed = String::new();
    for args in &commands {
        let out = Command::new(&ratchet)
            .args(args)
            .current_dir(&work)
            .env_remove("MLFLOW_TRACKING_URI")
            .env("RATCHET_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ratchet {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    // What the README says the commands leave behind.
    assert!(printed.starts_with("registered models:/stocks-googl-ppo/1 (version 1, "));
    assert!(printed.contains("registered models:/stocks-googl-ppo/2 (version 2, "));
    assert!(
        printed.contains("\n  parent     models:/stocks-googl-ppo/1\n"),
        "{printed}"
    );
    assert!(
        work.join("reports/stocks-googl-ppo-v1/report.html")
            .is_file()
    );
    assert!(work.join("mlruns").is_dir());
    let shown = Command::new(&ratchet)
        .args([
            "models",
            "show",
            "models:/stocks-googl-ppo@production",
            "--json",
        ])
        .current_dir(&work)
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["version"], 2, "{shown}");
}

/// `--device wgpu` names the adapter it runs on, and warns when it is a software rasteriser
/// (CI's Mesa lavapipe: `(Vulkan, Cpu)`).
#[test]
fn device_wgpu_names_its_adapter() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "train", "--env", "cartpole", "--algo", "dqn", "--device", "wgpu", "--steps", "104",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let named: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("device wgpu: ") || l.starts_with("warning: device wgpu: "))
        .collect();
    assert_eq!(named.len(), 1, "{stderr}");
    let software = named[0].contains(", Cpu) is a software rasteriser");
    assert_eq!(named[0].starts_with("warning: "), software, "{stderr}");
}
