//! Ratchet's model registry: safetensors checkpoints, [`ModelVersion`] metadata, and the
//! model-management operations (register, get, list, promote, rollback, compare, lineage,
//! validate, cleanup, compatibility) on top of an MLflow tracking store from
//! [`ratchet_mlflow`] (a local `mlruns/` tree MLflow itself reads, or an MLflow server).
//!
//! The crate stores named `f32` tensors and JSON metadata; it knows nothing of Burn.
//!
//! - [`checkpoint`]: the checkpoint directory ([`Checkpoint`], [`Weights`], of
//!   [`NamedTensor`]s);
//! - [`ModelVersion`]: what a version records;
//! - [`Registry`]: registration and reading ([`registry`]), with each other operation in
//!   its own module: [`aliases`] (status, promote, rollback, history), [`compare`],
//!   [`lineage`], [`validation`], [`cleanup`], [`compatibility`], [`deployments`];
//! - [`ModelRef`]: a `models:/` URI; [`VersionSummary`] and [`VersionFilter`]: listing.

pub mod aliases;
pub mod checkpoint;
pub mod cleanup;
pub mod compare;
pub mod compatibility;
pub mod deployments;
pub mod error;
pub mod lineage;
pub mod listing;
pub mod model_ref;
pub mod model_version;
pub mod registry;
mod run_checkpoint;
pub mod tags;
pub mod validation;

pub use aliases::{AliasAction, AliasChange, AliasEvent, PRODUCTION};
pub use checkpoint::{Checkpoint, CheckpointState, Manifest, Weights};
pub use cleanup::{CleanupReport, RetentionPolicy};
pub use compare::{MetricRow, VersionComparison};
pub use compatibility::{CompatibilityTarget, Difference, compatibility};
pub use deployments::DeploymentEvent;
pub use error::{RegistryError, Result};
pub use lineage::{Lineage, LineageNode};
pub use listing::{Comparison, MetricFilter, VersionFilter, VersionSummary};
pub use model_ref::{ModelRef, VersionSelector};
pub use model_version::{
    DataSource, DateRange, MetricDirection, ModelVersion, OutsideSource, ParentRef, SemVer,
    SymbolSource, TrainingRecord, VersionStatus, metric_direction,
};
pub use ratchet_tensors::NamedTensor;
pub use registry::{LocalCheckpoint, Registry};
pub use tags::test_looks_of;
pub use validation::{ValidationCheck, ValidationReport};
