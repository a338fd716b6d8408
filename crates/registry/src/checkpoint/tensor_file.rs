//! The safetensors files of a checkpoint, written from borrowed tensors and hashed on the
//! way, read back straight into the tensors' values and checked against the manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use ratchet_tensors::NamedTensor;
use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorInfo};
use serde::Serialize;

use super::MODEL_FILE;
use super::manifest::{FileDigest, FileHasher, Manifest, ManifestEntry, check_digest, open_listed};
use crate::error::{RegistryError, Result};

/// The `__metadata__` map of `model.safetensors` (reads only the header).
pub fn read_header_metadata(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join(MODEL_FILE);
    let mut file = File::open(&path).map_err(|e| RegistryError::io(&path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| RegistryError::io(&path, e))?
        .len();
    let (_, header) = read_header(&mut file, &path, file_len)?;
    Ok(header
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// Reads a safetensors header from the start of `file` (whose size is `file_len`): the
/// bytes read (the length prefix and the JSON, hashed with the rest by callers that check
/// digests) and the header, parsed and validated by the `safetensors` crate (offsets
/// contiguous, sizes matching shapes), which must describe exactly the file's size.
fn read_header(file: &mut File, path: &Path, file_len: u64) -> Result<(Vec<u8>, Metadata)> {
    let io = |e: std::io::Error| RegistryError::io(path, e);
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let header_len = u64::from_le_bytes(len);
    if header_len > file_len.saturating_sub(8) || header_len > 100_000_000 {
        return Err(RegistryError::corrupt(
            path,
            format!("corrupt: header length {header_len} exceeds the file"),
        ));
    }
    let mut prefix = vec![0u8; 8 + header_len as usize];
    prefix[..8].copy_from_slice(&len);
    file.read_exact(&mut prefix[8..]).map_err(io)?;
    let header: Metadata = serde_json::from_slice(&prefix[8..]).map_err(|e| {
        RegistryError::corrupt(
            path,
            format!("corrupt: not a valid safetensors header: {e}"),
        )
    })?;
    if 8 + header_len + header.data_len() as u64 != file_len {
        return Err(RegistryError::corrupt(
            path,
            "corrupt: the header does not describe the file's size",
        ));
    }
    Ok((prefix, header))
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

/// The JSON header, built and validated by the `safetensors` crate and padded with spaces
/// to a multiple of 8 bytes as the format recommends (keeps tensor data aligned for
/// zero-copy readers). `__metadata__` comes first, its keys sorted, then the tensors in file
/// order, so equal checkpoints have equal bytes.
pub(super) fn safetensors_header(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    let refused =
        |why: String| RegistryError::InvalidArgument(format!("{}: {why}", path.display()));
    let mut seen = BTreeSet::new();
    let mut offset = 0usize;
    let mut infos = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        if tensor.name.is_empty() || tensor.name == "__metadata__" {
            return Err(refused(format!(
                "tensor name {:?} is not allowed",
                tensor.name
            )));
        }
        if !seen.insert(tensor.name.as_str()) {
            return Err(refused(format!("two tensors are named {:?}", tensor.name)));
        }
        if tensor.numel() != tensor.data.len() {
            return Err(refused(format!(
                "tensor {:?} has shape {:?} ({} values) but holds {} values",
                tensor.name,
                tensor.shape,
                tensor.numel(),
                tensor.data.len()
            )));
        }
        let end = offset + tensor.data.len() * 4;
        let info = TensorInfo {
            dtype: Dtype::F32,
            shape: tensor.shape.clone(),
            data_offsets: (offset, end),
        };
        infos.push((tensor.name.clone(), info));
        offset = end;
    }
    let tensors = Metadata::new(None, infos).map_err(|e| refused(e.to_string()))?;
    /// The crate's own header keeps `__metadata__` in a `HashMap` (unordered); this one
    /// writes it sorted.
    #[derive(Serialize)]
    struct Header<'a> {
        #[serde(rename = "__metadata__", skip_serializing_if = "Option::is_none")]
        metadata: Option<&'a BTreeMap<String, String>>,
        #[serde(flatten)]
        tensors: &'a Metadata,
    }
    let mut bytes = serde_json::to_vec(&Header {
        metadata,
        tensors: &tensors,
    })
    .map_err(|e| refused(e.to_string()))?;
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
    let (prefix, metadata) = read_header(&mut file, path, manifest.files[name].size)?;
    let mut tensors = Vec::new();
    for tensor_name in metadata.offset_keys() {
        let info = metadata
            .info(&tensor_name)
            .expect("offset_keys lists known tensors");
        if info.dtype != Dtype::F32 {
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
