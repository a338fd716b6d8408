//! Following the aliases: a background task polls the registry (and wakes on `POST
//! /v1/reload`, SIGHUP or a rollback), loads a version an alias moved to, checks and warms it
//! off the request path, and swaps it in atomically. A second task checks the SLO and rolls an
//! alias back when its version breaks it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ratchet_registry::{ModelRef, VersionSelector};

use crate::deployment::Role;
use crate::model::{LoadError, ServedModel};
use crate::state::AppState;

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
    let number = ModelRef::number(&reference.name, holder);
    let model = match ServedModel::load(
        &state.registry,
        &number,
        state.build.as_ref(),
        state.allow_unvalidated,
    ) {
        Ok(model) if model.feature_hash != state.feature_hash => Err(LoadError::Refused(format!(
            "{} computes features {} but the sessions compute {}; restart the server to serve it",
            model.uri(),
            &model.feature_hash[..12],
            &state.feature_hash[..12]
        ))),
        other => other,
    };
    match model {
        Ok(model) => {
            state
                .refused
                .lock()
                .expect("no panics hold the lock")
                .remove(&(role, holder));
            state.set_role(role, Some(model));
            state.metrics.swaps.inc();
            state.event("swapped", role, Some(holder), serving, String::new());
        }
        // A refusal (status, features) is checked again at every poll, since the version's
        // status may still change: a promotion moves the alias a moment before it updates the
        // statuses. So a refusal is reported once, when the second check in a row confirms it.
        Err(LoadError::Refused(why)) => {
            let confirmed = previous_refusal.as_ref() == Some(&(why.clone(), false));
            let reported = previous_refusal.as_ref() == Some(&(why.clone(), true));
            state
                .refused
                .lock()
                .expect("no panics hold the lock")
                .insert((role, holder), (why.clone(), confirmed || reported));
            if confirmed {
                state.metrics.swaps_refused.inc();
                state.event("refused", role, Some(holder), serving, why);
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
            let detail = format!("{e:#}");
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

/// Checks the serving versions against the SLO every `every`.
pub async fn watch_slo(state: Arc<AppState>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let breaches = breaches(&state, Instant::now());
        for (role, version, why) in breaches {
            let s = state.clone();
            let _ = tokio::task::spawn_blocking(move || roll_back(&s, role, version, &why)).await;
        }
    }
}

/// The serving versions (production and canary) that break the SLO at `now`.
fn breaches(state: &AppState, now: Instant) -> Vec<(Role, u64, String)> {
    let Some(slo) = &state.slo else {
        return Vec::new();
    };
    let live = state.live();
    let mut records = state.records.lock().expect("no panics hold the lock");
    [Role::Production, Role::Canary]
        .into_iter()
        .filter_map(|role| {
            let version = live.model(role)?.version;
            let why = records.get_mut(&(version, role))?.breach(slo, now)?;
            Some((role, version, why))
        })
        .collect()
}

/// Moves the alias `role` follows back to its previous holder (the registry's rollback, so it
/// is in the alias history), stops a failing canary at once, and reloads.
fn roll_back(state: &AppState, role: Role, version: u64, why: &str) {
    skip(state, role, version);
    state
        .records
        .lock()
        .expect("no panics hold the lock")
        .remove(&(version, role));
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
                    format!("{why}; the alias could not be rolled back: {e}"),
                );
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
