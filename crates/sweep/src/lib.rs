//! Hyperparameter sweeps for Ratchet: many `ratchet train` runs from one sweep file, run on
//! a local pool of processes or on a Ray cluster, recorded as child runs of one MLflow
//! parent run, and ranked on a leaderboard that accounts for how many were tried.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use ratchet_sweep::{Leaderboard, LocalLauncher, Options, Plan, SweepFile, SweepStore, run};
//!
//! let plan = Plan::new(SweepFile::read("configs/sweep-cartpole.toml".as_ref())?)?;
//! let store = SweepStore::open("./mlruns")?;
//! let sweep = store.parent_run(&plan)?;
//! let mut launcher = LocalLauncher::new(std::env::current_exe()?)?;
//! let options = Options { workers: 2, retries: 1, resume: false };
//! let summary = run(&mut launcher, &plan, &store, &sweep, &options, &AtomicBool::new(false))?;
//! let board = Leaderboard::build(&sweep, &store.trial_runs(&sweep)?, &|id| store.validation_returns(id))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every trial's configuration is checked with the run configuration's own rules
//! (`ratchet-config`) before anything starts. Every function fails with one [`SweepError`].

pub mod error;
pub mod executor;
pub mod html;
pub mod leaderboard;
pub mod local;
pub mod plan;
pub mod ray;
pub mod spec;
pub mod store;

pub use error::SweepError;
pub use executor::{Launcher, Options, Summary, TrialOutcome, run};
pub use leaderboard::Leaderboard;
pub use local::LocalLauncher;
pub use plan::{Plan, Trial};
pub use ray::RayLauncher;
pub use spec::{Goal, SweepFile};
pub use store::{RunState, SweepRecord, SweepStore};
