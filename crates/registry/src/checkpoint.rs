//! Checkpoints: one directory holding a complete training state.
//!
//! ```text
//! model.safetensors      weights; header __metadata__: feature_hash, algorithm,
//!                        observation_shape, action_count, version (human id), semver, …
//! optimizer.safetensors  optimizer moments named by parameter path
//! state.safetensors      other state tensors (the DQN replay buffer)
//! state.json             counters, schedule positions, RNG states, episode statistics
//! metadata.json          the ModelVersion
//! MLmodel                lets MLflow recognise the directory as a model (flavor `ratchet`)
//! MANIFEST.json          size and BLAKE3 digest of every file above
//! ```
//!
//! Saving builds the directory under a temporary name beside the target, fsyncs it and
//! renames it into place, so a reader never sees a half-written checkpoint. Tensors are
//! written (and hashed) straight from the memory they live in, borrowed ones included, so
//! saving needs no copy of them. Loading checks every file against the manifest and names
//! the one that is missing or corrupt; checkpoints whose manifest holds sha256 digests (the
//! first format) are verified with sha256. [`Weights::load`] reads only what a policy needs.
//!
//! ```no_run
//! use ratchet_registry::{Checkpoint, CheckpointState, NamedTensor};
//! # fn metadata() -> ratchet_registry::ModelVersion { unimplemented!() }
//!
//! let checkpoint = Checkpoint {
//!     state: CheckpointState {
//!         weights: vec![NamedTensor::new("actor.layers.0.weight", vec![64, 30], vec![0.0; 64 * 30])],
//!         optimizer: vec![],
//!         state_tensors: vec![],
//!         state: serde_json::json!({ "step": 1000 }),
//!     },
//!     metadata: metadata(),
//! };
//! checkpoint.save("runs/ppo/checkpoint".as_ref())?;
//! let back = Checkpoint::load("runs/ppo/checkpoint".as_ref())?;
//! assert_eq!(back.state, checkpoint.state);
//! # Ok::<(), ratchet_registry::RegistryError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ratchet_tensors::NamedTensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};
use crate::model_version::ModelVersion;
use ratchet_mlflow::fsutil;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_TENSORS_FILE: &str = "state.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const METADATA_FILE: &str = "metadata.json";
pub const MLMODEL_FILE: &str = "MLmodel";
pub const MANIFEST_FILE: &str = "MANIFEST.json";
/// Identifies the layout (the files and what they hold); bumped on incompatible changes.
pub const CHECKPOINT_FORMAT: &str = "ratchet-checkpoint/1";
/// `MANIFEST.json`'s `format` since its digests are BLAKE3 (the files are unchanged).
pub const MANIFEST_FORMAT: &str = "ratchet-checkpoint/1+blake3";
/// `MANIFEST.json`'s `format` with sha256 digests, as the first checkpoints were written:
/// still verified and loaded.
pub const MANIFEST_FORMAT_SHA256: &str = CHECKPOINT_FORMAT;
/// The MLflow flavor name written to `MLmodel`.
pub const FLAVOR: &str = "ratchet";

/// Every file of a checkpoint, in the order they are written.
pub const CHECKPOINT_FILES: [&str; 6] = [
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_TENSORS_FILE,
    STATE_FILE,
    METADATA_FILE,
    MLMODEL_FILE,
];

/// The training state a checkpoint holds, as plain data: the three tensor groups and the
/// JSON of everything else. Tensors may be borrowed from the training code's own structures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointState<'a> {
    /// Network weights, named by parameter path → `model.safetensors`.
    pub weights: Vec<NamedTensor<'a>>,
    /// Optimizer moments, named by the parameter path they belong to →
    /// `optimizer.safetensors`.
    pub optimizer: Vec<NamedTensor<'a>>,
    /// Other state tensors such as the DQN replay buffer (may be empty) →
    /// `state.safetensors`.
    pub state_tensors: Vec<NamedTensor<'a>>,
    /// Counters, schedule positions, RNG states, episode statistics → `state.json`.
    pub state: serde_json::Value,
}

/// A complete checkpoint in memory: the state plus its [`ModelVersion`] metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<'a> {
    pub state: CheckpointState<'a>,
    pub metadata: ModelVersion,
}

/// A version's weights and metadata: what a policy needs to act (backtests, serving), read
/// without the optimizer state or the replay buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub weights: Vec<NamedTensor<'static>>,
    pub metadata: ModelVersion,
}

/// The files [`Weights::load`] reads.
pub const WEIGHTS_FILES: [&str; 3] = [MANIFEST_FILE, MODEL_FILE, METADATA_FILE];

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
enum FileHasher {
    Blake3(Box<blake3::Hasher>),
    Sha256(Sha256),
}

impl FileHasher {
    /// The hasher of manifests of `format` (which [`read_manifest`] has checked).
    fn of(format: &str) -> Self {
        if format == MANIFEST_FORMAT_SHA256 {
            FileHasher::Sha256(Sha256::new())
        } else {
            FileHasher::Blake3(Box::default())
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            FileHasher::Blake3(h) => {
                h.update(bytes);
            }
            FileHasher::Sha256(h) => h.update(bytes),
        }
    }

    fn finish(self) -> FileDigest {
        match self {
            FileHasher::Blake3(h) => FileDigest::Blake3(h.finalize().to_hex().to_string()),
            FileHasher::Sha256(h) => FileDigest::Sha256(hex(&h.finalize())),
        }
    }
}

impl Checkpoint<'_> {
    /// Writes the checkpoint to `dir` atomically (replacing an existing checkpoint there)
    /// and returns its manifest.
    pub fn save(&self, dir: &Path) -> Result<Manifest> {
        let parent = parent_dir(dir)?;
        fsutil::create_dir_all(&parent)?;
        let temp = fsutil::temp_path(&parent, "checkpoint");
        let written = self.write_into(&temp, dir);
        let manifest = match written {
            Ok(manifest) => manifest,
            Err(e) => {
                let _ = fsutil::remove_tree(&temp);
                return Err(e);
            }
        };
        replace_dir(&temp, dir)?;
        Ok(manifest)
    }

    fn write_into(&self, temp: &Path, final_dir: &Path) -> Result<Manifest> {
        fs::create_dir(temp).map_err(|e| RegistryError::io(temp, e))?;
        let header = self.header_metadata();
        let small_files = [
            (STATE_FILE, to_json(&self.state.state)?),
            (METADATA_FILE, to_json(&self.metadata)?),
            (MLMODEL_FILE, self.mlmodel(final_dir).into_bytes()),
        ];
        let groups = [
            (MODEL_FILE, &self.state.weights, Some(&header)),
            (OPTIMIZER_FILE, &self.state.optimizer, None),
            (STATE_TENSORS_FILE, &self.state.state_tensors, None),
        ];
        // Headers first: a bad tensor is refused before any byte is written.
        let tensor_files = groups
            .iter()
            .map(|(name, tensors, meta)| {
                let header = safetensors_header(&temp.join(name), tensors, *meta)?;
                Ok((*name, header, tensors.as_slice()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut files = BTreeMap::new();
        std::thread::scope(|scope| -> Result<Manifest> {
            // Each file is fsynced on its own thread as soon as it is written, so its
            // writeback overlaps the other writes; BLAKE3 hashes as fast as memory is read,
            // so the tensor files are hashed inline as they are written.
            let mut syncs = Vec::new();
            for (name, bytes) in &small_files {
                let path = temp.join(name);
                let file = fsutil::write_new_file(&path, bytes, false)?;
                syncs.push(scope.spawn(move || sync_data(&file, &path)));
                files.insert(name.to_string(), entry_for(bytes));
            }
            for (name, header, tensors) in &tensor_files {
                let path = temp.join(name);
                let (file, entry) = write_safetensors(&path, header, tensors)?;
                syncs.push(scope.spawn(move || sync_data(&file, &path)));
                files.insert(name.to_string(), entry);
            }
            let manifest = Manifest {
                format: MANIFEST_FORMAT.into(),
                files,
            };
            // The manifest and the directory's entries are flushed while the tensor files'
            // fsyncs may still run (one journal commit where the filesystem allows); the
            // caller renames the directory only once all of them returned.
            let path = temp.join(MANIFEST_FILE);
            let file = fsutil::write_new_file(&path, &to_json(&manifest)?, false)?;
            syncs.push(scope.spawn(move || sync_data(&file, &path)));
            syncs.push(scope.spawn(|| fsutil::sync_dir(temp)));
            syncs
                .into_iter()
                .try_for_each(|h| h.join().expect("fsync thread panicked"))?;
            Ok(manifest)
        })
    }

    /// The `__metadata__` of `model.safetensors`: what a tool needs to know about the
    /// weights without reading `metadata.json`.
    pub fn header_metadata(&self) -> BTreeMap<String, String> {
        let m = &self.metadata;
        let t = &m.training;
        BTreeMap::from([
            ("format".into(), CHECKPOINT_FORMAT.into()),
            ("name".into(), m.name.clone()),
            ("version".into(), m.version_id.clone()),
            ("semver".into(), m.semver.to_string()),
            ("algorithm".into(), t.algorithm.clone()),
            ("feature_hash".into(), t.feature_hash.clone()),
            (
                "observation_shape".into(),
                serde_json::to_string(&t.observation_shape).expect("a Vec<usize> serialises"),
            ),
            ("action_count".into(), t.action_count.to_string()),
            ("network_hash".into(), m.network_hash.clone()),
        ])
    }

    fn mlmodel(&self, final_dir: &Path) -> String {
        let m = &self.metadata;
        let artifact_path = checkpoint_artifact_path(m, final_dir);
        let mut text = String::new();
        text.push_str(&format!("artifact_path: {}\n", yaml_quote(&artifact_path)));
        text.push_str("flavors:\n");
        text.push_str(&format!("  {FLAVOR}:\n"));
        for (key, value) in [
            ("format", CHECKPOINT_FORMAT),
            ("weights", MODEL_FILE),
            ("optimizer", OPTIMIZER_FILE),
            ("state_tensors", STATE_TENSORS_FILE),
            ("state", STATE_FILE),
            ("metadata", METADATA_FILE),
            ("manifest", MANIFEST_FILE),
            ("algorithm", m.training.algorithm.as_str()),
            ("ratchet_version", env!("CARGO_PKG_VERSION")),
        ] {
            text.push_str(&format!("    {key}: {}\n", yaml_quote(value)));
        }
        text.push_str("metadata:\n");
        for (key, value) in [
            ("name", m.name.clone()),
            ("version_id", m.version_id.clone()),
            ("semver", m.semver.to_string()),
            ("feature_hash", m.training.feature_hash.clone()),
        ] {
            text.push_str(&format!("  {key}: {}\n", yaml_quote(&value)));
        }
        text.push_str(&format!("model_uuid: {}\n", yaml_quote(&model_uuid(m))));
        if let Some(run_id) = &m.run_id {
            text.push_str(&format!("run_id: {}\n", yaml_quote(run_id)));
        }
        let created = m.created_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        text.push_str(&format!("utc_time_created: {}\n", yaml_quote(&created)));
        text
    }

    /// Reads and verifies a checkpoint.
    pub fn load(dir: &Path) -> Result<Checkpoint<'static>> {
        let manifest = read_manifest(dir)?;
        let tensor_files = [MODEL_FILE, OPTIMIZER_FILE, STATE_TENSORS_FILE];
        let mut tensors = read_tensor_files(dir, &tensor_files, &manifest)?.into_iter();
        let mut next = || tensors.next().expect("three tensor files");
        let (weights, optimizer, state_tensors) = (next(), next(), next());
        let state_path = dir.join(STATE_FILE);
        let state = from_json(
            &state_path,
            &read_verified(&state_path, STATE_FILE, &manifest)?,
        )?;
        let metadata_path = dir.join(METADATA_FILE);
        let metadata = from_json(
            &metadata_path,
            &read_verified(&metadata_path, METADATA_FILE, &manifest)?,
        )?;
        read_verified(&dir.join(MLMODEL_FILE), MLMODEL_FILE, &manifest)?;
        Ok(Checkpoint {
            state: CheckpointState {
                weights,
                optimizer,
                state_tensors,
                state,
            },
            metadata,
        })
    }
}

/// The artifact path a version's checkpoint is stored under in its run:
/// `checkpoints/<human id>` (or the directory's own name when there is no id yet).
pub fn checkpoint_artifact_path(metadata: &ModelVersion, dir: &Path) -> String {
    if metadata.version_id.is_empty() {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "checkpoint".into())
    } else {
        format!("checkpoints/{}", metadata.version_id)
    }
}

/// The MLmodel's `model_uuid`: 32 hex digits derived from the model name and human id, so
/// the run's `mlflow.log-model.history` tag can name the same id.
pub fn model_uuid(metadata: &ModelVersion) -> String {
    let digest = Sha256::digest(format!("{}\n{}", metadata.name, metadata.version_id));
    hex(&digest[..16])
}

impl Weights {
    /// Reads and verifies `model.safetensors` and `metadata.json` of a checkpoint (the
    /// other files are not read).
    pub fn load(dir: &Path) -> Result<Weights> {
        let manifest = read_manifest(dir)?;
        let mut tensors = read_tensor_files(dir, &[MODEL_FILE], &manifest)?;
        let metadata_path = dir.join(METADATA_FILE);
        let metadata = from_json(
            &metadata_path,
            &read_verified(&metadata_path, METADATA_FILE, &manifest)?,
        )?;
        Ok(Weights {
            weights: tensors.pop().expect("one tensor file"),
            metadata,
        })
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

/// Reads `metadata.json` (checked against the manifest) without touching the tensors.
pub fn read_metadata(dir: &Path) -> Result<ModelVersion> {
    let manifest = read_manifest(dir)?;
    let path = dir.join(METADATA_FILE);
    let bytes = read_verified(&path, METADATA_FILE, &manifest)?;
    from_json(&path, &bytes)
}

/// The `__metadata__` map of `model.safetensors` (reads only the header).
pub fn read_header_metadata(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join(MODEL_FILE);
    let mut file = File::open(&path).map_err(|e| RegistryError::io(&path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| RegistryError::io(&path, e))?;
    let len = u64::from_le_bytes(len);
    let file_len = file
        .metadata()
        .map_err(|e| RegistryError::io(&path, e))?
        .len();
    if len > file_len.saturating_sub(8) || len > 100_000_000 {
        return Err(RegistryError::corrupt(
            &path,
            format!("header length {len} exceeds the file"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header)
        .map_err(|e| RegistryError::io(&path, e))?;
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: BTreeMap<String, String>,
    }
    let header: Header = serde_json::from_slice(&header)
        .map_err(|e| RegistryError::corrupt(&path, format!("safetensors header: {e}")))?;
    Ok(header.metadata)
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
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
fn open_listed(path: &Path, name: &str, manifest: &Manifest) -> Result<File> {
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

fn check_digest(path: &Path, actual: FileDigest, expected: &ManifestEntry) -> Result<()> {
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
fn read_verified(path: &Path, name: &str, manifest: &Manifest) -> Result<Vec<u8>> {
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

/// Writes one safetensors file (header length, header, each tensor's values) through a
/// large buffer (the header and small tensors coalesce; large tensors go straight to the
/// file), hashing it on the way, and returns it, unsynced, with its manifest entry.
fn write_safetensors(
    path: &Path,
    header: &[u8],
    tensors: &[NamedTensor],
) -> Result<(File, ManifestEntry)> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| RegistryError::io(path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let header_len = (header.len() as u64).to_le_bytes();
    let parts = [&header_len[..], header]
        .into_iter()
        .chain(tensors.iter().map(NamedTensor::bytes));
    for part in parts {
        out.write_all(part)
            .map_err(|e| RegistryError::io(path, e))?;
        hasher.update(part);
        size += part.len() as u64;
    }
    let file = out
        .into_inner()
        .map_err(|e| RegistryError::io(path, e.into_error()))?;
    let digest = FileDigest::Blake3(hasher.finalize().to_hex().to_string());
    Ok((file, ManifestEntry { size, digest }))
}

fn sync_data(file: &File, path: &Path) -> Result<()> {
    file.sync_data().map_err(|e| RegistryError::io(path, e))
}

/// The JSON header, padded with spaces to a multiple of 8 bytes as the format recommends
/// (keeps tensor data aligned for zero-copy readers).
fn safetensors_header(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    if let Some(metadata) = metadata {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).expect("string map"),
        );
    }
    let mut offset = 0usize;
    let mut seen = BTreeSet::new();
    for tensor in tensors {
        if tensor.name.is_empty() || tensor.name == "__metadata__" {
            return Err(RegistryError::InvalidArgument(format!(
                "{}: tensor name {:?} is not allowed",
                path.display(),
                tensor.name
            )));
        }
        if !seen.insert(tensor.name.as_str()) {
            return Err(RegistryError::InvalidArgument(format!(
                "{}: two tensors are named {:?}",
                path.display(),
                tensor.name
            )));
        }
        if tensor.numel() != tensor.data.len() {
            return Err(RegistryError::InvalidArgument(format!(
                "{}: tensor {:?} has shape {:?} ({} values) but holds {} values",
                path.display(),
                tensor.name,
                tensor.shape,
                tensor.numel(),
                tensor.data.len()
            )));
        }
        let end = offset + tensor.data.len() * 4;
        header.insert(
            tensor.name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut bytes = serde_json::to_vec(&header).expect("a JSON map serialises");
    while !bytes.len().is_multiple_of(8) {
        bytes.push(b' ');
    }
    Ok(bytes)
}

/// Reads safetensors files written by [`write_safetensors`]. Each header is parsed and
/// validated by the `safetensors` crate (offsets contiguous, sizes matching shapes); then
/// the tensors are read straight into their values, each chunk hashed as it arrives, and
/// every digest is checked against the manifest.
fn read_tensor_files(
    dir: &Path,
    names: &[&str],
    manifest: &Manifest,
) -> Result<Vec<Vec<NamedTensor<'static>>>> {
    /// Small enough to stay in cache between the read and the hash.
    const CHUNK_VALUES: usize = 1 << 16;
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let (mut file, prefix, mut tensors) = open_tensor_file(&path, name, manifest)?;
            let mut hasher = FileHasher::of(&manifest.format);
            hasher.update(&prefix);
            for tensor in &mut tensors {
                for chunk in tensor.data.to_mut().chunks_mut(CHUNK_VALUES) {
                    let bytes: &mut [u8] = bytemuck::cast_slice_mut(chunk);
                    file.read_exact(bytes)
                        .map_err(|e| RegistryError::io(&path, e))?;
                    hasher.update(bytes);
                }
            }
            check_digest(&path, hasher.finish(), &manifest.files[*name])?;
            Ok(tensors)
        })
        .collect()
}

/// Opens a tensor file and reads its header: the file positioned at the tensor data, the
/// bytes read so far (hashed with the rest), and its tensors allocated to their sizes.
fn open_tensor_file(
    path: &Path,
    name: &str,
    manifest: &Manifest,
) -> Result<(File, Vec<u8>, Vec<NamedTensor<'static>>)> {
    let mut file = open_listed(path, name, manifest)?;
    let expected = &manifest.files[name];
    let io = |e: std::io::Error| RegistryError::io(path, e);
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let header_len = u64::from_le_bytes(len);
    if header_len > expected.size.saturating_sub(8) || header_len > 100_000_000 {
        return Err(RegistryError::corrupt(
            path,
            format!("corrupt: header length {header_len} exceeds the file"),
        ));
    }
    let mut prefix = vec![0u8; 8 + header_len as usize];
    prefix[..8].copy_from_slice(&len);
    file.read_exact(&mut prefix[8..]).map_err(io)?;
    let metadata: safetensors::tensor::Metadata =
        serde_json::from_slice(&prefix[8..]).map_err(|e| {
            RegistryError::corrupt(
                path,
                format!("corrupt: not a valid safetensors header: {e}"),
            )
        })?;
    if 8 + header_len + metadata.data_len() as u64 != expected.size {
        return Err(RegistryError::corrupt(
            path,
            "corrupt: the header does not describe the file's size",
        ));
    }
    let mut tensors = Vec::new();
    for tensor_name in metadata.offset_keys() {
        let info = metadata
            .info(&tensor_name)
            .expect("offset_keys lists known tensors");
        if info.dtype != safetensors::Dtype::F32 {
            return Err(RegistryError::corrupt(
                path,
                format!(
                    "tensor {tensor_name:?} has dtype {:?}; checkpoints hold F32 only",
                    info.dtype
                ),
            ));
        }
        let (start, end) = info.data_offsets;
        let values = vec![0f32; (end - start) / 4];
        tensors.push(NamedTensor::new(tensor_name, info.shape.clone(), values));
    }
    Ok((file, prefix, tensors))
}

fn entry_for(bytes: &[u8]) -> ManifestEntry {
    ManifestEntry {
        size: bytes.len() as u64,
        digest: FileDigest::Blake3(blake3::hash(bytes).to_hex().to_string()),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| {
        RegistryError::InvalidArgument(format!("cannot serialise checkpoint JSON: {e}"))
    })
}

fn from_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::corrupt(path, format!("invalid JSON: {e}")))
}

fn yaml_quote(value: &str) -> String {
    ratchet_mlflow::yaml::quote(value)
}

fn parent_dir(dir: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(dir).map_err(|e| RegistryError::io(dir, e))?;
    absolute.parent().map(Path::to_path_buf).ok_or_else(|| {
        RegistryError::InvalidArgument(format!("{} has no parent directory", dir.display()))
    })
}

/// Moves a finished directory to `target`. An existing target is swapped out first (it is
/// briefly absent, never half-written) and removed afterwards.
fn replace_dir(temp: &Path, target: &Path) -> Result<()> {
    let parent = parent_dir(target)?;
    let old = if target.exists() {
        let old = fsutil::temp_path(&parent, "replaced");
        fs::rename(target, &old).map_err(|e| RegistryError::io(target, e))?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(temp, target) {
        if let Some(old) = &old {
            let _ = fs::rename(old, target);
        }
        let _ = fsutil::remove_tree(temp);
        return Err(RegistryError::io(target, e));
    }
    fsutil::sync_dir(&parent)?;
    if let Some(old) = old {
        fsutil::remove_tree(&old)?;
    }
    Ok(())
}

/// sha256 over the tensors' names, shapes and values (not the header, which carries the
/// version id): equal for the same weights however they were saved.
pub fn weights_sha256(weights: &[NamedTensor]) -> String {
    let mut hasher = Sha256::new();
    for tensor in weights {
        hash_name_shape(&mut hasher, tensor);
        hasher.update(tensor.bytes());
    }
    hex(&hasher.finalize())
}

/// sha256 over the tensors' names and shapes: equal for the same network architecture.
pub fn network_hash(weights: &[NamedTensor]) -> String {
    let mut hasher = Sha256::new();
    for tensor in weights {
        hash_name_shape(&mut hasher, tensor);
    }
    hex(&hasher.finalize())
}

fn hash_name_shape(hasher: &mut Sha256, tensor: &NamedTensor) {
    hasher.update((tensor.name.len() as u64).to_le_bytes());
    hasher.update(tensor.name.as_bytes());
    hasher.update((tensor.shape.len() as u64).to_le_bytes());
    for dim in &tensor.shape {
        hasher.update((*dim as u64).to_le_bytes());
    }
}
