//! The run a training process has marked RUNNING, and how it ended.

use std::sync::Arc;

use ratchet_mlflow::{RunStatus, TrackingStore};

use super::{ERROR_TAG, MAX_TAG_CHARS};
use crate::checkpoint;

/// Training stopped on Ctrl-C with its last checkpoint saved.
#[derive(Debug)]
pub(super) struct Interrupted {
    pub(super) step: u64,
    pub(super) run_id: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Interrupted { step, run_id } = self;
        write!(
            f,
            "interrupted at step {step}; run {run_id} is marked KILLED and its last checkpoint \
             kept: finish it with `ratchet train --resume {run_id}`"
        )
    }
}

impl std::error::Error for Interrupted {}

/// A run this process marked RUNNING. [`OpenRun::end`] records how it ended; a panic that
/// unwinds past it marks the run FAILED, so no path leaves it RUNNING.
pub(super) struct OpenRun {
    store: Arc<dyn TrackingStore>,
    pub(super) id: String,
    open: bool,
}

impl OpenRun {
    pub(super) fn new(store: Arc<dyn TrackingStore>, id: String) -> Self {
        Self {
            store,
            id,
            open: true,
        }
    }

    pub(super) fn end(mut self, status: RunStatus, error: Option<&anyhow::Error>) {
        self.open = false;
        self.close(status, error.map(|e| format!("{e:#}")));
    }

    /// Best effort: a failure to record the end must not hide the error that ended the run.
    /// When the store cannot be reached, the end is kept in the run-end journal, and the next
    /// ratchet command on this store records it.
    fn close(&self, status: RunStatus, error: Option<String>) {
        let tags: Vec<(String, String)> = error
            .map(|message| {
                (
                    ERROR_TAG.to_string(),
                    checkpoint::cut_at_char(message, MAX_TAG_CHARS),
                )
            })
            .into_iter()
            .collect();
        if let Err(e) =
            crate::market::run_end_journal().end_run(self.store.as_ref(), &self.id, status, &tags)
        {
            eprintln!(
                "warning: could not mark run {} {}: {e}",
                self.id,
                status.as_str()
            );
        }
    }
}

impl Drop for OpenRun {
    fn drop(&mut self) {
        if self.open {
            // Only an unwinding panic skips `end`.
            self.close(
                RunStatus::Failed,
                Some("ratchet panicked; the message is on its stderr".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;

    fn store_with_a_run() -> (tempfile::TempDir, Arc<dyn TrackingStore>, String) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TrackingStore> =
            Arc::new(ratchet_mlflow::FileStore::open(dir.path()).unwrap());
        let experiment = store.get_or_create_experiment("e").unwrap();
        let run_id = store
            .create_run(&experiment.experiment_id, "r", &[])
            .unwrap()
            .run_id;
        (dir, store, run_id)
    }

    #[test]
    fn a_panic_marks_the_open_run_failed() {
        let (_dir, store, run_id) = store_with_a_run();
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let _run = OpenRun::new(store.clone(), run_id.clone());
            panic!("a bug");
        }));
        assert!(unwound.is_err());
        let run = store.get_run(&run_id).unwrap();
        assert_eq!(run.info.status, RunStatus::Failed);
        assert_eq!(
            run.tags[ERROR_TAG],
            "ratchet panicked; the message is on its stderr"
        );
    }

    #[test]
    fn an_ended_run_keeps_its_status() {
        let (_dir, store, run_id) = store_with_a_run();
        OpenRun::new(store.clone(), run_id.clone()).end(RunStatus::Killed, None);
        let run = store.get_run(&run_id).unwrap();
        assert_eq!(run.info.status, RunStatus::Killed);
        assert!(!run.tags.contains_key(ERROR_TAG));
    }
}
