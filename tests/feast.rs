//! `ratchet features export --feast` against real Feast (0.67, from its own venv made by
//! scripts/feast_venv.sh): `feast apply`, then `get_historical_features` on an entity frame
//! of the bars returns Ratchet's own feature values bit for bit as float32, and after `feast
//! materialize` the online store holds each symbol's last `FeatureStream` row. Skipped, with
//! a message, only when that venv is missing.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::{Path, PathBuf};
use std::process::Command;

use ratchet_config::TrainConfig;
use ratchet_data::{CrossSection, FeatureStream, LoadOptions, Universe};
use serde_json::json;

mod sandbox;
use sandbox::{Sandbox, feast_python};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Each symbol's feature rows as live `FeatureStream`s give them (every symbol's bars in time
/// order through the universe's `CrossSection`, as a server takes them), as float32 bits, and
/// its last row: what Feast must hand back.
fn ratchet_values(config: &Path, service: &str) -> serde_json::Value {
    let config = TrainConfig::load(&root().join(config)).unwrap();
    let files: Vec<PathBuf> = config.data.files.iter().map(|f| root().join(f)).collect();
    let universe = Universe::load(&files, &LoadOptions::default()).unwrap();
    let symbols: Vec<String> = universe.symbols().iter().map(|s| s.to_string()).collect();
    let mut cross = CrossSection::new(symbols, &config.features.features);
    let mut streams: Vec<FeatureStream> = universe
        .members
        .iter()
        .map(|_| FeatureStream::new(&config.features).unwrap())
        .collect();
    let mut feed: Vec<(i64, usize, usize)> = universe
        .members
        .iter()
        .enumerate()
        .flat_map(|(m, member)| {
            let stamps = &member.loaded.bars.timestamps;
            (0..stamps.len()).map(move |i| (stamps[i], m, i))
        })
        .collect();
    feed.sort_unstable();
    let mut rows: Vec<Vec<(i64, Vec<u32>)>> = vec![Vec::new(); streams.len()];
    for (timestamp, m, i) in feed {
        let bar = universe.members[m].loaded.bars.bar(i);
        if let Some(row) = streams[m].push_in(&bar, &mut cross, m).unwrap() {
            rows[m].push((timestamp, row.iter().map(|v| v.to_bits()).collect()));
        }
    }
    let (mut symbols, mut timestamps, mut bits): (_, _, Vec<u32>) = (vec![], vec![], vec![]);
    let mut last = serde_json::Map::new();
    for (member, rows) in universe.members.iter().zip(rows) {
        for (timestamp, row) in &rows {
            symbols.push(member.symbol.clone());
            timestamps.push(*timestamp);
            bits.extend(row);
        }
        last.insert(member.symbol.clone(), json!(rows.last().unwrap().1));
    }
    json!({
        "service": service,
        "names": config.features.column_names(),
        "symbols": symbols,
        "timestamps": timestamps,
        "bits": bits,
        "last": last,
    })
}

#[test]
fn feast_serves_the_exported_features_bit_for_bit() {
    let Some(python) = feast_python() else {
        eprintln!(
            "skipped: no Feast venv at ~/.cache/ratchet/feast-venv (or $RATCHET_FEAST_PYTHON); make it with scripts/feast_venv.sh (scripts/test.sh does)"
        );
        return;
    };
    let sandbox = Sandbox::new();
    let repo = sandbox.path("feature_repo");
    let config = "configs/universe-ppo.toml";
    let written = sandbox.json(&[
        "features",
        "export",
        config,
        "--feast",
        repo.to_str().unwrap(),
        "--json",
    ]);
    let features = TrainConfig::load(&root().join(config)).unwrap().features;
    let (hash, short) = (features.hash(), features.short_hash());
    assert_eq!(written["feature_service"], format!("ratchet_{short}"));
    assert_eq!(written["feature_view"], format!("ratchet_{short}_bars"));
    assert_eq!(written["project"], format!("ratchet_{short}"));
    assert_eq!(written["feature_hash"], hash);
    assert_eq!(written["symbols"], json!(["AAA", "BBB", "CCC", "XYZ"]));

    let expected = ratchet_values(Path::new(config), &format!("ratchet_{short}"));
    assert_eq!(
        written["rows"],
        expected["symbols"].as_array().unwrap().len()
    );
    let expected_path = sandbox.path("expected.json");
    std::fs::write(&expected_path, expected.to_string()).unwrap();
    let out = Command::new(&python)
        .arg(root().join("tests/feast/check_export.py"))
        .arg(&repo)
        .arg(&expected_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Feast disagrees:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "historical: {} rows x {} features equal bit for bit as float32",
            written["rows"],
            features.column_names().len()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("online: 4 symbols' last rows equal"),
        "{stdout}"
    );
}

#[test]
fn export_refuses_a_directory_that_is_not_empty_and_writes_nothing() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path("taken");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("notes.txt"), "mine").unwrap();
    sandbox.fails(
        &[
            "features",
            "export",
            "configs/universe-ppo.toml",
            "--feast",
            repo.to_str().unwrap(),
        ],
        "the directory is not empty; name a new directory for the repository",
    );
    let left: Vec<_> = std::fs::read_dir(sandbox.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["taken"]);
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// A version exports the features of the bars it was trained on: the same repository as its
/// config gives, byte for byte (no Feast needed).
#[test]
fn a_version_exports_what_its_config_exports() {
    let sandbox = Sandbox::new();
    let trained = sandbox.json(&["train", "--steps", "2048", "--json"]);
    assert_eq!(trained["model_uri"], "models:/stocks-googl-ppo/1");
    let export = |source: &str, dir: &str| {
        let repo = sandbox.path(dir);
        let written = sandbox.json(&[
            "features",
            "export",
            source,
            "--feast",
            repo.to_str().unwrap(),
            "--json",
        ]);
        (repo, written)
    };
    let (of_version, version) = export("models:/stocks-googl-ppo/1", "of_version");
    let (of_config, config) = export("configs/ppo-googl.toml", "of_config");
    assert_eq!(version["symbols"], json!(["STOCKS_GOOGL"]));
    assert_eq!(version["feature_hash"], config["feature_hash"]);
    // 2,335 bars less the default config's 132 warm-up bars.
    assert_eq!(version["rows"], 2203);
    for file in [
        "data/features.parquet",
        "feature_store.yaml",
        "ratchet_features.py",
    ] {
        assert_eq!(
            std::fs::read(of_version.join(file)).unwrap(),
            std::fs::read(of_config.join(file)).unwrap(),
            "{file}"
        );
    }
}
