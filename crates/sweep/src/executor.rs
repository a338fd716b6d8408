//! Running a plan's trials: which to run, how many at once, retries, and the progress view.
//! Where a trial runs is a [`Launcher`]'s business: a local process ([`crate::local`]) or a
//! Ray job ([`crate::ray`]). Each trial is an ordinary `ratchet train` run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::error::SweepError;
use crate::plan::{Plan, Trial};
use crate::spec::Goal;
use crate::store::{RunState, SweepRecord, SweepStore, trial_tags};

/// One attempt at a trial, as a launcher starts it.
pub struct Attempt<'a> {
    pub trial: &'a Trial,
    /// 1 for the first attempt.
    pub number: u32,
    /// `ratchet` arguments: `--tracking-uri URI train …`, with `{config}` standing for the
    /// trial's config file, which the launcher writes where its process can read it.
    pub args: Vec<String>,
}

/// The placeholder in [`Attempt::args`] for the path of the trial's config file.
pub const CONFIG_PLACEHOLDER: &str = "{config}";

/// Where trials run.
pub trait Launcher {
    type Job;
    /// How often [`Launcher::poll`] is worth calling.
    const POLL_INTERVAL: Duration;
    /// Starts an attempt; an error is a failed attempt (retried like any other).
    fn start(&mut self, attempt: &Attempt) -> Result<Self::Job, SweepError>;
    /// `None` while the job runs; then what `ratchet train --json` printed, or why it failed.
    fn poll(&mut self, job: &mut Self::Job) -> Option<Result<TrainOutput, String>>;
    /// Asks the job to stop (Ctrl-C); it still has to be polled until it ends.
    fn stop(&mut self, job: &mut Self::Job);
}

/// What the sweep reads of `ratchet train --json`'s output.
#[derive(Clone, Debug, Deserialize)]
pub struct TrainOutput {
    pub run_id: String,
    /// Training time as `ratchet train` measured it (from the first step to registration).
    pub wall_time_s: f64,
}

impl TrainOutput {
    /// The JSON object `ratchet train --json` prints last (pretty-printed: from a line `{`
    /// to the end), in whatever else a log holds.
    pub fn parse(log: &str) -> Result<Self, String> {
        let start = log
            .rfind("\n{\n")
            .map(|i| i + 1)
            .or_else(|| log.starts_with("{\n").then_some(0))
            .ok_or_else(|| "the trial printed no JSON result".to_string())?;
        serde_json::from_str(log.get(start..).unwrap_or(log).trim_end())
            .map_err(|e| format!("the trial's JSON result does not parse: {e}"))
    }
}

/// How to run the sweep.
#[derive(Clone, Debug)]
pub struct Options {
    /// Trials running at once.
    pub workers: usize,
    /// Further attempts after a trial fails.
    pub retries: u32,
    /// Continue interrupted trials from their last checkpoint (`ratchet train --resume`)
    /// instead of starting them over.
    pub resume: bool,
}

/// How one trial went in this invocation.
#[derive(Clone, Debug, Serialize)]
pub struct TrialOutcome {
    pub trial_id: String,
    pub run_id: String,
    pub attempts: u32,
    /// From start to the end of its process (or job), as the sweep saw it.
    pub elapsed_s: f64,
    /// Training time as `ratchet train` reported it; `elapsed_s - train_s` is the overhead.
    pub train_s: f64,
}

/// What an invocation did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Trials finished by earlier invocations, not run again.
    pub skipped: usize,
    pub finished: Vec<TrialOutcome>,
    /// Trial id and the error of its last attempt.
    pub failed: Vec<(String, String)>,
    /// Trials not run because of Ctrl-C.
    pub interrupted: usize,
    pub wall_time_s: f64,
}

struct Running<J> {
    trial: usize,
    attempt: u32,
    job: J,
    started: Instant,
}

/// Runs the plan's unfinished trials through `launcher`, `options.workers` at a time,
/// retrying failures, until all are done or `interrupted` is set (then the running jobs
/// are stopped and waited for). One failing trial never stops the others.
pub fn run<L: Launcher>(
    launcher: &mut L,
    plan: &Plan,
    store: &SweepStore,
    sweep: &SweepRecord,
    options: &Options,
    interrupted: &AtomicBool,
) -> Result<Summary, SweepError> {
    let began = Instant::now();
    let mut scheduler = Scheduler::new(plan, store, sweep, options)?;
    let mut running: Vec<Running<L::Job>> = Vec::new();
    let driven = drive(launcher, interrupted, &mut scheduler, &mut running);
    if driven.is_err() {
        // No trial outlives the sweep: stop the ones still running and wait for them.
        for r in &mut running {
            launcher.stop(&mut r.job);
        }
        while !running.is_empty() {
            std::thread::sleep(L::POLL_INTERVAL);
            running.retain_mut(|r| launcher.poll(&mut r.job).is_none());
        }
    }
    driven?;
    scheduler.progress.done();
    scheduler.summary.wall_time_s = began.elapsed().as_secs_f64();
    Ok(scheduler.summary)
}

/// Starts and polls trials until none is left to run; an error (the store failing) returns
/// at once, with the trials still running left in `running`.
fn drive<L: Launcher>(
    launcher: &mut L,
    interrupted: &AtomicBool,
    scheduler: &mut Scheduler,
    running: &mut Vec<Running<L::Job>>,
) -> Result<(), SweepError> {
    let (plan, store, sweep, options) = (
        scheduler.plan,
        scheduler.store,
        scheduler.sweep,
        scheduler.options,
    );
    let mut stopping = false;
    loop {
        if interrupted.load(Ordering::SeqCst) && !stopping {
            stopping = true;
            scheduler.summary.interrupted = scheduler.queue.len();
            scheduler.queue.clear();
            for r in running.iter_mut() {
                launcher.stop(&mut r.job);
            }
            scheduler
                .progress
                .note("interrupted: stopping the running trials");
        }
        while running.len() < options.workers.max(1) {
            let Some((i, attempt)) = scheduler.queue.pop_front() else {
                break;
            };
            let trial = &plan.trials[i];
            let args = scheduler.train_args(trial, attempt);
            match launcher.start(&Attempt {
                trial,
                number: attempt,
                args,
            }) {
                Ok(job) => {
                    scheduler.progress.started(trial);
                    running.push(Running {
                        trial: i,
                        attempt,
                        job,
                        started: Instant::now(),
                    });
                }
                Err(e) => scheduler.failed(i, attempt, &e.to_string())?,
            }
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(L::POLL_INTERVAL);
        let mut k = 0;
        while k < running.len() {
            let Some(result) = launcher.poll(&mut running[k].job) else {
                k += 1;
                continue;
            };
            let done = running.swap_remove(k);
            scheduler.progress.ended();
            match result {
                Ok(output) => scheduler.finished(&done, output)?,
                Err(_) if stopping => {
                    scheduler.summary.interrupted += 1;
                    store.close_abandoned_runs(sweep, &plan.trials[done.trial].id)?;
                }
                Err(e) => scheduler.failed(done.trial, done.attempt, &e)?,
            }
        }
    }
    Ok(())
}

/// The bookkeeping of one invocation: what is left to run, what happened, the view.
struct Scheduler<'a> {
    plan: &'a Plan,
    store: &'a SweepStore,
    sweep: &'a SweepRecord,
    options: &'a Options,
    tracking_uri: String,
    /// Trial id → its newest unfinished run, which `--resume` continues.
    unfinished: BTreeMap<String, String>,
    /// Trial index and attempt number.
    queue: VecDeque<(usize, u32)>,
    summary: Summary,
    progress: Progress,
}

impl<'a> Scheduler<'a> {
    /// Queues every trial without a finished run in the store.
    fn new(
        plan: &'a Plan,
        store: &'a SweepStore,
        sweep: &'a SweepRecord,
        options: &'a Options,
    ) -> Result<Self, SweepError> {
        let mut existing = store.trial_runs(sweep)?;
        existing.sort_by_key(|r| r.start_time);
        let finished: BTreeSet<&str> = existing
            .iter()
            .filter(|r| r.state == RunState::Finished)
            .map(|r| r.trial_id.as_str())
            .collect();
        let unfinished = existing
            .iter()
            .filter(|r| r.state != RunState::Finished)
            .map(|r| (r.trial_id.clone(), r.run_id.clone()))
            .collect();
        let mut summary = Summary::default();
        let mut queue = VecDeque::new();
        for (i, trial) in plan.trials.iter().enumerate() {
            if finished.contains(trial.id.as_str()) {
                summary.skipped += 1;
            } else {
                queue.push_back((i, 1));
            }
        }
        let mut progress = Progress::new(
            plan.trials.len(),
            summary.skipped,
            &plan.file.metric,
            plan.file.goal,
        );
        for r in existing.iter().filter(|r| r.state == RunState::Finished) {
            if let Some(v) = r.metrics.get(&plan.file.metric) {
                progress.offer_best(*v, &r.overrides, r.seed);
            }
        }
        Ok(Self {
            plan,
            store,
            sweep,
            options,
            tracking_uri: store.tracking_uri(),
            unfinished,
            queue,
            summary,
            progress,
        })
    }

    /// `ratchet` arguments for an attempt: a new tagged run from the trial's config, or with
    /// `--resume`, the first attempt continues the trial's newest unfinished run.
    fn train_args(&self, trial: &Trial, attempt: u32) -> Vec<String> {
        let mut args = vec![
            "--tracking-uri".to_string(),
            self.tracking_uri.clone(),
            "train".into(),
        ];
        match self.unfinished.get(&trial.id) {
            Some(run_id) if self.options.resume && attempt == 1 => {
                args.extend(["--resume".to_string(), run_id.clone()]);
            }
            _ => {
                args.extend(["--config".to_string(), CONFIG_PLACEHOLDER.to_string()]);
                for (key, value) in trial_tags(self.sweep, trial) {
                    args.extend(["--tag".to_string(), format!("{key}={value}")]);
                }
            }
        }
        args.push("--json".into());
        args
    }

    fn finished<J>(&mut self, done: &Running<J>, output: TrainOutput) -> Result<(), SweepError> {
        let trial = &self.plan.trials[done.trial];
        let value = self.store.metric(&output.run_id, &self.plan.file.metric)?;
        self.progress.finished(trial, value);
        self.summary.finished.push(TrialOutcome {
            trial_id: trial.id.clone(),
            run_id: output.run_id,
            attempts: done.attempt,
            elapsed_s: done.started.elapsed().as_secs_f64(),
            train_s: output.wall_time_s,
        });
        Ok(())
    }

    /// A failed attempt: retried while attempts are left, else recorded on the parent run.
    fn failed(&mut self, index: usize, attempt: u32, error: &str) -> Result<(), SweepError> {
        let trial = &self.plan.trials[index];
        self.store.close_abandoned_runs(self.sweep, &trial.id)?;
        if attempt <= self.options.retries {
            self.progress.note(&format!(
                "trial {} failed (attempt {attempt}), retrying: {error}",
                trial.id
            ));
            self.queue.push_back((index, attempt + 1));
        } else {
            self.progress.failed(trial, error);
            self.store.record_failure(self.sweep, &trial.id, error)?;
            self.summary
                .failed
                .push((trial.id.clone(), error.to_string()));
        }
        Ok(())
    }
}

/// One progress view for the whole sweep: trials done / running / failed and the best so
/// far, as a bar on a terminal or as lines on stderr otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    running: usize,
    failed: usize,
    metric: String,
    goal: Goal,
    best: Option<(f64, String)>,
}

impl Progress {
    fn new(total: usize, done: usize, metric: &str, goal: Goal) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} trials  {msg}",
                )
                .expect("valid progress template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let progress = Self {
            bar,
            total,
            done,
            running: 0,
            failed: 0,
            metric: metric.into(),
            goal,
            best: None,
        };
        if done > 0 {
            progress.note(&format!(
                "{done} of {total} trials already finished in the store; not running them again"
            ));
        }
        progress
    }

    fn offer_best(&mut self, value: f64, overrides: &str, seed: u64) {
        if self
            .best
            .as_ref()
            .is_none_or(|(b, _)| self.goal.better(value, *b))
        {
            self.best = Some((value, format!("{overrides} seed {seed}")));
        }
    }

    fn started(&mut self, trial: &Trial) {
        self.running += 1;
        if self.bar.is_none() {
            eprintln!(
                "started  trial {} ({} seed {})",
                trial.id,
                trial.describe(),
                trial.seed
            );
        }
        self.refresh();
    }

    fn ended(&mut self) {
        self.running -= 1;
    }

    fn finished(&mut self, trial: &Trial, value: Option<f64>) {
        self.done += 1;
        if let Some(v) = value {
            self.offer_best(v, &trial.describe(), trial.seed);
        }
        let shown = value.map_or_else(|| "not logged".to_string(), |v| format!("{v:.4}"));
        self.note(&format!(
            "finished trial {} ({} seed {}): {} {shown}",
            trial.id,
            trial.describe(),
            trial.seed,
            self.metric
        ));
    }

    fn failed(&mut self, trial: &Trial, error: &str) {
        self.done += 1;
        self.failed += 1;
        self.note(&format!(
            "FAILED   trial {} ({} seed {}): {error}",
            trial.id,
            trial.describe(),
            trial.seed
        ));
    }

    fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                self.refresh();
            }
            None => eprintln!("{line}"),
        }
    }

    fn refresh(&self) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(self.done as u64);
        let best = match &self.best {
            Some((v, what)) => format!("best {} {v:.4} ({what})", self.metric),
            None => "best: none yet".into(),
        };
        bar.set_message(format!(
            "{} running, {} failed, {best}",
            self.running, self.failed
        ));
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!(
            "{} of {} trials done, {} failed",
            self.done, self.total, self.failed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_output_is_the_last_json_object_of_a_log() {
        let log = "warning: x\n{\n  \"run_id\": \"old\",\n  \"wall_time_s\": 1.0\n}\nmore\n{\n  \"run_id\": \"abc\",\n  \"wall_time_s\": 2.5,\n  \"evaluation\": {\"metrics\": {}}\n}\n";
        let out = TrainOutput::parse(log).unwrap();
        assert_eq!((out.run_id.as_str(), out.wall_time_s), ("abc", 2.5));
        let alone =
            TrainOutput::parse("{\n  \"run_id\": \"r\",\n  \"wall_time_s\": 0.5\n}").unwrap();
        assert_eq!(alone.run_id, "r");
        assert_eq!(
            TrainOutput::parse("error: boom\n").unwrap_err(),
            "the trial printed no JSON result"
        );
    }
}
