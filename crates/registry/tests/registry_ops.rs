//! Every registry operation the CLI exposes, on a real file store.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use ratchet_mlflow::{Checked, FileStore, TrackingStore};
use ratchet_registry::tags;
use ratchet_registry::{
    CompatibilityTarget, MetricDirection, MetricFilter, ModelRef, ParentRef, Registry,
    RegistryError, RetentionPolicy, SemVer, VersionFilter, VersionStatus,
};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Checked<FileStore>>,
    registry: Registry,
    run_id: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path().join("mlruns")).unwrap());
    let registry = Registry::new(store.clone());
    let exp = store.get_or_create_experiment("ops").unwrap();
    let run_id = store
        .create_run(&exp.experiment_id, "train", &[])
        .unwrap()
        .run_id;
    Fixture {
        _dir: dir,
        store,
        registry,
        run_id,
    }
}

fn parent(name: &str, version: u64) -> Option<ParentRef> {
    Some(ParentRef {
        name: name.into(),
        version,
    })
}

fn r(uri: &str) -> ModelRef {
    ModelRef::parse(uri).unwrap()
}

/// v1 fresh; v2 continues v1; v3 continues v2 with new features; v4 re-registers v2's
/// weights; v5 continues v2.
fn chain(f: &Fixture) {
    let reg = |seed, features: &str, sharpe, parent| {
        f.registry
            .register(
                "m",
                &f.run_id,
                common::sample_state(seed, 8),
                common::sample_record(features, sharpe, parent),
            )
            .unwrap()
    };
    reg(1, "fa", 0.5, None);
    reg(2, "fa", 1.5, parent("m", 1));
    reg(3, "fb", 1.0, parent("m", 2));
    reg(2, "fa", 1.5, parent("m", 1));
    reg(5, "fa", 2.5, parent("m", 2));
}

#[test]
fn register_assigns_numbers_ids_and_semvers() {
    let f = fixture();
    chain(&f);
    let versions = f.registry.list("m", &VersionFilter::default()).unwrap();
    let semvers: Vec<String> = versions
        .iter()
        .map(|v| v.semver.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(semvers, ["1.0.0", "1.1.0", "2.0.0", "1.1.1", "1.2.0"]);
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // Human ids: same minute → suffixes; all unique and parseable in URIs.
    let ids: Vec<String> = versions
        .iter()
        .map(|v| v.version_id.clone().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 5);
    for (v, id) in versions.iter().zip(&ids) {
        let by_id = f.registry.get(&r(&format!("models:/m/{id}"))).unwrap();
        assert_eq!(by_id.version, Some(v.version));
        assert_eq!(&by_id.version_id, id);
        assert_eq!(by_id.status, VersionStatus::Registered);
    }
    // Full metadata round trip.
    let v2 = f.registry.get(&r("models:/m/2")).unwrap();
    assert_eq!(
        v2.training,
        common::sample_record("fa", 1.5, parent("m", 1))
    );
    assert_eq!(v2.run_id.as_deref(), Some(f.run_id.as_str()));
    assert_eq!(
        f.registry.get(&r("models:/m/latest")).unwrap().version,
        Some(5)
    );
    // The checkpoint loads back to exactly the registered state.
    let loaded = f.registry.load_checkpoint(&r("models:/m/3")).unwrap();
    assert_eq!(loaded.state, common::sample_state(3, 8));
    assert_eq!(loaded.metadata.version, Some(3));
    assert_eq!(
        f.registry.feature_config(&r("models:/m/1")).unwrap()["window"],
        32
    );
}

#[test]
fn registration_errors_are_clear() {
    let f = fixture();
    let state = || common::sample_state(1, 4);
    let err = f
        .registry
        .register(
            "a/b",
            &f.run_id,
            state(),
            common::sample_record("f", 1.0, None),
        )
        .unwrap_err();
    assert!(matches!(err, RegistryError::InvalidName { .. }), "{err}");
    let mut record = common::sample_record("f", 1.0, None);
    record.feature_hash.clear();
    let err = f
        .registry
        .register("m", &f.run_id, state(), record)
        .unwrap_err()
        .to_string();
    assert!(err.contains("feature_hash"), "{err}");
    let err = f
        .registry
        .register(
            "m",
            &f.run_id,
            state(),
            common::sample_record("f", 1.0, parent("m", 9)),
        )
        .unwrap_err();
    assert!(
        err.is_not_found() && err.to_string().contains("models:/m/9"),
        "{err}"
    );
    let err = f.registry.register(
        "m",
        "0123456789abcdef0123456789abcdef",
        state(),
        common::sample_record("f", 1.0, None),
    );
    assert!(err.unwrap_err().is_not_found());
    // Nothing half-registered.
    assert!(f.store.list_registered_models().unwrap().is_empty());
}

#[test]
fn list_filters() {
    let f = fixture();
    chain(&f);
    let list = |filter: VersionFilter| -> Vec<u64> {
        f.registry
            .list("m", &filter)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect()
    };
    assert_eq!(list(VersionFilter::default()), [1, 2, 3, 4, 5]);
    assert_eq!(
        list(VersionFilter {
            metrics: vec![MetricFilter::parse("sharpe>=1.5").unwrap()],
            ..Default::default()
        }),
        [2, 4, 5]
    );
    assert_eq!(
        list(VersionFilter {
            metrics: vec![
                MetricFilter::parse("sharpe>1").unwrap(),
                MetricFilter::parse("sharpe<2").unwrap()
            ],
            ..Default::default()
        }),
        [2, 4]
    );
    assert_eq!(
        list(VersionFilter {
            feature_hash: Some("fb".into()),
            ..Default::default()
        }),
        [3]
    );
    assert_eq!(
        list(VersionFilter {
            algorithm: Some("DQN".into()),
            ..Default::default()
        })
        .len(),
        5
    );
    assert_eq!(
        list(VersionFilter {
            algorithm: Some("ppo".into()),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
    let now = Utc::now();
    assert_eq!(
        list(VersionFilter {
            created_after: Some(now - Duration::hours(1)),
            ..Default::default()
        })
        .len(),
        5
    );
    assert!(
        list(VersionFilter {
            created_before: Some(now - Duration::hours(1)),
            ..Default::default()
        })
        .is_empty()
    );
    f.registry
        .set_status(&r("models:/m/3"), VersionStatus::Archived)
        .unwrap();
    assert_eq!(
        list(VersionFilter {
            status: Some(VersionStatus::Archived),
            ..Default::default()
        }),
        [3]
    );
}

#[test]
fn promote_and_rollback_follow_the_history() {
    let f = fixture();
    chain(&f);
    let promote = |v: u64| {
        f.registry
            .promote(&ModelRef::number("m", v), "production")
            .unwrap()
    };
    assert_eq!(promote(1).previous, None);
    assert_eq!(promote(2).previous, Some(1));
    assert_eq!(promote(5).previous, Some(2));
    let status = |v: u64| {
        f.registry
            .summary(&ModelRef::number("m", v))
            .unwrap()
            .status
            .unwrap()
    };
    assert_eq!(status(5), VersionStatus::Production);
    assert_eq!(status(2), VersionStatus::Archived);
    assert_eq!(
        f.registry.get(&r("models:/m@production")).unwrap().version,
        Some(5)
    );

    let back = f.registry.rollback("m", "production").unwrap();
    assert_eq!((back.version, back.previous), (2, Some(5)));
    assert_eq!(status(2), VersionStatus::Production);
    assert_eq!(status(5), VersionStatus::Archived);
    // A second rollback goes further back, not forward again.
    assert_eq!(f.registry.rollback("m", "production").unwrap().version, 1);
    assert!(
        f.registry
            .rollback("m", "production")
            .unwrap_err()
            .is_not_found()
    );

    // A deleted version is skipped.
    promote(3);
    promote(4);
    f.store.delete_model_version("m", 3).unwrap();
    assert_eq!(f.registry.rollback("m", "production").unwrap().version, 1);

    // Any alias works; history is kept per alias.
    f.registry.promote(&r("models:/m/4"), "champion").unwrap();
    f.registry.promote(&r("models:/m/5"), "champion").unwrap();
    assert_eq!(f.registry.rollback("m", "champion").unwrap().version, 4);
    let history = f.registry.alias_history("m", "champion").unwrap();
    assert_eq!(history.len(), 3);
    f.registry.remove_alias("m", "champion").unwrap();
    assert!(
        f.registry
            .get(&r("models:/m@champion"))
            .unwrap_err()
            .is_not_found()
    );
    assert!(f.registry.promote(&r("models:/m/4"), "latest").is_err());
}

#[test]
fn compare_knows_which_way_is_better() {
    let f = fixture();
    chain(&f);
    let cmp = f
        .registry
        .compare(&[r("models:/m/1"), r("models:/m/2"), r("models:/m/5")])
        .unwrap();
    let row = |name: &str| cmp.metrics.iter().find(|m| m.metric == name).unwrap();
    assert_eq!(row("sharpe").direction, MetricDirection::HigherIsBetter);
    assert_eq!(row("sharpe").values, vec![Some(0.5), Some(1.5), Some(2.5)]);
    assert_eq!(row("sharpe").best, Some(2));
    assert_eq!(
        row("max_drawdown").direction,
        MetricDirection::LowerIsBetter
    );
    assert!(f.registry.compare(&[r("models:/m/1")]).is_err());
}

#[test]
fn lineage_walks_both_ways_and_across_models() {
    let f = fixture();
    chain(&f);
    f.registry
        .register(
            "other",
            &f.run_id,
            common::sample_state(9, 8),
            common::sample_record("fa", 1.0, parent("m", 5)),
        )
        .unwrap();
    let lineage = f.registry.lineage(&r("models:/m/2")).unwrap();
    let ancestors: Vec<(String, u64, usize)> = lineage
        .ancestors
        .iter()
        .map(|n| (n.name.clone(), n.version, n.depth))
        .collect();
    assert_eq!(ancestors, [("m".to_string(), 1, 1)]);
    let mut descendants: Vec<(String, u64, usize)> = lineage
        .descendants
        .iter()
        .map(|n| (n.name.clone(), n.version, n.depth))
        .collect();
    descendants.sort();
    assert_eq!(
        descendants,
        [
            ("m".into(), 3, 1),
            ("m".into(), 5, 1),
            ("other".into(), 1, 2)
        ]
    );
    let lineage = f.registry.lineage(&r("models:/other/1")).unwrap();
    let chain: Vec<u64> = lineage.ancestors.iter().map(|n| n.version).collect();
    assert_eq!(chain, [5, 2, 1]);
}

#[test]
fn validate_checks_everything_and_updates_status() {
    let f = fixture();
    chain(&f);
    let report = f.registry.validate(&r("models:/m/2")).unwrap();
    assert!(report.passed(), "{report:#?}");
    assert!(report.status_updated);
    assert_eq!(
        f.registry.summary(&r("models:/m/2")).unwrap().status,
        Some(VersionStatus::Validated)
    );

    let dir = f.registry.checkpoint_dir(&r("models:/m/3")).unwrap();
    let path = dir.path().join("state.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let report = f.registry.validate(&r("models:/m/3")).unwrap();
    assert!(!report.passed());
    let failed = report.checks.iter().find(|c| !c.ok).unwrap();
    assert!(failed.detail.contains("state.safetensors"), "{failed:?}");
    assert!(!report.status_updated);
    assert!(
        f.registry
            .load_checkpoint(&r("models:/m/3"))
            .unwrap_err()
            .to_string()
            .contains("state.safetensors")
    );

    // A tag edited to disagree with metadata.json is reported.
    f.store
        .set_model_version_tag("m", 1, tags::FEATURE_HASH, "tampered")
        .unwrap();
    let report = f.registry.validate(&r("models:/m/1")).unwrap();
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].detail.contains("tampered"), "{failed:?}");
}

#[test]
fn cleanup_keeps_what_matters() {
    let f = fixture();
    chain(&f);
    f.registry.promote(&r("models:/m/3"), "production").unwrap(); // ancestors 2, 1
    let policy = RetentionPolicy {
        keep_last: Some(1),
        max_age_days: None,
        dry_run: true,
    };
    let report = f.registry.cleanup("m", &policy).unwrap();
    assert_eq!(
        report.deleted.iter().map(|v| v.version).collect::<Vec<_>>(),
        [4]
    );
    let protected: Vec<u64> = report.protected.iter().map(|(v, _)| *v).collect();
    assert_eq!(protected, [1, 2, 3]);
    assert!(report.protected[2].1.contains("production"));
    assert_eq!(
        f.registry
            .list("m", &VersionFilter::default())
            .unwrap()
            .len(),
        5,
        "dry run deletes nothing"
    );

    let checkpoint = f
        .registry
        .checkpoint_dir(&r("models:/m/4"))
        .unwrap()
        .path()
        .to_path_buf();
    let report = f
        .registry
        .cleanup(
            "m",
            &RetentionPolicy {
                dry_run: false,
                ..policy
            },
        )
        .unwrap();
    assert_eq!(report.deleted.len(), 1);
    assert_eq!(
        f.registry
            .list("m", &VersionFilter::default())
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>(),
        [1, 2, 3, 5]
    );
    assert!(
        !checkpoint.exists(),
        "the deleted version's checkpoint is freed"
    );
    // Young versions are kept by age.
    let report = f
        .registry
        .cleanup(
            "m",
            &RetentionPolicy {
                keep_last: None,
                max_age_days: Some(1.0),
                dry_run: true,
            },
        )
        .unwrap();
    assert!(report.deleted.is_empty());
    assert!(
        f.registry
            .cleanup("m", &RetentionPolicy::default())
            .is_err()
    );
    // Numbers are never reused.
    let next = f
        .registry
        .register(
            "m",
            &f.run_id,
            common::sample_state(7, 8),
            common::sample_record("fa", 1.0, None),
        )
        .unwrap();
    assert_eq!(next.version, Some(6));
}

#[test]
fn compatibility_lists_every_difference() {
    let f = fixture();
    chain(&f);
    let same = CompatibilityTarget {
        feature_hash: Some("fa".into()),
        observation_shape: Some(vec![6]),
        action_count: Some(3),
        algorithm: Some("dqn".into()),
    };
    assert!(
        f.registry
            .check_compatibility(&r("models:/m/1"), &same)
            .unwrap()
            .is_empty()
    );
    let other = CompatibilityTarget {
        feature_hash: Some("fz".into()),
        observation_shape: Some(vec![7]),
        action_count: Some(3),
        algorithm: Some("ppo".into()),
    };
    let diffs = f
        .registry
        .check_compatibility(&r("models:/m/1"), &other)
        .unwrap();
    let fields: Vec<&str> = diffs.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["feature_hash", "observation_shape", "algorithm"]);
    assert!(diffs[0].to_string().contains("fz"));
}

#[test]
fn references_and_names_are_validated() {
    let f = fixture();
    chain(&f);
    assert!(
        f.registry
            .get(&r("models:/m/99"))
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        f.registry
            .get(&r("models:/m@nobody"))
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        f.registry
            .get(&r("models:/m/v2000-01-01--00h00"))
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        f.registry
            .get(&r("models:/missing/1"))
            .unwrap_err()
            .is_not_found()
    );
    for bad in [
        "models:/../m/1",
        "models:/m\u{7}/1",
        "models:/m/1.5",
        "models:/m@a/b",
        "models:/m@v2",
    ] {
        assert!(ModelRef::parse(bad).is_err(), "{bad} accepted");
    }
    let long = format!("models:/{}/1", "x".repeat(300));
    assert!(matches!(
        ModelRef::parse(&long).unwrap_err(),
        RegistryError::InvalidName { .. }
    ));
    let s = &f.store;
    assert!(s.create_registered_model("..").is_err());
    assert!(s.create_registered_model("a\\b").is_err());
    assert!(s.set_registered_model_tag("m", "bad@key", "v").is_err());
    assert!(s.set_model_version_tag("m", 1, "../escape", "v").is_err());
    assert!(
        s.log_params(&f.run_id, &[("a\nb".into(), "v".into())])
            .is_err()
    );
    assert!(s.get_run("../0").is_err());
    assert!(
        s.upload_artifacts(&f.run_id, std::path::Path::new("/etc/hostname"), "../out")
            .is_err()
    );
    assert!(s.get_or_create_experiment("").is_err());
    assert_eq!(SemVer::new(1, 0, 0).to_string(), "1.0.0");
}

#[test]
fn tags_given_at_registration_find_the_version() {
    let f = fixture();
    let extra = |key: &str, value: &str| vec![(key.to_string(), value.to_string())];
    let refused = f
        .registry
        .register_tagged(
            "m",
            &f.run_id,
            common::sample_state(1, 8),
            common::sample_record("fa", 0.5, None),
            &extra(tags::STATUS, "production"),
        )
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        RegistryError::InvalidArgument(
            "the extra version tag ratchet.status is one Ratchet sets itself".into()
        )
        .to_string()
    );
    assert!(
        f.store.list_registered_models().unwrap().is_empty(),
        "nothing half-registered"
    );
    assert_eq!(
        f.registry.find_by_tag("m", "k", "a").unwrap(),
        None,
        "no model"
    );
    for (seed, value) in [(1, "a"), (2, "b")] {
        f.registry
            .register_tagged(
                "m",
                &f.run_id,
                common::sample_state(seed, 8),
                common::sample_record("fa", 0.5, None),
                &extra("k", value),
            )
            .unwrap();
    }
    assert_eq!(f.registry.find_by_tag("m", "k", "b").unwrap(), Some(2));
    assert_eq!(f.registry.find_by_tag("m", "k", "a").unwrap(), Some(1));
    assert_eq!(f.registry.find_by_tag("m", "k", "c").unwrap(), None);
    let stored = f.store.get_model_version("m", 2).unwrap();
    assert_eq!(stored.tags["k"], "b");
    assert_eq!(stored.tags[tags::STATUS], "registered");
}
