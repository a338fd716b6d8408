use std::collections::BTreeMap;

use super::*;

fn summary(
    version: u64,
    semver: SemVer,
    features: &str,
    network: &str,
    weights: &str,
) -> VersionSummary {
    VersionSummary {
        name: "m".into(),
        version,
        version_id: None,
        semver: Some(semver),
        status: None,
        created_at: Utc::now(),
        algorithm: None,
        feature_hash: Some(features.into()),
        network_hash: Some(network.into()),
        weights_sha256: Some(weights.into()),
        parent: None,
        metrics: BTreeMap::new(),
        training_steps: None,
        aliases: vec![],
        run_id: None,
        source: String::new(),
        checkpoint: None,
        symbols: vec![],
    }
}

#[test]
fn semver_rules() {
    assert_eq!(next_semver(&[], None, "f", "n", "w"), SemVer::new(1, 0, 0));
    let v1 = summary(1, SemVer::new(1, 0, 0), "f", "n", "w1");
    let v2 = summary(2, SemVer::new(1, 1, 0), "f", "n", "w2");
    let all = [v1.clone(), v2.clone()];
    // continue-training from v1: next minor of major 1
    assert_eq!(
        next_semver(&all, Some(&v1), "f", "n", "w3"),
        SemVer::new(1, 2, 0)
    );
    // new features → major
    assert_eq!(
        next_semver(&all, Some(&v2), "g", "n", "w3"),
        SemVer::new(2, 0, 0)
    );
    // new network → major
    assert_eq!(
        next_semver(&all, None, "f", "n2", "w3"),
        SemVer::new(2, 0, 0)
    );
    // same weights as v2 → patch
    assert_eq!(
        next_semver(&all, None, "f", "n", "w2"),
        SemVer::new(1, 1, 1)
    );
}

#[test]
fn human_ids_get_suffixes() {
    let at = DateTime::parse_from_rfc3339("2026-11-22T14:05:30Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut existing = vec![];
    assert_eq!(unique_human_id(at, &existing), "v2026-11-22--14h05");
    let mut taken = summary(1, SemVer::new(1, 0, 0), "f", "n", "w");
    taken.version_id = Some("v2026-11-22--14h05".into());
    existing.push(taken.clone());
    assert_eq!(unique_human_id(at, &existing), "v2026-11-22--14h05-2");
    taken.version_id = Some("v2026-11-22--14h05-2".into());
    existing.push(taken);
    assert_eq!(unique_human_id(at, &existing), "v2026-11-22--14h05-3");
}
