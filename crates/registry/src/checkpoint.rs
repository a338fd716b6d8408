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

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use ratchet_tensors::NamedTensor;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};
use crate::model_version::ModelVersion;
use ratchet_fsutil as fsutil;
use ratchet_mlflow::mlmodel::MlModel;

mod manifest;
mod tensor_file;

pub use manifest::{FileDigest, Manifest, ManifestEntry, verify};
use manifest::{entry_for, read_manifest, read_verified};
pub use tensor_file::read_header_metadata;
use tensor_file::{read_tensor_files, safetensors_header, write_safetensors};

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
        if !fsutil::replace_dir(&temp, dir)? {
            let _ = fsutil::remove_tree(&temp);
            return Err(RegistryError::InvalidArgument(format!(
                "cannot move the new checkpoint into {}",
                dir.display()
            )));
        }
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
            syncs.push(scope.spawn(|| Ok(fsutil::sync_dir(temp)?)));
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
        let semver = m.semver.to_string();
        let created = m.created_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        MlModel {
            artifact_path: &checkpoint_artifact_path(m, final_dir),
            flavor: FLAVOR,
            flavor_fields: &[
                ("format", CHECKPOINT_FORMAT),
                ("weights", MODEL_FILE),
                ("optimizer", OPTIMIZER_FILE),
                ("state_tensors", STATE_TENSORS_FILE),
                ("state", STATE_FILE),
                ("metadata", METADATA_FILE),
                ("manifest", MANIFEST_FILE),
                ("algorithm", &m.training.algorithm),
                ("ratchet_version", env!("CARGO_PKG_VERSION")),
            ],
            metadata: &[
                ("name", &m.name),
                ("version_id", &m.version_id),
                ("semver", &semver),
                ("feature_hash", &m.training.feature_hash),
            ],
            model_uuid: &model_uuid(m),
            run_id: m.run_id.as_deref(),
            utc_time_created: &created,
        }
        .to_yaml()
    }

    /// Reads and verifies a checkpoint.
    pub fn load(dir: &Path) -> Result<Checkpoint<'static>> {
        fsutil::restore_replaced(dir)?;
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
    hex::encode(&digest[..16])
}

impl Weights {
    /// Reads and verifies `model.safetensors` and `metadata.json` of a checkpoint (the
    /// other files are not read).
    pub fn load(dir: &Path) -> Result<Weights> {
        fsutil::restore_replaced(dir)?;
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

/// Reads `metadata.json` (checked against the manifest) without touching the tensors.
pub fn read_metadata(dir: &Path) -> Result<ModelVersion> {
    let manifest = read_manifest(dir)?;
    let path = dir.join(METADATA_FILE);
    let bytes = read_verified(&path, METADATA_FILE, &manifest)?;
    from_json(&path, &bytes)
}

fn sync_data(file: &File, path: &Path) -> Result<()> {
    file.sync_data().map_err(|e| RegistryError::io(path, e))
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

fn parent_dir(dir: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(dir).map_err(|e| RegistryError::io(dir, e))?;
    absolute.parent().map(Path::to_path_buf).ok_or_else(|| {
        RegistryError::InvalidArgument(format!("{} has no parent directory", dir.display()))
    })
}

/// sha256 over the tensors' names, shapes and values (not the header, which carries the
/// version id): equal for the same weights however they were saved.
pub fn weights_sha256(weights: &[NamedTensor]) -> String {
    let mut hasher = Sha256::new();
    for tensor in weights {
        hash_name_shape(&mut hasher, tensor);
        hasher.update(tensor.bytes());
    }
    hex::encode(hasher.finalize())
}

/// sha256 over the tensors' names and shapes: equal for the same network architecture.
pub fn network_hash(weights: &[NamedTensor]) -> String {
    let mut hasher = Sha256::new();
    for tensor in weights {
        hash_name_shape(&mut hasher, tensor);
    }
    hex::encode(hasher.finalize())
}

fn hash_name_shape(hasher: &mut Sha256, tensor: &NamedTensor) {
    hasher.update((tensor.name.len() as u64).to_le_bytes());
    hasher.update(tensor.name.as_bytes());
    hasher.update((tensor.shape.len() as u64).to_le_bytes());
    for dim in &tensor.shape {
        hasher.update((*dim as u64).to_le_bytes());
    }
}
