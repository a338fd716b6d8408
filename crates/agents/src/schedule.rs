//! Linear schedules for learning rates and exploration rates.
//!
//! A schedule is a pure function of training progress, so resuming needs only the step counter.
//!
//! ```
//! use ratchet_agents::LinearSchedule;
//! // SB3 DQN's exploration: 1.0 -> 0.05 over the first 10% of training, then flat.
//! let eps = LinearSchedule { start: 1.0, end: 0.05, fraction: 0.1 };
//! assert_eq!(eps.value(0.0), 1.0);
//! assert!((eps.value(0.05) - 0.525).abs() < 1e-12);
//! assert_eq!(eps.value(0.5), 0.05);
//! assert_eq!(eps.at_step(5_000, 100_000), eps.value(0.05));
//! ```

use serde::{Deserialize, Serialize};

/// Goes linearly from `start` to `end` over the first `fraction` of training and stays at `end`
/// afterwards (Stable-Baselines3's `get_linear_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSchedule {
    pub start: f64,
    pub end: f64,
    /// Share of training (0, 1] over which the value moves; 1 = the whole run.
    pub fraction: f64,
}

impl LinearSchedule {
    /// A value that never changes.
    pub fn constant(value: f64) -> Self {
        Self {
            start: value,
            end: value,
            fraction: 1.0,
        }
    }

    /// The value once `progress` (elapsed share of training, 0 at the start, 1 at the end) has
    /// been reached. SB3 passes `progress_remaining = 1 - progress` instead.
    pub fn value(&self, progress: f64) -> f64 {
        if self.fraction <= 0.0 || progress >= self.fraction {
            self.end
        } else {
            self.start + progress.max(0.0) * (self.end - self.start) / self.fraction
        }
    }

    /// The value after `step` of `total` steps.
    pub fn at_step(&self, step: u64, total: u64) -> f64 {
        self.value(step as f64 / total.max(1) as f64)
    }
}
