//! Ratchet's model registry: safetensors checkpoints, [`ModelVersion`] metadata, and an
//! MLflow-format store (a local `mlruns/` tree MLflow itself reads, or an MLflow tracking
//! server) with versions, aliases, lineage, comparison, validation and retention.
//!
//! The crate stores named `f32` tensors and JSON metadata; it knows nothing of Burn.
//!
//! - [`store`]: the [`TrackingStore`] trait (MLflow's data model) and [`open_store`];
//! - [`FileStore`]: the local `mlruns/` tree; [`rest::RestStore`]: an MLflow server;
//! - [`checkpoint`]: the checkpoint directory ([`Checkpoint`], [`Weights`], of
//!   [`NamedTensor`]s);
//! - [`ModelVersion`]: what a version records;
//! - [`Registry`]: register, get, list, promote, rollback, compare, lineage, validate,
//!   cleanup, compatibility.

pub mod checkpoint;
pub mod error;
pub mod file_store;
mod fsutil;
pub mod model_version;
pub mod names;
pub mod registry;
pub mod rest;
pub mod store;
mod version_cache;
mod yaml;

pub use checkpoint::{Checkpoint, CheckpointState, Manifest, Weights};
pub use error::{RegistryError, Result};
pub use file_store::FileStore;
pub use ratchet_tensors::NamedTensor;
pub use model_version::{
    DataSource, DateRange, MetricDirection, ModelVersion, ParentRef, SemVer, TrainingRecord,
    VersionStatus, metric_direction,
};
pub use registry::{
    AliasChange, AliasEvent, CleanupReport, CompatibilityTarget, Difference, Lineage, LineageNode,
    MetricFilter, ModelRef, Registry, RetentionPolicy, ValidationReport, VersionComparison,
    VersionFilter, VersionSelector, VersionSummary, compatibility,
};
pub use store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, VersionView, now_ms, open_store, resolve_tracking_uri,
};
