//! Crash-safe file operations, the ground the MLflow file store and the registry's
//! checkpoints stand on: atomic writes and directory swaps (with the repair of a swap cut
//! between its two renames), fsync of files and directories, the directory walk, recursive
//! copy, temporary names and file locks. Every error names the path it happened on.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let meta = dir.path().join("meta.yaml");
//! ratchet_fsutil::write_atomic(&meta, b"name: m\n", dir.path(), true)?;
//! assert_eq!(ratchet_fsutil::read_optional(&meta)?.as_deref(), Some("name: m\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use walkdir::WalkDir;

/// A failed file operation, naming its path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        // Shown in the message, so not also returned by `source()`: error chains would
        // print it twice.
        error: std::io::Error,
    },
    /// A name or file that is not what this crate wrote (not UTF-8, say).
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }

    fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Prefix of every temporary file or directory the registry creates. Readers skip names
/// starting with it, and cleanup may remove stale ones.
pub const TEMP_PREFIX: &str = ".ratchet-tmp-";

/// A fresh temporary path inside `dir` (not created).
pub fn temp_path(dir: &Path, label: &str) -> PathBuf {
    dir.join(format!("{TEMP_PREFIX}{label}-{}", Uuid::new_v4().simple()))
}

/// `true` for names the registry uses for temporaries and locks (never data).
pub fn is_internal_name(name: &str) -> bool {
    name.starts_with('.')
}

pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io(path, e))
}

/// Flushes a directory entry change (a rename or create) to disk. Best effort on platforms
/// where directories cannot be opened.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to a new file at `path` (flushed to disk when `durable`) and returns it.
pub fn write_new_file(path: &Path, bytes: &[u8], durable: bool) -> Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    if durable {
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(file)
}

/// Replaces `path` atomically: the bytes go to a temp file in `temp_dir` (same filesystem,
/// and a directory where a stray file is harmless), then it is renamed over `path`. A
/// reader sees the old content or the new one, never a mix or an empty file.
pub fn write_atomic(path: &Path, bytes: &[u8], temp_dir: &Path, durable: bool) -> Result<()> {
    let temp = temp_path(temp_dir, "file");
    write_new_file(&temp, bytes, durable)?;
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Where a directory being replaced by [`replace_dir`] waits between the two renames.
fn replaced_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".ratchet-replaced-{name}"))
}

/// Moves the finished directory `new` to `target`. A directory already at `target` steps
/// aside first, so a crash leaves the old directory or the new one, never a mix of their
/// files; [`restore_replaced`] repairs what a crash between the two renames left. `Ok(false)`
/// when `new` cannot be renamed there (another filesystem): nothing changed.
pub fn replace_dir(new: &Path, target: &Path) -> Result<bool> {
    restore_replaced(target)?;
    let parent = target.parent().unwrap_or(Path::new("."));
    create_dir_all(parent)?;
    let old = replaced_path(target);
    let replacing = target.exists();
    if replacing {
        fs::rename(target, &old).map_err(|e| Error::io(target, e))?;
    }
    if fs::rename(new, target).is_err() {
        if replacing {
            fs::rename(&old, target).map_err(|e| Error::io(target, e))?;
        }
        return Ok(false);
    }
    sync_dir(parent)?;
    if replacing {
        remove_tree(&old)?;
    }
    Ok(true)
}

/// Repairs what a crash during [`replace_dir`] left at `target`: the old directory is put back
/// when the new one never arrived, and removed when it did.
pub fn restore_replaced(target: &Path) -> Result<()> {
    let old = replaced_path(target);
    if !old.exists() {
        return Ok(());
    }
    if target.exists() {
        remove_tree(&old)
    } else {
        fs::rename(&old, target).map_err(|e| Error::io(target, e))
    }
}

/// Reads a file to a string; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::corrupt(path, "is not valid UTF-8")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// One file or directory found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    pub path: PathBuf,
    /// The path relative to the walk's root, `/`-separated.
    pub relative: String,
    pub is_dir: bool,
}

/// Every file and directory below `root` (not `root` itself), depth first, names sorted
/// within a directory; nothing when `root` does not exist. Symbolic links are not followed:
/// one below `root` is an error naming it (following could leave the tree or loop), as is a
/// name that is not UTF-8 (MLflow's names are text).
pub fn walk(root: &Path) -> Result<Vec<WalkEntry>> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            Error::io(path, e.into())
        })?;
        let path = entry.path();
        if entry.path_is_symlink() {
            return Err(Error::InvalidArgument(format!(
                "{} is a symbolic link; links are not followed (copy the file or directory it points to instead)",
                path.display()
            )));
        }
        let relative = path
            .strip_prefix(root)
            .expect("walkdir stays below its root")
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::corrupt(path, "file name is not valid UTF-8"))?
            .join("/");
        out.push(WalkEntry {
            is_dir: entry.file_type().is_dir(),
            path: entry.into_path(),
            relative,
        });
    }
    Ok(out)
}

/// Copies a file or directory tree (see [`walk`] for symbolic links). Files are copied
/// whole (the OS may use `copy_file_range`), optionally fsynced, and so are the directories
/// created.
pub fn copy_tree(from: &Path, to: &Path, durable: bool) -> Result<()> {
    let copy_file = |from: &Path, to: &Path| -> Result<()> {
        fs::copy(from, to).map_err(|e| Error::io(to, e))?;
        if durable {
            File::open(to)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(to, e))?;
        }
        Ok(())
    };
    let meta = fs::symlink_metadata(from).map_err(|e| Error::io(from, e))?;
    if !meta.is_dir() {
        return copy_file(from, to);
    }
    create_dir_all(to)?;
    let entries = walk(from)?;
    for entry in &entries {
        let target = to.join(&entry.relative);
        if entry.is_dir {
            create_dir_all(&target)?;
        } else {
            copy_file(&entry.path, &target)?;
        }
    }
    if durable {
        // Deepest first, so each directory's entry in its parent is flushed after its own.
        for entry in entries.iter().rev().filter(|e| e.is_dir) {
            sync_dir(&to.join(&entry.relative))?;
        }
        sync_dir(to)?;
    }
    Ok(())
}

/// Removes a file or directory tree; missing is fine.
pub fn remove_tree(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| Error::io(path, e))
}

/// `true` when a rename failed because the target exists (a directory that is not empty,
/// or a file where a directory was expected).
pub fn is_target_exists(err: &std::io::Error, target: &Path) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty
    ) || target.exists()
}

/// An exclusive advisory lock on `path` (created if missing), held until dropped.
pub fn lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.lock().map_err(|e| Error::io(path, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_cut_between_its_renames_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("checkpoint");
        let old = replaced_path(&target);
        assert_eq!(old, dir.path().join(".ratchet-replaced-checkpoint"));
        // Crashed after the first rename: the old directory goes back.
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("MANIFEST.json"), "old").unwrap();
        restore_replaced(&target).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("MANIFEST.json")).unwrap(),
            "old"
        );
        assert!(!old.exists());
        // Crashed after the second: the new one stays, the old one goes.
        std::fs::create_dir(&old).unwrap();
        restore_replaced(&target).unwrap();
        assert!(!old.exists());
        assert!(target.join("MANIFEST.json").is_file());
    }

    #[test]
    fn temp_paths_are_fresh_hidden_siblings() {
        let dir = Path::new("/store/models/m");
        let (a, b) = (temp_path(dir, "version"), temp_path(dir, "version"));
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(dir));
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".ratchet-tmp-version-"), "{name}");
        assert_eq!(name.len(), ".ratchet-tmp-version-".len() + 32);
    }
}
