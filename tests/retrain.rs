//! `ratchet retrain` end to end: a version trained on the first part of the bundled GOOGL
//! bars, retrained on the whole file; the same inputs again; a gate that fails; two
//! retrains at once; a retrain killed mid-training and finished by the next call.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod sandbox;
#[path = "../crates/mlflow/tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Output, Stdio};

use sandbox::{Sandbox, assert_same_training_state, signal, wait_for_checkpoints, walk};
use serde_json::Value;
use support::mlflow_server::{Backend, MlflowServer};

const GOOGL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/STOCKS_GOOGL.csv");
/// Bars of the first part (of 2335).
const FIRST_PART: usize = 1800;
/// `[retrain]` of every test: the new validation range is the 200 bars before the newest
/// 100, which are held back.
const RETRAIN: &str = "[retrain]\nvalidation_bars = 200\ntest_bars = 100\n";

/// The bundled file's lines (header first).
fn googl_lines() -> Vec<String> {
    std::fs::read_to_string(GOOGL)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The date of bar `i` (0-based) of the bundled file.
fn date_of_bar(i: usize) -> String {
    googl_lines()[i + 1].split(',').next().unwrap().to_string()
}

/// A sandbox holding `part.csv` (the first [`FIRST_PART`] bars), `whole.csv` (all of them)
/// and `retrain.toml` ([`RETRAIN`] and `extra`), with version 1 of model `g` trained on the
/// first part and promoted to production.
fn trained_on_first_part(extra: &str) -> Sandbox {
    let sb = Sandbox::new();
    train_on_first_part(&sb, extra);
    sb
}

/// [`trained_on_first_part`] in a given sandbox.
fn train_on_first_part(sb: &Sandbox, extra: &str) {
    let lines = googl_lines();
    std::fs::write(sb.path("part.csv"), lines[..=FIRST_PART].join("\n") + "\n").unwrap();
    std::fs::copy(GOOGL, sb.path("whole.csv")).unwrap();
    std::fs::write(sb.path("retrain.toml"), format!("{RETRAIN}{extra}")).unwrap();
    let part = sb.path("part.csv");
    let first = sb.json(&[
        "train",
        "--data",
        part.to_str().unwrap(),
        "--steps",
        "2048",
        "--seed",
        "3",
        "--model-name",
        "g",
        "--json",
    ]);
    assert_eq!(first["model_uri"], "models:/g/1");
    sb.succeeds(&["models", "promote", "models:/g/1"]);
}

/// `ratchet retrain MODEL --data DATA --config retrain.toml --steps STEPS --json` and
/// `extra`, with DATA a file of the sandbox.
fn retrain_of(sb: &Sandbox, model: &str, data: &str, steps: u64, extra: &[&str]) -> Vec<String> {
    let mut args = [
        "retrain",
        model,
        "--data",
        sb.path(data).to_str().unwrap(),
        "--config",
        sb.path("retrain.toml").to_str().unwrap(),
        "--steps",
        &steps.to_string(),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// The retrain of production over the whole file.
fn retrain_args(sb: &Sandbox, steps: u64) -> Vec<String> {
    retrain_of(sb, "models:/g@production", "whole.csv", steps, &[])
}

fn run(sb: &Sandbox, args: &[String]) -> Output {
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// [`retrain_args`] started in the background, its output discarded.
fn spawn_retrain(sb: &Sandbox, steps: u64) -> Child {
    let args = retrain_args(sb, steps);
    sb.command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn retrain(sb: &Sandbox, steps: u64) -> Output {
    run(sb, &retrain_args(sb, steps))
}

/// The exit code and JSON of a retrain.
fn outcome(out: &Output) -> (i32, Value) {
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), json)
}

/// A version tag, read from the file store.
fn version_tag(sb: &Sandbox, version: u64, key: &str) -> Option<String> {
    std::fs::read_to_string(
        sb.store()
            .join(format!("models/g/version-{version}/tags/{key}")),
    )
    .ok()
}

fn version_count(sb: &Sandbox) -> usize {
    sb.json(&["models", "list", "g", "--json"])
        .as_array()
        .unwrap()
        .len()
}

/// The version an alias points at.
fn alias(sb: &Sandbox, alias: &str) -> Value {
    sb.json(&["models", "show", &format!("models:/g@{alias}"), "--json"])["version"].clone()
}

#[test]
fn retrain_moves_the_ranges_and_judges_both_versions_on_the_same_bars() {
    // Any challenger passes: the flow, not the agent, is under test.
    let sb = trained_on_first_part("beat_champion_by = -100.0\n");
    let (code, out) = outcome(&retrain(&sb, 2048));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["outcome"], "candidate");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["version"], "models:/g/2");
    assert_eq!(out["source"], "models:/g/1");
    assert_eq!(out["reason"], Value::Null);
    let phases: Vec<&String> = out["seconds"].as_object().unwrap().keys().collect();
    assert_eq!(
        phases,
        [
            "champion_evaluation",
            "inputs",
            "preparation",
            "registration",
            "total",
            "training_and_evaluation"
        ]
    );

    let shown = sb.json(&["models", "show", "models:/g/2", "--json"]);
    assert_eq!(shown["parent"]["name"], "g");
    assert_eq!(shown["parent"]["version"], 1);
    assert_eq!(shown["status"], "validated");
    assert_eq!(shown["aliases"], serde_json::json!(["candidate"]));
    assert_eq!(
        shown["training_steps"], 4096,
        "2048 more steps than the source"
    );
    // 2335 bars: the newest 100 held back, the 200 before them validated on, training on
    // everything before.
    let data = &shown["data"];
    assert_eq!(data["validation"]["start"], date_of_bar(2035));
    assert_eq!(data["validation"]["end"], date_of_bar(2234));
    assert_eq!(data["test"]["start"], date_of_bar(2235));
    assert_eq!(data["test"]["end"], date_of_bar(2334));
    assert_eq!(data["train"]["end"], date_of_bar(2034));
    let source = sb.json(&["models", "show", "models:/g/1", "--json"]);
    assert_eq!(
        data["train"]["start"], source["data"]["train"]["start"],
        "anchored: training still starts at the first bar"
    );

    // Both evaluations on the same bars: the version's validation range.
    let (challenger, champion) = (&out["challenger"], &out["champion"]);
    assert_eq!(challenger["model_uri"], "models:/g/2");
    assert_eq!(champion["model_uri"], "models:/g/1");
    let digest = &data["validation"]["bars_sha256"];
    assert_eq!(challenger["bars_sha256"], *digest);
    assert_eq!(champion["bars_sha256"], *digest);
    assert_eq!(challenger["range"], champion["range"]);
    assert_eq!(
        challenger["range"],
        serde_json::json!([date_of_bar(2035), date_of_bar(2234)])
    );
    assert_eq!(challenger["sharpe"], shown["metrics"]["sharpe"]);
    // The tags hold the same evaluations and the decision.
    let tagged: Value =
        serde_json::from_str(&version_tag(&sb, 2, "ratchet.retrain.champion_val").unwrap())
            .unwrap();
    assert_eq!(tagged, *champion);
    assert_eq!(
        version_tag(&sb, 2, "ratchet.retrain.decision").as_deref(),
        Some("passed")
    );
    assert_eq!(
        version_tag(&sb, 2, "ratchet.retrain.champion").as_deref(),
        Some("models:/g/1")
    );
    assert_eq!(alias(&sb, "production"), 1, "production is not touched");

    // The same inputs again: nothing new, nothing registered, the version reported.
    let (code, again) = outcome(&retrain(&sb, 2048));
    assert_eq!(code, 3, "{again}");
    assert_eq!(again["outcome"], "nothing_new");
    assert_eq!(again["version"], "models:/g/2");
    assert_eq!(again["key"], out["key"]);
    assert_eq!(again["challenger"], *challenger);
    assert_eq!(again["seconds"], Value::Null);
    assert_eq!(version_count(&sb), 2);

    // The data the source was trained on holds nothing new.
    let part = sb.path("part.csv");
    let args = retrain_of(
        &sb,
        "models:/g/1",
        "part.csv",
        2048,
        &["--wait-for-data", "1"],
    );
    let (code, nothing) = outcome(&run(&sb, &args));
    assert_eq!(code, 3);
    assert_eq!(
        nothing["reason"],
        format!(
            "{} holds no bar after {}, the last bar of models:/g/1",
            part.display(),
            source["data"]["test"]["end"].as_str().unwrap()
        )
    );
    assert_eq!(version_count(&sb), 2);
}

/// `window = "rolling"`: the new version trains on the `train_bars` just before its
/// validation range, continuing the source's weights, optimizer and schedules in new
/// episodes (the saved ones stand before the window).
#[test]
fn a_rolling_window_trains_on_the_bars_just_before_validation() {
    let sb = trained_on_first_part(
        "beat_champion_by = -100.0\nwindow = \"rolling\"\ntrain_bars = 500\n",
    );
    let out = retrain(&sb, 2048);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let (code, json) = outcome(&out);
    assert_eq!(code, 0, "{json}");
    assert!(stderr.contains("in new episodes"), "{stderr}");
    let shown = sb.json(&["models", "show", "models:/g/2", "--json"]);
    // 2335 bars: test the newest 100, validation the 200 before, training the 500 before.
    assert_eq!(shown["data"]["train"]["start"], date_of_bar(1535));
    assert_eq!(shown["data"]["train"]["end"], date_of_bar(2034));
    assert_eq!(shown["data"]["validation"]["start"], date_of_bar(2035));
    assert_eq!(shown["training_steps"], 4096);
    assert_eq!(shown["parent"]["version"], 1);
}

/// `test_bars = 0`: the newest bars validate and no test range is held back; a backtest of
/// the version then names its bars, and the next retrain waits for bars after validation.
#[test]
fn test_bars_0_holds_back_no_test_range() {
    let sb = trained_on_first_part("");
    std::fs::write(
        sb.path("retrain.toml"),
        "[retrain]\nvalidation_bars = 200\ntest_bars = 0\nbeat_champion_by = -100.0\n",
    )
    .unwrap();
    let (code, out) = outcome(&retrain(&sb, 2048));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["version"], "models:/g/2");
    // 2335 bars: the newest 200 validated on, training on everything before.
    let shown = sb.json(&["models", "show", "models:/g/2", "--json"]);
    let data = &shown["data"];
    assert_eq!(data["train"]["end"], date_of_bar(2134));
    assert_eq!(data["validation"]["start"], date_of_bar(2135));
    assert_eq!(data["validation"]["end"], date_of_bar(2334));
    assert_eq!(data["test"], Value::Null);
    assert_eq!(out["challenger"]["range"], out["champion"]["range"]);
    assert_eq!(
        out["challenger"]["range"],
        serde_json::json!([date_of_bar(2135), date_of_bar(2334)])
    );
    let text = String::from_utf8(sb.run(&["models", "show", "models:/g/2"]).stdout).unwrap();
    assert!(
        text.contains("\n  test          none held back\n"),
        "{text}"
    );

    // No test range to backtest by default: the error says how to name bars.
    let out = sb.run(&["backtest", "models:/g/2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("models:/g/2 has no bars to backtest by default: no test range of")
            && stderr.contains("name the bars with --from/--to"),
        "{stderr}"
    );
    // Named bars backtest, and count no test look (there is none to spend).
    let report = sb.json(&[
        "backtest",
        "models:/g/2",
        "--from",
        &date_of_bar(2135),
        "--json",
    ]);
    assert_eq!(report["test_range"], false);
    assert_eq!(report["test_looks"], Value::Null);
    let shown = sb.json(&["models", "show", "models:/g/2", "--json"]);
    assert_eq!(shown["test_looks"], 0);

    // The version was judged up to the file's last bar: nothing new for it.
    let args = retrain_of(&sb, "models:/g/2", "whole.csv", 2048, &[]);
    let (code, nothing) = outcome(&run(&sb, &args));
    assert_eq!(code, 3, "{nothing}");
    assert_eq!(
        nothing["reason"],
        format!(
            "{} holds no bar after {}, the last bar of models:/g/2",
            sb.path("whole.csv").display(),
            date_of_bar(2334)
        )
    );
}

#[test]
fn a_gate_the_challenger_fails_leaves_the_aliases_untouched() {
    let sb = trained_on_first_part("min_val_sharpe = 100.0\n");
    sb.succeeds(&["models", "promote", "models:/g/1", "--alias", "candidate"]);
    let (code, out) = outcome(&retrain(&sb, 2048));
    assert_eq!(code, 4, "{out}");
    assert_eq!(out["outcome"], "rejected");
    assert_eq!(out["version"], "models:/g/2");
    let sharpe = out["challenger"]["sharpe"].as_f64().unwrap();
    let reason = format!("validation sharpe {sharpe:.4} is below min_val_sharpe 100.0000");
    assert_eq!(out["reason"], reason);
    assert_eq!(
        version_tag(&sb, 2, "ratchet.retrain.reason").as_deref(),
        Some(reason.as_str())
    );
    assert_eq!(
        version_tag(&sb, 2, "ratchet.retrain.decision").as_deref(),
        Some("rejected")
    );
    let shown = sb.json(&["models", "show", "models:/g/2", "--json"]);
    assert_eq!(shown["retrain"]["decision"], "rejected");
    assert_eq!(shown["retrain"]["reason"], reason);
    assert_eq!(shown["retrain"]["challenger"], out["challenger"]);
    assert_eq!(shown["status"], "registered");
    assert_eq!(shown["aliases"], Value::Null, "no alias");
    assert_eq!(alias(&sb, "production"), 1);
    assert_eq!(alias(&sb, "candidate"), 1);
}

#[test]
fn with_no_version_behind_the_alias_the_first_candidate_is_trained() {
    let sb = trained_on_first_part("");
    let args = retrain_of(&sb, "models:/fresh@production", "whole.csv", 2048, &[]);
    let (code, out) = outcome(&run(&sb, &args));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["version"], "models:/fresh/1");
    assert_eq!(out["source"], Value::Null);
    assert_eq!(out["champion"], Value::Null);
    let shown = sb.json(&["models", "show", "models:/fresh@candidate", "--json"]);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["parent"], Value::Null);
    assert_eq!(shown["data"]["validation"]["start"], date_of_bar(2035));
}

#[test]
fn two_retrains_at_once_make_one_version() {
    let sb = trained_on_first_part("beat_champion_by = -100.0\n");
    two_at_once(&sb);
    assert_eq!(version_count(&sb), 2);
}

/// Starts two identical retrains at once: one registers version 2, the other reports it.
fn two_at_once(sb: &Sandbox) {
    // Long enough for the two to overlap: the second waits for the first's lock.
    let args = retrain_args(sb, 8192);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let children: Vec<Child> = (0..2)
        .map(|_| {
            sb.command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outcomes: Vec<(i32, Value)> = children
        .into_iter()
        .map(|c| outcome(&c.wait_with_output().unwrap()))
        .collect();
    outcomes.sort_by_key(|(code, _)| *code);
    let codes: Vec<i32> = outcomes.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [0, 3], "{outcomes:?}");
    assert_eq!(outcomes[0].1["version"], "models:/g/2");
    assert_eq!(
        outcomes[1].1["version"], "models:/g/2",
        "the other reports it"
    );
}

/// `retrain.toml` with checkpoints every PPO rollout, so a run is caught between two.
const CHECKPOINT_EVERY_ROLLOUT: &str = "\n[run]\ncheckpoint_every = 2048\n";

#[test]
fn a_killed_retrain_is_finished_by_the_next_call_bit_for_bit() {
    let extra = format!("beat_champion_by = -100.0\n{CHECKPOINT_EVERY_ROLLOUT}");
    // A retrain caught running after its first checkpoint (the source's run holds one
    // too); a machine fast enough to finish it first gets one ten times longer.
    let mut steps = 40_960;
    let (killed, steps) = loop {
        let sb = trained_on_first_part(&extra);
        let mut child = spawn_retrain(&sb, steps);
        if wait_for_checkpoints(&sb, &mut child, 2) {
            signal(&child, "-KILL");
            child.wait().unwrap();
            break (sb, steps);
        }
        assert!(
            steps < 10_000_000,
            "every retrain ended before the test saw it"
        );
        steps *= 10;
    };
    assert_eq!(version_count(&killed), 1, "killed before registering");
    let finished = retrain(&killed, steps);
    let stderr = String::from_utf8_lossy(&finished.stderr).to_string();
    let (code, out) = outcome(&finished);
    assert_eq!(code, 0, "{out}\n{stderr}");
    assert!(
        stderr.contains(": finishing the interrupted run "),
        "{stderr}"
    );
    assert!(stderr.contains("resuming run "), "{stderr}");
    assert_eq!(out["version"], "models:/g/2");

    let whole = trained_on_first_part(&extra);
    let (code, uninterrupted) = outcome(&retrain(&whole, steps));
    assert_eq!(code, 0, "{uninterrupted}");
    assert_eq!(
        uninterrupted["key"], out["key"],
        "the same inputs, the same key"
    );
    assert_same_training_state(
        &killed.checkpoint_dir("models:/g/2"),
        &whole.checkpoint_dir("models:/g/2"),
    );
    assert_eq!(out["challenger"], uninterrupted["challenger"]);
    assert_eq!(version_count(&killed), 2);
}

#[test]
fn wait_for_data_retrains_once_the_new_bars_arrive() {
    let sb = trained_on_first_part("beat_champion_by = -100.0\n");
    let feed = sb.path("feed.csv");
    std::fs::copy(sb.path("part.csv"), &feed).unwrap();
    let args = retrain_of(
        &sb,
        "models:/g@production",
        "feed.csv",
        2048,
        &["--wait-for-data", "600"],
    );
    let mut child = sb
        .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("waiting up to 600 s for ") {
        line.clear();
        assert_ne!(
            stderr.read_line(&mut line).unwrap(),
            0,
            "ended without waiting"
        );
    }
    // The pipeline's new file lands whole.
    let staged = sb.path("feed.csv.tmp");
    std::fs::copy(sb.path("whole.csv"), &staged).unwrap();
    std::fs::rename(&staged, &feed).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let (code, out) = outcome(&child.wait_with_output().unwrap());
    assert_eq!(code, 0, "{out}\n{rest}");
    assert_eq!(out["version"], "models:/g/2");
    let shown = sb.json(&["models", "show", "models:/g/2", "--json"]);
    assert_eq!(shown["data"]["test"]["end"], date_of_bar(2334));
}

/// The flow against a real MLflow tracking server: two retrains at once make one version
/// (the lock is a lock model there), the same inputs again register nothing, and MLflow's
/// own client sees the lineage, the aliases, the decision and both evaluations.
#[test]
fn retrain_works_against_an_mlflow_server() {
    let server = MlflowServer::start(Backend::Sqlite);
    let sb = Sandbox::remote(&server.url);
    train_on_first_part(&sb, "beat_champion_by = -100.0\n");
    two_at_once(&sb);
    let (code, again) = outcome(&retrain(&sb, 8192));
    assert_eq!(code, 3, "{again}");
    assert_eq!(again["version"], "models:/g/2");
    assert_eq!(version_count(&sb), 2);

    let script = r#"
import json, sys, mlflow
c = mlflow.MlflowClient(sys.argv[1])
v = c.get_model_version("g", "2")
run = c.get_run(v.run_id)
print(json.dumps({
    "tags": {k: t for k, t in v.tags.items() if k.startswith("ratchet.retrain.") or k == "ratchet.parent"},
    "candidate": c.get_model_version_by_alias("g", "candidate").version,
    "production": c.get_model_version_by_alias("g", "production").version,
    "versions": len(c.search_model_versions("name='g'")),
    "metrics": sorted(k for k in run.data.metrics if k.startswith(("val/", "champion_val/"))),
}))
"#;
    let seen = support::run_python(&["-c", script, &server.url]);
    assert_eq!(seen["candidate"], "2");
    assert_eq!(seen["production"], "1");
    assert_eq!(seen["versions"], 2);
    let tags = &seen["tags"];
    assert_eq!(tags["ratchet.parent"], "models:/g/1");
    assert_eq!(tags["ratchet.retrain.source"], "models:/g/1");
    assert_eq!(tags["ratchet.retrain.champion"], "models:/g/1");
    assert_eq!(tags["ratchet.retrain.decision"], "passed");
    assert_eq!(tags["ratchet.retrain.key"], again["key"]);
    let challenger: Value =
        serde_json::from_str(tags["ratchet.retrain.challenger_val"].as_str().unwrap()).unwrap();
    let champion: Value =
        serde_json::from_str(tags["ratchet.retrain.champion_val"].as_str().unwrap()).unwrap();
    assert_eq!(challenger["bars_sha256"], champion["bars_sha256"]);
    assert_eq!(challenger["sharpe"], again["challenger"]["sharpe"]);
    let metrics: Vec<&str> = seen["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for key in ["val/sharpe", "champion_val/sharpe", "champion_val/psr"] {
        assert!(metrics.contains(&key), "{key} not in {metrics:?}");
    }
}

#[test]
fn ranges_that_cannot_be_cut_are_refused_before_any_work() {
    let sb = trained_on_first_part("");
    let whole = sb.path("whole.csv");
    let config = sb.path("retrain.toml");
    let args = |config: &str| {
        [
            "retrain",
            "models:/g@production",
            "--data",
            whole.to_str().unwrap(),
            "--config",
            config,
        ]
        .map(String::from)
    };
    // 1000 validation bars would start at bar 1235, inside the source's training range.
    std::fs::write(
        &config,
        "[retrain]\nvalidation_bars = 1000\ntest_bars = 100\n",
    )
    .unwrap();
    let source = sb.json(&["models", "show", "models:/g/1", "--json"]);
    sb.fails(
        &args(config.to_str().unwrap())
            .each_ref()
            .map(String::as_str),
        &format!(
            "error: the new validation range would start at {}T00:00:00Z, inside the training \
             range of models:/g/1 (up to {}): the champion would be judged on bars it trained \
             on",
            date_of_bar(1235),
            source["data"]["train"]["end"].as_str().unwrap()
        ),
    );
    std::fs::write(&config, "[retrain]\nvalidation_bar = 10\n").unwrap();
    // TOML's own layout: the line, a caret under the key.
    let typo = sb.run(
        &args(config.to_str().unwrap())
            .each_ref()
            .map(String::as_str),
    );
    assert_eq!(typo.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        stderr.contains(
            "2 | validation_bar = 10\n  | ^^^^^^^^^^^^^^\nunknown field `validation_bar`"
        ),
        "{stderr}"
    );
    assert_eq!(version_count(&sb), 1, "nothing registered");
    let runs = sb.json(&["runs", "list", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 1, "no run started");
}

#[test]
fn a_retrain_killed_before_its_first_checkpoint_is_started_afresh() {
    // No checkpoint before the end of training.
    let extra = "beat_champion_by = -100.0\n\n[run]\ncheckpoint_every = 100000000\n";
    let mut steps = 204_800;
    let (sb, orphan) = loop {
        let sb = trained_on_first_part(extra);
        let mut child = spawn_retrain(&sb, steps);
        let started = loop {
            let runs = sb.json(&["runs", "list", "--json"]);
            if runs.as_array().unwrap().len() == 2 {
                break Some(runs[0]["run_id"].as_str().unwrap().to_string());
            }
            if child.try_wait().unwrap().is_some() {
                break None;
            }
        };
        signal(&child, "-KILL");
        child.wait().unwrap();
        match started {
            Some(run) if version_count(&sb) == 1 => break (sb, run),
            _ => {
                assert!(
                    steps < 100_000_000,
                    "every retrain ended before the test saw it"
                );
                steps *= 10;
            }
        }
    };
    let (code, out) = outcome(&retrain(&sb, steps));
    assert_eq!(code, 0, "{out}");
    assert_ne!(out["run_id"], orphan.as_str(), "a new run");
    let runs = sb.json(&["runs", "list", "--json"]);
    let orphan = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == orphan.as_str())
        .unwrap();
    assert_eq!(orphan["status"], "FAILED");
    let error = sb.store().join(format!(
        "{}/{}/tags/ratchet.error",
        orphan["experiment_id"].as_str().unwrap(),
        orphan["run_id"].as_str().unwrap()
    ));
    assert_eq!(
        std::fs::read_to_string(error).unwrap(),
        "a retrain killed before its first checkpoint; the next retrain starts afresh"
    );
}

/// On a server: a retrain killed mid-training holds the lock model until its beat goes
/// stale; the next call then takes it over, finds the run by its key and finishes it from the
/// checkpoint the server holds, with the weights of an uninterrupted retrain.
#[test]
fn a_killed_retrain_on_a_server_is_finished_by_the_next_call() {
    let extra = format!("beat_champion_by = -100.0\n{CHECKPOINT_EVERY_ROLLOUT}");
    // Each checkpoint is an upload: few of them.
    let mut steps = 40_960;
    let (_server, sb, steps) = loop {
        let server = MlflowServer::start(Backend::Sqlite);
        let sb = Sandbox::remote(&server.url);
        train_on_first_part(&sb, &extra);
        let mut child = spawn_retrain(&sb, steps);
        // A run checkpoint is uploaded to `checkpoint.<n>/` (n = 1, 2, …), and the run's tag
        // points at it once it is whole: the retrain's second upload means its first counts.
        // (The source's run, checkpointed once, holds `checkpoint.1`.)
        let caught = loop {
            let second = walk(&server.artifacts()).into_iter().any(|p| {
                let dir = p.parent().unwrap().file_name().unwrap().to_string_lossy();
                p.ends_with("MANIFEST.json")
                    && dir
                        .strip_prefix("checkpoint.")
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|n| n >= 2)
            });
            if second {
                break true;
            }
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        signal(&child, "-KILL");
        child.wait().unwrap();
        if caught && version_count(&sb) == 1 {
            break (server, sb, steps);
        }
        assert!(
            steps < 100_000_000,
            "every retrain ended before the test saw it"
        );
        steps *= 10;
    };
    let finished = retrain(&sb, steps);
    let stderr = String::from_utf8_lossy(&finished.stderr).to_string();
    let (code, out) = outcome(&finished);
    assert_eq!(code, 0, "{out}\n{stderr}");
    assert!(
        stderr.contains(": finishing the interrupted run "),
        "{stderr}"
    );
    assert_eq!(out["version"], "models:/g/2");
    assert_eq!(version_count(&sb), 2);

    let local = trained_on_first_part(&extra);
    let (code, uninterrupted) = outcome(&retrain(&local, steps));
    assert_eq!(code, 0, "{uninterrupted}");
    let weights = |sb: &Sandbox| {
        sb.json(&["models", "show", "models:/g/2", "--json"])["weights_sha256"].clone()
    };
    assert_eq!(weights(&sb), weights(&local));
    assert_eq!(out["challenger"], uninterrupted["challenger"]);
}
