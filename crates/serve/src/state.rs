//! The server's shared state, one `Arc` handed to every handler and background task.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use chrono::Utc;
use ratchet_data::CrossSection;
use ratchet_registry::{DeploymentEvent, Registry};
use tokio::sync::Notify;

use crate::ServeOptions;
use crate::deployment::{DeploymentView, Event, Live, Role, RoleView, Targets};
use crate::feast::FeastOnline;
use crate::metrics::Metrics;
use crate::model::ServedModel;
use crate::session::Session;
use crate::slo::{AutoPromote, Slo};
use crate::watch::{Refusal, Retry};

/// Events kept for `/v1/deployment` (oldest dropped first).
const MAX_EVENTS: usize = 200;

pub struct AppState {
    pub registry: Arc<Registry>,
    pub targets: Targets,
    /// Time between checks of the aliases.
    pub poll: Duration,
    pub allow_unvalidated: bool,
    /// Whether a universe version decides for symbols outside its universe.
    pub any_symbol: bool,
    /// Bearer token the mutating endpoints require, when set.
    pub token: Option<String>,
    /// Most symbols with a session.
    pub max_sessions: usize,
    /// The Feast feature server of `--feast-online`.
    pub feast: Option<Arc<FeastOnline>>,
    pub slo: Option<Slo>,
    /// When a canary keeping the SLO becomes production.
    pub auto_promote: Option<AutoPromote>,
    /// The address the server listens on, as recorded with deployment events.
    pub server: String,
    /// The feature config hash every session computes: the first production version's. A
    /// version with other features is refused, since the sessions could not carry over.
    pub feature_hash: String,
    pub metrics: Metrics,
    /// Wakes the alias watcher (`POST /v1/reload`, SIGHUP, a rollback).
    pub reload: Notify,
    live: RwLock<Arc<Live>>,
    sessions: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
    /// With cross-sectional features, the universe's state every session's features read;
    /// locked after the sessions a request takes.
    pub cross_section: Option<Mutex<CrossSection>>,
    /// Held by a request that creates sessions from its check to its commit, so two requests
    /// never create one symbol's session twice and the capacity checked is the one committed.
    creating: Mutex<()>,
    history: Mutex<Vec<Event>>,
    /// Versions not to load again in a role (they failed to load or were rolled back).
    pub skipped: Mutex<HashSet<(Role, u64)>>,
    /// Versions refused in a role.
    pub refused: Mutex<HashMap<(Role, u64), Refusal>>,
    /// Versions the store could not deliver, and when to try again.
    pub unavailable: Mutex<HashMap<(Role, u64), Retry>>,
    /// Why the last alias move (a rollback, a promotion) of a version in a role failed, once
    /// reported.
    pub alias_failures: Mutex<HashMap<(Role, u64), String>>,
}

impl AppState {
    /// The state of a server about to serve `live`, loaded as `options` say.
    pub fn new(registry: Arc<Registry>, options: ServeOptions, live: Live, server: String) -> Self {
        let metrics = Metrics::new();
        metrics.show_live(&live);
        let feature_hash = live.production.feature_hash.clone();
        let production = &live.production;
        let cross_section = production.features.cross_sectional().map(|_| {
            Mutex::new(CrossSection::new(
                production.symbols.clone(),
                &production.features.features,
            ))
        });
        let ServeOptions {
            targets,
            canary_percent: _, // in `live`
            poll,
            slo,
            auto_promote,
            allow_unvalidated,
            any_symbol,
            token,
            max_sessions,
            feast_online,
        } = options;
        Self {
            registry,
            targets,
            poll,
            allow_unvalidated,
            any_symbol,
            token,
            max_sessions,
            feast: feast_online.map(Arc::new),
            slo,
            auto_promote,
            server,
            feature_hash,
            metrics,
            reload: Notify::new(),
            live: RwLock::new(Arc::new(live)),
            sessions: Mutex::new(HashMap::new()),
            cross_section,
            creating: Mutex::new(()),
            history: Mutex::new(Vec::new()),
            skipped: Mutex::new(HashSet::new()),
            refused: Mutex::new(HashMap::new()),
            unavailable: Mutex::new(HashMap::new()),
            alias_failures: Mutex::new(HashMap::new()),
        }
    }

    /// The symbols whose bars the sessions' cross-sectional features read, if they have any:
    /// every version served must trade the same.
    pub fn cross_section_symbols(&self) -> Option<Vec<String>> {
        self.cross_section.as_ref().map(|cross| {
            cross
                .lock()
                .expect("no panics hold the lock")
                .symbols()
                .to_vec()
        })
    }

    /// The models serving now.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().expect("no panics hold the lock").clone()
    }

    /// Replaces what serves in `role` (or stops the canary or shadow with `None`).
    pub fn set_role(&self, role: Role, model: Option<Arc<ServedModel>>) {
        let mut live = self.live.write().expect("no panics hold the lock");
        let mut next = (**live).clone();
        let record = (model.is_some() && self.slo.is_some()).then(Default::default);
        match role {
            Role::Production => {
                next.production = model.expect("production always has a model");
                next.production_record = record;
            }
            Role::Canary => {
                next.canary = model;
                next.canary_record = record;
            }
            Role::Shadow => next.shadow = model,
        }
        self.metrics.show_live(&next);
        *live = Arc::new(next);
    }

    /// The sessions of `symbols`, in their order (`None` for a symbol without one).
    pub fn find_sessions(&self, symbols: &[&str]) -> Vec<Option<Arc<Mutex<Session>>>> {
        let sessions = self.sessions.lock().expect("no panics hold the lock");
        symbols.iter().map(|s| sessions.get(*s).cloned()).collect()
    }

    /// The right to create sessions: while it is held, no other request creates one.
    pub fn creating(&self) -> MutexGuard<'_, ()> {
        self.creating.lock().expect("no panics hold the lock")
    }

    /// How many symbols have a session.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().expect("no panics hold the lock").len()
    }

    /// Adds sessions for symbols that have none. Hold [`creating`](Self::creating) from the
    /// check that they have none until this call.
    pub fn add_sessions(&self, new: impl IntoIterator<Item = (String, Session)>) {
        let mut sessions = self.sessions.lock().expect("no panics hold the lock");
        for (symbol, session) in new {
            sessions.insert(symbol, Arc::new(Mutex::new(session)));
        }
        self.metrics.sessions.set(sessions.len() as i64);
    }

    /// Notes a deployment event: in the history `/v1/deployment` shows, and, for events about
    /// a version, in that version's record in the store (best effort: serving goes on when
    /// the store cannot be written, and the failure is logged).
    pub fn event(
        &self,
        event: &'static str,
        role: Role,
        version: Option<u64>,
        previous: Option<u64>,
        detail: String,
    ) {
        tracing::info!(event, %role, ?version, ?previous, detail, "deployment");
        let at = Utc::now();
        // In the history first: the store write may take a while (a server over HTTP).
        {
            let mut history = self.history.lock().expect("no panics hold the lock");
            history.push(Event {
                at,
                event,
                role,
                version,
                previous,
                detail: detail.clone(),
            });
            if history.len() > MAX_EVENTS {
                history.remove(0);
            }
        }
        if let Some(v) = version {
            let name = &self
                .targets
                .get(role)
                .expect("events are of served roles")
                .name;
            let record = DeploymentEvent {
                event: event.to_string(),
                role: role.to_string(),
                server: self.server.clone(),
                at,
                detail,
            };
            if let Err(e) = self.registry.record_deployment(name, v, &record) {
                tracing::warn!("could not record the {event} event of models:/{name}/{v}: {e}");
            }
        }
    }

    pub fn view(&self) -> DeploymentView {
        let live = self.live();
        let role_view = |role: Role| {
            self.targets.get(role).map(|follows| RoleView {
                follows: follows.to_string(),
                serving: live.model(role).map(|m| m.info()),
            })
        };
        DeploymentView {
            server: self.server.clone(),
            production: role_view(Role::Production).expect("production is always followed"),
            canary: role_view(Role::Canary),
            shadow: role_view(Role::Shadow),
            canary_percent: live.canary_percent,
            sessions: self.sessions.lock().expect("no panics hold the lock").len(),
            history: self
                .history
                .lock()
                .expect("no panics hold the lock")
                .clone(),
        }
    }
}
