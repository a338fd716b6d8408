//! What a sweep checks of each trial's config text: what `ratchet train --config` refuses.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_config::TrainConfig;

#[test]
fn a_trial_is_refused_for_what_training_refuses() {
    let error = |text: &str| TrainConfig::load_trial(text).unwrap_err().to_string();
    assert_eq!(
        error("[ppo]\ngama = 0.9\n").split(',').next(),
        Some("unknown field `gama`")
    );
    assert_eq!(error("[run]\nsteps = 0\n"), "run.steps must be at least 1");
    assert_eq!(
        error("[data]\nfile = \"nope.csv\"\n"),
        "data.file nope.csv does not exist"
    );
    assert_eq!(
        error("[run]\nsteps = 100\n"),
        "run.steps 100 is less than one PPO rollout (ppo.n_steps 2048 x run.n_envs 1 = 2048 \
         steps), so the network would never be updated; train at least 2048 steps, or lower \
         ppo.n_steps"
    );
}

#[test]
fn a_trial_lays_the_dqn_schedule_over_its_own_steps_unless_given() {
    let trial = |text: &str| TrainConfig::load_trial(text).unwrap();
    let plain = trial("[run]\nalgo = \"dqn\"\nenv = \"cartpole\"\nsteps = 500\n");
    assert_eq!(plain.dqn.total_timesteps, 500);
    let given = trial(
        "[run]\nalgo = \"dqn\"\nenv = \"cartpole\"\nsteps = 500\n[dqn]\ntotal_timesteps = 9000\n",
    );
    assert_eq!(given.dqn.total_timesteps, 9000);
}

/// The bundled data is found from any directory (the test runs in the crate's own).
#[test]
fn the_default_data_is_built_in() {
    let config = TrainConfig::load_trial("").unwrap();
    assert_eq!(
        config.data.file.to_str(),
        Some(ratchet_config::DEFAULT_DATA)
    );
    assert!(!std::path::Path::new(ratchet_config::DEFAULT_DATA).exists());
}
