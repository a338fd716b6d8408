//! Ending a run even when its store has gone away. [`RunEndJournal::end_run`] records a run's
//! final status (and tags such as the error that ended it); when the store cannot be reached
//! (a tracking server that went down mid-run), the ending is kept in a journal file instead,
//! and [`RunEndJournal::replay`] records it the next time a process opens the same store. So a
//! run is never left RUNNING because the one moment it could have been marked passed.
//!
//! ```
//! use ratchet_mlflow::{FileStore, RunEndJournal, RunStatus, TrackingStore};
//! let dir = tempfile::tempdir().unwrap();
//! let store = FileStore::open(dir.path().join("mlruns"))?;
//! let exp = store.get_or_create_experiment("demo")?;
//! let run = store.create_run(&exp.experiment_id, "r", &[])?;
//! let journal = RunEndJournal::new(dir.path().join("journal"));
//! journal.end_run(&store, &run.run_id, RunStatus::Failed, &[("why".into(), "boom".into())])?;
//! assert_eq!(store.get_run(&run.run_id)?.info.status, RunStatus::Failed);
//! assert_eq!(journal.replay(&store), Default::default()); // nothing was left over
//! # Ok::<(), ratchet_mlflow::Error>(())
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{RunStatus, TrackingStore, now_ms};
use ratchet_fsutil as fsutil;

/// Where unrecorded run endings wait, one JSON file per run; entries that cannot be read
/// are moved to its `unreadable/` subdirectory.
#[derive(Clone, Debug)]
pub struct RunEndJournal {
    dir: PathBuf,
}

/// A run ending not yet recorded in its store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunEnd {
    tracking_uri: String,
    run_id: String,
    status: RunStatus,
    end_time_ms: i64,
    tags: Vec<(String, String)>,
}

/// What [`RunEndJournal::replay`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Replayed {
    /// Runs whose ending is now recorded, sorted.
    pub recorded: Vec<String>,
    /// Entries that could not be read, each as (where it was moved, why it is unreadable).
    pub set_aside: Vec<(PathBuf, String)>,
}

/// The subdirectory unreadable entries are moved to.
const UNREADABLE: &str = "unreadable";

impl RunEndJournal {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Sets `tags` on the run and ends it with `status`. When the store fails, the ending is
    /// written to the journal (atomically) and the store's error is returned; a journal that
    /// cannot be written either is named in the error.
    pub fn end_run(
        &self,
        store: &dyn TrackingStore,
        run_id: &str,
        status: RunStatus,
        tags: &[(String, String)],
    ) -> Result<()> {
        let end = RunEnd {
            tracking_uri: store.tracking_uri(),
            run_id: run_id.to_string(),
            status,
            end_time_ms: now_ms(),
            tags: tags.to_vec(),
        };
        let Err(e) = record(store, &end) else {
            return Ok(());
        };
        let path = self.dir.join(format!("{run_id}.json"));
        let bytes = serde_json::to_vec_pretty(&end).expect("JSON values serialise");
        let saved = fsutil::create_dir_all(&self.dir)
            .and_then(|()| fsutil::write_atomic(&path, &bytes, &self.dir, true));
        Err(match saved {
            Ok(()) => Error::Deferred(format!(
                "{e}; the run's end ({}) is saved in {} and will be recorded the next time \
                 ratchet opens {}",
                status.as_str(),
                path.display(),
                end.tracking_uri
            )),
            Err(journal) => Error::Deferred(format!(
                "{e}; the run's end ({}) could not be saved either: {journal}",
                status.as_str()
            )),
        })
    }

    /// Whether any ending waits in the journal (for any store).
    pub fn has_pending(&self) -> bool {
        !self.entries().is_empty()
    }

    /// The journal's entry files.
    fn entries(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == "json"))
            .collect()
    }

    /// Records the journal's endings of runs in `store`, removing each one recorded; endings
    /// for other stores, or that still fail, stay. An entry that cannot be read is moved to
    /// `unreadable/`, so that it is reported once (by the caller) instead of being retried
    /// by every command.
    pub fn replay(&self, store: &dyn TrackingStore) -> Replayed {
        let uri = store.tracking_uri();
        let mut replayed = Replayed::default();
        for path in self.entries() {
            let end = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<RunEnd>(&bytes)
                        .map_err(|e| format!("not a run ending: {e}"))
                });
            match end {
                Ok(end) => {
                    if end.tracking_uri == uri && record(store, &end).is_ok() {
                        let _ = std::fs::remove_file(&path);
                        replayed.recorded.push(end.run_id);
                    }
                }
                Err(why) => {
                    let aside = self.dir.join(UNREADABLE);
                    let moved = fsutil::create_dir_all(&aside)
                        .map_err(Error::from)
                        .and_then(|()| {
                            let target = aside.join(path.file_name().unwrap_or_default());
                            std::fs::rename(&path, &target)
                                .map(|()| target)
                                .map_err(|e| Error::io(&path, e))
                        });
                    match moved {
                        Ok(target) => replayed.set_aside.push((target, why)),
                        Err(e) => replayed
                            .set_aside
                            .push((path, format!("{why}; moving it aside failed: {e}"))),
                    }
                }
            }
        }
        replayed.recorded.sort();
        replayed
    }
}

fn record(store: &dyn TrackingStore, end: &RunEnd) -> Result<()> {
    if !end.tags.is_empty() {
        store.set_run_tags(&end.run_id, &end.tags)?;
    }
    store.set_run_status(&end.run_id, end.status, Some(end.end_time_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileStore;

    #[test]
    fn an_ending_the_store_refused_is_recorded_by_the_next_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("mlruns")).unwrap();
        let exp = store.get_or_create_experiment("e").unwrap();
        let run = store.create_run(&exp.experiment_id, "r", &[]).unwrap();
        let journal = RunEndJournal::new(dir.path().join("journal"));
        // A store where the run does not exist refuses the ending, as a server that went
        // away would.
        let elsewhere = FileStore::open(dir.path().join("other")).unwrap();
        let err = journal
            .end_run(
                &elsewhere,
                &run.run_id,
                RunStatus::Failed,
                &[("e".into(), "x".into())],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("will be recorded the next time ratchet opens"),
            "{err}"
        );
        // The journal names the other store: replaying against this one records nothing.
        assert_eq!(journal.replay(&store), Replayed::default());
        let saved = dir
            .path()
            .join("journal")
            .join(format!("{}.json", run.run_id));
        let mut end: RunEnd = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        end.tracking_uri = store.tracking_uri();
        std::fs::write(&saved, serde_json::to_vec(&end).unwrap()).unwrap();
        assert_eq!(journal.replay(&store).recorded, vec![run.run_id.clone()]);
        let got = store.get_run(&run.run_id).unwrap();
        assert_eq!(got.info.status, RunStatus::Failed);
        assert_eq!(got.info.end_time, Some(end.end_time_ms));
        assert_eq!(got.tags.get("e").map(String::as_str), Some("x"));
        assert!(!saved.exists());
        assert_eq!(journal.replay(&store), Replayed::default());
    }

    #[test]
    fn an_unreadable_entry_is_reported_once_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("mlruns")).unwrap();
        let journal = RunEndJournal::new(dir.path().join("journal"));
        std::fs::create_dir_all(dir.path().join("journal")).unwrap();
        let entry = dir.path().join("journal/cut.json");
        std::fs::write(&entry, b"{\"tracking_uri\": \"file:").unwrap();
        assert!(journal.has_pending());
        let replayed = journal.replay(&store);
        let moved = dir.path().join("journal/unreadable/cut.json");
        assert_eq!(replayed.recorded, Vec::<String>::new());
        assert_eq!(
            replayed.set_aside,
            vec![(
                moved.clone(),
                "not a run ending: EOF while parsing a string at line 1 column 23".to_string()
            )]
        );
        assert_eq!(
            std::fs::read(&moved).unwrap(),
            b"{\"tracking_uri\": \"file:"
        );
        assert!(!entry.exists());
        // Reported once: nothing is pending any more, and the next replay is silent.
        assert!(!journal.has_pending());
        assert_eq!(journal.replay(&store), Replayed::default());
    }
}
