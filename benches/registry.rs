//! Registry speed: checkpoint save + load against copying the same bytes, and listing a
//! model with 10,000 versions.
//!
//! ```text
//! cargo bench --bench registry
//! ```
//!
//! - `checkpoint/save_load_1m_adam`: save then load (every checksum verified) a checkpoint of
//!   a 1,000,000-parameter network with its Adam moments (3M f32 = 12 MB of tensors).
//!   Saving fsyncs every file, so the fair baseline is `copy_fsync`.
//! - `checkpoint/std_fs_copy` and `checkpoint/std_fs_copy_fsync`: `std::fs::copy` of a
//!   file holding the same bytes (without / with fsync of the copy). Target: save + load
//!   within 2x of the copy. Neither side is charged for removing its files afterwards.
//! - `checkpoint/save_full_replay_1m`: save a checkpoint holding a full DQN replay buffer
//!   with the default trading observation (112 floats: 1,000,000 transitions, 905 MB),
//!   written from the live buffer. Before measuring, one save and one load are run once
//!   and their time and peak resident memory above the buffer's are printed (Linux: the
//!   peak is read from `/proc/self/status` after resetting it through
//!   `/proc/self/clear_refs`).
//! - `list_versions/10k_cached`: what `ratchet models list` does for a model with 10,000
//!   versions: open the store, `Registry::list` served from the version cache (the steady
//!   state; target < 100 ms), drop the result. The cache file is in the page cache, as it
//!   is after any listing.
//! - `list_versions/10k_cold`: the same after the cache was invalidated (every version's
//!   `meta.yaml` and tags read from disk).
//!
//! The 10,000-version store is built once through the store API (a few minutes: each
//! version is an fsynced directory rename) and kept in the system temp directory.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ratchet_agents::replay::ReplayBuffer;
use ratchet_mlflow::{FileStore, TrackingStore};
use ratchet_registry::checkpoint;
use ratchet_registry::tags;
use ratchet_registry::{
    Checkpoint, CheckpointState, ModelVersion, NamedTensor, Registry, SemVer, TrainingRecord,
    VersionFilter, VersionStatus,
};

fn values(seed: u32, n: usize) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// A 30 → 990 → 990 → 3 MLP: 1,000,023 parameters, plus Adam's two moments per parameter.
fn one_million_params() -> CheckpointState<'static> {
    let layers = [(990usize, 30usize), (990, 990), (3, 990)];
    let mut weights = Vec::new();
    for (i, (out, inp)) in layers.iter().enumerate() {
        weights.push(NamedTensor::new(
            format!("actor.layers.{i}.weight"),
            vec![*out, *inp],
            values(i as u32, out * inp),
        ));
        weights.push(NamedTensor::new(
            format!("actor.layers.{i}.bias"),
            vec![*out],
            values(100 + i as u32, *out),
        ));
    }
    let optimizer = weights
        .iter()
        .flat_map(|w| {
            [1, 2].map(|m| {
                NamedTensor::new(
                    format!("optim.{}.moment_{m}", w.name),
                    w.shape.clone(),
                    values(m, w.data.len()),
                )
            })
        })
        .collect();
    CheckpointState {
        weights,
        optimizer,
        state_tensors: vec![],
        state: serde_json::json!({ "total_steps": 1_000_000, "adam_step": 4882, "rng": [1, 2, 3, 4] }),
    }
}

fn metadata(state: &CheckpointState) -> ModelVersion {
    ModelVersion {
        name: "bench".into(),
        version: None,
        version_id: "v2026-01-01--00h00".into(),
        semver: SemVer::new(1, 0, 0),
        status: VersionStatus::Registered,
        created_at: Utc::now(),
        run_id: None,
        weights_sha256: checkpoint::weights_sha256(&state.weights),
        network_hash: checkpoint::network_hash(&state.weights),
        aliases: vec![],
        training: TrainingRecord {
            algorithm: "ppo".into(),
            feature_hash: "f".repeat(64),
            observation_shape: vec![30],
            action_count: 3,
            ..TrainingRecord::default()
        },
    }
}

fn checkpoints(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let state = one_million_params();
    let params: usize = state.weights.iter().map(|t| t.data.len()).sum();
    assert!(params >= 1_000_000, "{params} parameters");
    let ckpt = Checkpoint {
        metadata: metadata(&state),
        state,
    };
    let target = dir.path().join("ckpt");
    ckpt.save(&target).unwrap();
    let tensor_bytes: u64 = [
        "model.safetensors",
        "optimizer.safetensors",
        "state.safetensors",
    ]
    .iter()
    .map(|f| fs::metadata(target.join(f)).unwrap().len())
    .sum();
    // One file of the same size for the copy baseline.
    let source = dir.path().join("same-bytes.bin");
    let blob: Vec<u8> = (0..tensor_bytes).map(|i| (i % 251) as u8).collect();
    fs::write(&source, &blob).unwrap();

    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Bytes(tensor_bytes));
    // Each iteration writes to a fresh path; the previous one is removed in the untimed
    // setup, so neither side is charged for deleting files (on a busy ext4 journal each
    // unlink can wait milliseconds, and a checkpoint has nine entries to the copy's one).
    let mut n = 0u64;
    let mut previous: Option<PathBuf> = None;
    let mut fresh = |prefix: &str| {
        if let Some(old) = previous.take() {
            remove_path(&old);
        }
        n += 1;
        let path = dir.path().join(format!("{prefix}{n}"));
        previous = Some(path.clone());
        path
    };
    group.bench_function("save_load_1m_adam", |b| {
        b.iter_batched(
            || fresh("c"),
            |path| {
                ckpt.save(&path).unwrap();
                Checkpoint::load(&path).unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    for fsync in [false, true] {
        let name = if fsync {
            "std_fs_copy_fsync"
        } else {
            "std_fs_copy"
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || fresh("copy"),
                |path| {
                    fs::copy(&source, &path).unwrap();
                    if fsync {
                        fs::File::open(&path).unwrap().sync_all().unwrap();
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Floats per observation with the default trading features: window 10 x 11 features,
/// position and unrealised return.
const TRADING_OBSERVATION: usize = 112;

/// A DQN replay buffer holding its default capacity of 1,000,000 transitions.
fn full_replay_buffer() -> ReplayBuffer {
    let capacity = 1_000_000;
    let mut buffer = ReplayBuffer::new(capacity, TRADING_OBSERVATION);
    let observations = values(9, 2 * TRADING_OBSERVATION);
    let (observation, next) = observations.split_at(TRADING_OBSERVATION);
    for i in 0..capacity {
        buffer.push(observation, (i % 3) as u32, 0.25, next, i % 500 == 0);
    }
    buffer
}

/// (`VmRSS`, `VmHWM`) of this process, in MB.
fn resident_mb() -> (u64, u64) {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs `f` once and prints its time and how far resident memory peaked above where it
/// started.
fn report_peak<T>(what: &str, f: impl FnOnce() -> T) -> T {
    // Writing 5 resets the peak (VmHWM) to the current resident memory.
    fs::write("/proc/self/clear_refs", "5").unwrap();
    let (start, _) = resident_mb();
    let clock = Instant::now();
    let out = f();
    let seconds = clock.elapsed().as_secs_f64();
    let (_, peak) = resident_mb();
    eprintln!(
        "{what}: {seconds:.2} s, peak resident memory {peak} MB = {start} MB before + {} MB",
        peak - start
    );
    out
}

fn replay_checkpoint(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let buffer = full_replay_buffer();
    let checkpoint = || {
        let state = CheckpointState {
            state_tensors: buffer.tensors("replay"),
            ..CheckpointState::default()
        };
        Checkpoint {
            metadata: metadata(&state),
            state,
        }
    };
    let target = dir.path().join("replay");
    let bytes = report_peak("save a full 1M-transition replay buffer (905 MB)", || {
        checkpoint().save(&target).unwrap();
        fs::metadata(target.join(checkpoint::STATE_TENSORS_FILE))
            .unwrap()
            .len()
    });
    report_peak("load it back (a second copy: the loaded state)", || {
        Checkpoint::load(&target).unwrap()
    });
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("save_full_replay_1m", |b| {
        b.iter(|| checkpoint().save(&target).unwrap())
    });
    group.finish();
}

fn remove_path(path: &Path) {
    if path.is_dir() {
        fs::remove_dir_all(path).unwrap();
    } else {
        fs::remove_file(path).unwrap();
    }
}

const VERSIONS: u64 = 10_000;

/// A store whose model `big` has 10,000 versions carrying the tags `Registry::register`
/// writes, built once and reused.
fn ten_thousand_versions() -> PathBuf {
    let root = std::env::temp_dir().join("ratchet-bench-registry-10k-v1");
    let done = root.join(".bench-complete");
    if done.exists() {
        return root;
    }
    let _ = fs::remove_dir_all(&root);
    eprintln!(
        "building {} with {VERSIONS} versions (once)…",
        root.display()
    );
    let store = FileStore::open(&root).unwrap();
    let exp = store.get_or_create_experiment("bench").unwrap();
    let run = store.create_run(&exp.experiment_id, "bench", &[]).unwrap();
    store.create_registered_model("big").unwrap();
    let created = Utc::now().to_rfc3339();
    for v in 1..=VERSIONS {
        let metrics = format!(
            "{{\"max_drawdown\":0.{:03},\"sharpe\":{}.{:02},\"total_return\":0.{:02}}}",
            v % 1000,
            v % 3,
            v % 100,
            v % 97
        );
        let version_tags: Vec<(String, String)> = [
            (tags::VERSION_ID, format!("v2026-01-01--00h00-{v}")),
            (tags::SEMVER, format!("1.{v}.0")),
            (tags::STATUS, "registered".into()),
            (tags::CREATED_AT, created.clone()),
            (tags::ALGORITHM, "ppo".into()),
            (tags::FEATURE_HASH, "f".repeat(64)),
            (tags::NETWORK_HASH, "n".repeat(64)),
            (tags::WEIGHTS_SHA256, format!("{v:064}")),
            (tags::METRICS, metrics),
            (tags::TRAINING_STEPS, "100000".into()),
            (tags::OBSERVATION_SHAPE, "[30]".into()),
            (tags::ACTION_COUNT, "3".into()),
            (tags::CHECKPOINT, format!("checkpoints/v{v}")),
            (tags::PARENT, format!("models:/big/{}", v.max(2) - 1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let source = store
            .artifact_uri(&run.run_id, &format!("checkpoints/v{v}"))
            .unwrap();
        store
            .create_model_version("big", &source, &run.run_id, &version_tags, Some("bench"))
            .unwrap();
    }
    fs::write(&done, "").unwrap();
    root
}

fn invalidate_cache(root: &Path) {
    let _ = fs::remove_file(root.join("models/big/.ratchet-versions.bin"));
}

fn listing(c: &mut Criterion) {
    let root = ten_thousand_versions();
    let registry = Registry::new(Arc::new(FileStore::open(&root).unwrap()));
    let all = registry.list("big", &VersionFilter::default()).unwrap();
    assert_eq!(all.len() as u64, VERSIONS);
    let mut group = c.benchmark_group("list_versions");
    group.sample_size(20);
    group.bench_function("10k_cached", |b| {
        b.iter(|| {
            let registry = Registry::open(root.to_str().unwrap()).unwrap();
            black_box(
                registry
                    .list("big", &VersionFilter::default())
                    .unwrap()
                    .len(),
            )
        })
    });
    group.sample_size(10);
    group.bench_function("10k_cold", |b| {
        b.iter_batched(
            || invalidate_cache(&root),
            |()| {
                black_box(
                    registry
                        .list("big", &VersionFilter::default())
                        .unwrap()
                        .len(),
                )
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, checkpoints, replay_checkpoint, listing);
criterion_main!(benches);
