//! What DQN stores: time-limit truncations are not terminations, and the next observation of a
//! finished episode is its last one, not the first of the episode the environment reset to.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_agents::{DeviceKind, Dqn, DqnConfig, TrainingState};
use ratchet_env::CartPole;
use std::sync::atomic::AtomicBool;

/// Random actions only (learning never starts), one environment, every transition kept.
fn stored_transitions(env: CartPole, steps: u64) -> TrainingState<'static> {
    let config = DqnConfig {
        learning_starts: 1_000_000,
        buffer_size: 10_000,
        hidden: vec![8],
        ..DqnConfig::default()
    };
    let mut dqn = Dqn::new(config, vec![env], DeviceKind::Cpu, 4).unwrap();
    dqn.train(steps, &mut |_| {}, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(dqn.replay_buffer().len() as u64, steps);
    dqn.state().unwrap().into_owned()
}

fn field<'a>(state: &'a TrainingState, name: &str) -> &'a [f32] {
    &state.tensor(name).unwrap().data
}

#[test]
fn truncated_episodes_bootstrap_from_their_last_observation() {
    // Five steps cannot tip the pole past 12 degrees: every episode ends by the time limit.
    let state = stored_transitions(CartPole::new(5), 50);
    let obs = field(&state, "replay.observations");
    let next = field(&state, "replay.next_observations");
    assert!(field(&state, "replay.terminated").iter().all(|&t| t == 0.0));
    for i in 0..49 {
        let (next_i, obs_following) = (&next[4 * i..4 * i + 4], &obs[4 * (i + 1)..4 * i + 8]);
        if i % 5 == 4 {
            // The episode ended; the following observation starts a new one.
            assert_ne!(next_i, obs_following, "transition {i}");
        } else {
            assert_eq!(next_i, obs_following, "transition {i}");
        }
    }
}

#[test]
fn terminations_are_stored_with_the_terminal_observation() {
    let state = stored_transitions(CartPole::default(), 400);
    let terminated = field(&state, "replay.terminated");
    let next = field(&state, "replay.next_observations");
    let ends = terminated.iter().filter(|&&t| t == 1.0).count();
    assert!(ends > 5, "random play ends episodes quickly, got {ends}");
    for (i, &t) in terminated.iter().enumerate() {
        let s = &next[4 * i..4 * i + 4];
        let outside = s[0].abs() > 2.4 || s[2].abs() > 12f32.to_radians();
        assert_eq!(
            t == 1.0,
            outside,
            "transition {i}: terminated {t}, next {s:?}"
        );
    }
}
