//! Feature cache: miss, hit, corrupt and foreign files, atomic writes.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;

use ratchet_data::{
    CacheOutcome, DataError, FeatureCache, FeatureConfig, FeatureSpec, LoadOptions, LoadedBars,
    Normalization, compute_features, load_bars,
};

fn googl() -> LoadedBars {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/STOCKS_GOOGL.csv");
    load_bars(&path, &LoadOptions::default()).unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn miss_then_hit_returns_identical_frames() {
    let data = googl();
    let cfg = FeatureConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let cache = FeatureCache::new(dir.path().join("features"));

    let (computed, outcome) = cache
        .load_or_compute(&data.bars, &data.sha256, &cfg)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(computed, compute_features(&data.bars, &cfg).unwrap());
    let path = cache.path_for(&cfg, &data.sha256);
    assert!(path.exists());
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .contains(&cfg.hash())
    );
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .contains(&data.sha256)
    );
    // Only the final file: no temporary left behind.
    assert_eq!(files_in(cache.dir()).len(), 1);

    let (cached, outcome) = cache
        .load_or_compute(&data.bars, &data.sha256, &cfg)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(cached, computed);
    assert!(
        cached
            .values
            .iter()
            .zip(&computed.values)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );

    // A different config or different data is a different entry.
    let other_cfg = FeatureConfig {
        normalization: Normalization::None,
        ..FeatureConfig::default()
    };
    let (_, outcome) = cache
        .load_or_compute(&data.bars, &data.sha256, &other_cfg)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    let other_sha = "0".repeat(64);
    let (_, outcome) = cache.load_or_compute(&data.bars, &other_sha, &cfg).unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(files_in(cache.dir()).len(), 3);
}

fn recomputed_reason(outcome: CacheOutcome) -> String {
    match outcome {
        CacheOutcome::Recomputed { reason } => reason,
        other => panic!("expected Recomputed, got {other:?}"),
    }
}

#[test]
fn corrupt_files_are_recomputed_not_trusted() {
    let data = googl();
    let cfg = FeatureConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let cache = FeatureCache::new(dir.path());
    let (expected, _) = cache
        .load_or_compute(&data.bars, &data.sha256, &cfg)
        .unwrap();
    let path = cache.path_for(&cfg, &data.sha256);
    let good = std::fs::read(&path).unwrap();

    // Truncated.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let (frame, outcome) = cache
        .load_or_compute(&data.bars, &data.sha256, &cfg)
        .unwrap();
    let reason = recomputed_reason(outcome);
    assert!(!reason.is_empty());
    assert_eq!(frame, expected);
    // The file was replaced by a good one.
    assert_eq!(
        cache
            .load_or_compute(&data.bars, &data.sha256, &cfg)
            .unwrap()
            .1,
        CacheOutcome::Hit
    );

    // Empty.
    std::fs::write(&path, b"").unwrap();
    recomputed_reason(
        cache
            .load_or_compute(&data.bars, &data.sha256, &cfg)
            .unwrap()
            .1,
    );

    // Single bytes flipped throughout the file: never a wrong frame, never an error.
    for i in (0..good.len()).step_by(good.len() / 23 + 1) {
        let mut bad = good.clone();
        bad[i] ^= 0x55;
        std::fs::write(&path, &bad).unwrap();
        let (frame, outcome) = cache
            .load_or_compute(&data.bars, &data.sha256, &cfg)
            .unwrap();
        assert_eq!(
            frame, expected,
            "byte {i} flipped gave a wrong frame ({outcome:?})"
        );
        assert_ne!(outcome, CacheOutcome::Miss);
    }
    assert_eq!(files_in(dir.path()).len(), 1);
}

#[test]
fn foreign_file_under_the_right_name_is_rejected() {
    let data = googl();
    let dir = tempfile::tempdir().unwrap();
    let cache = FeatureCache::new(dir.path());
    let cfg = FeatureConfig::default();
    let other = FeatureConfig {
        features: vec![FeatureSpec::LogReturn { k: 1 }],
        ..FeatureConfig::default()
    };
    cache
        .load_or_compute(&data.bars, &data.sha256, &other)
        .unwrap();
    std::fs::rename(
        cache.path_for(&other, &data.sha256),
        cache.path_for(&cfg, &data.sha256),
    )
    .unwrap();
    let (frame, outcome) = cache
        .load_or_compute(&data.bars, &data.sha256, &cfg)
        .unwrap();
    let reason = recomputed_reason(outcome);
    assert!(reason.contains("feature_hash"), "{reason}");
    assert_eq!(frame, compute_features(&data.bars, &cfg).unwrap());

    // The right file, but the caller's bars are not the data it was made from.
    let shorter = data.bars.slice(0..2000);
    let (frame, outcome) = cache.load_or_compute(&shorter, &data.sha256, &cfg).unwrap();
    let reason = recomputed_reason(outcome);
    assert!(reason.contains("rows"), "{reason}");
    assert_eq!(frame.rows(), 2000 - cfg.warm_up());
}

#[test]
fn unusable_arguments_and_directories_are_errors() {
    let data = googl();
    let dir = tempfile::tempdir().unwrap();
    let cfg = FeatureConfig::default();
    let cache = FeatureCache::new(dir.path());
    let err = cache
        .load_or_compute(&data.bars, "../../etc/passwd", &cfg)
        .unwrap_err();
    assert!(matches!(err, DataError::Cache { .. }), "{err:?}");

    // The cache "directory" is a file: a clear error, not a panic.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = FeatureCache::new(&file)
        .load_or_compute(&data.bars, &data.sha256, &cfg)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DataError::Cache { .. }) && msg.contains("writable"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}
