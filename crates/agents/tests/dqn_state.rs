//! Reproducibility and resumability of DQN: same seed, same bytes; save, restore, continue;
//! and clear refusals of states that do not fit.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_agents::{AgentError, DeviceKind, Dqn, DqnConfig, Environments, TrainingState};
use ratchet_env::CartPole;
use std::sync::atomic::AtomicBool;

mod checkpoint;
use checkpoint::{bytes, through_json};

/// Small enough to run many learning phases in a test, yet exercising everything that carries
/// state: two environments with a 50-step limit (truncations), a replay buffer that wraps
/// around, target updates between learning phases, and a split in the middle of a phase.
fn config() -> DqnConfig {
    DqnConfig {
        hidden: vec![16, 16],
        buffer_size: 300,
        learning_starts: 64,
        batch_size: 16,
        train_freq: 8,
        gradient_steps: 4,
        target_update_interval: 40,
        learning_rate: 1e-3,
        total_timesteps: 1_000,
        ..DqnConfig::default()
    }
}

fn agent(config: DqnConfig, seed: u64) -> Dqn<CartPole> {
    Dqn::new(
        config,
        vec![CartPole::new(50), CartPole::new(50)],
        DeviceKind::Cpu,
        seed,
    )
    .unwrap()
}

fn train(dqn: &mut Dqn<CartPole>, steps: u64) {
    dqn.train(steps, &mut |_| {}, &AtomicBool::new(false))
        .unwrap();
}

#[test]
fn same_seed_gives_bitwise_identical_weights_and_different_seeds_differ() {
    let (mut a, mut b, mut c) = (agent(config(), 7), agent(config(), 7), agent(config(), 8));
    for dqn in [&mut a, &mut b, &mut c] {
        train(dqn, 600);
    }
    assert!(a.n_updates() > 0);
    let (sa, sb, sc) = (a.state().unwrap(), b.state().unwrap(), c.state().unwrap());
    assert_eq!(bytes(&sa), bytes(&sb));
    assert_eq!(sa.meta, sb.meta);
    let weights = |s: &TrainingState| s.tensor("q_network.layers.1.weight").unwrap().data.to_vec();
    assert_ne!(weights(&sa), weights(&sc));
}

/// Train 2N in one go, or N, save, restore into an agent built from another seed, N more:
/// the same weights, target weights, Adam moments, replay buffer, counters and RNG states.
/// Returns the uninterrupted agent.
fn resume_matches_uninterrupted(config: DqnConfig, n: u64) -> Dqn<CartPole> {
    let mut whole = agent(config.clone(), 3);
    train(&mut whole, 2 * n);

    let mut first = agent(config.clone(), 3);
    train(&mut first, n);
    let saved = through_json(first.state().unwrap());
    drop(first);
    let mut resumed = agent(config, 99);
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
    assert_eq!(whole.n_updates(), resumed.n_updates());
    whole
}

#[test]
fn resuming_mid_phase_is_bitwise_identical_to_an_uninterrupted_run() {
    // 2 x 230 steps: the split falls between two learning phases, after the buffer wrapped.
    let whole = resume_matches_uninterrupted(config(), 230);
    assert_eq!(
        whole.replay_buffer().len(),
        300,
        "the buffer wrapped around"
    );
    assert!(whole.n_updates() > 0);
    let state = whole.state().unwrap();
    let names: Vec<&str> = state.tensors.iter().map(|t| t.name.as_str()).collect();
    for expected in [
        "q_network.layers.0.weight",
        "target_network.layers.2.bias",
        "optim.q_network.layers.1.weight.moment_2",
        "replay.observations",
        "replay.terminated",
        "envs.observations",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn resuming_with_polyak_dueling_and_plain_dqn_is_bitwise_identical() {
    resume_matches_uninterrupted(
        DqnConfig {
            tau: 0.3,
            dueling: true,
            target_update_interval: 2,
            ..config()
        },
        230,
    );
    resume_matches_uninterrupted(
        DqnConfig {
            double_q: false,
            ..config()
        },
        230,
    );
}

#[test]
fn restoring_before_learning_starts_resumes_too() {
    resume_matches_uninterrupted(config(), 20);
}

#[test]
fn mismatched_states_are_refused_clearly_and_change_nothing() {
    let mut source = agent(config(), 1);
    train(&mut source, 200);
    let saved = source.state().unwrap();
    let message = |r: Result<(), AgentError>| r.unwrap_err().to_string();

    let mut target = agent(config(), 2);
    let before = target.state().unwrap();

    let ppo = TrainingState {
        algorithm: "ppo".into(),
        ..saved.clone()
    };
    assert!(message(target.restore(&ppo, Environments::Restore)).contains("'ppo', not DQN"));

    let mut wider = agent(
        DqnConfig {
            hidden: vec![32, 16],
            ..config()
        },
        2,
    );
    let e = message(wider.restore(&saved, Environments::Restore));
    assert!(e.contains("[16, 16]") && e.contains("[32, 16]"), "{e}");

    let mut dueling = agent(
        DqnConfig {
            dueling: true,
            ..config()
        },
        2,
    );
    assert!(message(dueling.restore(&saved, Environments::Restore)).contains("dueling"));

    let mut one_env = Dqn::new(config(), vec![CartPole::new(50)], DeviceKind::Cpu, 2).unwrap();
    let e = message(one_env.restore(&saved, Environments::Restore));
    assert!(e.contains("2 environments"), "{e}");

    let mut small_buffer = agent(
        DqnConfig {
            buffer_size: 100,
            ..config()
        },
        2,
    );
    let e = message(small_buffer.restore(&saved, Environments::Restore));
    assert!(e.contains("capacity of 100"), "{e}");

    let mut missing = saved.clone();
    missing
        .tensors
        .retain(|t| t.name != "optim.q_network.layers.2.bias.moment_1");
    let e = message(target.restore(&missing, Environments::Restore));
    assert!(e.contains("optim.q_network.layers.2.bias.moment_1"), "{e}");

    let mut reshaped = saved.clone();
    let t = reshaped
        .tensors
        .iter_mut()
        .find(|t| t.name == "target_network.layers.0.weight")
        .unwrap();
    t.shape = vec![16, 4];
    let e = message(target.restore(&reshaped, Environments::Restore));
    assert!(e.contains("target_network.layers.0.weight"), "{e}");

    let mut bad_action = saved.clone();
    let t = bad_action
        .tensors
        .iter_mut()
        .find(|t| t.name == "replay.actions")
        .unwrap();
    t.data.to_mut()[0] = 5.0;
    let e = message(target.restore(&bad_action, Environments::Restore));
    assert!(e.contains("action 5"), "{e}");

    let mut broken_meta = saved.clone();
    broken_meta.meta["total_steps"] = serde_json::json!("many");
    assert!(message(target.restore(&broken_meta, Environments::Restore)).contains("DQN metadata"));

    let after = target.state().unwrap();
    assert_eq!(
        bytes(&before),
        bytes(&after),
        "failed restores changed the agent"
    );
    assert_eq!(before.meta, after.meta);
}

#[test]
fn a_stop_request_ends_training_at_the_next_update_and_training_continues_exactly() {
    let mut whole = agent(config(), 3);
    train(&mut whole, 600);
    let mut stopped = agent(config(), 3);
    let stop = std::sync::atomic::AtomicBool::new(false);
    stopped
        .train(
            600,
            &mut |_| stop.store(true, std::sync::atomic::Ordering::Relaxed),
            &stop,
        )
        .unwrap();
    // The first learning phase: the first call of the vector environment (2 steps each)
    // that is a multiple of train_freq = 8 after learning_starts = 64 steps.
    assert_eq!(stopped.total_steps(), 80);
    train(&mut stopped, 600 - 80);
    assert_eq!(
        bytes(&whole.state().unwrap()),
        bytes(&stopped.state().unwrap())
    );
}
