//! Training progress on stderr.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use crate::output::whole;

/// Seconds between progress lines when stderr is not a terminal (`RATCHET_PROGRESS_SECONDS`
/// overrides: a CI log gets a line this often, a test one per update with 0).
const PLAIN_PROGRESS_SECONDS: f64 = 5.0;

/// Training progress on stderr: indicatif's bar on a terminal; elsewhere (a CI log, a file),
/// where the bar draws nothing, a plain line every few seconds.
pub struct Progress {
    bar: ProgressBar,
    plain: Option<PlainProgress>,
}

struct PlainProgress {
    every: Duration,
    started: Instant,
    /// When the last line was printed, and the step it showed.
    last: (Instant, u64),
    total: u64,
    message: String,
}

impl Progress {
    pub fn new(position: u64, total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {rate}  ETA {eta}  {msg}",
            )
            .expect("valid progress template")
            .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", whole(state.per_sec()));
            })
            .progress_chars("=> "),
        );
        bar.set_position(position);
        let plain = (!std::io::stderr().is_terminal()).then(|| {
            let seconds = std::env::var("RATCHET_PROGRESS_SECONDS")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(PLAIN_PROGRESS_SECONDS);
            PlainProgress {
                every: Duration::from_secs_f64(seconds),
                started: Instant::now(),
                last: (Instant::now(), position),
                total,
                message: String::new(),
            }
        });
        Self { bar, plain }
    }

    pub fn set_position(&mut self, step: u64) {
        self.bar.set_position(step);
        let Some(p) = &mut self.plain else { return };
        let now = Instant::now();
        if now.duration_since(p.last.0) < p.every || step == p.last.1 {
            return;
        }
        let rate = (step - p.last.1) as f64 / now.duration_since(p.last.0).as_secs_f64();
        eprintln!(
            "step {}/{} ({:.0}%), {} steps/s, {:.0} s{}",
            whole(step as f64),
            whole(p.total as f64),
            100.0 * step as f64 / p.total.max(1) as f64,
            whole(rate),
            now.duration_since(p.started).as_secs_f64(),
            if p.message.is_empty() {
                String::new()
            } else {
                format!(", {}", p.message)
            }
        );
        p.last = (now, step);
    }

    /// Training finished: the bar goes.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Training failed: the bar stays where it stopped.
    pub fn abandon(&self) {
        self.bar.abandon();
    }

    pub fn set_message(&mut self, message: String) {
        if let Some(p) = &mut self.plain {
            p.message.clone_from(&message);
        }
        self.bar.set_message(message);
    }
}
