//! Statistics of finished training episodes, as Stable-Baselines3 reports them.

use std::collections::VecDeque;

use ratchet_env::EpisodeEnd;
use serde::{Deserialize, Serialize};

/// How many recent episodes the means cover (SB3's `stats_window_size`).
pub const WINDOW: usize = 100;

/// The count of finished episodes and the returns and lengths of the latest [`WINDOW`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStats {
    pub episodes: u64,
    /// `(return, length)` of the most recent episodes, oldest first.
    pub recent: VecDeque<(f64, u64)>,
}

impl EpisodeStats {
    pub fn record(&mut self, end: &EpisodeEnd) {
        self.episodes += 1;
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((end.episode_return, end.length));
    }

    /// Mean return of the recent episodes (`rollout/ep_return_mean`); `None` before the first.
    pub fn mean_return(&self) -> Option<f64> {
        (!self.recent.is_empty())
            .then(|| self.recent.iter().map(|e| e.0).sum::<f64>() / self.recent.len() as f64)
    }

    /// Mean length of the recent episodes (`rollout/ep_len_mean`).
    pub fn mean_length(&self) -> Option<f64> {
        (!self.recent.is_empty())
            .then(|| self.recent.iter().map(|e| e.1 as f64).sum::<f64>() / self.recent.len() as f64)
    }

    /// Appends `rollout/ep_return_mean` and `rollout/ep_len_mean` when there is an episode.
    pub fn log_into(&self, metrics: &mut Vec<(&'static str, f64)>) {
        if let (Some(r), Some(l)) = (self.mean_return(), self.mean_length()) {
            metrics.push(("rollout/ep_return_mean", r));
            metrics.push(("rollout/ep_len_mean", l));
        }
    }
}
