//! What Feast's MLflow integration reads of a registered version (`feast/mlflow_integration`
//! in Feast 0.67): the tags `feast.project`, `feast.feature_service` and `feast.feature_refs`
//! on the run and the version, and the run's artifacts `feast_features.json` (the refs, which
//! `resolve_features` checks the service against) and `entity_df.parquet` (the training
//! entity frame `get_training_entity_df` reads back).

use anyhow::{Context, Result};
use ratchet_data::{FeastLineage, FeatureConfig, write_entity_frame};
use ratchet_mlflow::TrackingStore;

use crate::universe::TrainingData;

/// The run artifact Feast's resolver checks a feature service against.
pub const FEATURES_ARTIFACT: &str = "feast_features.json";
/// The run artifact Feast's `get_training_entity_df` reads.
pub const ENTITY_ARTIFACT: &str = "entity_df.parquet";

/// Uploads both artifacts to `run_id` and sets the `feast.*` tags on it; returns the tags,
/// for the version. The entity frame holds every instrument's training bars (its symbol in
/// each entity key column, the bar's time).
pub(super) fn record(
    store: &dyn TrackingStore,
    run_id: &str,
    features: &FeatureConfig,
    data: &TrainingData,
) -> Result<Vec<(String, String)>> {
    let lineage = FeastLineage::of(features);
    let dir = tempfile::tempdir()?;
    let refs = dir.path().join(FEATURES_ARTIFACT);
    std::fs::write(&refs, lineage.features_json())?;
    let entities = dir.path().join(ENTITY_ARTIFACT);
    let instruments = data.instruments();
    let rows: Vec<(&str, &[i64])> = instruments
        .iter()
        .map(|(symbol, market)| {
            (
                symbol.as_str(),
                &market.frame.timestamps[market.splits.train.range()],
            )
        })
        .collect();
    write_entity_frame(&entities, &lineage.entity_keys, &rows)?;
    for file in [&refs, &entities] {
        store
            .upload_artifacts(run_id, file, "")
            .with_context(|| format!("uploading {} to run {run_id}", file.display()))?;
    }
    let tags = lineage.tags();
    store
        .set_run_tags(run_id, &tags)
        .with_context(|| format!("setting the feast.* tags of run {run_id}"))?;
    Ok(tags)
}
