//! Reproducibility and resumability of PPO: same seed, same bytes; save, restore, continue.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_agents::{AgentError, DeviceKind, Environments, Ppo, PpoConfig, TrainingState};
use ratchet_env::CartPole;
use std::sync::atomic::AtomicBool;

mod checkpoint;
use checkpoint::{bytes, through_json};

/// Small enough to run several updates in a test, with two environments so that vectorised
/// rollouts and truncation through the 50-step limit are exercised.
fn config() -> PpoConfig {
    PpoConfig {
        n_steps: 64,
        batch_size: 32,
        n_epochs: 3,
        hidden: vec![16, 16],
        ent_coef: 0.01,
        clip_range_vf: Some(0.5),
        lr_anneal_steps: Some(2_000),
        ..PpoConfig::default()
    }
}

fn agent(seed: u64) -> Ppo<CartPole> {
    Ppo::new(
        config(),
        vec![CartPole::new(50), CartPole::new(50)],
        DeviceKind::Cpu,
        seed,
    )
    .unwrap()
}

fn train(ppo: &mut Ppo<CartPole>, steps: u64) {
    ppo.train(steps, &mut |_| {}, &AtomicBool::new(false))
        .unwrap();
}

#[test]
fn same_seed_gives_bitwise_identical_weights_and_different_seeds_differ() {
    let (mut a, mut b, mut c) = (agent(7), agent(7), agent(8));
    for ppo in [&mut a, &mut b, &mut c] {
        train(ppo, 300);
    }
    let (sa, sb, sc) = (a.state().unwrap(), b.state().unwrap(), c.state().unwrap());
    assert!(sa.tensors.iter().any(|t| t.name.starts_with("optim.")));
    assert_eq!(bytes(&sa), bytes(&sb));
    assert_eq!(sa.meta, sb.meta);
    let weights = |s: &TrainingState| s.tensor("actor.layers.0.weight").unwrap().data.to_vec();
    assert_ne!(weights(&sa), weights(&sc));
}

/// Train 2N in one go, or N, save, rebuild from another seed, restore, N more: same bytes.
fn resume_matches_uninterrupted(n: u64) {
    let mut whole = agent(3);
    train(&mut whole, 2 * n);

    let mut first = agent(3);
    train(&mut first, n);
    let saved = through_json(first.state().unwrap());
    drop(first);
    let mut resumed = agent(99);
    resumed.restore(&saved, Environments::Restore).unwrap();
    assert_eq!(resumed.total_steps(), n);
    train(&mut resumed, n);

    let (a, b) = (whole.state().unwrap(), resumed.state().unwrap());
    assert_eq!(
        bytes(&a),
        bytes(&b),
        "tensors differ after resuming at step {n}"
    );
    assert_eq!(a.meta, b.meta, "counters, RNG or environment state differ");
    assert_eq!(whole.updates(), resumed.updates());
    assert!(whole.updates() >= 2);
}

#[test]
fn resuming_at_an_update_boundary_is_bitwise_identical() {
    // 2 environments x 64 steps = 128 steps per rollout.
    resume_matches_uninterrupted(256);
}

#[test]
fn resuming_mid_rollout_is_bitwise_identical() {
    resume_matches_uninterrupted(300);
}

#[test]
fn state_tensors_are_named_by_parameter_path() {
    let mut ppo = agent(1);
    train(&mut ppo, 150); // one update and 11 steps of the next rollout
    let state = ppo.state().unwrap();
    let mut names: Vec<&str> = state.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    let mut expected = vec![
        "envs.observations".to_string(),
        "rollout.actions".into(),
        "rollout.episode_starts".into(),
        "rollout.log_probs".into(),
        "rollout.observations".into(),
        "rollout.rewards".into(),
        "rollout.values".into(),
    ];
    for net in ["actor", "critic"] {
        for layer in 0..3 {
            for param in ["weight", "bias"] {
                let path = format!("{net}.layers.{layer}.{param}");
                expected.push(format!("optim.{path}.moment_1"));
                expected.push(format!("optim.{path}.moment_2"));
                expected.push(path);
            }
        }
    }
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(
        state.tensor("actor.layers.0.weight").unwrap().shape,
        [4, 16]
    );
    assert_eq!(
        state
            .tensor("optim.critic.layers.2.bias.moment_2")
            .unwrap()
            .shape,
        [1]
    );
    assert_eq!(
        state.tensor("rollout.observations").unwrap().shape,
        [11, 2, 4]
    );
    assert_eq!(state.algorithm, "ppo");
    assert_eq!(state.meta["total_steps"], 150);
}

fn restore_error(target: &mut Ppo<CartPole>, state: &TrainingState) -> String {
    match target.restore(state, Environments::Restore) {
        Err(e @ AgentError::State(_)) => e.to_string(),
        other => panic!("expected a state error, got {other:?}"),
    }
}

#[test]
fn restoring_into_a_mismatched_agent_fails_and_leaves_it_unchanged() {
    let mut ppo = agent(1);
    train(&mut ppo, 200);
    let state = ppo.state().unwrap();

    // Other hidden widths: the first weight has another shape.
    let mut wider = Ppo::new(
        PpoConfig {
            hidden: vec![32, 32],
            ..config()
        },
        vec![CartPole::new(50), CartPole::new(50)],
        DeviceKind::Cpu,
        1,
    )
    .unwrap();
    let before = wider.state().unwrap();
    let msg = restore_error(&mut wider, &state);
    assert!(
        msg.contains("actor.layers.0.weight") && msg.contains("[4, 16]"),
        "{msg}"
    );
    assert_eq!(bytes(&wider.state().unwrap()), bytes(&before));

    // One more layer: a tensor is missing.
    let mut deeper = Ppo::new(
        PpoConfig {
            hidden: vec![16, 16, 16],
            ..config()
        },
        vec![CartPole::new(50), CartPole::new(50)],
        DeviceKind::Cpu,
        1,
    )
    .unwrap();
    let msg = restore_error(&mut deeper, &state);
    assert!(
        msg.contains("actor.layers.2.weight") && msg.contains("[16, 2]"),
        "{msg}"
    );

    // One fewer layer: a saved tensor matches nothing.
    let mut shallower = Ppo::new(
        PpoConfig {
            hidden: vec![16],
            ..config()
        },
        vec![CartPole::new(50), CartPole::new(50)],
        DeviceKind::Cpu,
        1,
    )
    .unwrap();
    let msg = restore_error(&mut shallower, &state);
    assert!(msg.contains("layers.1"), "{msg}");

    // Another number of environments.
    let mut single = Ppo::new(config(), vec![CartPole::new(50)], DeviceKind::Cpu, 1).unwrap();
    let msg = restore_error(&mut single, &state);
    assert!(msg.contains("2 environments"), "{msg}");

    // A missing optimizer moment is an error, not a silently fresh Adam.
    let mut broken = state.clone();
    broken
        .tensors
        .retain(|t| t.name != "optim.actor.layers.1.weight.moment_2");
    let msg = restore_error(&mut agent(1), &broken);
    assert!(
        msg.contains("optim.actor.layers.1.weight.moment_2"),
        "{msg}"
    );

    // Another algorithm's state.
    let mut other = state.clone();
    other.algorithm = "dqn".into();
    let msg = restore_error(&mut agent(1), &other);
    assert!(msg.contains("dqn"), "{msg}");
}

#[test]
fn invalid_configurations_are_rejected_with_a_clear_error() {
    let err = Ppo::new(
        PpoConfig {
            batch_size: 1,
            ..PpoConfig::default()
        },
        vec![CartPole::default()],
        DeviceKind::Cpu,
        0,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("batch_size"), "{err}");
    let err = Ppo::<CartPole>::new(PpoConfig::default(), vec![], DeviceKind::Cpu, 0)
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("at least one environment"),
        "{err}"
    );
}

#[test]
fn defaults_are_stable_baselines3s() {
    let c = PpoConfig::default();
    assert_eq!(
        (
            c.learning_rate,
            c.n_steps,
            c.batch_size,
            c.n_epochs,
            c.gamma,
            c.gae_lambda
        ),
        (3e-4, 2048, 64, 10, 0.99, 0.95)
    );
    assert_eq!(
        (c.clip_range, c.clip_range_vf, c.normalize_advantage),
        (0.2, None, true)
    );
    assert_eq!(
        (c.ent_coef, c.vf_coef, c.max_grad_norm, c.adam_eps),
        (0.0, 0.5, 0.5, 1e-5)
    );
    assert_eq!(c.hidden, [64, 64]);
    // A config file need only name what it changes.
    let parsed: PpoConfig = serde_json::from_str(r#"{"n_steps": 512}"#).unwrap();
    assert_eq!(parsed, PpoConfig { n_steps: 512, ..c });
    assert!(serde_json::from_str::<PpoConfig>(r#"{"n_step": 512}"#).is_err());
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    // The policy and value gradients are computed on two threads when rayon has them.
    let mut parallel = agent(5);
    train(&mut parallel, 300);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut sequential = agent(5);
    single.install(|| train(&mut sequential, 300));
    assert_eq!(
        bytes(&parallel.state().unwrap()),
        bytes(&sequential.state().unwrap())
    );
}

#[test]
fn a_stop_request_ends_training_at_the_next_update_and_training_continues_exactly() {
    let mut whole = agent(3);
    train(&mut whole, 640);
    let mut stopped = agent(3);
    let stop = std::sync::atomic::AtomicBool::new(false);
    stopped
        .train(
            640,
            &mut |_| stop.store(true, std::sync::atomic::Ordering::Relaxed),
            &stop,
        )
        .unwrap();
    // The first update comes after one rollout: 64 steps of each of the two environments.
    assert_eq!((stopped.total_steps(), stopped.updates()), (128, 1));
    train(&mut stopped, 640 - 128);
    assert_eq!(
        bytes(&whole.state().unwrap()),
        bytes(&stopped.state().unwrap())
    );
}

/// Restoring with fresh environments takes everything but the episodes: the weights,
/// optimizer, counters and RNG are the saved ones, the environments those of the agent that
/// restores (here another seed's, so they differ from the saved ones), with no partial rollout.
#[test]
fn fresh_environments_keep_the_agents_own_episodes() {
    let mut trained = agent(3);
    train(&mut trained, 300); // two rollouts of 2 x 64 steps and part of a third
    let saved = through_json(trained.state().unwrap());
    assert_ne!(saved.meta["rollout_len"], 0);
    let target = agent(99);
    let own = through_json(target.state().unwrap());
    let mut restored = target;
    restored.restore(&saved, Environments::Fresh).unwrap();
    let after = restored.state().unwrap();

    let data = |state: &TrainingState, name: &str| state.tensor(name).map(|t| t.data.to_vec());
    let mut compared = 0;
    for tensor in &after.tensors {
        let name = tensor.name.as_str();
        let expected = if name.starts_with("envs.") {
            data(&own, name)
        } else {
            data(&saved, name)
        };
        assert_eq!(Some(tensor.data.to_vec()), expected, "{name}");
        compared += 1;
    }
    assert!(
        after
            .tensors
            .iter()
            .all(|t| !t.name.starts_with("rollout."))
    );
    let unsaved = |t: &&ratchet_agents::NamedTensor| !t.name.starts_with("rollout.");
    assert_eq!(compared, saved.tensors.iter().filter(unsaved).count());
    let env_keys = [
        "env_rng",
        "env_states_f64_bits",
        "episode_returns_f64_bits",
        "episode_lengths",
        "episode_starts",
        "rollout_len",
    ];
    for (key, value) in after.meta.as_object().unwrap() {
        let expected = if env_keys.contains(&key.as_str()) {
            &own.meta[key]
        } else {
            &saved.meta[key]
        };
        assert_eq!(value, expected, "{key}");
    }
    assert_ne!(own.meta["env_rng"], saved.meta["env_rng"]);
    assert_ne!(
        data(&own, "actor.layers.0.weight"),
        data(&saved, "actor.layers.0.weight")
    );
}
