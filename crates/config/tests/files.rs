//! Config files as `ratchet train --config` reads them: the examples in `configs/`, unknown
//! keys and values out of range refused with the key named.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::{Path, PathBuf};

use ratchet_config::{Select, TrainConfig};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn example(name: &str) -> TrainConfig {
    TrainConfig::load(&configs().join(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn json(config: &TrainConfig) -> serde_json::Value {
    serde_json::to_value(config).unwrap()
}

#[test]
fn the_ppo_example_spells_out_the_default_config() {
    let mut config = example("ppo-googl.toml");
    config.dqn_schedule_given = false;
    let default = TrainConfig::default();
    assert_eq!(json(&config), json(&default));
}

#[test]
fn every_example_config_parses_and_validates() {
    let dir = configs();
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".toml") || name.starts_with("sweep-") {
            continue; // sweep files: the binary's src/sweep.rs tests them
        }
        if name == "slo.toml" {
            continue; // `ratchet serve --slo`: crates/serve tests it
        }
        TrainConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        n += 1;
    }
    assert!(n >= 3);
    assert_eq!(example("cartpole-dqn.toml").dqn.hidden, vec![256, 256]);
    assert!(!example("dqn-eurusd.toml").dqn_schedule_given);
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        TrainConfig::load(&p)
    };
    let e = write("[run]\nsteeps = 5\n").unwrap_err().to_string();
    assert!(e.contains("steeps"), "{e}");
    let e = write("[run]\nsteps = 0\n").unwrap_err();
    assert!(format!("{e:#}").contains("run.steps"), "{e:#}");
    let e = write("[run]\nalgo = \"dqn\"\nn_envs = 4\n").unwrap_err();
    assert!(format!("{e:#}").contains("n_envs"), "{e:#}");
    let c = write("[dqn]\ntotal_timesteps = 7\n").unwrap();
    assert!(c.dqn_schedule_given);
    let e = write("[run]\nselect = \"best_val_sharpe\"\n").unwrap_err();
    assert!(format!("{e:#}").contains("needs run.eval_every"), "{e:#}");
    let e = write("[run]\nselect = \"best\"\n").unwrap_err().to_string();
    assert!(e.contains("unknown variant `best`"), "{e}");
    let e = write("[run]\neval_every = 0\n").unwrap_err();
    assert!(
        format!("{e:#}").contains("run.eval_every must be at least 1"),
        "{e:#}"
    );
    let c = write("[run]\nselect = \"best_val_sharpe\"\neval_every = 500\n").unwrap();
    assert_eq!(
        (c.run.select, c.run.eval_every),
        (Select::BestValSharpe, Some(500))
    );
    // Defaults are left out of the recorded config: older configs hash the same.
    let recorded = json(&TrainConfig::default());
    assert!(recorded["run"].get("select").is_none() && recorded["run"].get("eval_every").is_none());
}

#[test]
fn a_run_too_short_to_learn_is_refused_with_the_minimum() {
    let too_short = |text: &str| {
        let mut c = TrainConfig::parse(text).unwrap();
        c.settle_schedule();
        c.check_learns().map_err(|e| e.to_string())
    };
    assert_eq!(
        too_short("[run]\nsteps = 100\n").unwrap_err(),
        "run.steps 100 is less than one PPO rollout (ppo.n_steps 2048 x run.n_envs 1 = \
         2048 steps), so the network would never be updated; train at least 2048 steps, or \
         lower ppo.n_steps"
    );
    assert!(too_short("[run]\nsteps = 2048\n").is_ok());
    assert!(too_short("[run]\nsteps = 511\nn_envs = 2\n[ppo]\nn_steps = 256\n").is_err());
    assert_eq!(
        too_short("[run]\nalgo = \"dqn\"\nsteps = 50\n").unwrap_err(),
        "run.steps 50 ends before DQN's first update at step 104 (after \
         dqn.learning_starts 100, every dqn.train_freq 4 steps), so the network would never \
         be updated; train at least 104 steps, or lower dqn.learning_starts"
    );
    assert!(too_short("[run]\nalgo = \"dqn\"\nsteps = 104\n").is_ok());
    assert!(too_short("[run]\nalgo = \"dqn\"\nsteps = 103\n").is_err());
}

/// `[[features.feast]]` is read when the file is loaded: the service's views become outside
/// features (a version records and hashes those), and a repository that cannot be read is an
/// error naming the file.
#[test]
fn feast_features_are_read_into_outside_features_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../feast/tests/fixtures/feature_repo");
    let config = dir.path().join("feast.toml");
    std::fs::write(
        &config,
        format!(
            "[[features.feast]]\nrepo = \"{}\"\nservice = \"both\"\nmissing = \"last\"\n",
            repo.display()
        ),
    )
    .unwrap();
    let loaded = TrainConfig::load(&config).unwrap();
    assert!(loaded.features.feast.is_empty());
    let names: Vec<&str> = loaded
        .features
        .external
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(json(&loaded)["features"].get("feast").is_none());
    let mut explicit = loaded.features.clone();
    explicit.feast.clear();
    assert_eq!(loaded.features.hash(), explicit.hash());

    std::fs::write(
        &config,
        "[[features.feast]]\nrepo = \"no/such/repo\"\nservice = \"both\"\nmissing = \"last\"\n",
    )
    .unwrap();
    let err = TrainConfig::load(&config).unwrap_err().to_string();
    assert!(
        err.contains(&config.display().to_string()) && err.contains("no/such/repo"),
        "{err}"
    );
}
