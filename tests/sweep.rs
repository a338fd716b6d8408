//! `ratchet sweep` end to end: the real binary trains CartPole trials on a local pool into a
//! file store, the real MLflow client reads the parent and child runs back, and a second run
//! of the same sweep trains nothing. Bad sweeps fail with one line before anything starts.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "../crates/mlflow/tests/support/closed_port.rs"]
mod closed_port;
use closed_port::ClosedPort;

/// The repository root: the binary runs there, as a user would.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `ratchet --tracking-uri STORE ARGS…` from the repository root, its machine-local cache in
/// `cache/` beside the store.
fn command(store: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ratchet"));
    command
        .current_dir(root())
        .arg("--tracking-uri")
        .arg(store)
        .args(args)
        .env_remove("MLFLOW_TRACKING_URI")
        .env("RATCHET_CACHE_DIR", store.with_file_name("cache"));
    command
}

fn ratchet(store: &Path, args: &[&str]) -> Output {
    command(store, args).output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON on stdout ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn python() -> String {
    let python = std::env::var("RATCHET_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/ratchet/venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    });
    assert!(
        Path::new(&python).exists(),
        "no python with mlflow at {python}: run scripts/test.sh, or set RATCHET_PYTHON"
    );
    python
}

/// The sweep's runs as MLflow's own client sees them: the parent and each child with its
/// status, params and `val/mean_return`.
fn read_back_with_mlflow(store: &Path, experiment: &str) -> Value {
    let script = r#"
import json, sys, mlflow
from mlflow.tracking import MlflowClient
client = MlflowClient(tracking_uri="file://" + sys.argv[1])
exp = client.get_experiment_by_name(sys.argv[2])
runs = client.search_runs([exp.experiment_id], max_results=1000)
parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
children = [
    {
        "parent": r.data.tags["mlflow.parentRunId"],
        "trial": r.data.tags["ratchet.sweep.trial"],
        "status": r.info.status,
        "learning_rate": r.data.params["ppo.learning_rate"],
        "n_steps": r.data.params["ppo.n_steps"],
        "seed": r.data.params["run.seed"],
        "mean_return": r.data.metrics["val/mean_return"],
    }
    for r in runs if "mlflow.parentRunId" in r.data.tags
]
print(json.dumps({
    "parents": [{"id": p.info.run_id, "name": p.info.run_name, "status": p.info.status,
                 "trials_param": p.data.params.get("sweep.trials")} for p in parents],
    "children": sorted(children, key=lambda c: (c["learning_rate"], c["n_steps"], c["seed"])),
}))
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(store)
        .arg(experiment)
        .env("MLFLOW_ALLOW_FILE_STORE", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mlflow read-back failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_json(&out)
}

/// Runs (child and parent) in a file store's experiments, counted on disk.
fn run_count(store: &Path) -> usize {
    std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.yaml").is_file() && p.file_name().unwrap() != "models")
        .flat_map(|exp| std::fs::read_dir(exp).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.join("meta.yaml").is_file())
        .count()
}

#[test]
fn a_local_sweep_trains_every_trial_once_and_mlflow_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let sweep = "configs/sweep-cartpole.toml";
    let out = ratchet(&store, &["sweep", sweep, "--workers", "2", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout_json(&out);
    let summary = &first["summary"];
    assert_eq!(summary["skipped"], 0);
    assert_eq!(summary["finished"].as_array().unwrap().len(), 8);
    assert_eq!(summary["failed"], serde_json::json!([]));
    let board = &first["leaderboard"];
    assert_eq!(board["planned_trials"], 8);
    assert_eq!(board["trials"].as_array().unwrap().len(), 8);
    let configurations = board["configurations"].as_array().unwrap();
    assert_eq!(configurations.len(), 4);
    for (i, c) in configurations.iter().enumerate() {
        assert_eq!(c["rank"], i + 1);
        assert_eq!(c["seeds"], serde_json::json!([0, 1]));
    }
    // Ranked best first by the mean over seeds.
    let means: Vec<f64> = configurations
        .iter()
        .map(|c| c["mean"].as_f64().unwrap())
        .collect();
    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{means:?}");

    // The real MLflow client: one parent, eight FINISHED children under it, each with the
    // trial's overrides and seed as params.
    let mlflow = read_back_with_mlflow(&store, "sweep-cartpole");
    let parents = mlflow["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 1, "{mlflow}");
    assert_eq!(parents[0]["id"], board["parent_run_id"]);
    assert_eq!(parents[0]["name"], "sweep-cartpole");
    assert_eq!(parents[0]["status"], "FINISHED");
    assert_eq!(parents[0]["trials_param"], "8");
    let children = mlflow["children"].as_array().unwrap();
    let combos: Vec<(String, String, String)> = children
        .iter()
        .map(|c| {
            assert_eq!(c["parent"], parents[0]["id"]);
            assert_eq!(c["status"], "FINISHED");
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("learning_rate"), s("n_steps"), s("seed"))
        })
        .collect();
    let mut expected = Vec::new();
    for lr in ["0.0003", "0.001"] {
        for n in ["256", "512"] {
            for seed in ["0", "1"] {
                expected.push((lr.to_string(), n.to_string(), seed.to_string()));
            }
        }
    }
    assert_eq!(combos, expected);
    // The leaderboard's values are the runs' metrics.
    let mut from_board: Vec<(String, f64)> = board["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trial_id"].as_str().unwrap().to_string(),
                t["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut from_mlflow: Vec<(String, f64)> = children
        .iter()
        .map(|c| {
            (
                c["trial"].as_str().unwrap().to_string(),
                c["mean_return"].as_f64().unwrap(),
            )
        })
        .collect();
    from_board.sort_by(|a, b| a.0.cmp(&b.0));
    from_mlflow.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(from_board, from_mlflow);

    // Again, while another identical sweep holds the plan's lock on this machine (the test
    // holds it here): the command waits for it, then finds every trial finished in the store
    // and trains nothing.
    let runs_before = run_count(&store);
    assert_eq!(runs_before, 9);
    let sweep_id = board["sweep_id"].as_str().unwrap();
    let lock = std::fs::File::create(
        dir.path()
            .join("cache/sweeps")
            .join(format!("{sweep_id}.lock")),
    )
    .unwrap();
    lock.lock().unwrap();
    let mut second = command(&store, &["sweep", sweep, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(second.stderr.take().unwrap());
    let mut waiting = String::new();
    stderr.read_line(&mut waiting).unwrap();
    assert_eq!(
        waiting,
        format!(
            "waiting: another `ratchet sweep` of this plan ({sweep_id}) is running on this \
             machine; its finished trials will not be trained again\n"
        )
    );
    drop(lock);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let again = second.wait_with_output().unwrap();
    assert!(again.status.success(), "{rest}");
    let again = stdout_json(&again);
    assert_eq!(again["summary"]["skipped"], 8);
    assert_eq!(again["summary"]["finished"], serde_json::json!([]));
    assert_eq!(run_count(&store), runs_before);
    assert_eq!(again["leaderboard"], first["leaderboard"]);

    // `sweep show` by name gives the same leaderboard.
    let shown = ratchet(&store, &["sweep", "show", "sweep-cartpole", "--json"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert_eq!(stdout_json(&shown), first["leaderboard"]);
}

#[test]
fn a_failing_trial_is_retried_recorded_and_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "no,bars,here\n").unwrap();
    let sweep = dir.path().join("failing.toml");
    std::fs::write(
        &sweep,
        format!(
            "[base]\nrun = {{ algo = \"ppo\", env = \"cartpole\", steps = 256, experiment = \"failing\" }}\n\
             ppo = {{ n_steps = 128 }}\n\
             [[list]]\nrun.seed = 1\n\
             [[list]]\nrun = {{ env = \"trading\" }}\ndata = {{ file = {:?} }}\n",
            bad.display().to_string()
        ),
    )
    .unwrap();
    let out = ratchet(
        &store,
        &["sweep", sweep.to_str().unwrap(), "--retries", "1", "--json"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        stderr.lines().last().unwrap(),
        "error: 1 of 2 trials failed after 2 attempts each; run the sweep again to retry them"
    );
    assert_eq!(
        stderr.matches("failed (attempt 1), retrying").count(),
        1,
        "{stderr}"
    );
    let result = stdout_json(&out);
    assert_eq!(result["summary"]["finished"].as_array().unwrap().len(), 1);
    let failed = result["summary"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0][1].as_str().unwrap().contains("bad.csv"),
        "{failed:?}"
    );
    let board = &result["leaderboard"];
    assert_eq!(board["trials"].as_array().unwrap().len(), 1);
    assert_eq!(
        board["failed"][failed[0][0].as_str().unwrap()],
        failed[0][1]
    );
}

/// Runs a sweep that must be refused: one `error:` line holding `expected`, and no store
/// created (nothing started).
fn refused(sweep_text: &str, extra: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let sweep = dir.path().join("s.toml");
    std::fs::write(&sweep, sweep_text).unwrap();
    let mut args = vec!["sweep", sweep.to_str().unwrap()];
    args.extend(extra);
    let out = ratchet(&store, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{sweep_text}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!("error: {}: {expected}", sweep.display());
    assert!(
        stderr.trim_end().starts_with(&expected),
        "expected {expected:?}, got {stderr}"
    );
    assert!(!store.exists(), "the store was touched for {sweep_text}");
}

const BASE: &str = "[base]\nrun = { env = \"cartpole\", steps = 256 }\nppo = { n_steps = 128 }\n";

#[test]
fn bad_sweeps_are_refused_with_one_line_before_anything_starts() {
    refused(
        &format!("{BASE}[grid]\nppo.learnin_rate = [0.001, 0.01]\n"),
        &[],
        "grid axis `ppo.learnin_rate` = 0.001: unknown field `learnin_rate`, expected one of `learning_rate`",
    );
    refused(
        &format!("{BASE}[grid]\nppo.gamma = []\n"),
        &[],
        "grid axis `ppo.gamma` is empty; give it at least one value",
    );
    refused(
        &format!("{BASE}[grid]\nppo.gamma = [0.99]\n"),
        &[],
        "the sweep changes nothing: it trains one configuration once",
    );
    refused(
        &format!("{BASE}[grid]\nrun.steps = [0, 64]\n"),
        &[],
        "grid axis `run.steps` = 0: run.steps must be at least 1",
    );
    refused(
        &format!("{BASE}[grid]\nrun.steps = [128, 64]\n"),
        &[],
        "grid axis `run.steps` = 64: run.steps 64 is less than one PPO rollout (ppo.n_steps 128 x \
         run.n_envs 1 = 128 steps)",
    );
    refused(
        &format!("metric = \"val/mean_retrun\"\n{BASE}[grid]\nppo.gamma = [0.9, 0.99]\n"),
        &[],
        "metric `val/mean_retrun` is not a figure the trials log (did you mean \
         `val/mean_return`?); the sweep ranks by one of val/mean_return",
    );
    refused(
        "metric = \"val/sharp\"\n[base]\nrun = { steps = 2048 }\n[grid]\nppo.gamma = [0.9, 0.99]\n",
        &[],
        "metric `val/sharp` is not a figure the trials log (did you mean `val/sharpe`?); the \
         sweep ranks by one of val/annual_volatility, val/buy_and_hold_sharpe,",
    );
    // Clap refuses it before anything runs.
    let dir = tempfile::tempdir().unwrap();
    let out = ratchet(
        &dir.path().join("mlruns"),
        &["sweep", "configs/sweep-cartpole.toml", "--workers", "0"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("error: invalid value '0' for '--workers <N>': must be at least 1\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("mlruns").exists());
}

#[test]
fn an_unreachable_ray_address_is_refused_before_anything_starts() {
    let closed = ClosedPort::reserve();
    let port = closed.port;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let url = format!("http://127.0.0.1:{port}");
    let out = ratchet(
        &store,
        &["sweep", "configs/sweep-cartpole.toml", "--ray", &url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot reach a Ray dashboard at {url} (")),
        "{stderr}"
    );
    assert!(
        stderr
            .trim_end()
            .ends_with("give its dashboard address (port 8265 by default) to --ray"),
        "{stderr}"
    );
    assert!(!store.exists());
}

/// Per-period Sharpe ratio of `r` (sample standard deviation).
fn sharpe(r: &[f64]) -> f64 {
    let n = r.len() as f64;
    let mean = r.iter().sum::<f64>() / n;
    let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    mean / var.sqrt()
}

/// A trading sweep selected honestly: every trial judged on its validation range (with
/// `select = "best_val_sharpe"`), the deflated Sharpe ratio and PBO from the uploaded
/// validation returns, the selected trial registered under an alias with the sweep's
/// statistics, tested once on its test range (counted), and the HTML page's scatter.
#[test]
fn a_trading_sweep_registers_and_final_tests_the_selected_trial() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let sweep = dir.path().join("honest.toml");
    std::fs::write(
        &sweep,
        "name = \"honest\"\nmetric = \"val/sharpe\"\nseeds = [0, 1]\n\
         [base]\nrun = { steps = 512, eval_every = 256, select = \"best_val_sharpe\", experiment = \"honest\", model_name = \"honest-ppo\" }\n\
         ppo = { n_steps = 128, batch_size = 64, n_epochs = 2 }\n\
         [grid]\nppo.learning_rate = [0.0003, 0.003]\nppo.ent_coef = [0.0, 0.01]\n",
    )
    .unwrap();
    let html = dir.path().join("board.html");
    let out = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .current_dir(root())
        .arg("--tracking-uri")
        .arg(&store)
        .args([
            "sweep",
            sweep.to_str().unwrap(),
            "--workers",
            "2",
            "--register-best",
        ])
        .args(["--final-test", "--json", "--html", html.to_str().unwrap()])
        .arg("--out")
        .arg(dir.path().join("final-test"))
        .env_remove("MLFLOW_TRACKING_URI")
        .env("RATCHET_CACHE_DIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = stdout_json(&out);
    let board = &result["leaderboard"];
    let trials = board["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 8);
    let best_id = board["best_trial"].as_str().unwrap();
    let best = trials.iter().find(|t| t["trial_id"] == best_id).unwrap();
    let best_value = best["value"].as_f64().unwrap();
    for t in trials {
        assert!(t["value"].as_f64().unwrap() <= best_value);
        assert_eq!(t["value"], t["val_sharpe"]);
    }
    assert!(
        board["selection"].as_str().unwrap().starts_with(&format!(
            "trial {best_id} is selected: the highest val/sharpe"
        )),
        "{board}"
    );

    // The deflated Sharpe ratio is computed from the best trial's uploaded returns.
    let returns_file = std::fs::read_dir(&store)
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .find(|p| p.ends_with(best["run_id"].as_str().unwrap()))
        .unwrap()
        .join("artifacts/val/returns.json");
    let returns: Vec<f64> =
        serde_json::from_str(&std::fs::read_to_string(returns_file).unwrap()).unwrap();
    let d = &board["deflated_sharpe"];
    assert_eq!(d["trial_id"], best_id);
    assert_eq!(d["trials"], 8);
    assert_eq!(d["observations"], returns.len());
    let s = d["sharpe"].as_f64().unwrap();
    assert!(
        (s - sharpe(&returns)).abs() < 1e-12 * s.abs().max(1.0),
        "{s}"
    );
    assert!((0.0..=1.0).contains(&d["deflated_sharpe"].as_f64().unwrap()));
    let pbo = &board["overfitting"];
    assert_eq!(
        (&pbo["trials"], &pbo["partitions"]),
        (&Value::from(8), &Value::from(16))
    );
    assert_eq!(pbo["splits"], 12870);

    // Registered under @best with the sweep's statistics, and tested exactly once.
    let selected = &result["selected"];
    assert_eq!(selected["trial_id"], best_id);
    assert_eq!(selected["alias"], "best");
    let model_uri = selected["model_uri"].as_str().unwrap();
    let shown = stdout_json(&ratchet(
        &store,
        &["models", "show", "models:/honest-ppo@best", "--json"],
    ));
    assert_eq!(
        format!("models:/honest-ppo/{}", shown["version"]),
        model_uri
    );
    assert_eq!(shown["test_looks"], 1);
    assert_eq!(shown["sweep"]["trial"], best_id);
    assert_eq!(shown["sweep"]["trials"], "8");
    assert_eq!(
        shown["sweep"]["deflated_sharpe"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        d["deflated_sharpe"].as_f64().unwrap()
    );
    assert_eq!(
        shown["sweep"]["pbo"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        pbo["probability"].as_f64().unwrap()
    );
    assert_eq!(shown["selection"]["rule"], "best_val_sharpe");
    let test_sharpe = selected["final_test"]["metrics"]["sharpe"].clone();
    assert_eq!(selected["final_test"]["test_looks"], 1);
    // Only the selected trial's test range was looked at.
    let tested: Vec<&Value> = trials
        .iter()
        .filter(|t| !t["test_sharpe"].is_null())
        .collect();
    assert_eq!(tested.len(), 1);
    assert_eq!(tested[0]["trial_id"], best_id);
    assert_eq!(tested[0]["test_sharpe"], test_sharpe);
    assert!(dir.path().join("final-test/report.html").is_file());

    // The page: every trial, the statistics, one point in the scatter (the tested trial).
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<circle").count(), 1);
    assert!(page.contains(&format!(
        "class=\"dot best\" data-trial=\"{best_id}\" data-val=\"{}\" data-test=\"{}\"",
        best_value, test_sharpe
    )));
    assert!(page.contains(&format!(
        "<td class=\"n\" id=\"pbo\">{:.4}</td>",
        pbo["probability"].as_f64().unwrap()
    )));
    for t in trials {
        assert!(page.contains(&format!("<td>{}", t["trial_id"].as_str().unwrap())));
    }

    // `sweep show` writes the same page again.
    let again = dir.path().join("again.html");
    let shown = ratchet(
        &store,
        &["sweep", "show", "honest", "--html", again.to_str().unwrap()],
    );
    assert!(shown.status.success());
    assert_eq!(std::fs::read_to_string(&again).unwrap(), page);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("probability of backtest overfitting"));
}

/// The store failing while trials run (here: the parent run's tag for a failed trial cannot
/// be written) ends the sweep with the error, after stopping the trials still running and
/// waiting for them (their runs end KILLED, none is left training), and keeps their logs.
#[test]
fn a_sweep_that_fails_stops_its_running_trials_and_keeps_their_logs() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let (short, long) = (dir.path().join("short.csv"), dir.path().join("long.csv"));
    // Unreadable bars (high below low): the trial fails as it loads them.
    let bad = "Date,Open,High,Low,Close,Volume\n2020-01-01,1,0.5,2,1.5,100\n";
    std::fs::write(&short, bad).unwrap();
    std::fs::write(&long, bad).unwrap();
    let sweep = dir.path().join("failing.toml");
    std::fs::write(
        &sweep,
        format!(
            "name = \"failing\"\n[base]\nrun = {{ steps = 10000000, experiment = \"failing\" }}\n\
             ppo = {{ n_steps = 256, batch_size = 64, n_epochs = 1 }}\n\
             [grid]\ndata.file = [{short:?}, {long:?}]\n"
        ),
    )
    .unwrap();
    let sweep = sweep.to_str().unwrap();
    let args = ["sweep", sweep, "--workers", "2", "--retries", "0"];
    // First: both trials fail at once; the parent run records each failure as a tag.
    assert_eq!(ratchet(&store, &args).status.code(), Some(1));
    let failure_tags: Vec<std::path::PathBuf> = walk(&store)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("ratchet.sweep.failed.")
        })
        .collect();
    assert_eq!(failure_tags.len(), 2);
    // Now one trial trains for long on good bars, and the tag the other's failure writes
    // cannot be written: a directory stands where the file goes.
    std::fs::copy(root().join("data/STOCKS_GOOGL.csv"), &long).unwrap();
    for tag in &failure_tags {
        std::fs::remove_file(tag).unwrap();
        std::fs::create_dir_all(tag.join("in-the-way")).unwrap();
    }
    let out = ratchet(&store, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr.lines().last().unwrap();
    let logs = error
        .strip_prefix("error: the sweep stopped its running trials; their logs are in ")
        .and_then(|rest| rest.split(": ").next())
        .unwrap_or_else(|| panic!("{stderr}"));
    let logs: Vec<String> = std::fs::read_dir(logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        logs.iter().filter(|f| f.ends_with(".err")).count(),
        2,
        "{logs:?}"
    );
    // The long trial was stopped and waited for: no run is left RUNNING (the parent ends
    // FAILED, the trial KILLED, or never started if the stop came first).
    let statuses: Vec<String> = walk(&store)
        .into_iter()
        .filter(|p| p.ends_with("meta.yaml"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("status: "))
                .map(str::to_string)
        })
        .collect();
    assert!(!statuses.is_empty());
    assert!(
        !statuses.iter().any(|s| s == "1"),
        "a run is left RUNNING: {statuses:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
