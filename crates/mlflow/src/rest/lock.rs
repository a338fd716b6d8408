//! The model lock over REST. An MLflow server offers no lock, but creating a registered
//! model is exclusive: its name is unique (a SQL-backed server enforces it with a primary
//! key). So the lock on model `NAME` is the registered model `NAME.ratchet-lock`: created to
//! take the lock, deleted to release it, tagged with its holder's random token.
//!
//! A holder killed before releasing leaves the lock model behind. While it holds the lock,
//! a thread bumps the lock's [`BEAT_TAG`] every [`RestConfig::lock_beat`]; a waiter that
//! sees neither holder nor beat change for [`RestConfig::lock_stale_after`] (on its own
//! clock, so clocks need not agree) deletes the lock and competes for it again.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use super::http::{Method, backoff};
use super::{ALREADY_EXISTS, NOT_FOUND, RestStore, has_code};
use crate::error::Result;
use crate::store::{ModelLock, TrackingStore};

/// Appended to a model's name to name its lock.
pub(super) const LOCK_SUFFIX: &str = ".ratchet-lock";
/// The lock model's tag holding its holder's token; the lock models carry it, so listings
/// can leave them out.
pub(super) const HOLDER_TAG: &str = "ratchet.lock.holder";
/// The lock model's tag its holder bumps while alive.
const BEAT_TAG: &str = "ratchet.lock.beat";
/// The longest pause between two attempts to take a held lock.
const MAX_WAIT: Duration = Duration::from_millis(500);

#[derive(PartialEq)]
struct LockState {
    holder: String,
    beat: String,
}

/// Keeps the lock alive (beats) until dropped, then deletes it.
struct RestLockGuard {
    store: Arc<RestStore>,
    lock_name: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    beat: Option<JoinHandle<()>>,
}

impl Drop for RestLockGuard {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(beat) = self.beat.take() {
            let _ = beat.join();
        }
        // Best effort: a lock left behind goes stale and is taken over.
        let _ = self.store.delete_lock(&self.lock_name);
    }
}

impl RestStore {
    /// Takes the lock on model `name`, waiting while another client holds it.
    pub(super) fn acquire_lock(&self, name: &str) -> Result<ModelLock> {
        let lock_name = format!("{name}{LOCK_SUFFIX}");
        let token = uuid::Uuid::new_v4().simple().to_string();
        let body = json!({
            "name": lock_name,
            "description": format!("lock on model {name:?} held by a ratchet process; deleted on release"),
            "tags": [{"key": HOLDER_TAG, "value": token}],
        });
        // The holder and beat last seen, and when they were first seen so.
        let mut seen: Option<(LockState, Instant)> = None;
        let mut waits = backoff(Duration::from_millis(10), MAX_WAIT);
        loop {
            match self.post_json("registered-models/create", &body) {
                Ok(_) => return Ok(self.hold(lock_name)),
                // Held; or (a SQL server answering a create that collided with a release)
                // held a moment ago: look, then try again.
                Err(e) if has_code(&e, ALREADY_EXISTS) || has_code(&e, NOT_FOUND) => {}
                Err(e) => return Err(e),
            }
            let Some(state) = self.lock_state(&lock_name)? else {
                // Released in between: try again (after a pause, should a server keep
                // answering this way).
                std::thread::sleep(waits.next().unwrap_or(MAX_WAIT));
                continue;
            };
            if state.holder == token {
                // An earlier attempt created it and its answer was lost.
                return Ok(self.hold(lock_name));
            }
            match &seen {
                Some((last, since)) if *last == state => {
                    if since.elapsed() >= self.config.lock_stale_after {
                        // Its holder stopped beating: it is gone. Deleted only if still
                        // the same, so that a waiter that got there first keeps its new
                        // lock (but for the one round trip between the two requests).
                        if self.lock_state(&lock_name)?.as_ref() == Some(last) {
                            self.delete_lock(&lock_name)?;
                        }
                        seen = None;
                        continue;
                    }
                }
                _ => seen = Some((state, Instant::now())),
            }
            std::thread::sleep(waits.next().unwrap_or(MAX_WAIT));
        }
    }

    fn hold(&self, lock_name: String) -> ModelLock {
        let store = Arc::new(self.sibling());
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (beating, stopping, name) = (Arc::clone(&store), Arc::clone(&stop), lock_name.clone());
        let every = self.config.lock_beat;
        let beat = std::thread::spawn(move || {
            let (stopped, wake) = &*stopping;
            let mut count = 0u64;
            loop {
                let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = wake
                    .wait_timeout_while(guard, every, |stopped| !*stopped)
                    .unwrap_or_else(|e| e.into_inner());
                if *guard {
                    return;
                }
                drop(guard);
                count += 1;
                // A beat that fails is only a missed beat; the next one may get through.
                let _ = beating.set_registered_model_tag(&name, BEAT_TAG, &count.to_string());
            }
        });
        ModelLock::holding(Box::new(RestLockGuard {
            store,
            lock_name,
            stop,
            beat: Some(beat),
        }))
    }

    /// The lock's holder and beat, `None` when nobody holds it.
    fn lock_state(&self, lock_name: &str) -> Result<Option<LockState>> {
        match self.get_registered_model(lock_name) {
            Ok(lock) => Ok(Some(LockState {
                holder: lock.tags.get(HOLDER_TAG).cloned().unwrap_or_default(),
                beat: lock.tags.get(BEAT_TAG).cloned().unwrap_or_default(),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete_lock(&self, lock_name: &str) -> Result<()> {
        match self.send_json(
            Method::Delete,
            "registered-models/delete",
            &json!({"name": lock_name}),
        ) {
            Err(e) if has_code(&e, NOT_FOUND) => Ok(()),
            other => other.map(drop),
        }
    }
}
