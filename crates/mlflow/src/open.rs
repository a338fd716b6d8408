//! Choosing a backend from a tracking URI, as MLflow's clients do.
//!
//! ```no_run
//! use ratchet_mlflow::{open_store, resolve_tracking_uri};
//!
//! // --tracking-uri flag > MLFLOW_TRACKING_URI > ./mlruns
//! let store = open_store(&resolve_tracking_uri(None))?;
//! println!("logging to {}", store.tracking_uri());
//! # Ok::<(), ratchet_mlflow::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::file_store::FileStore;
use crate::rest::RestStore;
use crate::store::TrackingStore;
use crate::uri::path_from_uri;

/// The tracking URI to use: the explicit flag, else `MLFLOW_TRACKING_URI`, else `./mlruns`.
pub fn resolve_tracking_uri(flag: Option<&str>) -> String {
    if let Some(uri) = flag.filter(|uri| !uri.trim().is_empty()) {
        return uri.to_string();
    }
    match std::env::var("MLFLOW_TRACKING_URI") {
        Ok(uri) if !uri.trim().is_empty() => uri,
        _ => "./mlruns".to_string(),
    }
}

/// Where a tracking URI points.
enum Target<'a> {
    /// An MLflow tracking server's URL.
    Server(&'a str),
    /// A local store's directory, absolute.
    Local(std::path::PathBuf),
}

fn target(tracking_uri: &str) -> Result<Target<'_>> {
    let uri = tracking_uri.trim();
    let lower = uri.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Target::Server(uri));
    }
    if let Some((scheme, _)) = uri.split_once("://")
        && scheme != "file"
    {
        return Err(Error::Unsupported(format!(
            "tracking URI {uri}: scheme {scheme:?} is not supported; use a path, a file: URI, \
             or an http(s):// MLflow server"
        )));
    }
    Ok(Target::Local(path_from_uri(uri)?))
}

/// The tracking URI as another process reaches the same store from any directory: a
/// server's URL as it is, a local store as the `file://` URI of its absolute path.
pub fn absolute_tracking_uri(tracking_uri: &str) -> Result<String> {
    Ok(match target(tracking_uri)? {
        Target::Server(url) => url.to_string(),
        Target::Local(path) => crate::uri::file_uri(&path),
    })
}

/// Opens the store a tracking URI names: a plain path or `file:` URI → the local file
/// store (created if missing); `http://` / `https://` → an MLflow tracking server.
pub fn open_store(tracking_uri: &str) -> Result<Box<dyn TrackingStore>> {
    open(tracking_uri, true)
}

/// Like [`open_store`], for commands that only read or change what is there: a local store
/// that does not exist is an error naming the path, and nothing is created.
pub fn open_existing_store(tracking_uri: &str) -> Result<Box<dyn TrackingStore>> {
    open(tracking_uri, false)
}

fn open(tracking_uri: &str, create: bool) -> Result<Box<dyn TrackingStore>> {
    let path = match target(tracking_uri)? {
        Target::Server(url) => return Ok(Box::new(RestStore::open(url)?)),
        Target::Local(path) => path,
    };
    if !create && !path.exists() {
        return Err(Error::InvalidArgument(format!(
            "there is no MLflow store at {} (no such directory); `ratchet train` creates one, \
             or point --tracking-uri or MLFLOW_TRACKING_URI at an existing store",
            tracking_uri.trim()
        )));
    }
    Ok(Box::new(FileStore::open(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_tracking_uris_name_a_local_store_from_anywhere() {
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_tracking_uri("mlruns").unwrap(),
            crate::uri::file_uri(&here.join("mlruns"))
        );
        assert_eq!(
            absolute_tracking_uri("file:///tmp/a b").unwrap(),
            "file:///tmp/a%20b"
        );
        assert_eq!(
            absolute_tracking_uri("http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            absolute_tracking_uri("ftp://host/x")
                .unwrap_err()
                .to_string(),
            open_store("ftp://host/x").err().unwrap().to_string()
        );
    }

    #[test]
    fn tracking_uri_flag_wins() {
        assert_eq!(resolve_tracking_uri(Some("/tmp/x")), "/tmp/x");
    }

    #[test]
    fn a_missing_store_is_not_created_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing");
        let uri = missing.display().to_string();
        let message = open_existing_store(&uri).err().unwrap().to_string();
        assert_eq!(
            message,
            format!(
                "there is no MLflow store at {uri} (no such directory); `ratchet train` creates one, or point --tracking-uri or MLFLOW_TRACKING_URI at an existing store"
            )
        );
        assert!(!missing.exists());
        open_store(&uri).unwrap();
        assert!(missing.join("0/meta.yaml").exists());
        open_existing_store(&uri).unwrap();
    }

    #[test]
    fn unknown_schemes_are_refused() {
        let message = open_store("s3://bucket/mlruns").err().unwrap().to_string();
        assert_eq!(
            message,
            "tracking URI s3://bucket/mlruns: scheme \"s3\" is not supported; use a path, a file: URI, or an http(s):// MLflow server"
        );
    }
}
