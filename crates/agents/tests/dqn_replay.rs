//! The replay buffer: ring wrap-around, memory per transition, sampling, export and import.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::borrow::Cow;

use ratchet_agents::replay::{ReplayBatch, ReplayBuffer};
use ratchet_agents::{AgentError, NamedTensor};
use ratchet_env::Rng;

/// Transition `i` has observation `[i, -i]`, action `i % 3`, reward `i / 2`, next observation
/// `[i + 1, -i - 1]`, and terminates when `i % 4 == 0`.
fn filled(capacity: usize, n: usize) -> ReplayBuffer {
    let mut b = ReplayBuffer::new(capacity, 2);
    for i in 0..n {
        let x = i as f32;
        b.push(
            &[x, -x],
            (i % 3) as u32,
            x * 0.5,
            &[x + 1.0, -x - 1.0],
            i % 4 == 0,
        );
    }
    b
}

fn field(b: &ReplayBuffer, name: &str) -> Vec<f32> {
    b.tensors("")
        .into_iter()
        .find(|t| t.name == name)
        .unwrap()
        .data
        .into_owned()
}

#[test]
fn wraps_around_overwriting_the_oldest() {
    let b = filled(5, 7);
    assert_eq!(b.len(), 5);
    assert_eq!(b.position(), 2);
    // Slots 0 and 1 hold transitions 5 and 6; slots 2, 3, 4 still hold 2, 3, 4.
    assert_eq!(
        field(&b, "observations"),
        [5.0, -5.0, 6.0, -6.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0]
    );
    assert_eq!(
        field(&b, "next_observations"),
        [6.0, -6.0, 7.0, -7.0, 3.0, -3.0, 4.0, -4.0, 5.0, -5.0]
    );
    assert_eq!(b.actions(), [2, 0, 2, 0, 1]);
    assert_eq!(field(&b, "rewards"), [2.5, 3.0, 1.0, 1.5, 2.0]);
    assert_eq!(field(&b, "terminated"), [0.0, 0.0, 0.0, 0.0, 1.0]);
    // Filling exactly to capacity puts the next write back at slot 0.
    let full = filled(5, 5);
    assert_eq!((full.len(), full.position()), (5, 0));
}

#[test]
fn memory_is_exactly_capacity_times_bytes_per_transition() {
    // Two f32 observations, a u32 action, an f32 reward and a one-byte flag.
    assert_eq!(ReplayBuffer::bytes_per_transition(4), 2 * 4 * 4 + 4 + 4 + 1);
    assert_eq!(ReplayBuffer::bytes_per_transition(4), 41);
    let half = filled(3_000, 1_000);
    assert!(half.allocated_bytes() < 3_000 * ReplayBuffer::bytes_per_transition(2));
    let full = filled(3_000, 3_500);
    assert_eq!(
        full.allocated_bytes(),
        3_000 * ReplayBuffer::bytes_per_transition(2)
    );
}

#[test]
fn samples_only_stored_transitions_with_their_fields_together() {
    let b = filled(100, 10);
    let mut batch = ReplayBatch::default();
    b.sample(&mut Rng::seed_from(3), 500, &mut batch);
    assert_eq!(batch.len(), 500);
    let mut seen = [0usize; 10];
    for j in 0..batch.len() {
        let x = batch.observations[2 * j];
        let i = x as usize;
        assert!(i < 10, "sampled an empty slot");
        seen[i] += 1;
        assert_eq!(batch.observations[2 * j + 1], -x);
        assert_eq!(
            batch.next_observations[2 * j..2 * j + 2],
            [x + 1.0, -x - 1.0]
        );
        assert_eq!(batch.actions[j], (i % 3) as u32);
        assert_eq!(batch.rewards[j], x * 0.5);
        assert_eq!(
            batch.terminated[j],
            if i.is_multiple_of(4) { 1.0 } else { 0.0 }
        );
    }
    // Uniform: each of the 10 transitions about 50 times.
    assert!(seen.iter().all(|&c| (25..=80).contains(&c)), "{seen:?}");
}

#[test]
fn samples_cover_the_whole_ring_after_wrapping() {
    let b = filled(8, 20);
    let mut batch = ReplayBatch::default();
    b.sample(&mut Rng::seed_from(4), 400, &mut batch);
    let mut drawn: Vec<u32> = batch.observations.chunks(2).map(|o| o[0] as u32).collect();
    drawn.sort();
    drawn.dedup();
    assert_eq!(
        drawn,
        (12..20).collect::<Vec<u32>>(),
        "only the newest 8 remain"
    );
}

#[test]
fn the_same_rng_state_draws_the_same_batch() {
    let b = filled(50, 80);
    let (mut x, mut y) = (ReplayBatch::default(), ReplayBatch::default());
    b.sample(&mut Rng::seed_from(9), 64, &mut x);
    b.sample(&mut Rng::seed_from(9), 64, &mut y);
    assert_eq!(x, y);
    b.sample(&mut Rng::seed_from(10), 64, &mut y);
    assert_ne!(x, y);
}

#[test]
fn tensors_round_trip_and_continue_identically() {
    for (capacity, n) in [(8, 11), (8, 3), (8, 0)] {
        let mut a = filled(capacity, n);
        let saved = a.tensors("replay");
        assert_eq!(saved[0].name, "replay.observations");
        assert_eq!(saved[0].shape, [a.len(), 2]);
        let mut b = ReplayBuffer::new(capacity, 2);
        b.restore(&saved, "replay", a.position()).unwrap();
        assert_eq!(a, b);
        for i in 0..10 {
            let x = 100.0 + i as f32;
            a.push(&[x, x], 1, 0.0, &[x, x], true);
            b.push(&[x, x], 1, 0.0, &[x, x], true);
        }
        assert_eq!(a, b);
    }
}

#[test]
fn saving_borrows_observations_and_rewards_instead_of_copying_them() {
    let b = filled(8, 11);
    let saved = b.tensors("replay");
    let borrowed: Vec<&str> = saved
        .iter()
        .filter(|t| matches!(t.data, Cow::Borrowed(_)))
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        borrowed,
        [
            "replay.observations",
            "replay.next_observations",
            "replay.rewards"
        ]
    );
}

#[test]
fn restore_rejects_mismatches_naming_the_tensor_and_changes_nothing() {
    let a = filled(8, 11);
    let saved = a.tensors("replay");
    let message = |r: Result<(), AgentError>| r.unwrap_err().to_string();

    let mut wider = ReplayBuffer::new(8, 3);
    let e = message(wider.restore(&saved, "replay", a.position()));
    assert!(e.contains("replay.observations"), "{e}");

    let mut small = ReplayBuffer::new(4, 2);
    let e = message(small.restore(&saved, "replay", a.position()));
    assert!(e.contains("capacity of 4"), "{e}");

    let mut b = filled(8, 2);
    let before = b.clone();
    let e = message(b.restore(&saved[..4], "replay", a.position()));
    assert!(e.contains("replay.terminated"), "{e}");

    let mut bad: Vec<NamedTensor> = saved.clone();
    bad[2].data.to_mut()[0] = 1.5;
    let e = message(b.restore(&bad, "replay", a.position()));
    assert!(e.contains("replay.actions"), "{e}");

    let mut bad = saved.clone();
    bad[3].shape = vec![7];
    let e = message(b.restore(&bad, "replay", a.position()));
    assert!(e.contains("replay.rewards"), "{e}");

    let e = message(b.restore(&saved, "replay", 9));
    assert!(e.contains("position 9"), "{e}");
    assert_eq!(b, before, "a failed restore leaves the buffer as it was");
}
