//! Ratchet's model registry: safetensors checkpoints, [`ModelVersion`] metadata, and an
//! MLflow-format store (a local `mlruns/` tree MLflow itself reads, or an MLflow tracking
//! server) with versions, aliases, lineage, comparison, validation and retention.
//!
//! The crate stores named `f32` tensors and JSON metadata; it knows nothing of Burn.

pub mod error;
pub mod file_store;
mod fsutil;
pub mod names;
pub mod store;
mod yaml;

pub use error::{RegistryError, Result};
pub use file_store::FileStore;
pub use store::{
    ArtifactEntry, Experiment, Metric, ModelLock, RegisteredModel, Run, RunInfo, RunStatus,
    StoredVersion, TrackingStore, now_ms, open_store, resolve_tracking_uri,
};
