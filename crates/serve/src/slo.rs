//! Service-level objectives a served version must keep, and the rolling record that checks
//! them. A breach rolls the version's alias back (see [`crate::watch`]).
//!
//! An SLO file is TOML; every limit is optional:
//!
//! ```toml
//! window_seconds = 60        # the rolling window the limits are measured over
//! min_decisions = 20         # no verdict on fewer decisions than this in the window
//! max_error_rate = 0.05      # failed decisions (non-finite outputs) / decisions
//! max_p99_latency_ms = 50.0  # 99th percentile of the time one decision took
//! max_drawdown = 0.10        # paper drawdown of the version's positions, from its peak
//! ```

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Limits on a served version, read from an SLO file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    #[serde(default = "default_window")]
    pub window_seconds: f64,
    #[serde(default = "default_min_decisions")]
    pub min_decisions: usize,
    pub max_error_rate: Option<f64>,
    pub max_p99_latency_ms: Option<f64>,
    pub max_drawdown: Option<f64>,
}

fn default_window() -> f64 {
    60.0
}

fn default_min_decisions() -> usize {
    20
}

impl Slo {
    /// Reads and checks an SLO file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the SLO file {}: {e}", path.display()))?;
        let slo: Slo = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("SLO file {}: {e}", path.display()))?;
        slo.validate()
            .map_err(|e| anyhow::anyhow!("SLO file {}: {e}", path.display()))?;
        Ok(slo)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.window_seconds.is_finite() && self.window_seconds > 0.0) {
            return Err(format!(
                "window_seconds is {}; it must be a positive number of seconds",
                self.window_seconds
            ));
        }
        for (key, value, max) in [
            ("max_error_rate", self.max_error_rate, Some(1.0)),
            ("max_p99_latency_ms", self.max_p99_latency_ms, None),
            ("max_drawdown", self.max_drawdown, Some(1.0)),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v >= 0.0 && max.is_none_or(|m| v <= m))
            {
                return Err(match max {
                    Some(m) => format!("{key} is {v}; it must be between 0 and {m}"),
                    None => format!("{key} is {v}; it must be a non-negative number"),
                });
            }
        }
        if self.max_error_rate.is_none()
            && self.max_p99_latency_ms.is_none()
            && self.max_drawdown.is_none()
        {
            return Err(
                "no limit is set; give at least one of max_error_rate, max_p99_latency_ms, max_drawdown"
                    .into(),
            );
        }
        Ok(())
    }

    fn window(&self) -> Duration {
        Duration::from_secs_f64(self.window_seconds)
    }
}

/// One decision of a version.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    at: Instant,
    failed: bool,
    latency: Duration,
}

/// A version's recent decisions and paper equity, against which an [`Slo`] is checked.
#[derive(Debug, Default)]
pub struct Record {
    outcomes: VecDeque<Outcome>,
    /// Cumulative paper log return and its running peak.
    log_equity: f64,
    peak: f64,
}

impl Record {
    pub fn decision(&mut self, at: Instant, failed: bool, latency: Duration) {
        self.outcomes.push_back(Outcome {
            at,
            failed,
            latency,
        });
    }

    /// Adds one bar's paper log return of the version's positions.
    pub fn paper(&mut self, log_return: f64) {
        self.log_equity += log_return;
        self.peak = self.peak.max(self.log_equity);
    }

    /// Paper drawdown from the peak, as a fraction of equity.
    pub fn drawdown(&self) -> f64 {
        1.0 - (self.log_equity - self.peak).exp()
    }

    /// Cumulative paper log return.
    pub fn log_equity(&self) -> f64 {
        self.log_equity
    }

    /// The first limit of `slo` this record breaks at `now`, described; `None` while within
    /// them or with too few decisions in the window to tell. Forgets decisions older than the
    /// window.
    pub fn breach(&mut self, slo: &Slo, now: Instant) -> Option<String> {
        while let Some(first) = self.outcomes.front() {
            if now.saturating_duration_since(first.at) > slo.window() {
                self.outcomes.pop_front();
            } else {
                break;
            }
        }
        if let Some(max) = slo.max_drawdown
            && self.drawdown() > max
        {
            return Some(format!(
                "paper drawdown {:.2}% is above max_drawdown {:.2}%",
                self.drawdown() * 100.0,
                max * 100.0
            ));
        }
        let n = self.outcomes.len();
        if n < slo.min_decisions.max(1) {
            return None;
        }
        if let Some(max) = slo.max_error_rate {
            let failed = self.outcomes.iter().filter(|o| o.failed).count();
            let rate = failed as f64 / n as f64;
            if rate > max {
                return Some(format!(
                    "error rate {rate:.3} ({failed} of {n} decisions in {}s) is above max_error_rate {max}",
                    slo.window_seconds
                ));
            }
        }
        if let Some(max) = slo.max_p99_latency_ms {
            let mut latencies: Vec<Duration> = self.outcomes.iter().map(|o| o.latency).collect();
            latencies.sort_unstable();
            // Nearest rank: the smallest latency at or above 99% of the decisions.
            let p99 = latencies[(n * 99).div_ceil(100) - 1].as_secs_f64() * 1e3;
            if p99 > max {
                return Some(format!(
                    "p99 latency {p99:.3} ms over {n} decisions is above max_p99_latency_ms {max}"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(text: &str) -> Result<Slo, String> {
        let slo: Slo = toml::from_str(text).map_err(|e| e.to_string())?;
        slo.validate()?;
        Ok(slo)
    }

    #[test]
    fn files_are_checked() {
        let s = slo("max_error_rate = 0.1").unwrap();
        assert_eq!((s.window_seconds, s.min_decisions), (60.0, 20));
        assert!(slo("").unwrap_err().contains("no limit is set"));
        assert!(
            slo("max_error_rate = 1.5")
                .unwrap_err()
                .contains("max_error_rate is 1.5")
        );
        assert!(
            slo("window_seconds = 0\nmax_drawdown = 0.1")
                .unwrap_err()
                .contains("window_seconds is 0")
        );
        assert!(slo("max_errors = 1").unwrap_err().contains("unknown field"));
    }

    #[test]
    fn error_rate_latency_and_drawdown_breach_exactly_past_their_limits() {
        let s = Slo {
            window_seconds: 10.0,
            min_decisions: 4,
            max_error_rate: Some(0.25),
            max_p99_latency_ms: Some(5.0),
            max_drawdown: Some(0.1),
        };
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Record::default();
        for i in 0..3 {
            r.decision(t0 + ms(i), i == 0, ms(1));
        }
        assert_eq!(r.breach(&s, t0 + ms(3)), None, "too few decisions");
        r.decision(t0 + ms(3), false, ms(1));
        assert_eq!(r.breach(&s, t0 + ms(4)), None, "1 of 4 is the limit itself");
        r.decision(t0 + ms(4), true, ms(1));
        assert_eq!(
            r.breach(&s, t0 + ms(5)).unwrap(),
            "error rate 0.400 (2 of 5 decisions in 10s) is above max_error_rate 0.25"
        );
        // Eleven seconds on, the window is empty again.
        assert_eq!(r.breach(&s, t0 + ms(11_000)), None);
        assert_eq!(r.outcomes.len(), 0);
        for i in 0..4 {
            r.decision(t0 + ms(11_000 + i), false, ms(if i == 3 { 6 } else { 1 }));
        }
        assert_eq!(
            r.breach(&s, t0 + ms(11_004)).unwrap(),
            "p99 latency 6.000 ms over 4 decisions is above max_p99_latency_ms 5"
        );
        let mut r = Record::default();
        r.paper(0.2);
        r.paper((0.9f64).ln());
        assert!((r.drawdown() - 0.1).abs() < 1e-12);
        r.paper(-0.01);
        assert!(
            r.breach(&s, t0)
                .unwrap()
                .starts_with("paper drawdown 10.90%")
        );
    }
}
