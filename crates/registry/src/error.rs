//! The registry's error type: the tracking client's, so a caller branches on one set of
//! variants (`NotFound`, `Corrupt`, …) whether the store or a checkpoint failed.

pub use ratchet_mlflow::{Error as RegistryError, Result};
