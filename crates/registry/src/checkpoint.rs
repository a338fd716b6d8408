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
//! MANIFEST.json          size and sha256 of every file above
//! ```
//!
//! Saving builds the directory under a temporary name beside the target, fsyncs it and
//! renames it into place, so a reader never sees a half-written checkpoint. Loading checks
//! every file against the manifest and names the one that is missing or corrupt.
//!
//! ```no_run
//! use ratchet_registry::{Checkpoint, CheckpointState, Tensor};
//! # fn metadata() -> ratchet_registry::ModelVersion { unimplemented!() }
//!
//! let checkpoint = Checkpoint {
//!     state: CheckpointState {
//!         weights: vec![Tensor::new("actor.layers.0.weight", vec![64, 30], vec![0.0; 64 * 30])],
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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};
use crate::model_version::ModelVersion;
use crate::sha256x2;
use ratchet_mlflow::fsutil;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_TENSORS_FILE: &str = "state.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const METADATA_FILE: &str = "metadata.json";
pub const MLMODEL_FILE: &str = "MLmodel";
pub const MANIFEST_FILE: &str = "MANIFEST.json";
/// Identifies the layout; bumped on incompatible changes.
pub const CHECKPOINT_FORMAT: &str = "ratchet-checkpoint/1";
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

/// One named `f32` tensor, row-major. Plain data so any framework converts to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        Tensor {
            name: name.into(),
            shape,
            data,
        }
    }

    /// Number of elements the shape describes.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The training state a checkpoint holds, as plain data: the three tensor groups and the
/// JSON of everything else. Training code converts its own types to and from this.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckpointState {
    /// Network weights, named by parameter path → `model.safetensors`.
    pub weights: Vec<Tensor>,
    /// Optimizer moments, named by the parameter path they belong to →
    /// `optimizer.safetensors`.
    pub optimizer: Vec<Tensor>,
    /// Other state tensors such as the DQN replay buffer (may be empty) →
    /// `state.safetensors`.
    pub state_tensors: Vec<Tensor>,
    /// Counters, schedule positions, RNG states, episode statistics → `state.json`.
    pub state: serde_json::Value,
}

/// A complete checkpoint in memory: the state plus its [`ModelVersion`] metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub state: CheckpointState,
    pub metadata: ModelVersion,
}

/// One file's entry in `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub size: u64,
    pub sha256: String,
}

/// `MANIFEST.json`: the checksum of every other file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub files: BTreeMap<String, ManifestEntry>,
}

impl Checkpoint {
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
            // sha256 is the dominant cost: one thread hashes the tensor files from memory
            // (two in lockstep, see `sha256x2`) while this one writes them, and each file is
            // fsynced on its own thread as soon as it is written, so its writeback overlaps
            // the hashing and the other writes.
            let hasher = scope.spawn(|| {
                sha256x2::digest_all(
                    tensor_files
                        .iter()
                        .map(|(_, header, tensors)| safetensors_parts(header, tensors))
                        .collect(),
                )
            });
            let mut syncs = Vec::new();
            for (name, bytes) in &small_files {
                let path = temp.join(name);
                let file = fsutil::write_new_file(&path, bytes, false)?;
                syncs.push(scope.spawn(move || sync_data(&file, &path)));
                files.insert(name.to_string(), entry_for(bytes));
            }
            let mut sizes = BTreeMap::new();
            for (name, header, tensors) in &tensor_files {
                let path = temp.join(name);
                let (file, size) = write_safetensors(&path, header, tensors)?;
                syncs.push(scope.spawn(move || sync_data(&file, &path)));
                sizes.insert(*name, size);
            }
            let digests = hasher.join().expect("checkpoint hasher thread panicked");
            for ((name, _, _), digest) in tensor_files.iter().zip(digests) {
                let size = sizes[name];
                let sha256 = hex(&digest);
                files.insert(name.to_string(), ManifestEntry { size, sha256 });
            }
            let manifest = Manifest {
                format: CHECKPOINT_FORMAT.into(),
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
    pub fn load(dir: &Path) -> Result<Checkpoint> {
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
    if manifest.format != CHECKPOINT_FORMAT {
        return Err(RegistryError::corrupt(
            &path,
            format!(
                "format {:?} is not {CHECKPOINT_FORMAT:?}; this build cannot read it",
                manifest.format
            ),
        ));
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

fn check_digest(path: &Path, actual: &str, expected: &ManifestEntry) -> Result<()> {
    if actual != expected.sha256 {
        return Err(RegistryError::corrupt(
            path,
            format!(
                "corrupt: sha256 {actual} does not match the manifest's {}",
                expected.sha256
            ),
        ));
    }
    Ok(())
}

/// Reads a whole file with one allocation of the right size and checks size and sha256.
fn read_verified(path: &Path, name: &str, manifest: &Manifest) -> Result<Vec<u8>> {
    let mut file = open_listed(path, name, manifest)?;
    let expected = &manifest.files[name];
    let mut bytes = Vec::with_capacity(expected.size as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| RegistryError::io(path, e))?;
    check_digest(path, &hex(&Sha256::digest(&bytes)), expected)?;
    Ok(bytes)
}

/// The bytes of a safetensors file in order: header length, header, each tensor's data.
fn safetensors_parts<'a>(
    header: &'a [u8],
    tensors: &'a [Tensor],
) -> impl Iterator<Item = Cow<'a, [u8]>> {
    [
        Cow::Owned((header.len() as u64).to_le_bytes().to_vec()),
        Cow::Borrowed(header),
    ]
    .into_iter()
    .chain(tensors.iter().map(|t| f32_bytes(&t.data)))
}

/// Writes one safetensors file through a large buffer (the header and small tensors
/// coalesce; large tensors go straight to the file) and returns it, unsynced, with its size.
fn write_safetensors(path: &Path, header: &[u8], tensors: &[Tensor]) -> Result<(File, u64)> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| RegistryError::io(path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut size = 0u64;
    for part in safetensors_parts(header, tensors) {
        out.write_all(&part)
            .map_err(|e| RegistryError::io(path, e))?;
        size += part.len() as u64;
    }
    let file = out
        .into_inner()
        .map_err(|e| RegistryError::io(path, e.into_error()))?;
    Ok((file, size))
}

fn sync_data(file: &File, path: &Path) -> Result<()> {
    file.sync_data().map_err(|e| RegistryError::io(path, e))
}

/// The JSON header, padded with spaces to a multiple of 8 bytes as the format recommends
/// (keeps tensor data aligned for zero-copy readers).
fn safetensors_header(
    path: &Path,
    tensors: &[Tensor],
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
/// this thread reads the tensors straight into their `Vec<f32>`s, a chunk of each file in
/// turn, and a second thread hashes the chunks as they arrive (two files in lockstep, see
/// `sha256x2`), so reading and hashing overlap. Every digest is checked against the
/// manifest at the end.
fn read_tensor_files(dir: &Path, names: &[&str], manifest: &Manifest) -> Result<Vec<Vec<Tensor>>> {
    /// Small enough to start hashing early, large enough that messages cost nothing.
    const CHUNK_VALUES: usize = 1 << 18;
    let paths: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    let mut handles = Vec::new();
    let mut prefixes = Vec::new();
    let mut tensors = Vec::new();
    for (path, name) in paths.iter().zip(names) {
        let (file, prefix, file_tensors) = open_tensor_file(path, name, manifest)?;
        handles.push(file);
        prefixes.push(prefix);
        tensors.push(file_tensors);
    }
    let digests = std::thread::scope(|scope| -> Result<Vec<[u8; 32]>> {
        let (senders, streams): (Vec<_>, Vec<_>) = prefixes
            .iter()
            .map(|prefix| {
                let (sender, chunks) = std::sync::mpsc::channel::<Cow<'_, [u8]>>();
                (
                    sender,
                    std::iter::once(Cow::Borrowed(&prefix[..])).chain(chunks),
                )
            })
            .unzip();
        let hasher = scope.spawn(|| sha256x2::digest_all(streams));
        let mut chunks: Vec<_> = tensors
            .iter_mut()
            .map(|file_tensors| {
                file_tensors
                    .iter_mut()
                    .flat_map(|t| t.data.chunks_mut(CHUNK_VALUES))
            })
            .collect();
        loop {
            let mut more = false;
            for (i, file_chunks) in chunks.iter_mut().enumerate() {
                if let Some(chunk) = file_chunks.next() {
                    read_f32s(&mut handles[i], chunk)
                        .map_err(|e| RegistryError::io(&paths[i], e))?;
                    let chunk: &[f32] = chunk;
                    senders[i]
                        .send(f32_bytes(chunk))
                        .expect("the hasher outlives the reader");
                    more = true;
                }
            }
            if !more {
                break;
            }
        }
        drop(senders);
        Ok(hasher.join().expect("checkpoint hasher thread panicked"))
    })?;
    for ((path, name), digest) in paths.iter().zip(names).zip(digests) {
        check_digest(path, &hex(&digest), &manifest.files[*name])?;
    }
    Ok(tensors)
}

/// Opens a tensor file and reads its header: the file positioned at the tensor data, the
/// bytes read so far (hashed with the rest), and its tensors allocated to their sizes.
fn open_tensor_file(
    path: &Path,
    name: &str,
    manifest: &Manifest,
) -> Result<(File, Vec<u8>, Vec<Tensor>)> {
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
        tensors.push(Tensor {
            shape: info.shape.clone(),
            data: vec![0f32; (end - start) / 4],
            name: tensor_name,
        });
    }
    Ok((file, prefix, tensors))
}

/// Fills `data` from little-endian bytes.
fn read_f32s(file: &mut File, data: &mut [f32]) -> std::io::Result<()> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: every bit pattern is a valid f32, u8 has alignment 1, and the byte view
        // covers exactly the slice's memory.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                data.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(data),
            )
        };
        file.read_exact(bytes)
    }
    #[cfg(not(target_endian = "little"))]
    {
        let mut bytes = vec![0u8; data.len() * 4];
        file.read_exact(&mut bytes)?;
        for (x, c) in data.iter_mut().zip(bytes.chunks_exact(4)) {
            *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
}

/// The little-endian bytes of an `f32` slice, borrowed where the CPU is little-endian.
fn f32_bytes(data: &[f32]) -> Cow<'_, [u8]> {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: f32 has no padding and no invalid bit patterns, u8 has alignment 1, and
        // the byte length is exactly the slice's size in memory.
        Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data))
        })
    }
    #[cfg(not(target_endian = "little"))]
    {
        Cow::Owned(data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

fn entry_for(bytes: &[u8]) -> ManifestEntry {
    ManifestEntry {
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(bytes)),
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
pub fn weights_sha256(weights: &[Tensor]) -> String {
    let mut hasher = Sha256::new();
    for tensor in weights {
        hash_name_shape(&mut hasher, tensor);
        hasher.update(f32_bytes(&tensor.data));
    }
    hex(&hasher.finalize())
}

/// sha256 over the tensors' names and shapes: equal for the same network architecture.
pub fn network_hash(weights: &[Tensor]) -> String {
    let mut hasher = Sha256::new();
    for tensor in weights {
        hash_name_shape(&mut hasher, tensor);
    }
    hex(&hasher.finalize())
}

fn hash_name_shape(hasher: &mut Sha256, tensor: &Tensor) {
    hasher.update((tensor.name.len() as u64).to_le_bytes());
    hasher.update(tensor.name.as_bytes());
    hasher.update((tensor.shape.len() as u64).to_le_bytes());
    for dim in &tensor.shape {
        hasher.update((*dim as u64).to_le_bytes());
    }
}
