//! The file store's artifact operations: copying in and out, listing and deleting under a
//! run's artifact root.

use std::fs;
use std::path::Path;

use super::FileStore;
use super::files::place_copy;
use crate::error::{Error, Result};
use crate::store::ArtifactEntry;
use ratchet_fsutil as fsutil;

impl FileStore {
    /// Copies `local` (a file or a directory) under the run's `artifact_path`; each file
    /// appears atomically, and a new directory appears whole.
    pub(super) fn copy_into_artifacts(
        &self,
        run_id: &str,
        local: &Path,
        artifact_path: &str,
    ) -> Result<()> {
        let (_, target, temp_dir) = self.artifact_target(run_id, artifact_path)?;
        let meta = fs::metadata(local).map_err(|e| Error::io(local, e))?;
        if meta.is_file() {
            let name = local.file_name().ok_or_else(|| {
                Error::InvalidArgument(format!("{} has no file name", local.display()))
            })?;
            return place_copy(local, &target.join(name), &temp_dir);
        }
        if !target.exists() {
            // The whole directory appears at once.
            if place_copy(local, &target, &temp_dir).is_ok() {
                return Ok(());
            }
        }
        // Merging into an existing directory: each file appears atomically.
        for entry in fsutil::walk(local)?.into_iter().filter(|e| !e.is_dir) {
            place_copy(&entry.path, &target.join(&entry.relative), &temp_dir)?;
        }
        Ok(())
    }

    /// Every file and directory at or below `artifact_path`, sorted by path.
    pub(super) fn artifact_entries(
        &self,
        run_id: &str,
        artifact_path: &str,
    ) -> Result<Vec<ArtifactEntry>> {
        let (_, target, _) = self.artifact_target(run_id, artifact_path)?;
        let mut out = Vec::new();
        if !target.exists() {
            return Err(Error::NotFound(format!(
                "artifact {artifact_path:?} of run {run_id}"
            )));
        }
        // Paths relative to the artifact root, which `target` is, or lies below.
        let prefix = artifact_path.trim_matches('/');
        if !target.is_dir() {
            let size = fs::metadata(&target)
                .map_err(|e| Error::io(&target, e))?
                .len();
            return Ok(vec![ArtifactEntry {
                path: prefix.to_string(),
                is_dir: false,
                size: Some(size),
            }]);
        }
        for entry in fsutil::walk(&target)? {
            let size = if entry.is_dir {
                None
            } else {
                Some(
                    fs::metadata(&entry.path)
                        .map_err(|e| Error::io(&entry.path, e))?
                        .len(),
                )
            };
            out.push(ArtifactEntry {
                path: [prefix, entry.relative.as_str()]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join("/"),
                is_dir: entry.is_dir,
                size,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Copies the artifact at `artifact_path` into `dest`.
    pub(super) fn copy_out_of_artifacts(
        &self,
        run_id: &str,
        artifact_path: &str,
        dest: &Path,
    ) -> Result<()> {
        let (_, source, _) = self.artifact_target(run_id, artifact_path)?;
        if !source.exists() {
            return Err(Error::NotFound(format!(
                "artifact {artifact_path:?} of run {run_id}"
            )));
        }
        if source.is_file() {
            fsutil::create_dir_all(dest)?;
            let name = source.file_name().expect("a file has a name");
            return Ok(fsutil::copy_tree(&source, &dest.join(name), false)?);
        }
        Ok(fsutil::copy_tree(&source, dest, false)?)
    }

    /// Removes the artifact at `artifact_path` in one rename, then frees the space; never
    /// the whole root.
    pub(super) fn remove_artifact(&self, run_id: &str, artifact_path: &str) -> Result<()> {
        if artifact_path.trim_matches('/').is_empty() {
            return Err(Error::InvalidArgument(
                "refusing to delete a run's whole artifact root; name a path inside it".into(),
            ));
        }
        let (_, target, temp_dir) = self.artifact_target(run_id, artifact_path)?;
        if !target.exists() {
            return Err(Error::NotFound(format!(
                "artifact {artifact_path:?} of run {run_id}"
            )));
        }
        // Disappear in one step, then free the space.
        let doomed = fsutil::temp_path(&temp_dir, "deleted");
        fs::rename(&target, &doomed).map_err(|e| Error::io(&target, e))?;
        Ok(fsutil::remove_tree(&doomed)?)
    }
}
