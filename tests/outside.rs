//! Outside features end to end: a config joining a market-wide source trains, records the
//! source's sha256 and the digest of its rows, backtests, and continues over a source that
//! gained rows after the version's last bar, but not over one whose history changed.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod sandbox;

use sandbox::Sandbox;

/// A daily "vix" for every GOOGL date but each seventh, valued by the date's row, written as
/// `name`; `until` cuts it after that many rows, `change` alters one early row.
fn write_vix(sb: &Sandbox, name: &str, until: Option<usize>, change: bool) -> String {
    let googl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/STOCKS_GOOGL.csv"
    ))
    .unwrap();
    let mut out = String::from("date,close\n");
    let dates: Vec<&str> = googl
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap())
        .collect();
    for (i, date) in dates.iter().enumerate().take(until.unwrap_or(dates.len())) {
        if i % 7 == 3 {
            continue;
        }
        let value =
            15.0 + ((i as f64) * 0.05).sin() * 3.0 + if change && i == 100 { 1.0 } else { 0.0 };
        out.push_str(&format!("{date},{value:.4}\n"));
    }
    let path = sb.path(name);
    std::fs::write(&path, out).unwrap();
    path.display().to_string()
}

fn config(sb: &Sandbox, vix: &str) -> String {
    let text = format!(
        "[run]\nn_envs = 1\nseed = 5\n\n[data]\nfile = \"data/STOCKS_GOOGL.csv\"\n\n\
         [[features.external]]\nname = \"vix\"\nsource = \"{vix}\"\ntimestamp = \"date\"\n\
         columns = [\"close\"]\nmax_staleness = \"5d\"\nmissing = \"last\"\ntransform = \"zscore\"\nwindow = 10\n"
    );
    let path = sb.path("outside.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_version_with_an_outside_source_records_it_and_continues_only_over_appended_rows() {
    let sb = Sandbox::new();
    let vix = sb.path("vix.csv").display().to_string();
    // The source ends with the bars' data: rows up to the last GOOGL date.
    write_vix(&sb, "vix.csv", None, false);
    let config = config(&sb, &vix);
    let first = std::fs::read(&vix).unwrap();
    sb.succeeds(&[
        "train",
        "--config",
        &config,
        "--steps",
        "2048",
        "--model-name",
        "o",
    ]);
    let shown = sb.json(&["models", "show", "models:/o/1", "--json"]);
    let outside = &shown["data"]["outside"][0];
    assert_eq!(outside["name"], "vix");
    assert_eq!(outside["path"], vix.as_str());
    assert_eq!(
        outside["sha256"],
        ratchet_data::sha256_file(std::path::Path::new(&vix)).unwrap()
    );
    assert_eq!(outside["until"], "2018-08-29T00:00:00Z");
    let features = sb.json(&["models", "features", "models:/o/1", "--json"]);
    assert_eq!(features["external"][0]["name"], "vix");
    assert_eq!(features["external"][0]["max_staleness"], "5days");
    // 10 rows of 13 columns (the bars' 11, vix_close and vix_carried), the position and its
    // unrealised return.
    assert_eq!(shown["observation_shape"], serde_json::json!([132]));

    let out = sb.path("report");
    sb.succeeds(&["backtest", "models:/o/1", "--out", out.to_str().unwrap()]);

    // Rows appended after the version's last bar: allowed, and said.
    let mut grown = first.clone();
    grown.extend_from_slice(b"2018-09-04,17.5\n");
    std::fs::write(&vix, &grown).unwrap();
    let stderr = sb.succeeds(&["train", "--from", "models:/o/1", "--steps", "2048"]);
    assert!(
        stderr.contains(
            "outside source vix: rows after 2018-08-29T00:00:00Z are new since models:/o/1"
        ),
        "{stderr}"
    );
    // A changed early row: refused, naming the source and the version's last bar.
    write_vix(&sb, "vix.csv", None, true);
    sb.fails(
        &["train", "--from", "models:/o/1", "--steps", "2048"],
        &format!("outside source vix ({vix}) changed at or before 2018-08-29T00:00:00Z, the last bar models:/o/1 saw"),
    );
}

#[test]
fn a_source_that_starts_after_the_bars_is_refused_naming_it() {
    let sb = Sandbox::new();
    let vix = sb.path("late.csv").display().to_string();
    let googl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/STOCKS_GOOGL.csv"
    ))
    .unwrap();
    let second_half: Vec<&str> = googl.lines().skip(1200).collect();
    let mut text = String::from("date,close\n");
    for line in second_half {
        text.push_str(&format!("{},15.0\n", line.split(',').next().unwrap()));
    }
    std::fs::write(&vix, text).unwrap();
    let config = config(&sb, &vix);
    sb.fails(
        &["train", "--config", &config, "--steps", "2048"],
        "its first row is known at",
    );
}

/// `ratchet retrain` over an outside source that grew with the bars: the new rows are taken;
/// a changed row the source version joined is reported and nothing is registered; the
/// retrain's key covers the rows known by the last bar, and only those.
#[test]
fn retrain_reads_a_grown_source_and_reports_changed_history() {
    let sb = Sandbox::new();
    let googl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/STOCKS_GOOGL.csv"
    ))
    .unwrap();
    let lines: Vec<&str> = googl.lines().collect();
    let part = sb.path("part.csv");
    std::fs::write(&part, lines[..=1800].join("\n") + "\n").unwrap();
    let vix = sb.path("vix.csv").display().to_string();
    write_vix(&sb, "vix.csv", Some(1800), false);
    let config = config(&sb, &vix);
    sb.succeeds(&[
        "train",
        "--config",
        &config,
        "--data",
        part.to_str().unwrap(),
        "--steps",
        "2048",
        "--model-name",
        "r",
    ]);
    sb.succeeds(&["models", "promote", "models:/r/1"]);
    let retrain_toml = sb.path("retrain.toml");
    std::fs::write(
        &retrain_toml,
        "[retrain]\nvalidation_bars = 200\ntest_bars = 100\ncompare_on = \"none\"\n",
    )
    .unwrap();
    // The exit code of a retrain, and its stderr.
    let retrain = |sb: &Sandbox| {
        let out = sb.run(&[
            "retrain",
            "models:/r@production",
            "--data",
            concat!(env!("CARGO_MANIFEST_DIR"), "/data/STOCKS_GOOGL.csv"),
            "--config",
            retrain_toml.to_str().unwrap(),
            "--steps",
            "2048",
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code().unwrap(), stderr)
    };
    // The source changed before the version's last bar: reported, nothing registered.
    write_vix(&sb, "vix.csv", None, true);
    let (code, stderr) = retrain(&sb);
    assert_eq!(code, 1);
    assert!(stderr.contains("outside source vix ("), "{stderr}");
    assert_eq!(
        sb.json(&["models", "list", "r", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Only grown: the retrain registers the candidate.
    write_vix(&sb, "vix.csv", None, false);
    let (code, stderr) = retrain(&sb);
    assert_eq!(code, 0, "{stderr}");
    let shown = sb.json(&["models", "show", "models:/r/2", "--json"]);
    assert_eq!(shown["data"]["outside"][0]["until"], "2018-08-29T00:00:00Z");

    // A row stamped after the last bar changes no feature: nothing new.
    let mut text = std::fs::read_to_string(&vix).unwrap();
    text.push_str("2018-08-30,17.0000\n");
    std::fs::write(&vix, &text).unwrap();
    assert_eq!(retrain(&sb).0, 3);
    // A value restated within the new bars is new input: a second candidate is trained.
    let last = text.lines().rev().nth(1).unwrap().to_string();
    let date = last.split(',').next().unwrap();
    assert_eq!(date, "2018-08-28", "the newest row before the appended one");
    std::fs::write(&vix, text.replace(&last, &format!("{date},30.0000"))).unwrap();
    let (code, stderr) = retrain(&sb);
    assert_eq!(code, 0, "{stderr}");
    let shown = sb.json(&["models", "show", "models:/r/3", "--json"]);
    assert_eq!(shown["parent"]["version"], 1);
}
