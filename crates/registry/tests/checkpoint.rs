//! Checkpoint directories: exact round trip, atomic replacement, corruption detection that
//! names the file, input validation, and Python's `safetensors` reading the weights.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use std::fs;
use std::path::Path;

use ratchet_registry::checkpoint::{self, MANIFEST_FILE, MODEL_FILE, OPTIMIZER_FILE};
use ratchet_registry::{
    Checkpoint, ModelVersion, NamedTensor, RegistryError, SemVer, VersionStatus,
};

fn sample_checkpoint(seed: u64) -> Checkpoint<'static> {
    let state = common::sample_state(seed, 32);
    let metadata = ModelVersion {
        name: "googl-dqn".into(),
        version: None,
        version_id: "v2026-11-22--14h05".into(),
        semver: SemVer::new(1, 2, 0),
        status: VersionStatus::Registered,
        created_at: "2026-11-22T14:05:00Z".parse().unwrap(),
        run_id: Some("0123456789abcdef0123456789abcdef".into()),
        weights_sha256: checkpoint::weights_sha256(&state.weights),
        network_hash: checkpoint::network_hash(&state.weights),
        aliases: vec![],
        training: common::sample_record("feat123", 1.25, None),
    };
    Checkpoint { state, metadata }
}

#[test]
fn round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let original = sample_checkpoint(1);
    let manifest = original.save(&target).unwrap();
    assert_eq!(manifest.files.len(), 6);
    let loaded = Checkpoint::load(&target).unwrap();
    assert_eq!(loaded, original);
    // Bit-exact, including values that compare equal but differ in bits.
    for (a, b) in loaded.state.weights.iter().zip(&original.state.weights) {
        let bits = |t: &NamedTensor| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b));
    }
    // Nothing but the checkpoint is left beside it.
    let entries: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("ckpt")]);
    let mut files: Vec<String> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "MANIFEST.json",
            "MLmodel",
            "metadata.json",
            "model.safetensors",
            "optimizer.safetensors",
            "state.json",
            "state.safetensors"
        ]
    );
}

#[test]
fn special_float_values_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut ckpt = sample_checkpoint(2);
    ckpt.state.optimizer[0].data.to_mut()[..4].copy_from_slice(&[
        f32::NAN,
        f32::INFINITY,
        -0.0,
        f32::MIN_POSITIVE / 2.0,
    ]);
    ckpt.save(&dir.path().join("c")).unwrap();
    let back = Checkpoint::load(&dir.path().join("c")).unwrap();
    let bits = |t: &NamedTensor| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&back.state.optimizer[0]),
        bits(&ckpt.state.optimizer[0])
    );
}

#[test]
fn saving_over_a_checkpoint_replaces_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    sample_checkpoint(1).save(&target).unwrap();
    let second = sample_checkpoint(2);
    second.save(&target).unwrap();
    assert_eq!(Checkpoint::load(&target).unwrap(), second);
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporaries left"
    );
}

/// A crash between the two renames of a replacement (the old checkpoint moved aside, the new
/// one not yet in) is repaired on the next load: the old checkpoint is back, whole.
#[test]
fn a_replacement_cut_between_its_renames_is_repaired_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let saved = sample_checkpoint(5);
    saved.save(&target).unwrap();
    std::fs::rename(&target, dir.path().join(".ratchet-replaced-ckpt")).unwrap();
    let loaded = Checkpoint::load(&target).unwrap();
    assert_eq!(loaded, saved);
    assert!(!dir.path().join(".ratchet-replaced-ckpt").exists());
}

fn expect_corrupt(dir: &Path, file: &str) {
    for result in [
        Checkpoint::load(dir).map(|_| ()),
        checkpoint::verify(dir).map(|_| ()),
    ] {
        match result {
            Err(RegistryError::Corrupt { path, message }) => {
                assert_eq!(
                    path.file_name().unwrap(),
                    file,
                    "wrong file blamed: {message}"
                );
            }
            other => panic!("expected a corruption error naming {file}, got {other:?}"),
        }
    }
}

#[test]
fn corruption_is_detected_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    sample_checkpoint(3).save(&target).unwrap();
    checkpoint::verify(&target).unwrap();

    // One flipped bit in the middle of the optimizer moments.
    let path = target.join(OPTIMIZER_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    expect_corrupt(&target, OPTIMIZER_FILE);
    bytes[middle] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    checkpoint::verify(&target).unwrap();

    // Truncated weights.
    let path = target.join(MODEL_FILE);
    let original = fs::read(&path).unwrap();
    fs::write(&path, &original[..original.len() - 10]).unwrap();
    expect_corrupt(&target, MODEL_FILE);
    fs::write(&path, &original).unwrap();

    // A missing file.
    fs::remove_file(target.join("state.json")).unwrap();
    expect_corrupt(&target, "state.json");

    // No manifest at all.
    fs::remove_file(target.join(MANIFEST_FILE)).unwrap();
    expect_corrupt(&target, MANIFEST_FILE);

    // Not a checkpoint directory.
    assert!(
        Checkpoint::load(&dir.path().join("nope"))
            .unwrap_err()
            .is_not_found()
    );
}

/// `tests/fixtures/checkpoint-sha256` is `sample_checkpoint(1)` as the first format wrote it
/// (a manifest of sha256 digests), before manifests moved to BLAKE3.
#[test]
fn a_checkpoint_of_the_sha256_format_still_verifies_and_loads() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-sha256");
    let manifest = checkpoint::verify(&fixture).unwrap();
    assert_eq!(manifest.format, checkpoint::MANIFEST_FORMAT_SHA256);
    assert!(matches!(
        manifest.files[MODEL_FILE].digest,
        checkpoint::FileDigest::Sha256(_)
    ));
    assert_eq!(Checkpoint::load(&fixture).unwrap(), sample_checkpoint(1));
    let weights = checkpoint::Weights::load(&fixture).unwrap();
    assert_eq!(weights.weights, sample_checkpoint(1).state.weights);

    // Its digests are still checked: a flipped bit is caught, with sha256.
    let dir = tempfile::tempdir().unwrap();
    for name in manifest.files.keys().chain([&MANIFEST_FILE.to_string()]) {
        fs::copy(fixture.join(name), dir.path().join(name)).unwrap();
    }
    let path = dir.path().join(OPTIMIZER_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("corrupt: sha256 "), "{err}");
    expect_corrupt(dir.path(), OPTIMIZER_FILE);
}

#[test]
fn new_checkpoints_list_blake3_digests() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let manifest = sample_checkpoint(2).save(&target).unwrap();
    assert_eq!(manifest.format, checkpoint::MANIFEST_FORMAT);
    let model = fs::read(target.join(MODEL_FILE)).unwrap();
    assert_eq!(
        manifest.files[MODEL_FILE],
        checkpoint::ManifestEntry {
            size: model.len() as u64,
            digest: checkpoint::FileDigest::Blake3(blake3::hash(&model).to_hex().to_string()),
        }
    );
    let written: serde_json::Value =
        serde_json::from_slice(&fs::read(target.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(
        written["files"][MODEL_FILE]["blake3"],
        blake3::hash(&model).to_hex().as_str()
    );
}

#[test]
fn weights_load_without_reading_the_other_tensor_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let original = sample_checkpoint(5);
    original.save(&target).unwrap();
    // Neither the optimizer moments nor the other state tensors are read (or checked).
    fs::remove_file(target.join(OPTIMIZER_FILE)).unwrap();
    fs::remove_file(target.join(checkpoint::STATE_TENSORS_FILE)).unwrap();
    let loaded = checkpoint::Weights::load(&target).unwrap();
    assert_eq!(loaded.weights, original.state.weights);
    assert_eq!(loaded.metadata, original.metadata);
}

#[test]
fn bad_tensors_are_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let mut ckpt = sample_checkpoint(4);
    ckpt.state.weights[1].data.to_mut().pop();
    let err = ckpt.save(&target).unwrap_err().to_string();
    assert!(err.contains("q_network.layers.0.bias"), "{err}");
    let mut dup = sample_checkpoint(4);
    let first = dup.state.weights[0].clone();
    dup.state.weights.push(first);
    let err = dup.save(&target).unwrap_err().to_string();
    assert!(err.contains("two tensors"), "{err}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing half-written left behind"
    );
}

#[test]
fn header_metadata_describes_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let ckpt = sample_checkpoint(5);
    ckpt.save(&target).unwrap();
    let header = checkpoint::read_header_metadata(&target).unwrap();
    assert_eq!(header["feature_hash"], "feat123");
    assert_eq!(header["algorithm"], "dqn");
    assert_eq!(header["observation_shape"], "[6]");
    assert_eq!(header["action_count"], "3");
    assert_eq!(header["version"], "v2026-11-22--14h05");
    assert_eq!(header["semver"], "1.2.0");
    assert_eq!(checkpoint::read_metadata(&target).unwrap(), ckpt.metadata);
}

#[test]
fn python_safetensors_reads_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let ckpt = sample_checkpoint(6);
    ckpt.save(&target).unwrap();
    for (file, tensors, with_metadata) in [
        (MODEL_FILE, &ckpt.state.weights, true),
        (OPTIMIZER_FILE, &ckpt.state.optimizer, false),
        ("state.safetensors", &ckpt.state.state_tensors, false),
    ] {
        let out = common::run_python(
            "safetensors_read.py",
            &[target.join(file).to_str().unwrap()],
        );
        let read = out["tensors"].as_object().unwrap();
        assert_eq!(read.len(), tensors.len(), "{file}");
        for tensor in tensors {
            let t = &read[&tensor.name];
            assert_eq!(t["dtype"], "float32", "{}", tensor.name);
            let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
            assert_eq!(shape, tensor.shape, "{}", tensor.name);
            let sum: f64 = tensor.data.iter().map(|&x| x as f64).sum();
            assert!(
                (t["sum"].as_f64().unwrap() - sum).abs() < 1e-9,
                "{}: sum differs",
                tensor.name
            );
            assert_eq!(
                t["first_bits"].as_u64().unwrap(),
                tensor.data[0].to_bits() as u64,
                "{}",
                tensor.name
            );
        }
        if with_metadata {
            let meta = &out["metadata"];
            assert_eq!(meta["feature_hash"], "feat123");
            assert_eq!(meta["algorithm"], "dqn");
            assert_eq!(meta["version"], "v2026-11-22--14h05");
            assert_eq!(meta["observation_shape"], "[6]");
            assert_eq!(meta["action_count"], "3");
        }
    }
}
