//! Experience replay for off-policy agents: a ring buffer of transitions over contiguous arrays.
//!
//! Each field of the transitions lives in its own flat vector (observations and next
//! observations as `capacity * observation_size` floats), so a sampled minibatch is gathered
//! with plain slice copies and handed to the device in one upload per field.
//!
//! Each vector is one zeroed allocation of the whole capacity, made at the first push. A
//! zeroed allocation above the allocator's mmap threshold (glibc: at most 32 MiB) is fresh
//! pages that the OS maps only when first written, so resident memory follows what has been
//! stored, to the page, and never exceeds the capacity; the buffer is never reallocated, so
//! there is no moment with an old and a new copy (growth by doubling had one, 1.1 GB RSS for
//! 346 MB of transitions).
//!
//! Memory per stored transition ([`ReplayBuffer::bytes_per_transition`]):
//!
//! | field              | type  | bytes                    |
//! |--------------------|-------|--------------------------|
//! | observation        | `f32` | `4 * observation_size`   |
//! | next observation   | `f32` | `4 * observation_size`   |
//! | action             | `u32` | 4                        |
//! | reward             | `f32` | 4                        |
//! | terminated         | `bool`| 1                        |
//!
//! so `8 * observation_size + 9` bytes: 41 for CartPole, 1 M transitions of a 100-float
//! observation take 809 MB.
//!
//! ```
//! use ratchet_agents::replay::{ReplayBatch, ReplayBuffer};
//! use ratchet_env::Rng;
//!
//! let mut buffer = ReplayBuffer::new(1_000, 2);
//! buffer.push(&[0.0, 1.0], 1, 1.0, &[0.5, 1.5], false);
//! buffer.push(&[0.5, 1.5], 0, 1.0, &[0.9, 2.0], true);
//! let mut batch = ReplayBatch::default();
//! buffer.sample(&mut Rng::seed_from(0), 32, &mut batch);
//! assert_eq!(batch.observations.len(), 32 * 2);
//! assert_eq!(ReplayBuffer::bytes_per_transition(4), 41);
//! ```

use crate::AgentError;
use crate::state::{NamedTensor, join};
use ratchet_env::Rng;

/// A fixed-capacity ring buffer of `(observation, action, reward, next observation,
/// terminated)` transitions; once full, each new transition overwrites the oldest.
///
/// `terminated` is the only "done" a transition keeps: an episode cut short by a time limit
/// is stored as not terminated (its next state still has a value to bootstrap from), with the
/// episode's real last observation as the next observation.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBuffer {
    capacity: usize,
    observation_size: usize,
    observations: Vec<f32>,
    next_observations: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    /// Transitions stored: the slots before `len` hold data, the rest are still zero.
    len: usize,
    /// Slot the next transition is written to.
    position: usize,
}

/// A sampled minibatch, field by field, in the layout the networks take (row-major,
/// `len * observation_size` observations). Reused from one sample to the next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayBatch {
    pub observations: Vec<f32>,
    pub next_observations: Vec<f32>,
    pub actions: Vec<u32>,
    pub rewards: Vec<f32>,
    /// 1.0 where the episode terminated after the action, 0.0 otherwise.
    pub terminated: Vec<f32>,
}

impl ReplayBatch {
    /// Number of transitions in the batch.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

impl ReplayBuffer {
    /// An empty buffer for up to `capacity` transitions of `observation_size` floats.
    /// Nothing is allocated until the first transition arrives.
    pub fn new(capacity: usize, observation_size: usize) -> Self {
        assert!(
            capacity > 0,
            "a replay buffer needs a capacity of at least 1"
        );
        Self {
            capacity,
            observation_size,
            observations: Vec::new(),
            next_observations: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            terminated: Vec::new(),
            len: 0,
            position: 0,
        }
    }

    /// Bytes one stored transition takes: `8 * observation_size + 9`.
    pub const fn bytes_per_transition(observation_size: usize) -> usize {
        2 * observation_size * size_of::<f32>()
            + size_of::<u32>()
            + size_of::<f32>()
            + size_of::<bool>()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn observation_size(&self) -> usize {
        self.observation_size
    }

    /// Transitions stored (at most the capacity).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stored actions, in slot order.
    pub fn actions(&self) -> &[u32] {
        &self.actions[..self.len]
    }

    /// Slot the next transition will be written to.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Bytes of memory the stored transitions occupy: `len * bytes_per_transition`. The
    /// arrays span the whole capacity, but only the pages written so far are resident (see
    /// the module documentation), so this, rounded up to pages, is what the buffer costs.
    pub fn allocated_bytes(&self) -> usize {
        self.len * Self::bytes_per_transition(self.observation_size)
    }

    /// Makes the zeroed arrays of the whole capacity, once.
    fn allocate(&mut self) {
        if self.actions.len() == self.capacity {
            return;
        }
        let (n, k) = (self.capacity, self.observation_size);
        // `vec![0; n]` allocates zeroed memory (calloc) instead of writing the zeros, which
        // is what leaves the pages unmapped until a transition lands on them.
        self.observations = vec![0.0; n * k];
        self.next_observations = vec![0.0; n * k];
        self.actions = vec![0; n];
        self.rewards = vec![0.0; n];
        self.terminated = vec![false; n];
    }

    /// Stores one transition, overwriting the oldest once the buffer is full.
    pub fn push(
        &mut self,
        observation: &[f32],
        action: u32,
        reward: f32,
        next_observation: &[f32],
        terminated: bool,
    ) {
        let k = self.observation_size;
        assert_eq!(observation.len(), k, "observation length");
        assert_eq!(next_observation.len(), k, "next observation length");
        self.allocate();
        let i = self.position;
        self.observations[i * k..(i + 1) * k].copy_from_slice(observation);
        self.next_observations[i * k..(i + 1) * k].copy_from_slice(next_observation);
        self.actions[i] = action;
        self.rewards[i] = reward;
        self.terminated[i] = terminated;
        self.len = self.capacity.min(self.len + 1);
        self.position = (self.position + 1) % self.capacity;
    }

    /// Draws `n` transitions uniformly with replacement (as Stable-Baselines3 does) with
    /// `rng`, writing them into `batch`. The buffer must not be empty.
    pub fn sample(&self, rng: &mut Rng, n: usize, batch: &mut ReplayBatch) {
        assert!(
            !self.is_empty(),
            "cannot sample from an empty replay buffer"
        );
        let k = self.observation_size;
        batch.observations.clear();
        batch.next_observations.clear();
        batch.actions.clear();
        batch.rewards.clear();
        batch.terminated.clear();
        let len = self.len() as u64;
        for _ in 0..n {
            let i = rng.below(len) as usize;
            batch
                .observations
                .extend_from_slice(&self.observations[i * k..(i + 1) * k]);
            batch
                .next_observations
                .extend_from_slice(&self.next_observations[i * k..(i + 1) * k]);
            batch.actions.push(self.actions[i]);
            batch.rewards.push(self.rewards[i]);
            batch
                .terminated
                .push(if self.terminated[i] { 1.0 } else { 0.0 });
        }
    }

    /// The stored transitions as tensors named `{prefix}.observations` (`[len, obs]`),
    /// `.next_observations`, `.actions`, `.rewards` and `.terminated` (`[len]`, actions and
    /// flags as exact small floats), in slot order; [`ReplayBuffer::position`] completes them.
    /// Observations and rewards are borrowed, not copied: saving a full buffer needs no
    /// second copy of it.
    pub fn tensors(&self, prefix: &str) -> Vec<NamedTensor<'_>> {
        let (n, k) = (self.len(), self.observation_size);
        vec![
            NamedTensor::new(
                join(prefix, "observations"),
                vec![n, k],
                &self.observations[..n * k],
            ),
            NamedTensor::new(
                join(prefix, "next_observations"),
                vec![n, k],
                &self.next_observations[..n * k],
            ),
            NamedTensor::new(
                join(prefix, "actions"),
                vec![n],
                self.actions[..n]
                    .iter()
                    .map(|&a| a as f32)
                    .collect::<Vec<_>>(),
            ),
            NamedTensor::new(join(prefix, "rewards"), vec![n], &self.rewards[..n]),
            NamedTensor::new(
                join(prefix, "terminated"),
                vec![n],
                self.terminated[..n]
                    .iter()
                    .map(|&t| if t { 1.0 } else { 0.0 })
                    .collect::<Vec<_>>(),
            ),
        ]
    }

    /// Replaces the contents with tensors written by [`ReplayBuffer::tensors`] and the saved
    /// `position`. Fails, naming the tensor, when one is missing, has the wrong shape, or
    /// holds an action or flag that is not a whole number in range.
    pub fn restore(
        &mut self,
        tensors: &[NamedTensor],
        prefix: &str,
        position: usize,
    ) -> Result<(), AgentError> {
        let find = |field: &str| {
            let name = join(prefix, field);
            tensors
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| AgentError::State(format!("replay buffer has no tensor '{name}'")))
        };
        let k = self.observation_size;
        let observations = find("observations")?;
        let n = observations.shape.first().copied().unwrap_or(0);
        if n > self.capacity {
            return Err(AgentError::State(format!(
                "saved replay buffer holds {n} transitions, more than this buffer's capacity of {}",
                self.capacity
            )));
        }
        observations.check_shape(&[n, k])?;
        let next_observations = find("next_observations")?;
        next_observations.check_shape(&[n, k])?;
        let actions = find("actions")?;
        actions.check_shape(&[n])?;
        let rewards = find("rewards")?;
        rewards.check_shape(&[n])?;
        let terminated = find("terminated")?;
        terminated.check_shape(&[n])?;
        let bad = |t: &NamedTensor<'_>, what: &str| {
            AgentError::State(format!(
                "tensor '{}' holds a value that is not {what}",
                t.name
            ))
        };
        let actions_u32 = actions
            .data
            .iter()
            .map(|&a| {
                (a >= 0.0 && a.fract() == 0.0 && a < u32::MAX as f32)
                    .then_some(a as u32)
                    .ok_or_else(|| bad(actions, "an action index"))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        let flags = terminated
            .data
            .iter()
            .map(|&t| match t {
                0.0 => Ok(false),
                1.0 => Ok(true),
                _ => Err(bad(terminated, "0 or 1")),
            })
            .collect::<Result<Vec<bool>, _>>()?;
        let valid_position = if n < self.capacity {
            position == n
        } else {
            position < self.capacity
        };
        if !valid_position {
            return Err(AgentError::State(format!(
                "replay buffer position {position} does not fit {n} stored transitions of capacity {}",
                self.capacity
            )));
        }
        let mut restored = Self::new(self.capacity, k);
        if n > 0 {
            restored.allocate();
            restored.observations[..n * k].copy_from_slice(&observations.data);
            restored.next_observations[..n * k].copy_from_slice(&next_observations.data);
            restored.actions[..n].copy_from_slice(&actions_u32);
            restored.rewards[..n].copy_from_slice(&rewards.data);
            restored.terminated[..n].copy_from_slice(&flags);
        }
        restored.len = n;
        restored.position = position;
        *self = restored;
        Ok(())
    }
}
