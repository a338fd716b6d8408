//! `ratchet serve` end to end: the real binary on a loopback port, a real `mlruns/` store,
//! versions trained on the bundled data, clients over real sockets.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../crates/mlflow/tests/support/mod.rs"]
mod support;
use support::closed_port::ClosedPort;
use support::fault_proxy::FaultProxy;
use support::mlflow_server::{Backend, MlflowServer};

mod sandbox;
use sandbox::feast_python;

const DATA: &str = "data/STOCKS_GOOGL.csv";

/// A scratch store (or an MLflow server) with versions trained in it.
struct Store {
    dir: tempfile::TempDir,
    server: Option<String>,
}

impl Store {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            server: None,
        }
    }

    /// Commands go to an MLflow tracking server.
    fn remote(url: &str) -> Self {
        Self {
            server: Some(url.to_string()),
            ..Self::new()
        }
    }

    fn uri(&self) -> String {
        self.server
            .clone()
            .unwrap_or_else(|| self.dir.path().join("mlruns").display().to_string())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ratchet"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--tracking-uri")
            .arg(self.uri())
            .args(args)
            .env_remove("MLFLOW_TRACKING_URI")
            .env_remove("RATCHET_SERVE_TOKEN")
            .env("RATCHET_CACHE_DIR", self.dir.path().join("cache"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "ratchet {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Trains a small version of `name` and returns its number.
    fn train(&self, name: &str, algo: &str, seed: u64) -> u64 {
        let seed = seed.to_string();
        let out = self.run(&[
            "train",
            "--algo",
            algo,
            "--steps",
            "2048",
            "--seed",
            &seed,
            "--model-name",
            name,
            "--json",
        ]);
        let out: Value = serde_json::from_slice(&out.stdout).unwrap();
        out["version"].as_u64().unwrap()
    }

    fn promote(&self, name: &str, version: u64, alias: &str) {
        self.run(&[
            "models",
            "promote",
            &format!("models:/{name}/{version}"),
            "--alias",
            alias,
        ]);
    }

    fn show(&self, uri: &str) -> Value {
        serde_json::from_slice(&self.run(&["models", "show", uri, "--json"]).stdout).unwrap()
    }

    /// The kinds of the deployment events recorded on a version, oldest first.
    fn deployment_events(&self, uri: &str) -> Vec<String> {
        self.show(uri)["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    }

    /// The version's deployment events once `done` holds for them (or after 30 s, for the
    /// caller's assertion to show): the server records an event in its own history first
    /// and in the store a moment later.
    fn deployment_events_when(&self, uri: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.deployment_events(uri);
            if done(&events) || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `ratchet serve` on a free loopback port.
    fn serve(&self, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut cmd = self.command(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(address) = line.trim().strip_prefix("listening on ") else {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("ratchet serve did not start: {line}{stderr}");
        };
        Server {
            child,
            base: address.to_string(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }
}

struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Server {
    /// (status, JSON body) of a request.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut response = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.agent.post(&url);
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.content_type("application/json").send(body.unwrap_or(b""))
            }
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST /v1/bars` with `body`, without a token: the status and the JSON answer.
    fn post_bars(&self, body: &Value) -> (u16, Value) {
        self.call("POST", "/v1/bars", Some(body.to_string().as_bytes()), &[])
    }

    /// [`Server::post_bars`] that must be taken.
    fn bars(&self, body: &Value) -> Value {
        let (status, answer) = self.post_bars(body);
        assert_eq!(status, 200, "{answer}");
        answer
    }

    fn metrics(&self) -> String {
        let mut r = self
            .agent
            .get(&format!("{}/metrics", self.base))
            .call()
            .unwrap();
        r.body_mut().read_to_string().unwrap()
    }

    fn deployment(&self) -> Value {
        self.call("GET", "/v1/deployment", None, &[]).1
    }

    /// Waits (up to a minute) until `role` serves `version`.
    fn wait_for(&self, role: &str, version: Option<u64>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = self.deployment();
            if d[role]["serving"]["version"].as_u64() == version {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "{role} never served {version:?}: {d:#}"
            );
            self.call("POST", "/v1/reload", None, &[]);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM; the server must drain and exit 0.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "ratchet serve exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bundled data's bars as `ratchet train` loads them.
fn bars() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DATA);
    let bars = ratchet_data::load_bars(&path, &ratchet_data::LoadOptions::default())
        .unwrap()
        .bars;
    (0..bars.len())
        .map(|i| {
            json!({
                "timestamp": bars.timestamps[i], "open": bars.open[i], "high": bars.high[i],
                "low": bars.low[i], "close": bars.close[i], "volume": bars.volume[i],
            })
        })
        .collect()
}

/// Positions held through each bar of a backtest (`held[0] = 0`), from its report's trades.
fn held_positions(report: &Value) -> Vec<f64> {
    let n = report["bars"].as_u64().unwrap() as usize;
    let mut held = vec![0.0; n];
    for trade in report["trades"].as_array().unwrap() {
        let side = if trade["side"] == "long" { 1.0 } else { -1.0 };
        let entry = trade["entry_bar"].as_u64().unwrap() as usize;
        let exit = trade["exit_bar"].as_u64().unwrap() as usize;
        let end = if trade["closed"].as_bool().unwrap() {
            exit
        } else {
            exit + 1
        };
        for h in &mut held[entry..end] {
            *h = side;
        }
    }
    held
}

/// Backtests `model` from the bar `first_ms` (the first the server decided at) and checks that
/// `decisions`, the server's positions from that bar on, are exactly the backtest's: the
/// decision after bar t is the position held through bar t + 1. `bars` is how many bars the
/// backtest covers.
fn assert_backtest_holds(
    store: &Store,
    model: &str,
    first_ms: i64,
    bars: usize,
    decisions: &[f64],
) {
    let from = chrono::DateTime::from_timestamp_millis(first_ms)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let out = store.dir.path().join("report");
    store.run(&[
        "backtest",
        model,
        "--from",
        &from,
        "--out",
        out.to_str().unwrap(),
    ]);
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let held = held_positions(&report);
    assert_eq!(
        held.len(),
        bars,
        "the backtest starts at the first decision"
    );
    assert_eq!(
        decisions[..held.len() - 1],
        held[1..],
        "serve and backtest disagree"
    );
    assert!(
        report["trades"].as_array().unwrap().len() > 2,
        "a policy that trades"
    );
}

/// Streams the whole data file bar by bar through the server and checks that, from the first
/// decision on, the positions are exactly those of `ratchet backtest` over the same bars.
fn check_serving_matches_the_backtest(algo: &str) {
    let store = Store::new();
    let name = format!("googl-{algo}");
    let v = store.train(&name, algo, 3);
    store.promote(&name, v, "production");
    let server = store.serve(&[&format!("models:/{name}@production")], &[]);
    let mut decisions = Vec::new();
    let mut first_decision = None;
    let all = bars();
    for (i, bar) in all.iter().enumerate() {
        let answer = server.bars(&json!({"symbol": "GOOGL", "bars": [bar]}));
        let d = &answer["decisions"][0];
        if d["warming_up"] == true {
            assert!(first_decision.is_none(), "warming up again at bar {i}: {d}");
            assert!(d["bars_needed"].as_u64().unwrap() > 0);
            assert!(d.get("position").is_none());
            continue;
        }
        first_decision.get_or_insert(i);
        assert_eq!(d["version"], v);
        assert_eq!(d["role"], "production");
        decisions.push(d["position"].as_f64().unwrap());
    }
    let first = first_decision.expect("the server decided");
    assert_backtest_holds(
        &store,
        &format!("models:/{name}/{v}"),
        all[first]["timestamp"].as_i64().unwrap(),
        all.len() - first,
        &decisions,
    );
    server.stop();
}

/// Trains a small universe version `name` (version 1) on the bundled demo universe with
/// `features` (a `[features]` table, or nothing for the defaults), promoted to production.
fn train_universe(store: &Store, name: &str, features: &str) {
    let config = store.dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("[run]\nn_envs = 1\nseed = 3\n\n[data]\nfiles = [\"data/UNIVERSE_DEMO.csv\"]\n\n{features}"),
    )
    .unwrap();
    store.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "2048",
        "--model-name",
        name,
    ]);
    store.promote(name, 1, "production");
}

fn demo_universe() -> ratchet_data::Universe {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/UNIVERSE_DEMO.csv");
    ratchet_data::Universe::load(&[path], &ratchet_data::LoadOptions::default()).unwrap()
}

fn wire_bar(b: &ratchet_data::Bars, i: usize) -> Value {
    json!({
        "timestamp": b.timestamps[i], "open": b.open[i], "high": b.high[i],
        "low": b.low[i], "close": b.close[i], "volume": b.volume[i],
    })
}

/// A universe version with cross-sectional features serves its symbols bit for bit: every
/// symbol's bars, one request per timestamp as a feed delivers them (the symbols of a
/// timestamp in reverse order, where the backtest took them in symbol order), give each
/// symbol the positions of the universe backtest over its whole history. A symbol outside
/// the universe is refused naming the universe, so is a bar stamped before the latest one
/// the server took, and `--any-symbol` is refused at start.
#[test]
fn serving_a_universe_gives_each_symbol_its_backtest_positions() {
    let store = Store::new();
    train_universe(
        &store,
        "u",
        "[features]\nfeatures = [\n  { kind = \"log_return\", k = 1 },\n  { kind = \"rsi\", period = 14 },\n  { kind = \"universe_return\", k = 5 },\n  { kind = \"return_rank\", k = 5 },\n  { kind = \"excess_return\", k = 5 },\n]\n",
    );
    let universe = demo_universe();
    // Every timestamp's bars, symbols in reverse order.
    let mut feed: std::collections::BTreeMap<i64, Vec<(usize, Value)>> = Default::default();
    for (s, member) in universe.members.iter().enumerate().rev() {
        let b = &member.loaded.bars;
        for i in 0..b.len() {
            feed.entry(b.timestamps[i])
                .or_default()
                .push((s, wire_bar(b, i)));
        }
    }

    let server = store.serve(&["models:/u@production", "--poll-seconds", "0.05"], &[]);
    let first = &feed.values().next().unwrap()[0].1;
    let outsider = json!({"symbol": "ZZZ", "bars": [first]});
    let (status, answer) = server.post_bars(&outsider);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"],
        "symbol \"ZZZ\" is not in the universe of models:/u/1 (AAA, BBB, CCC, XYZ); serve with \
         --any-symbol to decide for other symbols too"
    );
    let mut decisions: Vec<Vec<f64>> = vec![Vec::new(); universe.members.len()];
    for bars in feed.values() {
        let request: Vec<Value> = bars
            .iter()
            .map(|(s, bar)| json!({"symbol": universe.members[*s].symbol, "bars": [bar]}))
            .collect();
        let answer = server.bars(&Value::Array(request));
        for ((s, _), d) in bars.iter().zip(answer["decisions"].as_array().unwrap()) {
            assert_eq!(d["symbol"], universe.members[*s].symbol.as_str());
            if d["warming_up"] != true {
                decisions[*s].push(d["position"].as_f64().unwrap());
            }
        }
    }
    // A symbol that did not trade at the last timestamp, given a bar after its own last one
    // but before the universe's latest.
    let latest = *feed.keys().last().unwrap();
    let late = universe
        .members
        .iter()
        .find(|m| *m.loaded.bars.timestamps.last().unwrap() < latest)
        .unwrap();
    let mut bar = wire_bar(&late.loaded.bars, late.loaded.bars.len() - 1);
    bar["timestamp"] = json!(late.loaded.bars.timestamps.last().unwrap() + 1);
    let (status, answer) = server.post_bars(&json!({"symbol": late.symbol, "bars": [bar]}));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("the latest bar the universe has taken"),
        "{answer}"
    );
    // A version of the same features over fewer symbols cannot share the cross-section.
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/UNIVERSE_DEMO.csv"),
    )
    .unwrap();
    let fewer: Vec<&str> = demo
        .lines()
        .filter(|line| !line.contains(",XYZ,"))
        .collect();
    let fewer_path = store.dir.path().join("fewer.csv");
    std::fs::write(&fewer_path, fewer.join("\n") + "\n").unwrap();
    store.run(&[
        "train",
        "--from",
        "models:/u/1",
        "--data",
        fewer_path.to_str().unwrap(),
        "--steps",
        "2048",
    ]);
    store.promote("u", 2, "production");
    let refusal = wait_for_event(&server, "refused", 2);
    assert_eq!(
        refusal["detail"],
        "models:/u/2 trades the symbols AAA,BBB,CCC but the sessions' cross-sectional features \
         read AAA,BBB,CCC,XYZ; restart the server to serve it"
    );
    server.stop();

    let out = store.dir.path().join("report");
    store.run(&[
        "backtest",
        "models:/u/1",
        "--from",
        "2000-01-01",
        "--out",
        out.to_str().unwrap(),
    ]);
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    for (s, row) in report["symbols"].as_array().unwrap().iter().enumerate() {
        let held: Vec<f64> = row["positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(row["symbol"], universe.members[s].symbol.as_str());
        assert_eq!(held.len(), decisions[s].len(), "{}", row["symbol"]);
        // The decision after bar t is the position held through bar t + 1.
        assert_eq!(
            decisions[s][..held.len() - 1],
            held[1..],
            "{}",
            row["symbol"]
        );
        assert!(row["trades"].as_u64().unwrap() > 2, "a policy that trades");
    }

    let refused = store
        .command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "models:/u@production",
            "--any-symbol",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "models:/u/2 has the cross-sectional feature universe_return_5, which reads the bars \
             of its universe's symbols only; serve it without --any-symbol"
        ),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// A universe version without cross-sectional features decides for any symbol with
/// `--any-symbol` (and refuses outsiders without it).
#[test]
fn a_universe_version_decides_for_any_symbol_when_asked() {
    let store = Store::new();
    train_universe(&store, "u", "");
    let universe = demo_universe();
    let outsider =
        json!({"symbol": "ZZZ", "bars": [wire_bar(&universe.members[0].loaded.bars, 0)]});
    let closed = store.serve(&["models:/u@production"], &[]);
    assert_eq!(closed.post_bars(&outsider).0, 400);
    closed.stop();
    let open = store.serve(&["models:/u@production", "--any-symbol"], &[]);
    let answer = open.bars(&outsider);
    assert_eq!(answer["decisions"][0]["bars_accepted"], 1);
    open.stop();
}

/// A version whose features join an outside source serves bit for bit as its backtest when
/// each bar carries the source's row that became known with it (`"external": {"vix": 13.2}`);
/// an unknown source or a bad value is a 400 and the server goes on.
#[test]
fn serving_with_outside_values_gives_the_backtest_positions() {
    let store = Store::new();
    let all = bars();
    // A daily "vix" on the bars' dates, every seventh date missing.
    let value = |i: usize| 15.0 + ((i as f64) * 0.05).sin() * 3.0;
    let mut vix = String::from("timestamp,close\n");
    for (i, bar) in all.iter().enumerate() {
        if i % 7 != 3 {
            vix.push_str(&format!("{},{}\n", bar["timestamp"], value(i)));
        }
    }
    let vix_path = store.dir.path().join("vix.csv");
    std::fs::write(&vix_path, vix).unwrap();
    let config = store.dir.path().join("outside.toml");
    std::fs::write(
        &config,
        format!(
            "[run]\nn_envs = 1\nseed = 3\n\n[[features.external]]\nname = \"vix\"\n\
             source = \"{}\"\ntimestamp = \"timestamp\"\ncolumns = [\"close\"]\n\
             max_staleness = \"5d\"\nmissing = \"last\"\ntransform = \"zscore\"\nwindow = 10\n",
            vix_path.display()
        ),
    )
    .unwrap();
    store.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "2048",
        "--model-name",
        "ov",
    ]);
    store.promote("ov", 1, "production");
    let server = store.serve(&["models:/ov@production"], &[]);
    let (status, answer) = server.post_bars(&json!({"symbol": "GOOGL", "bars": [
        {"timestamp": all[0]["timestamp"], "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
         "volume": 1.0, "external": {"vox": 1.0}}
    ]}));
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        "GOOGL bar 0: external \"vox\" is not an outside source of the served version (it has vix)"
    );
    let mut decisions = Vec::new();
    let mut first = None;
    for (i, bar) in all.iter().enumerate() {
        let mut bar = bar.clone();
        if i % 7 != 3 {
            bar["external"] = json!({"vix": value(i)});
        }
        let answer = server.bars(&json!({"symbol": "GOOGL", "bars": [bar]}));
        let d = &answer["decisions"][0];
        if d["warming_up"] != true {
            first.get_or_insert(i);
            decisions.push(d["position"].as_f64().unwrap());
        }
    }
    let (status, answer) = server.post_bars(&json!({"symbol": "GOOGL", "bars": [{
        "timestamp": "2030-01-01", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
        "volume": 1.0, "external": {"vix": {"close": "high"}}
    }]}));
    assert_eq!(status, 400, "{answer}");
    // A bar long after the source's last row carries its last value, and is counted; so is
    // every bar of the feed more than 5 days after the row before it.
    server.bars(&json!({"symbol": "GOOGL", "bars": [{
        "timestamp": "2030-01-02", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
        "volume": 1.0
    }]}));
    let mut last_row = None;
    let mut carried = 1;
    for (i, bar) in all.iter().enumerate() {
        let t = bar["timestamp"].as_i64().unwrap();
        if i % 7 != 3 {
            last_row = Some(t);
        } else if last_row.is_some_and(|row| t - row > 5 * 86_400_000) {
            carried += 1;
        }
    }
    assert!(
        server.metrics().contains(&format!(
            "ratchet_outside_carried_total{{source=\"vix\"}} {carried}\n"
        )),
        "{carried}"
    );
    server.stop();

    let first = first.unwrap();
    assert_backtest_holds(
        &store,
        "models:/ov/1",
        all[first]["timestamp"].as_i64().unwrap(),
        all.len() - first,
        &decisions,
    );
}

/// `feast serve` of a repository on a free loopback port; stopped when dropped.
struct FeastServer {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl FeastServer {
    /// Starts it from the Feast venv and waits until `/health` answers 200.
    fn start(python: &Path, repo: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python.with_file_name("feast"))
            .args(["serve", "-p", &port.to_string(), "--no-access-log"])
            .current_dir(repo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = FeastServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !server.healthy() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "feast serve exited"
            );
            assert!(
                Instant::now() < deadline,
                "feast serve never became healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn healthy(&self) -> bool {
        self.agent
            .get(&format!("{}/health", self.url))
            .call()
            .is_ok_and(|r| r.status() == 200)
    }

    /// Writes one row of `view` to the online store through the feature server.
    fn write(&self, view: &str, row: &FeastRow) {
        let iso = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let mut response = self
            .agent
            .post(&format!("{}/write-to-online-store", self.url))
            .send_json(json!({"feature_view_name": view, "df": {
                "symbol": [FEAST_SYMBOL], "event_timestamp": [iso(row.event)],
                "created": [iso(row.created)], "score": [row.score],
            }}))
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert_eq!(status, 200, "{text}");
    }

    /// SIGTERM (gunicorn stops its worker) and waits until nothing answers on its port.
    fn stop(mut self) {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .agent
            .get(&format!("{}/health", self.url))
            .call()
            .is_ok()
        {
            assert!(Instant::now() < deadline, "feast serve still answers");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn terminate(&mut self) {
        if self.child.try_wait().unwrap().is_some() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FeastServer {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The symbol training gives the bundled data (its file's name), and the Feast entity key.
const FEAST_SYMBOL: &str = "STOCKS_GOOGL";

/// A row of the Feast source of the `--feast-online` test.
struct FeastRow {
    event: i64,
    created: i64,
    score: f64,
    /// The bar before which the test writes it to the online store.
    write_before: usize,
}

/// The value of the sample of `name` whose labels include `labels`, in a metrics text.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|l| l == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().unwrap())
    })
}

/// `serve --feast-online` against a real `feast serve`: a version trained on a Feast view
/// (TTL 10 days, missing = "last") serves bit for bit as its backtest while the test writes
/// each source row to Feast's online store before the bar it becomes known at (restatements
/// included; a row written before its event time is not used for the bar it was written
/// before, and that bar is counted `after_bar`). With Feast stopped, every bar is counted
/// `unreachable`, carries the last value once it is older than the TTL, and is answered. A
/// version whose rule is "error" gets a 503 with a JSON error when Feast cannot be reached,
/// and the server goes on (a bar carrying the value in "external" is taken). Skipped only
/// without the Feast venv.
#[test]
fn serving_with_feast_online_gives_the_backtest_positions() {
    let Some(python) = feast_python() else {
        eprintln!(
            "skipped: no Feast venv at ~/.cache/ratchet/feast-venv (or $RATCHET_FEAST_PYTHON); make it with scripts/feast_venv.sh (scripts/test.sh does)"
        );
        return;
    };
    let store = Store::new();
    let all = bars();
    let time = |i: usize| all[i]["timestamp"].as_i64().unwrap();
    let score = |i: usize| ((i as f64) * 0.37).sin();
    let mut rows: Vec<FeastRow> = Vec::new();
    for i in 0..all.len() {
        let gap = (40..=60).contains(&(i % 70));
        if i % 5 == 0 && !gap {
            rows.push(FeastRow {
                event: time(i),
                created: time(i),
                score: score(i),
                write_before: i,
            });
        } else if i % 5 == 2 && rows.last().is_some_and(|r| r.event == time(i - 2)) {
            // Restated two bars later.
            rows.push(FeastRow {
                event: time(i - 2),
                created: time(i),
                score: score(i) + 0.5,
                write_before: i,
            });
        } else if i % 50 == 28 && i + 1 < all.len() {
            // Written a bar before its event time: known from the next bar.
            rows.push(FeastRow {
                event: time(i + 1),
                created: time(i),
                score: score(i) - 0.25,
                write_before: i,
            });
        }
    }
    let written_early = rows.iter().filter(|r| r.created < r.event).count();
    let mut csv = String::from("symbol,event_ms,created_ms,score\n");
    for r in &rows {
        csv.push_str(&format!(
            "{FEAST_SYMBOL},{},{},{}\n",
            r.event, r.created, r.score
        ));
    }
    let rows_csv = store.dir.path().join("rows.csv");
    std::fs::write(&rows_csv, csv).unwrap();
    let repo = store.dir.path().join("feature_repo");
    let made = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/feast/online.py"))
        .arg(&repo)
        .arg(&rows_csv)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "online.py failed:\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let train = |name: &str, view: &str, missing: &str| {
        let config = store.dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[run]\nn_envs = 1\nseed = 3\n\n[[features.feast]]\nrepo = \"{}\"\n\
                 views = [\"{view}:score\"]\nmissing = \"{missing}\"\n",
                repo.display()
            ),
        )
        .unwrap();
        store.run(&[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--steps",
            "2048",
            "--model-name",
            name,
        ]);
        store.promote(name, 1, "production");
    };
    train("fo", "signal", "last");

    let feast = FeastServer::start(&python, &repo);
    let server = store.serve(
        &[
            "models:/fo@production",
            "--feast-online",
            feast.url.as_str(),
            "--feast-timeout",
            "60s",
        ],
        &[],
    );
    let mut decisions = Vec::new();
    let mut first = None;
    for (i, bar) in all.iter().enumerate() {
        for row in rows.iter().filter(|r| r.write_before == i) {
            feast.write("signal", row);
        }
        let answer = server.bars(&json!({"symbol": FEAST_SYMBOL, "bars": [bar]}));
        let d = &answer["decisions"][0];
        if d["warming_up"] != true {
            first.get_or_insert(i);
            decisions.push(d["position"].as_f64().unwrap());
        }
    }
    let missing = |metrics: &str, source: &str, reason: &str| {
        sample(
            metrics,
            "ratchet_feast_online_missing_total",
            &[("source", source), ("reason", reason)],
        )
    };
    let metrics = server.metrics();
    assert_eq!(
        missing(&metrics, "signal", "after_bar"),
        Some(written_early as f64),
        "{metrics}"
    );
    for reason in ["unreachable", "timeout", "error", "not_found"] {
        assert_eq!(missing(&metrics, "signal", reason), None, "{metrics}");
    }
    let carried = |metrics: &str| {
        sample(
            metrics,
            "ratchet_outside_carried_total",
            &[("source", "signal")],
        )
        .unwrap_or(0.0)
    };
    let carried_before = carried(&metrics);
    assert!(
        carried_before > 0.0,
        "the gaps in the source outlast the TTL: {metrics}"
    );

    // Feast goes away: every bar is counted and answered, the last value carried once it is
    // older than the view's TTL (10 days).
    feast.stop();
    let last = all.last().unwrap();
    let latest_event = rows.iter().map(|r| r.event).max().unwrap();
    let outage: Vec<i64> = (1..=12)
        .map(|d| time(all.len() - 1) + d * 86_400_000)
        .collect();
    for &t in &outage {
        let mut bar = last.clone();
        bar["timestamp"] = json!(t);
        let answer = server.bars(&json!({"symbol": FEAST_SYMBOL, "bars": [bar]}));
        assert!(answer["decisions"][0]["position"].is_f64(), "{answer}");
    }
    let metrics = server.metrics();
    assert_eq!(
        missing(&metrics, "signal", "unreachable"),
        Some(outage.len() as f64),
        "{metrics}"
    );
    let stale = outage
        .iter()
        .filter(|&&t| t - latest_event > 10 * 86_400_000)
        .count();
    assert!(stale > 0 && stale < outage.len());
    assert_eq!(
        carried(&metrics) - carried_before,
        stale as f64,
        "{metrics}"
    );
    server.stop();

    let first = first.unwrap();
    assert_backtest_holds(
        &store,
        "models:/fo/1",
        time(first),
        all.len() - first,
        &decisions,
    );

    // missing = "error", and no Feast to reach.
    train("fe", "level", "error");
    let closed = ClosedPort::reserve();
    let url = format!("http://127.0.0.1:{}", closed.port);
    let server = store.serve(
        &["models:/fe@production", "--feast-online", url.as_str()],
        &[],
    );
    let (status, answer) = server.post_bars(&json!({"symbol": FEAST_SYMBOL, "bars": [all[0]]}));
    assert_eq!(status, 503, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.starts_with("STOCKS_GOOGL: outside feature level: no value for the bar at ")
            && error.ends_with("(from the Feast feature server: level: unreachable)"),
        "{error}"
    );
    let mut bar = all[0].clone();
    bar["external"] = json!({"level": 0.5});
    let answer = server.bars(&json!({"symbol": FEAST_SYMBOL, "bars": [bar]}));
    assert_eq!(answer["decisions"][0]["bars_accepted"], 1);
    let metrics = server.metrics();
    assert_eq!(
        missing(&metrics, "level", "unreachable"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains("ratchet_errors_total{kind=\"outside_missing\"} 1\n"),
        "{metrics}"
    );
    server.stop();

    // A version that reads nothing from Feast is refused with --feast-online, naming why.
    let plain = store.train("plain", "ppo", 3);
    store.promote("plain", plain, "production");
    let out = store
        .command(&[
            "serve",
            "models:/plain@production",
            "--listen",
            "127.0.0.1:0",
            "--feast-online",
            url.as_str(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim_end().ends_with(&format!(
            "error: --feast-online {url}: models:/plain/1 reads no outside source from Feast (its \
             features declare no [[features.feast]]); serve it without --feast-online"
        )),
        "{stderr}"
    );
}

#[test]
fn serving_ppo_gives_the_backtest_positions_bit_for_bit() {
    check_serving_matches_the_backtest("ppo");
}

#[test]
fn serving_dqn_gives_the_backtest_positions_bit_for_bit() {
    check_serving_matches_the_backtest("dqn");
}

/// The first `n` bars (the default features decide from the 142nd bar on).
fn warm(bars: &[Value], n: usize) -> Vec<Value> {
    bars[..n].to_vec()
}

#[test]
fn swaps_follow_the_alias_without_a_failed_request() {
    let store = Store::new();
    let (a, b) = (store.train("swap", "ppo", 1), store.train("swap", "ppo", 2));
    store.promote("swap", a, "production");
    let server = store.serve(&["models:/swap@production", "--poll-seconds", "0.05"], &[]);
    let all = bars();
    // Three symbols, warmed up before the swaps start.
    for s in ["A", "B", "C"] {
        server.bars(&json!({"symbol": s, "bars": warm(&all, 200)}));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (base, stop) = (server.base.clone(), stop.clone());
        let all = all.clone();
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut seen = Vec::new();
            let mut i = 200;
            while !stop.load(Ordering::Relaxed) && i < all.len() {
                let body = json!(["A", "B", "C"].map(|s| json!({"symbol": s, "bars": [all[i]]})));
                let mut r = agent
                    .post(&format!("{base}/v1/bars"))
                    .send(body.to_string().as_bytes())
                    .unwrap();
                let status = r.status().as_u16();
                let answer: Value =
                    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                assert_eq!(status, 200, "bar {i}: {answer}");
                for d in answer["decisions"].as_array().unwrap() {
                    assert_eq!(d["warming_up"], false, "bar {i}: a session restarted: {d}");
                    seen.push(d["version"].as_u64().unwrap());
                }
                i += 1;
            }
            seen
        })
    };
    for k in 0..20 {
        let target = if k % 2 == 0 { b } else { a };
        store.promote("swap", target, "production");
        server.wait_for("production", Some(target));
    }
    stop.store(true, Ordering::Relaxed);
    let seen = client.join().unwrap();
    assert!(seen.len() >= 3, "the client got answers");
    assert!(seen.iter().all(|v| *v == a || *v == b), "{seen:?}");
    // The last swap serves a moment before its event is noted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let swaps = history_kinds(&server)
            .iter()
            .filter(|e| *e == "swapped")
            .count();
        if swaps == 20 {
            break;
        }
        assert!(
            swaps < 20 && Instant::now() < deadline,
            "{swaps} swaps: {:#}",
            server.deployment()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server.metrics().contains("ratchet_swaps_total 20\n"));
    // Each swap is in the version's record in the store.
    let swapped = |events: &[String]| events.iter().filter(|e| *e == "swapped").count();
    let events = store.deployment_events_when(&format!("models:/swap/{b}"), |e| swapped(e) >= 10);
    assert_eq!(swapped(&events), 10);
    server.stop();
}

#[test]
fn a_canary_answers_its_share_and_a_shadow_never_answers() {
    let store = Store::new();
    let (a, b) = (store.train("cs", "ppo", 1), store.train("cs", "dqn", 2));
    store.promote("cs", a, "production");
    store.promote("cs", b, "candidate");
    store.run(&["models", "validate", &format!("models:/cs/{b}")]);
    let server = store.serve(
        &[
            "models:/cs@production",
            "--canary",
            "models:/cs@candidate",
            "--canary-percent",
            "30",
            "--shadow",
            "models:/cs@candidate",
        ],
        &[],
    );
    let all = bars();
    let symbols: Vec<String> = (0..120).map(|i| format!("S{i:03}")).collect();
    let mut canary = 0;
    for chunk in symbols.chunks(40) {
        let body = Value::Array(
            chunk
                .iter()
                .map(|s| json!({"symbol": s, "bars": warm(&all, 160)}))
                .collect(),
        );
        for d in server.bars(&body)["decisions"].as_array().unwrap() {
            let symbol = d["symbol"].as_str().unwrap();
            let expected = ratchet_serve::deployment::in_canary_share(symbol, 30.0);
            assert_eq!(d["role"] == "canary", expected, "{d}");
            assert_eq!(d["version"], if expected { b } else { a }, "{d}");
            canary += expected as usize;
        }
    }
    assert_eq!(
        canary, 34,
        "the hash puts 34 of these 120 symbols in a 30% share"
    );
    let metrics = server.metrics();
    let count = |line: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let shadow = count(&format!(
        r#"ratchet_decisions_total{{outcome="decided",role="shadow",version="{b}"}}"#
    ));
    let canary_decisions = count(&format!(
        r#"ratchet_decisions_total{{outcome="decided",role="canary",version="{b}"}}"#
    ));
    let production = count(&format!(
        r#"ratchet_decisions_total{{outcome="decided",role="production",version="{a}"}}"#
    ));
    assert!(canary_decisions > 0 && production > 0, "{metrics}");
    assert_eq!(
        shadow,
        canary_decisions + production,
        "the shadow decides on every bar"
    );
    server.stop();
}

#[test]
fn bad_input_gets_a_json_4xx_and_the_server_keeps_serving() {
    let store = Store::new();
    let v = store.train("bad", "ppo", 1);
    store.promote("bad", v, "production");
    let server = store.serve(&["models:/bad@production"], &[]);
    let bar = |t: i64, o: f64, h: f64, l: f64, c: f64| json!({"timestamp": t, "open": o, "high": h, "low": l, "close": c, "volume": 10.0});
    let good = json!({"symbol": "X", "bars": [bar(1000, 10.0, 11.0, 9.0, 10.5)]});
    assert_eq!(server.bars(&good)["decisions"][0]["bars_accepted"], 1);
    let big = vec![b' '; (1 << 20) + 1];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        ("POST", "/v1/bars", b"{not json".to_vec(), 400, "not a valid bars request"),
        ("POST", "/v1/bars", br#"{"symbol": "X"}"#.to_vec(), 400, "missing field `bars`"),
        ("POST", "/v1/bars", br#"{"symbol": "X", "bars": [], "extra": 1}"#.to_vec(), 400, "unknown field `extra`"),
        ("POST", "/v1/bars", json!({"symbol": "X", "bars": [bar(2000, -1.0, 11.0, 9.0, 10.0)]}).to_string().into_bytes(), 400, "X bar 0: open: price is negative"),
        ("POST", "/v1/bars", json!({"symbol": "X", "bars": [bar(2000, 10.0, 9.0, 11.0, 10.0)]}).to_string().into_bytes(), 400, "X bar 0:"),
        ("POST", "/v1/bars", br#"{"symbol": "X", "bars": [{"timestamp": 2000, "open": "NaN", "high": 1, "low": 1, "close": 1, "volume": 1}]}"#.to_vec(), 400, "not a valid bars request"),
        ("POST", "/v1/bars", br#"{"symbol": "X", "bars": [{"timestamp": 2000, "open": 1e999, "high": 1, "low": 1, "close": 1, "volume": 1}]}"#.to_vec(), 400, "not a valid bars request"),
        ("POST", "/v1/bars", json!({"symbol": "X", "bars": [bar(1000, 10.0, 11.0, 9.0, 10.0)]}).to_string().into_bytes(), 400, "X bar 0: timestamp 1970-01-01T00:16:40Z is not after the symbol's last bar (1970-01-01T00:16:40Z)"),
        ("POST", "/v1/bars", json!({"symbol": "Y", "bars": [bar(3000, 10.0, 11.0, 9.0, 10.0), bar(3000, 10.0, 11.0, 9.0, 10.0)]}).to_string().into_bytes(), 400, "Y bar 1: timestamp 1970-01-01T00:50:00Z is not after the previous bar's (1970-01-01T00:50:00Z)"),
        ("POST", "/v1/bars", json!({"symbol": "a b", "bars": [bar(3000, 10.0, 11.0, 9.0, 10.0)]}).to_string().into_bytes(), 400, "symbol \"a b\" is not valid"),
        ("GET", "/v1/nothing", Vec::new(), 404, "no such endpoint"),
        ("GET", "/v1/bars", Vec::new(), 405, "method not allowed"),
    ];
    for (method, path, body, status, message) in cases {
        let (got, answer) = server.call(method, path, Some(&body), &[]);
        assert_eq!(got, status, "{method} {path}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no JSON error: {answer}"));
        assert!(
            error.contains(message),
            "{method} {path}: expected '{message}' in '{error}'"
        );
    }
    // One byte over the limit, sent as a single chunk with no end: the server has read every
    // byte sent when the limit trips, so its close cannot reset the connection before the
    // answer is read (as it may when bytes are left unread).
    let mut stream =
        std::net::TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /v1/bars HTTP/1.1\r\nHost: ratchet\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        big.len()
    )
    .unwrap();
    stream.write_all(&big).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("bytes)") {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("the limit is 1048576 bytes"), "{answer}");
    // Rejected bars changed nothing: Y has no session yet and X takes its next bar.
    let next = json!({"symbol": "X", "bars": [bar(2000, 10.5, 11.0, 10.0, 10.8)]});
    assert_eq!(server.bars(&next)["decisions"][0]["bars_accepted"], 1);
    assert_eq!(server.deployment()["sessions"], 1);
    let metrics = server.metrics();
    assert!(
        metrics.contains(r#"ratchet_errors_total{kind="bad_request"} 11"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ratchet_errors_total{kind="too_large"} 1"#),
        "{metrics}"
    );
    server.stop();
}

#[test]
fn a_canary_that_fails_to_load_is_rolled_back_while_production_answers() {
    let store = Store::new();
    let (a, b) = (store.train("rb", "ppo", 1), store.train("rb", "ppo", 2));
    store.promote("rb", a, "production");
    store.promote("rb", a, "candidate");
    let slo = store.dir.path().join("slo.toml");
    std::fs::write(&slo, "max_error_rate = 0.01\n").unwrap();
    let server = store.serve(
        &[
            "models:/rb@production",
            "--canary",
            "models:/rb@candidate",
            "--canary-percent",
            "100",
            "--slo",
            slo.to_str().unwrap(),
            "--poll-seconds",
            "0.05",
        ],
        &[],
    );
    let all = bars();
    server.bars(&json!({"symbol": "Z", "bars": warm(&all, 160)}));
    // Version b is validated, promoted to the canary alias, then its weights are damaged.
    store.run(&["models", "validate", &format!("models:/rb/{b}")]);
    let checkpoint = PathBuf::from(
        store.show(&format!("models:/rb/{b}"))["checkpoint_path"]
            .as_str()
            .unwrap(),
    );
    let weights = checkpoint.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    store.promote("rb", b, "candidate");
    // The server tries b, fails to verify it, and moves @candidate back to a.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 160;
    loop {
        let answer = server.bars(&json!({"symbol": "Z", "bars": [all[i]]}));
        assert_eq!(answer["decisions"][0]["version"], a, "{answer}");
        i += 1;
        let history = server.deployment()["history"].clone();
        if history
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "rolled_back")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no rollback: {history:#}");
    }
    let shown = store.show("models:/rb@candidate");
    assert_eq!(shown["version"], a, "the alias moved back");
    assert_eq!(
        store.deployment_events_when(&format!("models:/rb/{b}"), |e| e.len() >= 2),
        ["load_failed", "rolled_back"]
    );
    assert!(server.metrics().contains("ratchet_rollbacks_total 1\n"));
    server.stop();
}

/// A canary that keeps the SLO for its time and decisions becomes production: the alias
/// moves (in its history, and as a deployment event), production answers with it, and no
/// request fails on the way. Without a canary or an SLO, or on a version number,
/// `--auto-promote` is refused at start.
#[test]
fn a_canary_that_keeps_the_slo_is_promoted_without_a_failed_request() {
    let store = Store::new();
    let (a, b) = (store.train("ap", "ppo", 1), store.train("ap", "ppo", 2));
    store.promote("ap", a, "production");
    store.promote("ap", b, "candidate");
    store.run(&["models", "validate", &format!("models:/ap/{b}")]);
    let slo = store.dir.path().join("slo.toml");
    std::fs::write(&slo, "min_decisions = 5\nmax_error_rate = 0.01\n").unwrap();
    let slo = slo.to_str().unwrap();
    let server = store.serve(
        &[
            "models:/ap@production",
            "--canary",
            "models:/ap@candidate",
            "--canary-percent",
            "50",
            "--slo",
            slo,
            "--auto-promote",
            "1s",
            "--auto-promote-decisions",
            "30",
            "--poll-seconds",
            "0.05",
        ],
        &[],
    );
    let all = bars();
    let symbols: Vec<String> = (0..8).map(|i| format!("S{i}")).collect();
    let canaries = symbols
        .iter()
        .filter(|s| ratchet_serve::deployment::in_canary_share(s, 50.0))
        .count();
    assert!(canaries > 0 && canaries < symbols.len(), "{canaries}");
    let request = |bars: &dyn Fn() -> Vec<Value>| {
        let body: Vec<Value> = symbols
            .iter()
            .map(|s| json!({"symbol": s, "bars": bars()}))
            .collect();
        server.bars(&Value::Array(body))
    };
    request(&|| warm(&all, 160));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 160;
    // Every request is answered (`bars` asserts 200) until every symbol gets version b.
    loop {
        let answer = request(&|| vec![all[i].clone()]);
        i += 1;
        let versions: Vec<&Value> = answer["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["version"])
            .collect();
        if versions.iter().all(|v| **v == b) {
            assert!(
                answer["decisions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|d| d["role"] == "production")
            );
            break;
        }
        assert!(Instant::now() < deadline, "not promoted: {answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let promoted = wait_for_event(&server, "auto_promoted", b);
    assert_eq!(promoted["previous"], a);
    let detail = promoted["detail"].as_str().unwrap();
    let decisions: u64 = detail.split(' ').next().unwrap().parse().unwrap();
    assert!(decisions >= 30, "{detail}");
    assert!(
        detail.contains(" decisions over ")
            && detail.ends_with(&format!(
                " in the last 60s); @production now names version {b}"
            )),
        "{detail}"
    );
    assert_eq!(store.show("models:/ap@production")["version"], b);
    assert!(
        server
            .metrics()
            .contains("ratchet_auto_promotions_total 1\n")
    );
    server.stop();
    let events = store.deployment_events_when(&format!("models:/ap/{b}"), |e| {
        e.contains(&"auto_promoted".to_string())
    });
    assert!(events.contains(&"auto_promoted".to_string()), "{events:?}");

    for (args, missing) in [
        (
            vec![
                "models:/ap@production",
                "--auto-promote",
                "1s",
                "--slo",
                slo,
            ],
            "--canary",
        ),
        (
            vec![
                "models:/ap/1",
                "--canary",
                "models:/ap@candidate",
                "--auto-promote",
                "1s",
                "--slo",
                slo,
            ],
            "--auto-promote needs a production alias to move",
        ),
        (
            vec!["models:/ap@production", "--auto-promote", "soon"],
            "invalid value 'soon'",
        ),
    ] {
        let out = store
            .command(&[&["serve", "--listen", "127.0.0.1:0"][..], &args].concat())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(missing), "{args:?}: {stderr}");
    }
}

/// The loop of the README: a version trained on the first part of the bars serves in
/// production, with a canary alias that names nothing yet; `ratchet retrain` on the whole
/// file registers a candidate, the running server takes it as the canary, promotes it once it
/// kept the SLO, and production answers with it — no request fails throughout.
#[test]
fn retrain_then_canary_then_auto_promotion_without_a_failed_request() {
    let store = Store::new();
    let googl = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DATA)).unwrap();
    let lines: Vec<&str> = googl.lines().collect();
    let part = store.dir.path().join("part.csv");
    std::fs::write(&part, lines[..=1800].join("\n") + "\n").unwrap();
    let whole = store.dir.path().join("whole.csv");
    std::fs::write(&whole, googl.as_bytes()).unwrap();
    let retrain_toml = store.dir.path().join("retrain.toml");
    std::fs::write(
        &retrain_toml,
        "[retrain]\nvalidation_bars = 200\ntest_bars = 100\ncompare_on = \"none\"\n",
    )
    .unwrap();
    store.run(&[
        "train",
        "--data",
        part.to_str().unwrap(),
        "--steps",
        "2048",
        "--model-name",
        "loop",
    ]);
    store.promote("loop", 1, "production");
    let slo = store.dir.path().join("slo.toml");
    std::fs::write(&slo, "min_decisions = 5\nmax_error_rate = 0.01\n").unwrap();
    let server = store.serve(
        &[
            "models:/loop@production",
            "--canary",
            "models:/loop@candidate",
            "--canary-percent",
            "50",
            "--slo",
            slo.to_str().unwrap(),
            "--auto-promote",
            "1s",
            "--auto-promote-decisions",
            "20",
            "--poll-seconds",
            "0.05",
        ],
        &[],
    );
    let all = bars();
    let symbols: Vec<String> = (0..6).map(|i| format!("S{i}")).collect();
    let request = |bars: Vec<Value>| {
        let body: Vec<Value> = symbols
            .iter()
            .map(|s| json!({"symbol": s, "bars": bars.clone()}))
            .collect();
        server.bars(&Value::Array(body))
    };
    let versions = |answer: &Value| -> Vec<u64> {
        answer["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["version"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(versions(&request(warm(&all, 160))), [1; 6]);

    let out = store
        .command(&[
            "retrain",
            "models:/loop@production",
            "--data",
            whole.to_str().unwrap(),
            "--config",
            retrain_toml.to_str().unwrap(),
            "--steps",
            "2048",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let retrained: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(retrained["version"], "models:/loop/2");

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 160;
    let mut seen_canary = false;
    loop {
        let answer = request(vec![all[i].clone()]);
        i += 1;
        seen_canary |= answer["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["role"] == "canary" && d["version"] == 2);
        if versions(&answer) == [2; 6] {
            break;
        }
        assert!(Instant::now() < deadline, "not promoted: {answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen_canary, "version 2 answered as the canary first");
    assert_eq!(wait_for_event(&server, "auto_promoted", 2)["previous"], 1);
    assert_eq!(store.show("models:/loop@production")["version"], 2);
    server.stop();
}

#[test]
fn an_unvalidated_version_is_refused_with_the_reason() {
    let store = Store::new();
    let v = store.train("raw", "ppo", 1);
    let out = store
        .command(&[
            "serve",
            &format!("models:/raw/{v}"),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is registered: only validated or production versions are served"),
        "{stderr}"
    );
}

/// `promtool check metrics` accepts the exposition, and a real Prometheus scrapes it.
#[test]
fn prometheus_reads_the_metrics() {
    let promtool = which("promtool");
    let prometheus = which("prometheus");
    let store = Store::new();
    let v = store.train("prom", "ppo", 1);
    store.promote("prom", v, "production");
    let server = store.serve(&["models:/prom@production"], &[]);
    server.bars(&json!({"symbol": "P", "bars": warm(&bars(), 80)}));
    let metrics = server.metrics();
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), metrics.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = store.dir.path();
    let target = server.base.trim_start_matches("http://");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ratchet\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    // Prometheus binds port 0 itself and logs the port it got (a port found by binding 0 and
    // dropping it could be taken by another test in between).
    let mut prom = Command::new(&prometheus)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(prom.stderr.take().unwrap()).lines();
    let port = log
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let (_, address) = line.split_once("msg=\"Listening on\" address=127.0.0.1:")?;
            address.split_whitespace().next()?.parse::<u16>().ok()
        })
        .expect("Prometheus logged no listening port");
    // Keep reading its log so that it never blocks on a full pipe.
    std::thread::spawn(move || log.for_each(drop));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let answer = agent
            .get(&format!("http://127.0.0.1:{port}/api/v1/query"))
            .query("query", "ratchet_model_info")
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if let Some(a) = answer
            && a["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            break a["data"]["result"][0]["metric"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the server"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(result["role"], "production");
    assert_eq!(result["version"], v.to_string());
    assert_eq!(result["name"], "prom");
    server.stop();
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed: `apt-get install prometheus` (scripts/test.sh does)"
            )
        })
}

/// The same server following an alias in a real MLflow tracking server (REST) instead of a
/// local store: it loads, swaps and records the swap there.
#[test]
fn serving_follows_an_alias_on_an_mlflow_server() {
    let mlflow = MlflowServer::start(Backend::Sqlite);
    let store = Store::remote(&mlflow.url);
    let (a, b) = (store.train("rest", "ppo", 1), store.train("rest", "ppo", 2));
    store.promote("rest", a, "production");
    let server = store.serve(&["models:/rest@production", "--poll-seconds", "0.05"], &[]);
    let all = bars();
    let answer = server.bars(&json!({"symbol": "R", "bars": warm(&all, 160)}));
    assert_eq!(answer["decisions"][0]["version"], a, "{answer}");
    // Validated first: a promotion moves the alias a moment before it updates the statuses,
    // and over HTTP that moment can span two polls (the server would report a refusal).
    store.run(&["models", "validate", &format!("models:/rest/{b}")]);
    store.promote("rest", b, "production");
    server.wait_for("production", Some(b));
    let answer = server.bars(&json!({"symbol": "R", "bars": [all[160]]}));
    assert_eq!(answer["decisions"][0]["version"], b, "{answer}");
    assert_eq!(
        answer["decisions"][0]["warming_up"], false,
        "the session carried over"
    );
    assert_eq!(
        store.deployment_events_when(&format!("models:/rest/{b}"), |e| !e.is_empty()),
        ["swapped"]
    );
    server.stop();
}

/// A version computing other features cannot take over the sessions: the swap is refused, the
/// old version keeps answering, and the reason shows in `/v1/deployment` and `/metrics`.
#[test]
fn a_version_with_other_features_is_refused_and_serving_goes_on() {
    let store = Store::new();
    let a = store.train("feat", "ppo", 1);
    let config = store.dir.path().join("window5.toml");
    std::fs::write(&config, "[run]\nsteps = 2048\n[features]\nwindow = 5\n").unwrap();
    let out = store.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--model-name",
        "feat",
        "--json",
    ]);
    let b = serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"]
        .as_u64()
        .unwrap();
    store.promote("feat", a, "production");
    let server = store.serve(&["models:/feat@production", "--poll-seconds", "0.05"], &[]);
    let all = bars();
    server.bars(&json!({"symbol": "F", "bars": warm(&all, 160)}));
    store.promote("feat", b, "production");
    let deadline = Instant::now() + Duration::from_secs(60);
    let refusal = loop {
        let history = server.deployment()["history"].clone();
        if let Some(e) = history
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "refused")
        {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "no refusal: {history:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refusal["version"], b);
    let why = refusal["detail"].as_str().unwrap();
    assert!(
        why.contains("computes features") && why.contains("restart the server"),
        "{why}"
    );
    let answer = server.bars(&json!({"symbol": "F", "bars": [all[160]]}));
    assert_eq!(answer["decisions"][0]["version"], a, "{answer}");
    assert!(server.metrics().contains("ratchet_swaps_refused_total 1\n"));
    server.stop();
}

/// The `ratchet_decisions_total` and `ratchet_paper_log_return` lines of an exposition.
fn decision_metrics(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("ratchet_decisions_total{") || l.starts_with("ratchet_paper_log_return{")
        })
        .map(str::to_string)
        .collect()
}

/// A request rejected by its second symbol (a 400 for a timestamp not after the symbol's last,
/// a 429 for one session too many) changes nothing: the first symbol's session, the sessions
/// count and the metrics are those of a server that never saw it, bar for bar afterwards.
#[test]
fn a_rejected_request_changes_nothing() {
    let store = Store::new();
    let v = store.train("atomic", "ppo", 1);
    store.promote("atomic", v, "production");
    let all = bars();
    let args = ["models:/atomic@production", "--max-sessions", "2"];
    let (tried, clean) = (store.serve(&args, &[]), store.serve(&args, &[]));
    for server in [&tried, &clean] {
        server.bars(&json!([
            {"symbol": "A", "bars": warm(&all, 200)},
            {"symbol": "B", "bars": warm(&all, 150)},
        ]));
    }
    let rejected = [
        // B's first bar is not after its last.
        (
            json!([{"symbol": "A", "bars": all[200..205]}, {"symbol": "B", "bars": [all[149]]}]),
            400,
            "B bar 0: timestamp",
        ),
        // C would be a third session.
        (
            json!([{"symbol": "A", "bars": all[200..205]}, {"symbol": "C", "bars": [all[0]]}]),
            429,
            "the request needs 1 new sessions",
        ),
    ];
    for (body, status, message) in rejected {
        let (got, answer) = tried.post_bars(&body);
        assert_eq!(got, status, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{answer}"
        );
    }
    assert_eq!(tried.deployment()["sessions"], 2);
    assert_eq!(
        decision_metrics(&tried.metrics()),
        decision_metrics(&clean.metrics())
    );
    let mut positions = Vec::new();
    for bar in &all[200..400] {
        let one = |server: &Server| {
            server.bars(&json!({"symbol": "A", "bars": [bar]}))["decisions"][0].clone()
        };
        let (a, b) = (one(&tried), one(&clean));
        assert_eq!(a, b);
        positions.push(a["position"].as_f64().unwrap());
    }
    assert!(
        positions.iter().any(|p| *p != positions[0]),
        "a policy that changes its position: {positions:?}"
    );
    assert_eq!(
        decision_metrics(&tried.metrics()),
        decision_metrics(&clean.metrics())
    );
    tried.stop();
    clean.stop();
}

/// Waits (up to a minute) for an event of `kind` about `version` in the server's history.
fn wait_for_event(server: &Server, kind: &str, version: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let history = server.deployment()["history"].clone();
        if let Some(e) = history
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == kind && e["version"] == version)
        {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event for version {version}: {history:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The kinds of the events in the server's history.
fn history_kinds(server: &Server) -> Vec<String> {
    server.deployment()["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

/// Weights and checkpoint files fetched from an MLflow server's artifact store through `proxy`.
fn artifact_downloads(proxy: &FaultProxy) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains("/mlflow-artifacts/artifacts/"))
        .count()
}

/// Trains a version of `name` with a 5-bar window (other features than the default's).
fn train_window5(store: &Store, name: &str) -> u64 {
    let config = store.dir.path().join("window5.toml");
    std::fs::write(&config, "[run]\nsteps = 2048\n[features]\nwindow = 5\n").unwrap();
    let out = store.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--model-name",
        name,
        "--json",
    ]);
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"]
        .as_u64()
        .unwrap()
}

/// A version under the alias that may not be served (unvalidated, or other features) is
/// refused from its tags: its weights are never downloaded, however many polls look at it.
#[test]
fn a_refused_version_is_judged_by_its_tags_and_never_downloaded() {
    let mlflow = MlflowServer::start(Backend::Sqlite);
    let proxy = FaultProxy::start(&mlflow.url, |_| false);
    // The server goes through the proxy; the commands go straight to MLflow.
    let (through_proxy, direct) = (Store::remote(&proxy.url), Store::remote(&mlflow.url));
    let (a, b) = (
        direct.train("tags", "ppo", 1),
        direct.train("tags", "ppo", 2),
    );
    let c = train_window5(&direct, "tags");
    direct.run(&["models", "validate", &format!("models:/tags/{c}")]);
    direct.promote("tags", a, "production");
    direct.promote("tags", a, "candidate");
    let server = through_proxy.serve(
        &[
            "models:/tags@production",
            "--canary",
            "models:/tags@candidate",
            "--poll-seconds",
            "0.05",
        ],
        &[],
    );
    let loaded = artifact_downloads(&proxy);
    assert!(
        loaded > 0,
        "the server loaded version {a} through the proxy"
    );
    direct.promote("tags", b, "candidate");
    let refusal = wait_for_event(&server, "refused", b);
    assert_eq!(
        refusal["detail"],
        format!(
            "models:/tags/{b} is registered: only validated or production versions are served \
             (run `ratchet models validate models:/tags/{b}`, or pass --allow-unvalidated)"
        )
    );
    direct.promote("tags", c, "candidate");
    let refusal = wait_for_event(&server, "refused", c);
    assert!(
        refusal["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("models:/tags/{c} computes features ")),
        "{refusal}"
    );
    // Twenty more polls of the refused version.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(artifact_downloads(&proxy), loaded, "{:#?}", proxy.seen());
    assert_eq!(server.deployment()["canary"]["serving"]["version"], a);
    assert_eq!(
        history_kinds(&server)
            .iter()
            .filter(|k| *k == "refused")
            .count(),
        2,
        "each refusal is reported once"
    );
    server.stop();
}

/// The checkpoint directory of a version in an MLflow server's artifact store on this
/// machine (the test server keeps its artifacts under a temporary directory).
fn server_checkpoint(store: &Store, uri: &str) -> PathBuf {
    let shown = store.show(uri);
    let (run_id, id) = (
        shown["run_id"].as_str().unwrap(),
        shown["version_id"].as_str().unwrap(),
    );
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    dirs(&std::env::temp_dir())
        .iter()
        .flat_map(|tmp| dirs(&tmp.join("artifacts")))
        .map(|experiment| {
            experiment
                .join(run_id)
                .join("artifacts/checkpoints")
                .join(id)
        })
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no checkpoint of {uri} (run {run_id}) under the temp dir"))
}

/// While the store cannot deliver a new production version, the server serves on, tries
/// again with backoff, and neither marks the version failed nor rolls production back; once
/// the store answers, the version is served. A version that is itself broken (weights that
/// fail their checksum) is rolled back.
#[test]
fn a_store_outage_is_retried_and_only_a_broken_version_is_rolled_back() {
    let mlflow = MlflowServer::start(Backend::Sqlite);
    let outage = Arc::new(AtomicBool::new(false));
    let proxy = FaultProxy::start(&mlflow.url, {
        let outage = outage.clone();
        move |seen| {
            outage.load(Ordering::SeqCst) && seen.path.contains("/mlflow-artifacts/artifacts/")
        }
    });
    let (through_proxy, direct) = (Store::remote(&proxy.url), Store::remote(&mlflow.url));
    let (a, b, c) = (
        direct.train("outage", "ppo", 1),
        direct.train("outage", "ppo", 2),
        direct.train("outage", "ppo", 3),
    );
    for v in [b, c] {
        direct.run(&["models", "validate", &format!("models:/outage/{v}")]);
    }
    direct.promote("outage", a, "production");
    let slo = direct.dir.path().join("slo.toml");
    std::fs::write(&slo, "max_error_rate = 0.01\n").unwrap();
    let server = through_proxy.serve(
        &[
            "models:/outage@production",
            "--slo",
            slo.to_str().unwrap(),
            "--poll-seconds",
            "0.05",
        ],
        &[("RATCHET_HTTP_RETRY_SECONDS", "1")],
    );
    let all = bars();
    server.bars(&json!({"symbol": "O", "bars": warm(&all, 160)}));
    outage.store(true, Ordering::SeqCst);
    direct.promote("outage", b, "production");
    let deferred = wait_for_event(&server, "load_deferred", b);
    assert!(
        deferred["detail"].as_str().unwrap().contains("502"),
        "{deferred}"
    );
    // Tried again (each try spends the client's 1 s retry budget), never given up on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server
        .metrics()
        .contains(r#"ratchet_errors_total{kind="store_unavailable"} 3"#)
    {
        assert!(
            Instant::now() < deadline,
            "no retries: {}",
            server.metrics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = server.bars(&json!({"symbol": "O", "bars": [all[160]]}));
    assert_eq!(answer["decisions"][0]["version"], a, "{answer}");
    assert_eq!(
        history_kinds(&server),
        ["loaded", "load_deferred"],
        "one report, no failure, no rollback"
    );
    assert_eq!(direct.show("models:/outage@production")["version"], b);
    outage.store(false, Ordering::SeqCst);
    server.wait_for("production", Some(b));
    assert_eq!(
        direct.deployment_events_when(&format!("models:/outage/{b}"), |e| e.len() >= 2),
        ["load_deferred", "swapped"]
    );

    // c is broken: its weights no longer match their checksum.
    let weights =
        server_checkpoint(&direct, &format!("models:/outage/{c}")).join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    direct.promote("outage", c, "production");
    wait_for_event(&server, "rolled_back", c);
    assert_eq!(direct.show("models:/outage@production")["version"], b);
    assert_eq!(
        direct.deployment_events_when(&format!("models:/outage/{c}"), |e| e.len() >= 2),
        ["load_failed", "rolled_back"]
    );
    let answer = server.bars(&json!({"symbol": "O", "bars": [all[161]]}));
    assert_eq!(answer["decisions"][0]["version"], b, "{answer}");
    server.stop();
}

/// With `RATCHET_SERVE_TOKEN` set, bars, the deployment and reloads need the bearer token;
/// health and metrics stay open. With `--tls-cert/--tls-key` the server speaks HTTPS only,
/// with that certificate.
#[test]
fn the_token_guards_the_api_and_tls_serves_https() {
    let store = Store::new();
    let v = store.train("tls", "ppo", 1);
    store.promote("tls", v, "production");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (
        store.dir.path().join("cert.pem"),
        store.dir.path().join("key.pem"),
    );
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let mut server = store.serve(
        &[
            "models:/tls@production",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("RATCHET_SERVE_TOKEN", "s3cret")],
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    // A client that does not trust the certificate, and one that speaks plain HTTP, get nothing.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    assert!(
        plain
            .get(&format!("{}/healthz", server.base))
            .call()
            .is_err()
    );
    let http = server.base.replace("https://", "http://");
    assert!(plain.get(&format!("{http}/healthz")).call().is_err());
    server.agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![
                    ureq::tls::Certificate::from_der(certified.cert.der()).to_owned(),
                ])))
                .build(),
        )
        .build()
        .into();
    let bars = json!({"symbol": "T", "bars": warm(&bars(), 150)}).to_string();
    let body = Some(bars.as_bytes());
    let token = [("Authorization", "Bearer s3cret")];
    let wrong = [("Authorization", "Bearer s3cre")];
    // (method, path, body, headers, status)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a [u8]>,
        &'a [(&'a str, &'a str)],
        u16,
    );
    let cases: [Case; 11] = [
        ("GET", "/healthz", None, &[], 200),
        ("GET", "/readyz", None, &[], 200),
        ("GET", "/metrics", None, &[], 200),
        ("POST", "/v1/bars", body, &[], 401),
        ("POST", "/v1/bars", body, &wrong, 401),
        ("GET", "/v1/deployment", None, &[], 401),
        ("GET", "/v1/deployment", None, &wrong, 401),
        ("POST", "/v1/reload", None, &[], 401),
        ("POST", "/v1/bars", body, &token, 200),
        ("GET", "/v1/deployment", None, &token, 200),
        ("POST", "/v1/reload", None, &token, 202),
    ];
    for (method, path, body, headers, status) in cases {
        let (got, answer) = server.call(method, path, body, headers);
        assert_eq!(got, status, "{method} {path} {headers:?}: {answer}");
        if status == 401 {
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("this endpoint needs the header `Authorization: Bearer"),
                "{answer}"
            );
        }
    }
    // The refused bars were not taken: the session holds the one accepted request's bars.
    let (_, deployment) = server.call("GET", "/v1/deployment", None, &token);
    assert_eq!(deployment["sessions"], 1);
    let metrics = server.metrics();
    assert!(
        metrics.contains(r#"ratchet_errors_total{kind="unauthorized"} 5"#),
        "{metrics}"
    );
    server.stop();
}

/// A client opening sessions for ever new symbols gets 429 at `--max-sessions`; the symbols
/// that have sessions go on being served.
#[test]
fn new_symbols_past_the_session_limit_get_429() {
    let store = Store::new();
    let v = store.train("limit", "ppo", 1);
    store.promote("limit", v, "production");
    let server = store.serve(&["models:/limit@production", "--max-sessions", "20"], &[]);
    let all = bars();
    for i in 0..30 {
        let (status, answer) =
            server.post_bars(&json!({"symbol": format!("R{i}"), "bars": [all[0]]}));
        if i < 20 {
            assert_eq!(status, 200, "{answer}");
        } else {
            assert_eq!(status, 429, "{answer}");
            assert_eq!(
                answer["error"],
                "the request needs 1 new sessions, and the server holds sessions for 20 symbols \
                 of its limit of 20 (--max-sessions)"
            );
        }
    }
    let answer = server.bars(&json!({"symbol": "R0", "bars": [all[1]]}));
    assert_eq!(answer["decisions"][0]["bars_accepted"], 1);
    assert_eq!(server.deployment()["sessions"], 20);
    let metrics = server.metrics();
    assert!(metrics.contains("ratchet_sessions 20\n"), "{metrics}");
    assert!(
        metrics.contains(r#"ratchet_errors_total{kind="too_many_sessions"} 10"#),
        "{metrics}"
    );
    server.stop();
}

/// Timestamps are read as the data loader reads a file's (one parser), and the answer says
/// how; `?every_bar=true` answers the decision after every bar, the same as bar by bar.
#[test]
fn bars_take_the_data_files_timestamps_and_can_answer_every_bar() {
    let store = Store::new();
    let v = store.train("stamps", "ppo", 1);
    store.promote("stamps", v, "production");
    let server = store.serve(&["models:/stamps@production"], &[]);
    let bar = |t: Value| json!({"timestamp": t, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1.0});
    let forms = [
        ("D", json!(["2018-08-30", "2018-08-31"]), "%Y-%m-%d"),
        (
            "DT",
            json!(["2018-08-30 00:00:00", "2018-08-31 00:00:00"]),
            "%Y-%m-%d %H:%M:%S%.f",
        ),
        ("S", json!([1535587200, 1535673600]), "epoch_s"),
        (
            "MS",
            json!([1535587200000i64, 1535673600000i64]),
            "epoch_ms",
        ),
        (
            "RFC",
            json!(["2018-08-30T00:00:00Z", "2018-08-31T02:00:00+02:00"]),
            "rfc3339",
        ),
    ];
    for (symbol, stamps, layout) in forms {
        let bars: Vec<Value> = stamps
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(bar)
            .collect();
        let (status, answer) = server.call(
            "POST",
            "/v1/bars?every_bar=true",
            Some(
                json!({"symbol": symbol, "bars": bars})
                    .to_string()
                    .as_bytes(),
            ),
            &[],
        );
        assert_eq!(status, 200, "{answer}");
        let d = &answer["decisions"][0];
        assert_eq!(d["timestamps_read_as"], json!([layout]), "{d}");
        let read: Vec<&str> = d["every_bar"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["timestamp"].as_str().unwrap())
            .collect();
        assert_eq!(
            read,
            ["2018-08-30T00:00:00Z", "2018-08-31T00:00:00Z"],
            "{symbol}"
        );
    }
    // The same instant in another form is the same time: not after the symbol's last bar.
    let (status, answer) =
        server.post_bars(&json!({"symbol": "S", "bars": [bar(json!("2018-08-31"))]}));
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        "S bar 0: timestamp 2018-08-31T00:00:00Z is not after the symbol's last bar (2018-08-31T00:00:00Z)"
    );
    let (status, answer) =
        server.post_bars(&json!({"symbol": "S", "bars": [bar(json!("yesterday"))]}));
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("\"yesterday\" is not a timestamp the data loader reads"),
        "{answer}"
    );
    let (status, answer) = server.call("POST", "/v1/bars?every=1", Some(b"{}"), &[]);
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .ends_with("the one option is ?every_bar=true"),
        "{answer}"
    );

    // 150 bars in one request, every bar answered, equal those sent one at a time.
    let all = bars();
    let (_, batch) = server.call(
        "POST",
        "/v1/bars?every_bar=true",
        Some(
            json!({"symbol": "BATCH", "bars": warm(&all, 150)})
                .to_string()
                .as_bytes(),
        ),
        &[],
    );
    let every = batch["decisions"][0]["every_bar"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(every.len(), 150);
    for (i, (bar, batched)) in all[..150].iter().zip(&every).enumerate() {
        let mut one = server.bars(&json!({"symbol": "ONE", "bars": [bar]}))["decisions"][0].clone();
        let one = one.as_object_mut().unwrap();
        for key in ["symbol", "bars_accepted", "timestamps_read_as"] {
            one.remove(key);
        }
        let mut batched = batched.clone();
        batched.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(Value::Object(one.clone()), batched, "bar {i}");
    }
    assert_eq!(every[149]["warming_up"], false, "decided by the last bars");
    assert_eq!(
        batch["decisions"][0]["position"], every[149]["position"],
        "the answer is the last bar's"
    );
    server.stop();
}

/// A production version that breaks the SLO with no earlier version to go back to serves on;
/// the failed rollback is reported once, not at every check.
#[test]
fn a_failed_rollback_is_reported_once() {
    let store = Store::new();
    let v = store.train("alone", "ppo", 1);
    store.promote("alone", v, "production");
    let slo = store.dir.path().join("slo.toml");
    // Every decision takes more than 0 ms: a breach at every check.
    std::fs::write(&slo, "min_decisions = 1\nmax_p99_latency_ms = 0.0\n").unwrap();
    let server = store.serve(
        &["models:/alone@production", "--slo", slo.to_str().unwrap()],
        &[],
    );
    let all = bars();
    server.bars(&json!({"symbol": "L", "bars": warm(&all, 150)}));
    // Decisions across 3 s: twelve checks at 250 ms, each finding the breach.
    let start = Instant::now();
    let mut i = 150;
    while start.elapsed() < Duration::from_secs(3) {
        server.bars(&json!({"symbol": "L", "bars": [all[i]]}));
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let failed = history_kinds(&server)
        .iter()
        .filter(|k| *k == "rollback_failed")
        .count();
    assert_eq!(failed, 1, "{:#}", server.deployment());
    assert!(
        server
            .metrics()
            .contains(r#"ratchet_errors_total{kind="rollback_failed"} 1"#)
    );
    assert_eq!(server.deployment()["production"]["serving"]["version"], v);
    assert_eq!(
        store.deployment_events_when(&format!("models:/alone/{v}"), |e| e.len() >= 2),
        ["loaded", "rollback_failed"]
    );
    server.stop();
}

/// `serve --help` shows the limits of `configs/slo.toml` as they are in the file.
#[test]
fn serve_help_shows_the_example_slo_as_it_is() {
    let store = Store::new();
    let help = String::from_utf8(store.run(&["serve", "--help"]).stdout).unwrap();
    let file =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/slo.toml"))
            .unwrap();
    let settings: Vec<&str> = file
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(settings.len(), 5, "{settings:?}");
    for setting in settings {
        let setting = setting.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(&setting), "{setting} is not in:\n{help}");
    }
    assert!(help.contains("configs/slo.toml holds"), "{help}");
}
