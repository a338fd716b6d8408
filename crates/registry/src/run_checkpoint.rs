//! Checkpoints as artifacts of runs: the one writer, used both for a registered version's
//! checkpoint and for a run's own checkpoints (what `--resume` restarts from), and the
//! reader of a run's checkpoint (the store's own copy, or a download).

use chrono::Utc;

use crate::checkpoint::{self, Checkpoint, CheckpointState};
use crate::error::Result;
use crate::model_version::{ModelVersion, SemVer, TrainingRecord, VersionStatus};
use crate::registry::{Registry, scratch_dir};

impl Registry {
    /// Saves `state` as the run's checkpoint artifact `artifact`, replacing the one there
    /// in one step. Its metadata is the version these weights would become, not yet
    /// registered: no number, the id `checkpoint-<steps>`, semver 0.0.0, and the hashes
    /// of its weights.
    pub fn save_run_checkpoint(
        &self,
        name: &str,
        run_id: &str,
        artifact: &str,
        state: CheckpointState,
        record: TrainingRecord,
    ) -> Result<()> {
        let metadata = ModelVersion {
            name: name.to_string(),
            version: None,
            version_id: format!("checkpoint-{}", record.training_steps),
            semver: SemVer::new(0, 0, 0),
            status: VersionStatus::Registered,
            created_at: Utc::now(),
            run_id: Some(run_id.to_string()),
            weights_sha256: checkpoint::weights_sha256(&state.weights),
            network_hash: checkpoint::network_hash(&state.weights),
            aliases: Vec::new(),
            training: record,
        };
        self.write_checkpoint(run_id, artifact, &Checkpoint { state, metadata }, true)
    }

    /// The run's checkpoint artifact `artifact`, verified; `None` when the run has none.
    pub fn load_run_checkpoint(
        &self,
        run_id: &str,
        artifact: &str,
    ) -> Result<Option<Checkpoint<'static>>> {
        let store = self.store();
        let Some(path) = store.current_artifact_dir(run_id, artifact)? else {
            return Ok(None);
        };
        if let Some(dir) = store.local_artifact_path(run_id, &path)? {
            return Checkpoint::load(&dir).map(Some);
        }
        let download = scratch_dir(&std::env::temp_dir(), "checkpoint")?;
        store.download_artifacts(run_id, &path, download.path())?;
        Checkpoint::load(download.path()).map(Some)
    }

    /// Writes `checkpoint` in the store's scratch space and moves it to the run's artifact
    /// `artifact_path`: swapped in for the one there in one step (`replace`), or placed new.
    pub(crate) fn write_checkpoint(
        &self,
        run_id: &str,
        artifact_path: &str,
        checkpoint: &Checkpoint,
        replace: bool,
    ) -> Result<()> {
        let store = self.store();
        let scratch = scratch_dir(&store.scratch_dir()?, "checkpoint")?;
        let local = scratch.path().join("checkpoint");
        checkpoint.save(&local)?;
        if replace {
            store.replace_artifact_dir(run_id, &local, artifact_path)?;
        } else {
            store.upload_artifacts_owned(run_id, &local, artifact_path)?;
        }
        Ok(())
    }
}
