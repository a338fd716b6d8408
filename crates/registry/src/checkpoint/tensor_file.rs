//! The safetensors files of a checkpoint, written from borrowed tensors and hashed on the
//! way, read back straight into the tensors' values and checked against the manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use ratchet_tensors::NamedTensor;
use serde::Deserialize;

use super::MODEL_FILE;
use super::manifest::{FileDigest, FileHasher, Manifest, ManifestEntry, check_digest, open_listed};
use crate::error::{RegistryError, Result};

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

/// Writes one safetensors file (header length, header, each tensor's values) through a
/// large buffer (the header and small tensors coalesce; large tensors go straight to the
/// file), hashing it on the way, and returns it, unsynced, with its manifest entry.
pub(super) fn write_safetensors(
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

/// The JSON header, padded with spaces to a multiple of 8 bytes as the format recommends
/// (keeps tensor data aligned for zero-copy readers).
pub(super) fn safetensors_header(
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
pub(super) fn read_tensor_files(
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
pub(super) fn open_tensor_file(
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
