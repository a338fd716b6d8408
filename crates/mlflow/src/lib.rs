//! A client for MLflow's tracking store: experiments, runs (params, metrics, tags),
//! artifacts, and the model registry's registered models, versions, tags and aliases.
//!
//! One trait, [`TrackingStore`], with two backends: [`FileStore`] writes the local
//! `mlruns/` tree exactly as MLflow's own file store does (MLflow 2.22 and 3.17 read it),
//! and [`RestStore`] talks to an MLflow tracking server over its REST API and artifact
//! proxy. [`open_store`] picks the backend from a tracking URI, as MLflow's clients do.
//! Nothing here knows about models, checkpoints or any ML framework.
//!
//! Logging a run:
//!
//! ```no_run
//! use ratchet_mlflow::{Metric, RunStatus, now_ms, open_store, resolve_tracking_uri};
//!
//! // --tracking-uri flag > MLFLOW_TRACKING_URI > ./mlruns
//! let store = open_store(&resolve_tracking_uri(None))?;
//! let experiment = store.get_or_create_experiment("trading")?;
//! let run = store.create_run(&experiment.experiment_id, "ppo-googl", &[])?;
//! store.log_params(&run.run_id, &[("learning_rate".into(), "0.0003".into())])?;
//! for step in 0..3 {
//!     store.log_metrics(&run.run_id, &[Metric::now("episode_return", 10.0 + step as f64, step)])?;
//! }
//! store.upload_artifacts(&run.run_id, "report.html".as_ref(), "reports")?;
//! store.set_run_status(&run.run_id, RunStatus::Finished, Some(now_ms()))?;
//! # Ok::<(), ratchet_mlflow::Error>(())
//! ```
//!
//! - [`store`]: the [`TrackingStore`] trait and the plain data it moves;
//! - [`open_store`], [`resolve_tracking_uri`]: from a tracking URI to a backend;
//! - [`FileStore`]: the local `mlruns/` tree; [`RestStore`]: an MLflow server;
//! - [`uri`]: percent-encoding, `file:` URIs of local paths;
//! - [`MetricValue`]: a metric value in JSON, NaN and infinities as MLflow writes them;
//! - [`names`]: the rules for experiment, model, key, alias and artifact names, applied to
//!   every call by [`Checked`], which the backends' constructors return;
//! - [`mlmodel`]: MLflow's `MLmodel` file, written and checked;
//! - [`RunEndJournal`]: run endings kept locally while the store cannot be reached.

pub mod checked;
pub mod error;
pub mod file_store;
pub mod metric_value;
pub mod mlmodel;
pub mod names;
mod open;
pub mod rest;
pub mod run_end;
pub mod store;
pub mod uri;
mod yaml;

pub use checked::Checked;
pub use error::{Error, Result};
pub use file_store::FileStore;
pub use metric_value::MetricValue;
pub use open::{absolute_tracking_uri, open_existing_store, open_store, resolve_tracking_uri};
pub use rest::RestStore;
pub use run_end::{Replayed, RunEndJournal};
pub use store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, VersionView, current_artifact_tag, now_ms,
};
