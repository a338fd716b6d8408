//! Steps N copies of an environment in lock-step with automatic resets.

use serde::{Deserialize, Serialize};

use crate::{Env, EnvError, Rng, RngState};

/// One finished episode, reported by [`VecEnv::step`] on the step that ended it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeEnd {
    pub env: usize,
    /// Undiscounted sum of rewards.
    pub episode_return: f64,
    pub length: u64,
    pub truncated: bool,
}

/// The plain-data state of a [`VecEnv`]: enough to continue exactly where it stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VecEnvState {
    pub rng: RngState,
    pub envs: Vec<Vec<f64>>,
    pub observations: Vec<f32>,
    pub episode_returns: Vec<f64>,
    pub episode_lengths: Vec<u64>,
}

/// N copies of one environment stepped together, observations stored contiguously
/// (`n_envs * observation_size` floats, environment-major).
///
/// When a copy's episode ends, it is reset in the same call (as Stable-Baselines3's vector
/// environments do): [`VecEnv::observations`] then holds the first observation of the new
/// episode, the last observation of the old one is kept in [`VecEnv::final_observation`],
/// and `terminated` / `truncated` stay apart so that truncated episodes can bootstrap.
///
/// ```
/// use ratchet_env::{CartPole, VecEnv};
/// let mut envs = VecEnv::new((0..4).map(|_| CartPole::default()).collect(), 0);
/// let actions = vec![1; 4];
/// for _ in 0..100 {
///     let step = envs.step(&actions);
///     for end in step.finished {
///         assert!(end.length > 0);
///     }
/// }
/// assert_eq!(envs.observations().len(), 4 * 4);
/// ```
pub struct VecEnv<E: Env> {
    envs: Vec<E>,
    rng: Rng,
    obs_size: usize,
    observations: Vec<f32>,
    final_observations: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    episode_returns: Vec<f64>,
    episode_lengths: Vec<u64>,
    finished: Vec<EpisodeEnd>,
}

/// The outcome of one [`VecEnv::step`], borrowed from the vector environment's buffers.
pub struct VecStep<'a> {
    pub rewards: &'a [f32],
    pub terminated: &'a [bool],
    pub truncated: &'a [bool],
    /// Episodes that ended on this step.
    pub finished: &'a [EpisodeEnd],
}

impl<E: Env> VecEnv<E> {
    /// Builds the vector environment and resets every copy with draws from a generator
    /// seeded by `seed`. Panics if `envs` is empty or the copies disagree on their shapes.
    pub fn new(envs: Vec<E>, seed: u64) -> Self {
        assert!(!envs.is_empty(), "VecEnv needs at least one environment");
        let obs_size = envs[0].observation_size();
        let actions = envs[0].action_count();
        assert!(
            envs.iter()
                .all(|e| e.observation_size() == obs_size && e.action_count() == actions),
            "all environments of a VecEnv must have the same shapes"
        );
        let n = envs.len();
        let mut v = Self {
            envs,
            rng: Rng::seed_from(seed),
            obs_size,
            observations: vec![0.0; n * obs_size],
            final_observations: vec![0.0; n * obs_size],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            episode_returns: vec![0.0; n],
            episode_lengths: vec![0; n],
            finished: Vec::with_capacity(n),
        };
        for (i, env) in v.envs.iter_mut().enumerate() {
            env.reset(
                &mut v.rng,
                &mut v.observations[i * obs_size..(i + 1) * obs_size],
            );
        }
        v
    }

    pub fn len(&self) -> usize {
        self.envs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    pub fn observation_size(&self) -> usize {
        self.obs_size
    }

    pub fn action_count(&self) -> usize {
        self.envs[0].action_count()
    }

    /// Current observations of all copies, `len() * observation_size()` floats.
    pub fn observations(&self) -> &[f32] {
        &self.observations
    }

    /// The last observation of the episode that copy `env` finished on the latest step
    /// (meaningful only where that step reported `terminated` or `truncated`).
    pub fn final_observation(&self, env: usize) -> &[f32] {
        &self.final_observations[env * self.obs_size..(env + 1) * self.obs_size]
    }

    pub fn envs(&self) -> &[E] {
        &self.envs
    }

    /// Steps every copy with its action (`actions.len() == len()`), resetting those whose
    /// episode ended.
    pub fn step(&mut self, actions: &[usize]) -> VecStep<'_> {
        assert_eq!(actions.len(), self.envs.len(), "one action per environment");
        self.finished.clear();
        let k = self.obs_size;
        for (i, env) in self.envs.iter_mut().enumerate() {
            let obs = &mut self.observations[i * k..(i + 1) * k];
            let step = env.step(actions[i], obs);
            self.rewards[i] = step.reward;
            self.terminated[i] = step.terminated;
            self.truncated[i] = step.truncated;
            self.episode_returns[i] += step.reward as f64;
            self.episode_lengths[i] += 1;
            if step.done() {
                self.final_observations[i * k..(i + 1) * k].copy_from_slice(obs);
                self.finished.push(EpisodeEnd {
                    env: i,
                    episode_return: self.episode_returns[i],
                    length: self.episode_lengths[i],
                    truncated: step.truncated && !step.terminated,
                });
                self.episode_returns[i] = 0.0;
                self.episode_lengths[i] = 0;
                env.reset(&mut self.rng, obs);
            }
        }
        VecStep {
            rewards: &self.rewards,
            terminated: &self.terminated,
            truncated: &self.truncated,
            finished: &self.finished,
        }
    }

    /// Captures everything needed to continue stepping exactly as this instance would.
    pub fn state(&self) -> VecEnvState {
        VecEnvState {
            rng: self.rng.state(),
            envs: self.envs.iter().map(Env::state).collect(),
            observations: self.observations.clone(),
            episode_returns: self.episode_returns.clone(),
            episode_lengths: self.episode_lengths.clone(),
        }
    }

    /// Restores a state captured by [`VecEnv::state`] from a vector environment with the
    /// same number and configuration of copies.
    pub fn restore(&mut self, state: &VecEnvState) -> Result<(), EnvError> {
        let n = self.envs.len();
        if state.envs.len() != n
            || state.observations.len() != n * self.obs_size
            || state.episode_returns.len() != n
            || state.episode_lengths.len() != n
        {
            return Err(EnvError::BadState(format!(
                "saved state is for {} environments with {} observation floats; this one has {} x {}",
                state.envs.len(),
                state.observations.len(),
                n,
                self.obs_size
            )));
        }
        for (env, s) in self.envs.iter_mut().zip(&state.envs) {
            env.restore(s)?;
        }
        self.rng = Rng::from_state(state.rng);
        self.observations.copy_from_slice(&state.observations);
        self.episode_returns.copy_from_slice(&state.episode_returns);
        self.episode_lengths.copy_from_slice(&state.episode_lengths);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Step;

    /// Counts up; terminates at 3 when action 0, truncates at 5 otherwise.
    #[derive(Default)]
    struct Counter {
        t: u32,
    }

    impl Env for Counter {
        fn observation_size(&self) -> usize {
            1
        }
        fn action_count(&self) -> usize {
            2
        }
        fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
            self.t = 0;
            obs[0] = -(rng.below(1) as f32) - 1.0; // -1 marks a fresh episode
        }
        fn step(&mut self, action: usize, obs: &mut [f32]) -> Step {
            self.t += 1;
            obs[0] = self.t as f32;
            Step {
                reward: 1.0,
                terminated: action == 0 && self.t == 3,
                truncated: self.t == 5,
            }
        }
        fn state(&self) -> Vec<f64> {
            vec![self.t as f64]
        }
        fn restore(&mut self, s: &[f64]) -> Result<(), EnvError> {
            self.t = s[0] as u32;
            Ok(())
        }
    }

    #[test]
    fn auto_reset_keeps_final_observation_and_done_kinds_apart() {
        let mut v = VecEnv::new(vec![Counter::default(), Counter::default()], 1);
        for _ in 0..2 {
            let s = v.step(&[0, 1]);
            assert!(s.finished.is_empty());
        }
        let s = v.step(&[0, 1]);
        assert_eq!(s.terminated, &[true, false]);
        assert_eq!(s.truncated, &[false, false]);
        assert_eq!(s.finished.len(), 1);
        assert_eq!(s.finished[0].env, 0);
        assert_eq!(s.finished[0].length, 3);
        assert!(!s.finished[0].truncated);
        assert_eq!(v.final_observation(0), &[3.0]);
        assert_eq!(
            v.observations(),
            &[-1.0, 3.0],
            "env 0 was reset in the same step"
        );
        v.step(&[1, 1]);
        let s = v.step(&[1, 1]);
        assert_eq!(s.truncated, &[false, true]);
        assert_eq!(s.finished[0].env, 1);
        assert!(s.finished[0].truncated);
        assert_eq!(s.finished[0].episode_return, 5.0);
        assert_eq!(v.final_observation(1), &[5.0]);
        assert_eq!(v.observations()[1], -1.0);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let mut a = VecEnv::new(vec![Counter::default(), Counter::default()], 5);
        a.step(&[1, 0]);
        let saved = a.state();
        let mut b = VecEnv::new(vec![Counter::default(), Counter::default()], 99);
        b.restore(&saved).unwrap();
        for _ in 0..7 {
            let ra: Vec<f32> = a.step(&[1, 0]).rewards.to_vec();
            let rb: Vec<f32> = b.step(&[1, 0]).rewards.to_vec();
            assert_eq!(ra, rb);
            assert_eq!(a.observations(), b.observations());
        }
        assert_eq!(a.state(), b.state());
        let mut wrong = VecEnv::new(vec![Counter::default()], 0);
        assert!(wrong.restore(&saved).is_err());
    }
}
