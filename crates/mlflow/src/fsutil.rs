//! Filesystem helpers the file store is built on (atomic replace, fsync, recursive copy,
//! random names), shared with the model registry's checkpoints.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Prefix of every temporary file or directory the registry creates. Readers skip names
/// starting with it, and cleanup may remove stale ones.
pub const TEMP_PREFIX: &str = ".ratchet-tmp-";

/// `n_bytes` random bytes as lowercase hex. Uniqueness, not secrecy, is what matters:
/// std's randomly keyed SipHash over (time, pid, counter) gives that without a crate.
pub fn random_hex(n_bytes: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(n_bytes * 2);
    while out.len() < n_bytes * 2 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        hasher.write_u32(std::process::id());
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        for byte in hasher.finish().to_le_bytes() {
            if out.len() < n_bytes * 2 {
                out.push_str(&format!("{byte:02x}"));
            }
        }
    }
    out
}

/// A fresh temporary path inside `dir` (not created).
pub fn temp_path(dir: &Path, label: &str) -> PathBuf {
    dir.join(format!("{TEMP_PREFIX}{label}-{}", random_hex(8)))
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

/// Copies a file or directory tree. Files are copied whole (the OS may use
/// `copy_file_range`), optionally fsynced.
pub fn copy_tree(from: &Path, to: &Path, durable: bool) -> Result<()> {
    let meta = fs::metadata(from).map_err(|e| Error::io(from, e))?;
    if meta.is_dir() {
        create_dir_all(to)?;
        let mut entries: Vec<_> = fs::read_dir(from)
            .map_err(|e| Error::io(from, e))?
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(from, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            copy_tree(&entry.path(), &to.join(entry.file_name()), durable)?;
        }
        if durable {
            sync_dir(to)?;
        }
    } else {
        fs::copy(from, to).map_err(|e| Error::io(to, e))?;
        if durable {
            File::open(to)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(to, e))?;
        }
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
    fn random_hex_is_unique_and_sized() {
        let a = random_hex(16);
        let b = random_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
