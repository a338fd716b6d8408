//! A universe end to end: one policy trained over several instruments, bit for bit
//! reproducible and continuable, judged per symbol and as an equal-weight portfolio.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod sandbox;
#[path = "../crates/mlflow/tests/support/mod.rs"]
mod support;

use sandbox::{Sandbox, assert_same_training_state};
use serde_json::Value;
use support::mlflow_server::{Backend, MlflowServer};

/// Writes a universe config over `files` into the sandbox and returns its path.
fn write_config(sb: &Sandbox, name: &str, files: &[String], extra: &str) -> String {
    let files: Vec<String> = files.iter().map(|f| format!("{f:?}")).collect();
    let text = format!(
        "[run]\nn_envs = 1\nseed = 3\n\n[data]\nfiles = [{}]\n{extra}\n",
        files.join(", ")
    );
    let path = sb.path(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `ratchet train --config CONFIG --steps STEPS --model-name NAME --json`.
fn train_with(sb: &Sandbox, config: &str, steps: &str, name: &str) -> Value {
    sb.json(&[
        "train",
        "--config",
        config,
        "--steps",
        steps,
        "--model-name",
        name,
        "--json",
    ])
}

/// Trains `config` `steps` steps as model `half` and continues it `steps` more (version 2),
/// and trains `2 * steps` at once as model `whole`: the two end in the same state, bit for bit.
fn continues_bit_for_bit(sb: &Sandbox, config: &str, steps: u64, half: &str, whole: &str) {
    train_with(sb, config, &steps.to_string(), half);
    let from = format!("models:/{half}/1");
    let steps_text = steps.to_string();
    sb.json(&["train", "--from", &from, "--steps", &steps_text, "--json"]);
    train_with(sb, config, &(2 * steps).to_string(), whole);
    assert_same_training_state(
        &sb.checkpoint_dir(&format!("models:/{half}/2")),
        &sb.checkpoint_dir(&format!("models:/{whole}/1")),
    );
}

/// The bundled GOOGL bars under another file name (so another symbol), optionally cut to
/// its first `rows` bars.
fn googl_as(sb: &Sandbox, symbol: &str, rows: Option<usize>) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/STOCKS_GOOGL.csv"
    ))
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let keep = rows.map_or(lines.len(), |r| r + 1);
    let path = sb.path(&format!("{symbol}.csv"));
    std::fs::write(&path, lines[..keep].join("\n") + "\n").unwrap();
    path.display().to_string()
}

/// The symbols a version's `models show --json` lists.
fn symbols_of(shown: &Value) -> Vec<String> {
    shown["data"]["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap().to_string())
        .collect()
}

fn metric(shown: &Value, key: &str) -> f64 {
    shown["metrics"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("no metric {key} in {}", shown["metrics"]))
}

/// The bundled demo universe (four instruments, one long-format file): the same seed gives
/// the same weights, and training N steps, registering and continuing N more equals
/// training 2N at once.
#[test]
fn a_universe_trains_and_continues_bit_for_bit() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        "universe.toml",
        &["data/UNIVERSE_DEMO.csv".to_string()],
        "",
    );
    continues_bit_for_bit(&sb, &config, 3000, "half", "whole");
    train_with(&sb, &config, "6000", "again");
    assert_same_training_state(
        &sb.checkpoint_dir("models:/whole/1"),
        &sb.checkpoint_dir("models:/again/1"),
    );
    let shown = sb.json(&["models", "show", "models:/whole/1", "--json"]);
    assert_eq!(symbols_of(&shown), ["AAA", "BBB", "CCC", "XYZ"]);
    // CCC lists in mid-2019: its training range starts once its features have warmed up,
    // half a year after AAA's.
    assert_eq!(shown["data"]["symbols"][2]["train"]["start"], "2020-01-01");
    assert_eq!(shown["data"]["symbols"][0]["train"]["start"], "2018-07-04");

    // The bundled example, with its cross-sectional features, continues bit for bit too.
    continues_bit_for_bit(
        &sb,
        "configs/universe-ppo.toml",
        8192,
        "example-half",
        "example-whole",
    );

    // Round-robin over the symbols continues bit for bit too (its cursor is saved).
    let round_robin = write_config(
        &sb,
        "round-robin.toml",
        &["data/UNIVERSE_DEMO.csv".to_string()],
        "\n[trading]\nsymbol_sampling = \"round_robin\"\n",
    );
    continues_bit_for_bit(&sb, &round_robin, 3000, "rr-half", "rr-whole");
    let by_bars = sb.json(&["models", "show", "models:/whole/1", "--json"]);
    let rr = sb.json(&["models", "show", "models:/rr-whole/1", "--json"]);
    assert_ne!(by_bars["weights_sha256"], rr["weights_sha256"]);
    assert_eq!(
        rr["hyperparameters"]["trading"]["symbol_sampling"],
        "round_robin"
    );
    assert_eq!(
        by_bars["hyperparameters"]["trading"].get("symbol_sampling"),
        None
    );

    // Walk-forward from the version: every symbol trades in both folds.
    let walked = sb.json(&[
        "evaluate",
        "models:/whole/1",
        "--walk-forward",
        "--folds",
        "2",
        "--steps",
        "2048",
        "--json",
    ]);
    for fold in walked["folds"].as_array().unwrap() {
        assert_eq!(fold["metrics"]["symbols"], 4.0, "{fold}");
    }
    assert_eq!(walked["folds"][0]["range"][0], "2022-04-23");
    assert_eq!(walked["folds"][1]["range"][1], "2023-12-31");
}

/// Three instruments with the same bars: each one's validation figures are the same, and
/// the pooled portfolio (the mean of identical returns) has them too; its returns are the
/// uploaded `val/returns.json`, whose compounding is the pooled total return.
#[test]
fn per_symbol_and_pooled_metrics_agree_with_a_hand_check() {
    let sb = Sandbox::new();
    let files: Vec<String> = ["AAA", "BBB", "CCC"]
        .iter()
        .map(|s| googl_as(&sb, s, None))
        .collect();
    let config = write_config(&sb, "same.toml", &files, "");
    let trained = sb.json(&[
        "train",
        "--config",
        &config,
        "--steps",
        "3000",
        "--model-name",
        "same",
        "--json",
    ]);
    let shown = sb.json(&["models", "show", "models:/same/1", "--json"]);
    assert_eq!(metric(&shown, "symbols"), 3.0);
    for key in ["sharpe", "total_return", "max_drawdown"] {
        let each: Vec<f64> = ["AAA", "BBB", "CCC"]
            .iter()
            .map(|s| metric(&shown, &format!("{s}/{key}")))
            .collect();
        assert_eq!(each[0], each[1], "{key}");
        assert_eq!(each[0], each[2], "{key}");
        let pooled = metric(&shown, key);
        assert!(
            (pooled - each[0]).abs() < 1e-9,
            "{key}: pooled {pooled}, each {each:?}"
        );
    }
    assert_eq!(metric(&shown, "trades"), 3.0 * metric(&shown, "AAA/trades"));

    let run_id = trained["run_id"].as_str().unwrap();
    let artifacts = walk_for(&sb.store(), run_id, "returns.json");
    let returns: Vec<f64> = serde_json::from_slice(&std::fs::read(artifacts).unwrap()).unwrap();
    let compounded = returns.iter().fold(1.0, |e, r| e * (1.0 + r)) - 1.0;
    assert_eq!(compounded, metric(&shown, "total_return"));

    // Found by symbol, not by another.
    let found = sb.json(&["models", "list", "same", "--symbol", "BBB", "--json"]);
    assert_eq!(found.as_array().unwrap().len(), 1);
    let none = sb.json(&["models", "list", "same", "--symbol", "ZZZ", "--json"]);
    assert_eq!(none.as_array().unwrap().len(), 0);
}

/// The file `name` under the run's artifacts in a local store.
fn walk_for(store: &std::path::Path, run_id: &str, name: &str) -> std::path::PathBuf {
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == name)
                && path.to_string_lossy().contains(run_id)
            {
                return path;
            }
        }
    }
    panic!("no {name} of run {run_id} under {}", store.display());
}

/// A universe version's backtest: every symbol on its own test range, one report with the
/// per-symbol table and the portfolio, the figures logged per symbol and pooled, and one
/// counted test look per backtest.
#[test]
fn a_universe_backtest_writes_one_report_and_counts_one_look() {
    let sb = Sandbox::new();
    let config = write_config(
        &sb,
        "universe.toml",
        &["data/UNIVERSE_DEMO.csv".to_string()],
        "",
    );
    train_with(&sb, &config, "2048", "u");
    let out = sb.path("report");
    let out = out.to_str().unwrap();
    let first = sb.json(&["backtest", "models:/u/1", "--out", out, "--json"]);
    assert_eq!(first["test_looks"], 1);
    let report: Value =
        serde_json::from_slice(&std::fs::read(sb.path("report/report.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "ratchet.backtest.universe-report/1");
    let symbols: Vec<&str> = report["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["AAA", "BBB", "CCC", "XYZ"]);
    // Each symbol's test range starts where the version recorded it.
    let shown = sb.json(&["models", "show", "models:/u/1", "--json"]);
    for (row, source) in report["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .zip(shown["data"]["symbols"].as_array().unwrap())
    {
        let test_start = source["test"]["start"].as_str().unwrap();
        assert!(
            row["first"].as_str().unwrap().starts_with(test_start),
            "{row} {source}"
        );
        let symbol = row["symbol"].as_str().unwrap();
        assert_eq!(
            first["metrics"][format!("{symbol}/total_return")],
            row["total_return"]
        );
    }
    assert_eq!(
        first["metrics"]["total_return"],
        report["portfolio"]["total_return"]
    );
    assert_eq!(first["metrics"]["symbols"], 4.0);
    let html = std::fs::read_to_string(sb.path("report/report.html")).unwrap();
    for id in [
        "chart-equity",
        "chart-drawdown",
        "symbols",
        "chart-positions",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "no section {id}");
    }
    let second = sb.json(&["backtest", "models:/u/1", "--out", out, "--json"]);
    assert_eq!(second["test_looks"], 2);
}

/// An instrument too short for the split is left out with a warning, or is an error naming
/// it; and commands that judge one instrument say that a universe is not one.
#[test]
fn short_histories_and_single_instrument_commands_are_explained() {
    let sb = Sandbox::new();
    let files = vec![
        googl_as(&sb, "LONG", None),
        googl_as(&sb, "SHORT", Some(150)),
    ];
    let skip = write_config(&sb, "skip.toml", &files, "");
    let stderr = sb.succeeds(&[
        "train",
        "--config",
        &skip,
        "--steps",
        "2048",
        "--model-name",
        "u",
    ]);
    assert!(
        stderr.contains("warning: universe: SHORT left out: "),
        "{stderr}"
    );
    let shown = sb.json(&["models", "show", "models:/u/1", "--json"]);
    assert_eq!(symbols_of(&shown), ["LONG"]);

    let strict = write_config(&sb, "strict.toml", &files, "short_history = \"error\"");
    sb.fails(
        &["train", "--config", &strict, "--steps", "2048"],
        "symbol SHORT: ",
    );
    // Walk-forward folds over the universe: reproducible, judged as the portfolio.
    let walk = |mode: &str| {
        let mut args = vec![
            "evaluate",
            "models:/u/1",
            "--walk-forward",
            "--folds",
            "2",
            "--steps",
            "2048",
            "--json",
        ];
        if mode == "rolling" {
            args.push("--rolling");
        }
        sb.json(&args)
    };
    let (first, again) = (walk("anchored"), walk("anchored"));
    assert_eq!(first["folds"], again["folds"]);
    assert_eq!(first["folds"].as_array().unwrap().len(), 2);
    assert_eq!(first["folds"][0]["metrics"]["symbols"], 1.0);
    assert_eq!(
        (first["test_looks"].as_u64(), again["test_looks"].as_u64()),
        (Some(1), Some(2))
    );
    let rolling = walk("rolling");
    assert_eq!(rolling["mode"], "rolling");
    // Plain evaluate gives the figures training logged.
    let evaluated = sb.json(&["evaluate", "models:/u/1", "--json"]);
    assert_eq!(evaluated["metrics"], shown["metrics"]);
}

/// Cross-sectional features read the universe a version was trained on: with a symbol left
/// out for its short history, training's validation figures and `evaluate`'s recomputation of
/// them agree (the left-out symbol's last return would otherwise linger in every later value).
/// One instrument is refused, naming the feature.
#[test]
fn cross_sectional_features_read_the_universe_trained_on() {
    let sb = Sandbox::new();
    let features = "\n[features]\nfeatures = [\n  { kind = \"log_return\", k = 1 },\n  \
                    { kind = \"universe_return\", k = 3 },\n  { kind = \"return_rank\", k = 3 },\n]";
    let files = vec![
        googl_as(&sb, "LONG", None),
        googl_as(&sb, "SHORT", Some(400)),
        googl_as(&sb, "ALSO", None),
    ];
    let config = write_config(&sb, "cross.toml", &files, features);
    let stderr = sb.succeeds(&[
        "train",
        "--config",
        &config,
        "--steps",
        "2048",
        "--model-name",
        "u",
    ]);
    assert!(
        stderr.contains("warning: universe: SHORT left out: "),
        "{stderr}"
    );
    let shown = sb.json(&["models", "show", "models:/u/1", "--json"]);
    assert_eq!(symbols_of(&shown), ["ALSO", "LONG"]);
    let evaluated = sb.json(&["evaluate", "models:/u/1", "--json"]);
    assert_eq!(evaluated["metrics"], shown["metrics"]);

    let single = sb.path("single.toml");
    std::fs::write(
        &single,
        format!("[data]\nfile = \"data/STOCKS_GOOGL.csv\"\n{features}\n"),
    )
    .unwrap();
    sb.fails(
        &[
            "train",
            "--config",
            single.to_str().unwrap(),
            "--steps",
            "2048",
        ],
        "feature universe_return_3 compares the symbols of a universe, and data/STOCKS_GOOGL.csv \
         is one instrument; train on a universe",
    );
}

/// `--data` takes a universe too (comma-separated files, or a glob), and `--from` over a
/// universe that grew says what changed and records the parent.
#[test]
fn the_data_flag_takes_a_universe_and_from_reports_its_growth() {
    let sb = Sandbox::new();
    let two = format!(
        "{},{}",
        googl_as(&sb, "AAA", None),
        googl_as(&sb, "BBB", None)
    );
    sb.json(&[
        "train",
        "--data",
        &two,
        "--steps",
        "2048",
        "--model-name",
        "g",
        "--json",
    ]);
    let symbols = |uri: &str| symbols_of(&sb.json(&["models", "show", uri, "--json"]));
    assert_eq!(symbols("models:/g/1"), ["AAA", "BBB"]);
    googl_as(&sb, "CCC", None);
    let every = sb.path("*.csv").display().to_string();
    let stderr = sb.succeeds(&[
        "train",
        "--from",
        "models:/g/1",
        "--data",
        &every,
        "--steps",
        "2048",
        "--json",
    ]);
    assert!(
        stderr.contains("universe of models:/g/1: 3 symbols, 1 added (CCC), 0 gone ()"),
        "{stderr}"
    );
    // The instruments lie end to end in another layout now: the saved episodes are not taken.
    assert!(
        stderr.contains(
            "the universe's data differs from models:/g/1's: training continues from its \
             weights, optimizer, schedules and counters, in new episodes"
        ),
        "{stderr}"
    );
    assert_eq!(symbols("models:/g/2"), ["AAA", "BBB", "CCC"]);
    let shown = sb.json(&["models", "show", "models:/g/2", "--json"]);
    assert_eq!(shown["parent"]["version"], 1);
}

/// The same universe flow against a real MLflow tracking server: train, continue, find by
/// symbol, backtest; MLflow's own client sees the per-symbol and portfolio metrics and the
/// version's symbols tag.
#[test]
fn a_universe_works_against_an_mlflow_server() {
    let server = MlflowServer::start(Backend::Sqlite);
    let sb = Sandbox::remote(&server.url);
    let config = write_config(
        &sb,
        "universe.toml",
        &["data/UNIVERSE_DEMO.csv".to_string()],
        "",
    );
    train_with(&sb, &config, "2048", "ru");
    let second = sb.json(&[
        "train",
        "--from",
        "models:/ru/1",
        "--steps",
        "2048",
        "--json",
    ]);
    assert_eq!(second["parent"], "models:/ru/1");
    let found = sb.json(&["models", "list", "ru", "--symbol", "XYZ", "--json"]);
    assert_eq!(found.as_array().unwrap().len(), 2);
    let shown = sb.json(&["models", "show", "models:/ru/2", "--json"]);
    assert_eq!(symbols_of(&shown), ["AAA", "BBB", "CCC", "XYZ"]);
    let out = sb.path("report");
    let backtest = sb.json(&[
        "backtest",
        "models:/ru/2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(backtest["test_looks"], 1);

    let script = r#"
import json, sys, mlflow
c = mlflow.MlflowClient(sys.argv[1])
v = c.get_model_version("ru", "2")
run = c.get_run(v.run_id)
print(json.dumps({"symbols": v.tags.get("ratchet.symbols"), "metrics": sorted(run.data.metrics)}))
"#;
    let seen = support::run_python(&["-c", script, &server.url]);
    assert_eq!(seen["symbols"], "AAA,BBB,CCC,XYZ");
    let metrics: Vec<&str> = seen["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for key in [
        "val/sharpe",
        "val/XYZ/sharpe",
        "backtest/total_return",
        "backtest/AAA/trades",
    ] {
        assert!(metrics.contains(&key), "{key} not in {metrics:?}");
    }
}
