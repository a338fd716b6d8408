//! Why a sweep cannot be planned, run or ranked.

use std::path::PathBuf;

use crate::store::RETURNS_ARTIFACT;

/// Every error of this crate. As in `ratchet_mlflow::Error`, a message shows its cause
/// itself (so the cause is not also returned by `source()`: error chains would print it
/// twice); the message alone tells the user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A file the sweep needs cannot be read: the sweep file, or the base config it names.
    #[error("cannot read {what} {}: {error}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// The sweep file is wrong: its shape, an axis, a value the training config refuses. The
    /// message names the key or axis (and the file, when the plan found it).
    #[error("{0}")]
    Invalid(String),
    /// An error in the sweep file at `path`.
    #[error("{}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<SweepError>,
    },
    /// No sweep in the store answers to `query`.
    #[error(
        "no sweep '{query}' in {tracking_uri}: give a sweep's name, its id or its parent run id"
    )]
    NoSuchSweep { query: String, tracking_uri: String },
    /// The tracking store failed.
    #[error(transparent)]
    Store(#[from] ratchet_mlflow::Error),
    /// The tracking store failed at a step its own error does not name.
    #[error("{doing}: {error}")]
    StoreAt {
        doing: &'static str,
        error: ratchet_mlflow::Error,
    },
    /// A trial's recorded validation returns are not a list of numbers.
    #[error("run {run_id}: {RETURNS_ARTIFACT} is not a list of numbers: {error}")]
    Returns {
        run_id: String,
        error: serde_json::Error,
    },
    /// A trial's process could not be started on this machine: its directory, its config
    /// file, the process itself.
    #[error("{doing}: {error}")]
    Launch {
        doing: String,
        error: std::io::Error,
    },
    /// A local file operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Ray's Jobs API failed (its dashboard does not answer, a submission is refused), or a
    /// trial cannot be put into a Ray job. The message names the address and what to do.
    #[error("{0}")]
    Ray(String),
}

/// Returns a [`SweepError::Invalid`] with a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err($crate::SweepError::Invalid(format!($($arg)*)))
    };
}
pub(crate) use invalid;
