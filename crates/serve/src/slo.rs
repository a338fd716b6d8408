//! Service-level objectives a served version must keep, and the rolling record that checks
//! them. A breach rolls the version's alias back (see [`crate::watch`]). Decisions are
//! recorded in a [`Recorder`] per version and role (latency histograms, no samples kept), which
//! the SLO watch empties into its [`Window`] at every check.
//!
//! An SLO file is TOML; every limit is optional:
//!
//! ```toml
//! window_seconds = 60        # the rolling window the limits are measured over
//! min_decisions = 20         # no verdict on fewer decisions than this in the window
//! max_error_rate = 0.05      # failed decisions (non-finite outputs) / decisions
//! max_p99_latency_ms = 5.0   # 99th percentile of the time one decision took
//! max_drawdown = 0.10        # paper drawdown of the version's positions, from its peak
//! ```

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::ServeError;

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
    pub fn from_file(path: &Path) -> Result<Self, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|error| ServeError::SloUnreadable {
            path: path.to_path_buf(),
            error,
        })?;
        let invalid = |problem: String| ServeError::SloInvalid {
            path: path.to_path_buf(),
            problem,
        };
        let slo: Slo = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        slo.validate().map_err(invalid)?;
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

/// Decision latencies are recorded in nanoseconds up to a minute (longer ones count as a
/// minute), to two significant digits: a percentile is within 1% of the exact one.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 2;
/// The window is kept in this many slots: a decision leaves it between `window_seconds` and
/// `window_seconds * (1 + 1/SLOTS)` after it was made.
const SLOTS: u32 = 12;

fn latency_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, SIGNIFICANT_DIGITS).expect("the bounds are valid")
}

/// What one version's decisions in one role added up to over some time.
#[derive(Clone)]
struct Tally {
    latencies: Histogram<u32>,
    failed: u64,
    /// Sum of the paper log returns of its positions.
    log_return: f64,
}

impl Tally {
    fn new() -> Self {
        Self {
            latencies: latency_histogram(),
            failed: 0,
            log_return: 0.0,
        }
    }

    /// Adds `other` to this tally and empties it.
    fn take_from(&mut self, other: &mut Tally) {
        self.latencies
            .add(&other.latencies)
            .expect("tallies share their bounds");
        other.latencies.reset();
        self.failed += std::mem::take(&mut other.failed);
        self.log_return += std::mem::take(&mut other.log_return);
    }
}

/// Where the decisions of one version in one role are recorded as they are made: one tally
/// per shard, a thread writing to its own, so decisions on different threads never wait for
/// each other, and the SLO watch takes a shard's lock only to empty it into its [`Window`].
pub struct Recorder {
    shards: Box<[Mutex<Tally>]>,
}

impl Recorder {
    pub fn new() -> Self {
        let shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            shards: (0..shards).map(|_| Mutex::new(Tally::new())).collect(),
        }
    }

    fn shard(&self) -> MutexGuard<'_, Tally> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let i = SHARD.with(|s| *s) % self.shards.len();
        self.shards[i].lock().expect("no panics hold the lock")
    }

    /// Records one decision: how long it took and whether its outputs were not finite.
    pub fn decision(&self, failed: bool, latency: Duration) {
        let mut tally = self.shard();
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        tally.latencies.saturating_record(nanos);
        tally.failed += u64::from(failed);
    }

    /// Adds one bar's paper log return of the version's positions.
    pub fn paper(&self, log_return: f64) {
        self.shard().log_return += log_return;
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// When a canary that keeps the SLO becomes production (`--auto-promote`): once it has served
/// `after` and answered `decisions`, with its window holding enough decisions for a verdict
/// and breaking no limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoPromote {
    pub after: Duration,
    pub decisions: u64,
}

/// The SLO watch's view of one version in one role: the decisions of the last window, in
/// slots, and the paper equity since it started serving. Memory is fixed: `SLOTS + 2`
/// histograms, whatever the rate of decisions.
pub struct Window {
    /// When the watch first saw the version serve in this role.
    since: Instant,
    /// Decisions answered since then.
    decisions: u64,
    /// Tallies by the time their slot started, oldest first.
    slots: VecDeque<(Instant, Tally)>,
    /// Every slot added up, rebuilt at each check.
    merged: Histogram<u32>,
    /// Cumulative paper log return and its peak, as of each collection.
    log_equity: f64,
    peak: f64,
}

impl Window {
    /// The window of a version first seen serving at `since`.
    pub fn new(since: Instant) -> Self {
        Self {
            since,
            decisions: 0,
            slots: VecDeque::new(),
            merged: latency_histogram(),
            log_equity: 0.0,
            peak: 0.0,
        }
    }

    /// Moves what `recorder` holds into the window at `now`, and forgets the slots that
    /// started more than a window before `now`.
    pub fn collect(&mut self, recorder: &Recorder, slo: &Slo, now: Instant) {
        let window = slo.window();
        if self
            .slots
            .back()
            .is_none_or(|(start, _)| now.saturating_duration_since(*start) >= window / SLOTS)
        {
            self.slots.push_back((now, Tally::new()));
        }
        let (_, current) = self.slots.back_mut().expect("a slot was just ensured");
        let log_return_before = current.log_return;
        for shard in &recorder.shards {
            let mut shard = shard.lock().expect("no panics hold the lock");
            self.decisions += shard.latencies.len();
            current.take_from(&mut shard);
        }
        self.log_equity += current.log_return - log_return_before;
        self.peak = self.peak.max(self.log_equity);
        while self
            .slots
            .front()
            .is_some_and(|(start, _)| now.saturating_duration_since(*start) > window)
        {
            self.slots.pop_front();
        }
    }

    /// Paper drawdown from the peak, as a fraction of equity.
    pub fn drawdown(&self) -> f64 {
        1.0 - (self.log_equity - self.peak).exp()
    }

    /// The first limit of `slo` the window breaks, described; `None` while within them or
    /// with too few decisions in the window to tell.
    pub fn breach(&mut self, slo: &Slo) -> Option<String> {
        if let Some(max) = slo.max_drawdown
            && self.drawdown() > max
        {
            return Some(format!(
                "paper drawdown {:.2}% is above max_drawdown {:.2}%",
                self.drawdown() * 100.0,
                max * 100.0
            ));
        }
        self.merged.reset();
        let mut failed = 0;
        for (_, tally) in &self.slots {
            self.merged
                .add(&tally.latencies)
                .expect("tallies share their bounds");
            failed += tally.failed;
        }
        let n = self.merged.len();
        if n < slo.min_decisions.max(1) as u64 {
            return None;
        }
        if let Some(max) = slo.max_error_rate {
            let rate = failed as f64 / n as f64;
            if rate > max {
                return Some(format!(
                    "error rate {rate:.3} ({failed} of {n} decisions in {}s) is above max_error_rate {max}",
                    slo.window_seconds
                ));
            }
        }
        if let Some(max) = slo.max_p99_latency_ms {
            let p99 = self.merged.value_at_quantile(0.99) as f64 / 1e6;
            if p99 > max {
                return Some(format!(
                    "p99 latency {p99:.2} ms over {n} decisions is above max_p99_latency_ms {max}"
                ));
            }
        }
        None
    }
}

impl Window {
    /// Why the version may be promoted at `now` under `rule`, or `None` while it may not: it
    /// has served long enough, answered enough decisions, and its window holds enough of
    /// them for a verdict without breaking a limit. Call after [`breach`](Self::breach) found
    /// nothing.
    pub fn promotable(&self, slo: &Slo, rule: &AutoPromote, now: Instant) -> Option<String> {
        let served = now.saturating_duration_since(self.since);
        let in_window = self.merged.len();
        (served >= rule.after
            && self.decisions >= rule.decisions
            && in_window >= slo.min_decisions.max(1) as u64)
            .then(|| {
                format!(
                    "{} decisions over {:.0}s within the SLO ({in_window} in the last {}s)",
                    self.decisions,
                    served.as_secs_f64(),
                    slo.window_seconds
                )
            })
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
    fn the_example_slo_file_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/slo.toml");
        let slo = Slo::from_file(&path).unwrap();
        assert_eq!(slo.max_error_rate, Some(0.05));
    }

    /// The messages `ratchet serve --slo` prints: the file, then why.
    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let e = Slo::from_file(&missing).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "cannot read the SLO file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "max_error_rate = 1.5\n").unwrap();
        let e = Slo::from_file(&bad).unwrap_err().to_string();
        let prefix = format!("SLO file {}: max_error_rate is 1.5", bad.display());
        assert!(e.starts_with(&prefix), "{e}");
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
            window_seconds: 12.0,
            min_decisions: 4,
            max_error_rate: Some(0.25),
            max_p99_latency_ms: Some(5.0),
            max_drawdown: Some(0.1),
        };
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let (recorder, mut w) = (Recorder::new(), Window::new(t0));
        for i in 0..3 {
            recorder.decision(i == 0, ms(1));
        }
        w.collect(&recorder, &s, t0);
        assert_eq!(w.breach(&s), None, "too few decisions");
        recorder.decision(false, ms(1));
        w.collect(&recorder, &s, t0 + ms(500));
        assert_eq!(w.breach(&s), None, "1 of 4 is the limit itself");
        recorder.decision(true, ms(1));
        w.collect(&recorder, &s, t0 + ms(1500));
        assert_eq!(
            w.breach(&s).unwrap(),
            "error rate 0.400 (2 of 5 decisions in 12s) is above max_error_rate 0.25"
        );
        assert_eq!(w.slots.len(), 2, "1 s slots: 0 and 0.5 s share the first");
        // The first slot (4 decisions, 1 failed) leaves the window after 12 s; the second
        // (1 failed) stays until 13.5 s.
        w.collect(&recorder, &s, t0 + ms(12_001));
        assert_eq!(w.slots.len(), 2, "the second slot and a new, empty one");
        w.collect(&recorder, &s, t0 + ms(13_501));
        assert_eq!(w.breach(&s), None);
        assert_eq!(w.merged.len(), 0);
        for i in 0..4 {
            recorder.decision(false, ms(if i == 3 { 6 } else { 1 }));
        }
        w.collect(&recorder, &s, t0 + ms(14_000));
        assert_eq!(
            w.breach(&s).unwrap(),
            "p99 latency 6.03 ms over 4 decisions is above max_p99_latency_ms 5"
        );
        // Within the limit at two significant digits: 4.95 ms reads back as 4.98.
        let (recorder, mut w) = (Recorder::new(), Window::new(t0));
        for _ in 0..100 {
            recorder.decision(false, Duration::from_micros(4_950));
        }
        w.collect(&recorder, &s, t0);
        assert_eq!(w.breach(&s), None);

        let (recorder, mut w) = (Recorder::new(), Window::new(t0));
        recorder.paper(0.2);
        recorder.paper((0.9f64).ln());
        w.collect(&recorder, &s, t0);
        // Collected together: the peak is the equity as of a collection.
        assert!((w.drawdown() - 0.0).abs() < 1e-12);
        let (recorder, mut w) = (Recorder::new(), Window::new(t0));
        recorder.paper(0.2);
        w.collect(&recorder, &s, t0);
        recorder.paper((0.9f64).ln());
        w.collect(&recorder, &s, t0 + ms(1));
        assert!((w.drawdown() - 0.1).abs() < 1e-12);
        recorder.paper(-0.01);
        w.collect(&recorder, &s, t0 + ms(2));
        assert!(w.breach(&s).unwrap().starts_with("paper drawdown 10.90%"));
    }

    #[test]
    fn a_canary_is_promotable_after_its_time_and_decisions_within_the_slo() {
        let s = slo("window_seconds = 10\nmin_decisions = 3\nmax_error_rate = 0.5").unwrap();
        let rule = AutoPromote {
            after: Duration::from_secs(5),
            decisions: 4,
        };
        let t0 = Instant::now();
        let at = |seconds| t0 + Duration::from_secs(seconds);
        let (recorder, mut w) = (Recorder::new(), Window::new(t0));
        for _ in 0..3 {
            recorder.decision(false, Duration::from_millis(1));
        }
        w.collect(&recorder, &s, at(1));
        assert_eq!(w.breach(&s), None);
        assert_eq!(w.promotable(&s, &rule, at(6)), None, "3 of 4 decisions");
        recorder.decision(false, Duration::from_millis(1));
        w.collect(&recorder, &s, at(4));
        assert_eq!(w.breach(&s), None);
        assert_eq!(w.promotable(&s, &rule, at(4)), None, "4 s of 5");
        w.collect(&recorder, &s, at(5));
        assert_eq!(w.breach(&s), None);
        assert_eq!(
            w.promotable(&s, &rule, at(5)).unwrap(),
            "4 decisions over 5s within the SLO (4 in the last 10s)"
        );
        // Once the decisions left the window there is no verdict, so no promotion.
        w.collect(&recorder, &s, at(16));
        assert_eq!(w.breach(&s), None);
        assert_eq!(w.promotable(&s, &rule, at(16)), None);
    }

    #[test]
    fn memory_does_not_grow_with_decisions() {
        let s = slo("window_seconds = 1\nmax_error_rate = 0.5").unwrap();
        let t0 = Instant::now();
        let (recorder, mut w) = (Recorder::new(), Window::new(t0));
        for tick in 0..100u32 {
            for i in 0..1000u64 {
                recorder.decision(false, Duration::from_nanos(1 + i * 7919));
            }
            w.collect(&recorder, &s, t0 + Duration::from_millis(250) * tick);
        }
        // A 1 s window in 83 ms slots, collected every 250 ms: at most 5 slots (4 within the
        // window and the one just started), whatever was recorded.
        assert!(w.slots.len() <= 5, "{}", w.slots.len());
        assert_eq!(w.breach(&s), None);
        assert_eq!(w.merged.len(), 5000);
    }
}
