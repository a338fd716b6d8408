//! Following the aliases: a background task polls the registry (and wakes on `POST
//! /v1/reload`, SIGHUP or a rollback), loads a version an alias moved to, checks and warms it
//! off the request path, and swaps it in atomically. A second task checks the SLO and rolls an
//! alias back when its version breaks it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratchet_registry::{ModelRef, VersionSelector};

use crate::deployment::Role;
use crate::model::{LoadError, ServedModel, SessionFeatures};
use crate::slo::{Recorder, Window};
use crate::state::AppState;

/// The longest wait before loading a version again after the store could not be reached.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// How long a refusal must hold before it is reported: longer than a promotion takes from
/// moving the alias to updating the statuses.
const REFUSAL_SETTLE: Duration = Duration::from_secs(1);

/// Why a version is refused in a role, since when, and whether that was reported.
#[derive(Clone)]
pub struct Refusal {
    pub why: String,
    pub since: Instant,
    pub reported: bool,
}

/// When a version the store could not deliver is tried again.
pub struct Retry {
    pub next: Instant,
    /// The wait that led to `next`; doubled at each failure.
    pub wait: Duration,
}

/// Polls every [`AppState::poll`] and on every reload request, until the runtime stops.
pub async fn follow_aliases(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.reload.notified() => {}
        }
        let s = state.clone();
        // Registry calls block (files or HTTP): keep them off the request threads.
        if let Err(e) = tokio::task::spawn_blocking(move || sync(&s)).await {
            tracing::error!("the alias check panicked: {e}");
        }
    }
}

/// Brings every role in line with its alias.
pub fn sync(state: &AppState) {
    for role in Role::ALL {
        if let Some(reference) = state.targets.get(role) {
            sync_role(state, role, reference);
        }
    }
}

fn sync_role(state: &AppState, role: Role, reference: &ModelRef) {
    let serving = state.live().model(role).map(|m| m.version);
    let holder = match state.registry.resolve(reference) {
        Ok(stored) => stored.version,
        Err(e) if e.is_not_found() && role != Role::Production => {
            if serving.is_some() {
                state.set_role(role, None);
                state.event(
                    "stopped",
                    role,
                    None,
                    serving,
                    format!("{reference} no longer names a version"),
                );
            }
            return;
        }
        Err(e) => {
            tracing::warn!("cannot resolve {reference}: {e}; serving on unchanged");
            return;
        }
    };
    if serving == Some(holder) || skipped(state, role, holder) {
        return;
    }
    let previous_refusal = state
        .refused
        .lock()
        .expect("no panics hold the lock")
        .get(&(role, holder))
        .cloned();
    if state
        .unavailable
        .lock()
        .expect("no panics hold the lock")
        .get(&(role, holder))
        .is_some_and(|retry| Instant::now() < retry.next)
    {
        return;
    }
    let sessions = SessionFeatures {
        hash: state.feature_hash.clone(),
        universe: state.cross_section_symbols(),
    };
    let model = ServedModel::load(
        &state.registry,
        &ModelRef::number(&reference.name, holder),
        state.allow_unvalidated,
        Some(&sessions),
    );
    match model {
        Ok(model) => {
            state
                .refused
                .lock()
                .expect("no panics hold the lock")
                .remove(&(role, holder));
            state
                .unavailable
                .lock()
                .expect("no panics hold the lock")
                .remove(&(role, holder));
            state.set_role(role, Some(model));
            state.metrics.swaps.inc();
            state.event("swapped", role, Some(holder), serving, String::new());
        }
        // A refusal (status, features) is checked again at every poll, since the version's
        // status may still change: a promotion moves the alias a moment before it updates the
        // statuses (longer on a busy machine or over HTTP). It costs a read of the version's
        // tags, nothing is downloaded. A refusal is reported once, when the same reason has
        // held for REFUSAL_SETTLE.
        Err(LoadError::Refused(why)) => {
            let now = Instant::now();
            let (since, reported) = match previous_refusal {
                Some(previous) if previous.why == why => (previous.since, previous.reported),
                _ => (now, false),
            };
            let report = !reported && now.duration_since(since) >= REFUSAL_SETTLE;
            state
                .refused
                .lock()
                .expect("no panics hold the lock")
                .insert(
                    (role, holder),
                    Refusal {
                        why: why.clone(),
                        since,
                        reported: reported || report,
                    },
                );
            if report {
                state.metrics.swaps_refused.inc();
                state.event("refused", role, Some(holder), serving, why);
            }
        }
        // The store, not the version, failed: serve on and try again later, each time after
        // twice the wait (from one poll up to MAX_RETRY_WAIT). Reported on the first failure.
        Err(LoadError::Unavailable(e)) => {
            state
                .metrics
                .errors
                .with_label_values(&["store_unavailable"])
                .inc();
            let mut unavailable = state.unavailable.lock().expect("no panics hold the lock");
            let first = !unavailable.contains_key(&(role, holder));
            let retry = unavailable.entry((role, holder)).or_insert(Retry {
                next: Instant::now(),
                wait: state.poll / 2,
            });
            retry.wait = (retry.wait * 2).min(MAX_RETRY_WAIT);
            retry.next = Instant::now() + retry.wait;
            drop(unavailable);
            if first {
                state.event(
                    "load_deferred",
                    role,
                    Some(holder),
                    serving,
                    format!("{e}; serving on and trying again"),
                );
            }
        }
        Err(LoadError::Failed(e)) => {
            skip(state, role, holder);
            state.metrics.swaps_refused.inc();
            state
                .metrics
                .errors
                .with_label_values(&["load_failed"])
                .inc();
            let detail = e.to_string();
            state.event("load_failed", role, Some(holder), serving, detail.clone());
            // A version that cannot even load breaks any SLO: move its alias back.
            if state.slo.is_some() && role != Role::Shadow {
                roll_back(state, role, holder, &format!("it failed to load: {detail}"));
            }
        }
    }
}

fn skipped(state: &AppState, role: Role, version: u64) -> bool {
    state
        .skipped
        .lock()
        .expect("no panics hold the lock")
        .contains(&(role, version))
}

fn skip(state: &AppState, role: Role, version: u64) {
    state
        .skipped
        .lock()
        .expect("no panics hold the lock")
        .insert((role, version));
}

/// Checks the serving versions against the SLO every `every`: empties each one's recorder
/// into its window (the only lock it takes is a recorder shard's, for a copy of a histogram)
/// and rolls back a version that breaks a limit.
pub async fn watch_slo(state: Arc<AppState>, every: Duration) {
    let Some(slo) = state.slo.clone() else {
        return;
    };
    let mut windows: HashMap<(u64, Role), Window> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let live = state.live();
        let now = Instant::now();
        let serving: Vec<(Role, u64, &Arc<Recorder>)> = [Role::Production, Role::Canary]
            .into_iter()
            .filter_map(|role| Some((role, live.model(role)?.version, live.recorder(role)?)))
            .collect();
        windows
            .retain(|(version, role), _| serving.iter().any(|s| (s.0, s.1) == (*role, *version)));
        for (role, version, recorder) in serving {
            let window = windows
                .entry((version, role))
                .or_insert_with(|| Window::new(now));
            window.collect(recorder, &slo, now);
            if let Some(why) = window.breach(&slo) {
                // Judged afresh should it serve again.
                windows.remove(&(version, role));
                let s = state.clone();
                let _ =
                    tokio::task::spawn_blocking(move || roll_back(&s, role, version, &why)).await;
            } else if role == Role::Canary
                && let Some(rule) = &state.auto_promote
                && let Some(why) = window.promotable(&slo, rule, now)
            {
                let s = state.clone();
                let promoted =
                    tokio::task::spawn_blocking(move || promote(&s, version, &why)).await;
                if matches!(promoted, Ok(true)) {
                    windows.remove(&(version, role));
                }
            }
        }
    }
}

/// Moves the production alias to the canary's `version` (the registry's promotion, in the
/// alias history like `ratchet models promote`), stops serving it as the canary, and reloads so
/// that production swaps to it now. False when the store refused (reported once per reason;
/// tried again at the next check).
fn promote(state: &AppState, version: u64, why: &str) -> bool {
    let production = &state.targets.production;
    let VersionSelector::Alias(alias) = &production.selector else {
        unreachable!("--auto-promote needs a production alias, checked at start");
    };
    match state
        .registry
        .promote(&ModelRef::number(&production.name, version), alias)
    {
        Ok(change) => {
            skip(state, Role::Canary, version);
            state.set_role(Role::Canary, None);
            state.metrics.promotions.inc();
            state.event(
                "auto_promoted",
                Role::Canary,
                Some(version),
                change.previous,
                format!("{why}; @{alias} now names version {version}"),
            );
            state.reload.notify_one();
            true
        }
        Err(e) => {
            let reason = e.to_string();
            if new_alias_failure(state, Role::Canary, version, &reason) {
                state
                    .metrics
                    .errors
                    .with_label_values(&["promote_failed"])
                    .inc();
                state.event(
                    "promote_failed",
                    Role::Canary,
                    Some(version),
                    None,
                    format!("{why}, but @{alias} could not be moved: {reason}; trying again"),
                );
            }
            false
        }
    }
}

/// Moves the alias `role` follows back to its previous holder (the registry's rollback, so it
/// is in the alias history), stops a failing canary at once, and reloads.
fn roll_back(state: &AppState, role: Role, version: u64, why: &str) {
    skip(state, role, version);
    let reference = state.targets.get(role).expect("a served role has a target");
    if role == Role::Canary && state.live().canary.as_ref().map(|m| m.version) == Some(version) {
        state.set_role(Role::Canary, None);
    }
    let detail = format!("{why}; rolled back");
    match &reference.selector {
        VersionSelector::Alias(alias) => match state.registry.rollback(&reference.name, alias) {
            Ok(change) => {
                state.metrics.rollbacks.inc();
                state.event(
                    "rolled_back",
                    role,
                    Some(version),
                    None,
                    format!("{detail}: @{alias} now names version {}", change.version),
                );
            }
            Err(e) => {
                // A breach goes on being found while the version serves (with no earlier
                // version to go back to, it serves on): reported once, and again only when
                // the reason the rollback failed changes.
                let reason = e.to_string();
                if new_alias_failure(state, role, version, &reason) {
                    state
                        .metrics
                        .errors
                        .with_label_values(&["rollback_failed"])
                        .inc();
                    state.event(
                        "rollback_failed",
                        role,
                        Some(version),
                        None,
                        format!("{why}; the alias could not be rolled back: {reason}"),
                    );
                }
            }
        },
        _ => state.event(
            "stopped",
            role,
            Some(version),
            None,
            format!("{why}; {reference} is not an alias, so nothing was rolled back"),
        ),
    }
    state.reload.notify_one();
}

/// Whether an alias move of `version` in `role` failing for `reason` is news: a move that
/// fails the same way at every check is reported once, and again when its reason changes.
fn new_alias_failure(state: &AppState, role: Role, version: u64, reason: &str) -> bool {
    state
        .alias_failures
        .lock()
        .expect("no panics hold the lock")
        .insert((role, version), reason.to_string())
        .is_none_or(|previous| previous != reason)
}
