//! Artifacts through the server's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/…`):
//! where a run's artifacts live, listing, upload and download of single files, and keeping
//! an upload that failed.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::RestStore;
use super::http::{Failure, Method, Request};
use super::wire::{ListArtifactsAnswer, WireArtifact};
use crate::error::{Error, Result};
use crate::names;
use crate::store::{ArtifactEntry, TrackingStore};
use crate::uri::encode_path;
use ratchet_fsutil as fsutil;

pub(super) const ARTIFACTS_API: &str = "/api/2.0/mlflow-artifacts/artifacts";

impl RestStore {
    /// Where a run's artifact `path` lives on the artifact proxy.
    pub(super) fn run_artifacts(&self, run_id: &str, path: &str) -> Result<ArtifactLocation> {
        let root = self.get_run(run_id)?.info.artifact_uri;
        let location = resolve_artifact_uri(&root, &self.server)?;
        Ok(ArtifactLocation {
            path: join_path(&location.path, path),
            server: location.server,
        })
    }

    /// One level of an artifact directory; entries are `(name, is_dir, size)`. A missing
    /// directory, and a file, list as empty (that is what the proxy answers).
    pub(super) fn list_level(&self, location: &ArtifactLocation) -> Result<Vec<WireArtifact>> {
        let request = Request::new(Method::Get, format!("{}{ARTIFACTS_API}", location.server))
            .query(vec![("path", location.path.clone())]);
        let v = self.execute(&request, |body| self.read_json(&request, body))?;
        Ok(self
            .decode::<ListArtifactsAnswer>("mlflow-artifacts/artifacts", v)?
            .files)
    }

    /// Every entry below `location`, paths relative to it, depth first.
    pub(super) fn walk(
        &self,
        location: &ArtifactLocation,
        prefix: &str,
        out: &mut Vec<ArtifactEntry>,
    ) -> Result<()> {
        for f in self.list_level(&ArtifactLocation {
            server: location.server.clone(),
            path: join_path(&location.path, prefix),
        })? {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_string();
            let path = join_path(prefix, &name);
            out.push(ArtifactEntry {
                path: path.clone(),
                is_dir: f.is_dir,
                // Protobuf JSON leaves out a zero size.
                size: (!f.is_dir).then(|| f.file_size.unwrap_or(0)),
            });
            if f.is_dir {
                self.walk(location, &path, out)?;
            }
        }
        Ok(())
    }

    /// What is at a run's artifact `path`: a directory (its entries, recursively, relative
    /// to it) or a file (its size).
    pub(super) fn listing(&self, run_id: &str, path: &str) -> Result<(ArtifactLocation, Listing)> {
        let location = self.run_artifacts(run_id, path)?;
        let mut entries = Vec::new();
        self.walk(&location, "", &mut entries)?;
        let path = path.trim_matches('/');
        if !entries.is_empty() || path.is_empty() {
            return Ok((location, Listing::Directory(entries)));
        }
        // The proxy lists a file, an empty directory and nothing at all alike (`{}`):
        // look the name up in the parent directory.
        let (parent, name) = location
            .path
            .rsplit_once('/')
            .unwrap_or(("", location.path.as_str()));
        let parent = ArtifactLocation {
            server: location.server.clone(),
            path: parent.to_string(),
        };
        let found = self
            .list_level(&parent)?
            .into_iter()
            .find(|f| f.path.rsplit('/').next() == Some(name));
        match found {
            Some(f) if f.is_dir => Ok((location, Listing::Directory(Vec::new()))),
            Some(f) => Ok((location, Listing::File(f.file_size.unwrap_or(0)))),
            None => Err(Error::NotFound(format!(
                "artifact {path:?} of run {run_id} on MLflow server {}",
                self.server
            ))),
        }
    }

    /// Uploads `local` (a directory's files, or one file) under `artifact_path`; on failure
    /// says how far it got.
    pub(super) fn upload(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<(), Box<UploadStopped>> {
        let stopped = |error, uploaded, total| {
            Box::new(UploadStopped {
                error,
                run_id: run_id.to_string(),
                artifact_path: artifact_path.to_string(),
                uploaded,
                total,
            })
        };
        let prepare = || -> Result<(ArtifactLocation, Vec<(PathBuf, String)>)> {
            let meta = fs::metadata(local).map_err(|e| Error::io(local, e))?;
            let target = self.run_artifacts(run_id, artifact_path)?;
            let files = if meta.is_dir() {
                let mut files = Vec::new();
                for entry in fsutil::walk(local)?.into_iter().filter(|e| !e.is_dir) {
                    names::validate_artifact_path(&entry.relative)?;
                    files.push((entry.path, join_path(&target.path, &entry.relative)));
                }
                files.sort_by(|a, b| a.1.cmp(&b.1));
                files
            } else {
                let name = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "{} has no UTF-8 file name to upload under",
                        local.display()
                    ))
                })?;
                vec![(local.to_path_buf(), join_path(&target.path, name))]
            };
            Ok((target, files))
        };
        let (target, files) = prepare().map_err(|e| stopped(e, 0, 0))?;
        for (done, (file, remote)) in files.iter().enumerate() {
            self.put_file(&target.server, remote, file)
                .map_err(|e| stopped(e, done, files.len()))?;
        }
        Ok(())
    }

    pub(super) fn put_file(&self, server: &str, remote: &str, local: &Path) -> Result<()> {
        let url = format!("{server}{ARTIFACTS_API}/{}", encode_path(remote));
        self.execute(
            &Request::new(Method::Put, url).file(local.to_path_buf()),
            |_| Ok(()),
        )
    }

    /// Streams one remote file into `local` (created or truncated; retried from the start
    /// when the connection breaks mid-way).
    pub(super) fn get_file(&self, server: &str, remote: &str, local: &Path) -> Result<u64> {
        if let Some(dir) = local.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let url = format!("{server}{ARTIFACTS_API}/{}", encode_path(remote));
        let write_error = |e| Failure::Fatal(Error::io(local, e));
        self.execute(&Request::new(Method::Get, url), |body| {
            let mut file = fs::File::create(local).map_err(write_error)?;
            let mut reader = body.into_reader();
            let mut buffer = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                // A connection cut mid-body is worth another try; a full disk is not.
                let n = match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Failure::retry(format!("download interrupted: {e}"), true));
                    }
                };
                file.write_all(&buffer[..n]).map_err(write_error)?;
                total += n as u64;
            }
            file.sync_all().map_err(write_error)?;
            Ok(total)
        })
    }
}

/// What a run's artifact path holds.
pub(super) enum Listing {
    /// Entries below the directory, recursively, paths relative to it.
    Directory(Vec<ArtifactEntry>),
    /// A file of this many bytes.
    File(u64),
}

/// An upload that did not finish.
pub(super) struct UploadStopped {
    error: Error,
    run_id: String,
    artifact_path: String,
    uploaded: usize,
    total: usize,
}

impl UploadStopped {
    /// The error, saying where the local data now is (`state`: "is intact", "was kept")
    /// and how to finish the upload by hand.
    pub(super) fn into_error(self, local: &Path, state: &str) -> Error {
        let destination = if self.artifact_path.is_empty() {
            String::new()
        } else {
            format!(" --artifact-path {}", self.artifact_path)
        };
        let context = format!(
            "uploading to run {}'s artifacts stopped after {} of {} files; the local copy {state} at {} — upload it once the server is back (`mlflow artifacts log-artifacts --local-dir {} --run-id {}{destination}`)",
            self.run_id,
            self.uploaded,
            self.total,
            local.display(),
            local.display(),
            self.run_id,
        );
        match self.error {
            Error::Remote {
                url,
                status,
                code,
                message,
            } => Error::Remote {
                url,
                status,
                code,
                message: format!("{context}: {message}"),
            },
            // A local problem (unreadable file, bad name) names its own path.
            other => other,
        }
    }
}

/// Moves (or, across filesystems, copies) an upload that failed to
/// `<unsent_dir>/<run_id>/<artifact_path>` and returns where it is.
pub(super) fn keep_unsent(
    unsent_dir: &Path,
    local: &Path,
    run_id: &str,
    artifact_path: &str,
) -> Result<PathBuf> {
    let mut kept = unsent_dir.join(run_id);
    let leaf = if artifact_path.trim_matches('/').is_empty() {
        "artifacts"
    } else {
        artifact_path.trim_matches('/')
    };
    kept.push(leaf);
    if kept.exists() {
        let name = format!(
            "{}-{:08x}",
            kept.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            Uuid::new_v4().as_fields().0
        );
        kept.set_file_name(name);
    }
    if let Some(parent) = kept.parent() {
        ratchet_fsutil::create_dir_all(parent)?;
    }
    if fs::rename(local, &kept).is_err() {
        // The caller removes `local` afterwards; a complete copy is enough.
        ratchet_fsutil::copy_tree(local, &kept, true)?;
    }
    Ok(kept)
}

/// A place on an artifact proxy: the server answering for it and the path below
/// `/api/2.0/mlflow-artifacts/artifacts/`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ArtifactLocation {
    pub(super) server: String,
    pub(super) path: String,
}

/// `mlflow-artifacts:/P` (or `:///P`) is `P` on this server; `mlflow-artifacts://host:port/P`
/// names another host (reached with this server's scheme). Anything else (`s3://`, `file:`)
/// is not reachable through the server.
pub(super) fn resolve_artifact_uri(uri: &str, server: &str) -> Result<ArtifactLocation> {
    let rest = uri.strip_prefix("mlflow-artifacts:").ok_or_else(|| {
        Error::Unsupported(format!(
            "artifact location {uri:?} is not served by the MLflow server {server}: Ratchet moves artifacts only through the server's artifact proxy. Start the server with --serve-artifacts (the default in MLflow 3) and use an experiment created since, whose artifact location is mlflow-artifacts:/<id>"
        ))
    })?;
    let (server, path) = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let (authority, path) = authority_and_path
                .split_once('/')
                .unwrap_or((authority_and_path, ""));
            if authority.is_empty() {
                (server.to_string(), path)
            } else {
                let scheme = server.split("://").next().unwrap_or("http");
                (format!("{scheme}://{authority}"), path)
            }
        }
        None => (server.to_string(), rest),
    };
    if path.split('/').any(|part| part == "..") {
        return Err(Error::InvalidArgument(format!(
            "artifact location {uri:?} contains '..'"
        )));
    }
    Ok(ArtifactLocation {
        server,
        path: join_path(path, ""),
    })
}

/// Joins `/`-separated paths, dropping empty parts.
pub(super) fn join_path(base: &str, rel: &str) -> String {
    base.split('/')
        .chain(rel.split('/'))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_map_to_the_proxy() {
        let s = "http://127.0.0.1:5000";
        let here = resolve_artifact_uri("mlflow-artifacts:/1/abc/artifacts", s).unwrap();
        assert_eq!(
            here,
            ArtifactLocation {
                server: s.into(),
                path: "1/abc/artifacts".into()
            }
        );
        let triple = resolve_artifact_uri("mlflow-artifacts:///1/abc/artifacts", s).unwrap();
        assert_eq!(triple, here);
        let other = resolve_artifact_uri(
            "mlflow-artifacts://art.example:8080/2/r/artifacts",
            "https://t",
        )
        .unwrap();
        assert_eq!(
            other,
            ArtifactLocation {
                server: "https://art.example:8080".into(),
                path: "2/r/artifacts".into()
            }
        );
        let message = resolve_artifact_uri("s3://bucket/1/abc", s)
            .unwrap_err()
            .to_string();
        assert!(message.contains("--serve-artifacts"), "{message}");
        assert!(resolve_artifact_uri("mlflow-artifacts:/1/../x", s).is_err());
        assert_eq!(
            join_path("1/r/artifacts/", "/ckpt/model.safetensors"),
            "1/r/artifacts/ckpt/model.safetensors"
        );
    }
}
