//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong talking to a tracking store. Each variant names the file,
/// object or field involved, so the message alone tells the user what to fix. (The model
/// registry built on this crate reports its own failures with the same type, as
/// `ratchet_registry::RegistryError`, so callers branch on one set of variants.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        // Shown in the message, so not also returned by `source()`: error chains would
        // print it twice.
        error: std::io::Error,
    },
    /// A user-supplied name, key or id is not acceptable (path separators, `..`, control
    /// characters, too long, reserved, …).
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName {
        kind: &'static str,
        value: String,
        reason: String,
    },
    /// An argument other than a name is wrong (a malformed `models:/` URI, a bad filter, …).
    #[error("{0}")]
    InvalidArgument(String),
    /// The experiment, run, model, version, alias or artifact does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Creating something that must be unique and already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A file in the store or a checkpoint is malformed, truncated or fails its checksum.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The MLflow tracking server answered with an error, or could not be reached within
    /// the retry budget.
    #[error("MLflow server {url}: {message}")]
    Remote {
        url: String,
        /// HTTP status, when a response arrived.
        status: Option<u16>,
        /// MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, …), when the body had one.
        code: Option<String>,
        message: String,
    },
    /// The operation is not available for this tracking URI or backend.
    #[error("{0}")]
    Unsupported(String),
    /// The store could not take a write, which was kept locally to be recorded later (see
    /// [`crate::RunEndJournal`]).
    #[error("{0}")]
    Deferred(String),
}

impl From<ratchet_fsutil::Error> for Error {
    fn from(error: ratchet_fsutil::Error) -> Self {
        match error {
            ratchet_fsutil::Error::Io { path, error } => Error::Io { path, error },
            ratchet_fsutil::Error::Corrupt { path, message } => Error::Corrupt { path, message },
            ratchet_fsutil::Error::InvalidArgument(message) => Error::InvalidArgument(message),
        }
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    /// A malformed-file error.
    pub fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }

    /// `true` for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
