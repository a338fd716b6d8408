//! Why a server cannot be set up, or stops.

use std::path::PathBuf;

use ratchet_registry::ModelRef;
use tokio_rustls::rustls;

use crate::model::LoadError;

/// Why [`crate::prepare`], [`crate::serve`], [`crate::Slo::from_file`] or
/// [`crate::tls::server_config`] failed. As in `ratchet_mlflow::Error`, a message shows its
/// cause itself (so the cause is not also returned by `source()`: error chains would print
/// it twice); the message alone tells the user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The canary's share is not a percentage.
    #[error("--canary-percent is {0}; it must be between 0 and 100")]
    CanaryPercent(f64),
    /// A version the targets name cannot be served.
    #[error("cannot serve {reference}: {error}")]
    Load {
        reference: ModelRef,
        error: Box<LoadError>,
    },
    /// `--auto-promote` without what it needs.
    #[error("--auto-promote needs {0}")]
    AutoPromote(&'static str),
    /// `--any-symbol` for a version whose features read its universe.
    #[error(
        "{version} has the cross-sectional feature {feature}, which reads the bars of its \
         universe's symbols only; serve it without --any-symbol"
    )]
    AnySymbolAcrossUniverse { version: String, feature: String },
    /// The SLO file cannot be read.
    #[error("cannot read the SLO file {}: {error}", path.display())]
    SloUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The SLO file is not TOML of the SLO's shape, or its limits are out of range.
    #[error("SLO file {}: {problem}", path.display())]
    SloInvalid { path: PathBuf, problem: String },
    /// A `--tls-cert` or `--tls-key` file holds no PEM item of the kind it must.
    #[error("{flag} {}: {problem}", path.display())]
    TlsFile {
        flag: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// rustls refused the certificate and key (`what` says which step).
    #[error("{what}: {error}")]
    Tls { what: String, error: rustls::Error },
    /// `--feast-online` cannot be used as given.
    #[error("{0}")]
    FeastOnline(String),
    /// The HTTP server stopped on an I/O error.
    #[error("serving HTTP: {0}")]
    Http(std::io::Error),
}
