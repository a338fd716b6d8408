//! `MANIFEST.json`: the size and digest of every file of a checkpoint, and the checks that
//! every file read matches it. Digests are BLAKE3; manifests of the first format (sha256) are
//! still verified with sha256.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CHECKPOINT_FILES, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_FORMAT_SHA256, from_json};
use crate::error::{RegistryError, Result};

/// One file's entry in `MANIFEST.json`: `{"size": …, "blake3": "…"}` (or `"sha256"` in the
/// first format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub size: u64,
    #[serde(flatten)]
    pub digest: FileDigest,
}

/// A file's digest, hex, named by its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileDigest {
    Blake3(String),
    Sha256(String),
}

impl std::fmt::Display for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileDigest::Blake3(hex) => write!(f, "blake3 {hex}"),
            FileDigest::Sha256(hex) => write!(f, "sha256 {hex}"),
        }
    }
}

/// `MANIFEST.json`: the size and digest of every other file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub files: BTreeMap<String, ManifestEntry>,
}

/// Hashes a file's bytes with the algorithm of the manifest that lists it.
pub(super) enum FileHasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(Sha256),
}

impl FileHasher {
    /// The hasher of manifests of `format` (which [`read_manifest`] has checked).
    pub(super) fn of(format: &str) -> Self {
        if format == MANIFEST_FORMAT_SHA256 {
            FileHasher::Sha256(Sha256::new())
        } else {
            FileHasher::Blake3(Box::default())
        }
    }

    pub(super) fn update(&mut self, bytes: &[u8]) {
        match self {
            FileHasher::Blake3(h) => {
                h.update(bytes);
            }
            FileHasher::Sha256(h) => h.update(bytes),
        }
    }

    pub(super) fn finish(self) -> FileDigest {
        match self {
            FileHasher::Blake3(h) => FileDigest::Blake3(h.finalize().to_hex().to_string()),
            FileHasher::Sha256(h) => FileDigest::Sha256(hex::encode(h.finalize())),
        }
    }
}

/// Checks every file against `MANIFEST.json` without parsing tensors. Errors name the
/// first file that is missing, has the wrong size or the wrong checksum.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let manifest = read_manifest(dir)?;
    for name in manifest.files.keys() {
        read_verified(&dir.join(name), name, &manifest)?;
    }
    Ok(manifest)
}

pub(super) fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if dir.is_dir() {
                RegistryError::corrupt(&path, "checkpoint manifest is missing")
            } else {
                RegistryError::NotFound(format!("checkpoint directory {}", dir.display()))
            });
        }
        Err(e) => return Err(RegistryError::io(&path, e)),
    };
    let manifest: Manifest = from_json(&path, &bytes)?;
    let sha256 = match manifest.format.as_str() {
        MANIFEST_FORMAT => false,
        MANIFEST_FORMAT_SHA256 => true,
        other => {
            return Err(RegistryError::corrupt(
                &path,
                format!(
                    "format {other:?} is neither {MANIFEST_FORMAT:?} nor \
                     {MANIFEST_FORMAT_SHA256:?}; this build cannot read it"
                ),
            ));
        }
    };
    for (name, entry) in &manifest.files {
        if matches!(entry.digest, FileDigest::Sha256(_)) != sha256 {
            return Err(RegistryError::corrupt(
                &path,
                format!(
                    "lists a {} digest for {name} in a {:?} manifest",
                    if sha256 { "BLAKE3" } else { "sha256" },
                    manifest.format
                ),
            ));
        }
    }
    let listed: BTreeSet<&str> = manifest.files.keys().map(String::as_str).collect();
    for name in CHECKPOINT_FILES {
        if !listed.contains(name) {
            return Err(RegistryError::corrupt(
                &path,
                format!("does not list {name}"),
            ));
        }
    }
    for name in &listed {
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(RegistryError::corrupt(
                &path,
                format!("lists an unsafe path {name:?}"),
            ));
        }
    }
    Ok(manifest)
}

/// Opens a file listed in the manifest, checking that it exists and has the listed size.
pub(super) fn open_listed(path: &Path, name: &str, manifest: &Manifest) -> Result<File> {
    let expected = manifest.files.get(name).ok_or_else(|| {
        RegistryError::corrupt(path, format!("{name} is not listed in {MANIFEST_FILE}"))
    })?;
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RegistryError::corrupt(path, "checkpoint file is missing"),
        _ => RegistryError::io(path, e),
    })?;
    let size = file
        .metadata()
        .map_err(|e| RegistryError::io(path, e))?
        .len();
    if size != expected.size {
        return Err(RegistryError::corrupt(
            path,
            format!("corrupt: {size} bytes, the manifest says {}", expected.size),
        ));
    }
    Ok(file)
}

pub(super) fn check_digest(
    path: &Path,
    actual: FileDigest,
    expected: &ManifestEntry,
) -> Result<()> {
    if actual != expected.digest {
        return Err(RegistryError::corrupt(
            path,
            format!(
                "corrupt: {actual} does not match the manifest's {}",
                expected.digest
            ),
        ));
    }
    Ok(())
}

/// Reads a whole file with one allocation of the right size and checks size and digest.
pub(super) fn read_verified(path: &Path, name: &str, manifest: &Manifest) -> Result<Vec<u8>> {
    let mut file = open_listed(path, name, manifest)?;
    let expected = &manifest.files[name];
    let mut bytes = Vec::with_capacity(expected.size as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| RegistryError::io(path, e))?;
    let mut hasher = FileHasher::of(&manifest.format);
    hasher.update(&bytes);
    check_digest(path, hasher.finish(), expected)?;
    Ok(bytes)
}

pub(super) fn entry_for(bytes: &[u8]) -> ManifestEntry {
    ManifestEntry {
        size: bytes.len() as u64,
        digest: FileDigest::Blake3(blake3::hash(bytes).to_hex().to_string()),
    }
}
