//! `ratchet serve`: live decisions from registered versions.
//!
//! A server follows a production alias (and optionally a canary and a shadow alias) in a
//! model registry, keeps one session per symbol (its online features, window and position),
//! and answers each new bar with the position for the next one. Alias moves are followed
//! without a restart: the new version is loaded, verified and warmed in the background and
//! swapped in atomically. A canary answers a stable share of the symbols; a shadow decides on
//! the same bars without answering. Every decision is counted in Prometheus metrics, with
//! paper PnL per version, and an optional SLO rolls an alias back when its version breaks it.
//!
//! The decisions are exactly a backtest's: features come from [`ratchet_data::FeatureStream`]
//! (the one implementation the batch features also run), the observation and decision from
//! [`ratchet_agents::TradingPolicy`], the position bookkeeping from
//! [`ratchet_backtest::Holding`] and the paper PnL from the shared fill and cost rule.
//!
//! - [`model`]: a version ready to serve ([`ServedModel`]), built from its recorded
//!   configuration (`ratchet-config`);
//! - [`session`]: one symbol's state;
//! - [`deployment`]: what is live, canary routing, the history;
//! - [`http`]: the endpoints; [`state`]: what they share;
//! - [`watch`]: alias polling, swaps and SLO rollbacks; [`slo`]: the limits;
//! - [`feast`]: outside values from a Feast feature server (`--feast-online`);
//! - [`metrics`]: the Prometheus exposition; [`tls`]: HTTPS;
//! - [`error`]: why a server cannot be set up ([`ServeError`]).

pub mod deployment;
pub mod error;
pub mod feast;
pub mod http;
pub mod metrics;
pub mod model;
pub mod session;
pub mod slo;
pub mod state;
pub mod tls;
pub mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ratchet_registry::{ModelRef, Registry, VersionSelector};

pub use deployment::{Live, Role, Targets};
pub use error::ServeError;
pub use feast::FeastOnline;
pub use model::{ServedModel, SessionFeatures};
pub use slo::{AutoPromote, Slo};
pub use state::AppState;

/// How a server is set up.
pub struct ServeOptions {
    pub targets: Targets,
    /// Share of symbols the canary answers, in percent.
    pub canary_percent: f64,
    /// Time between checks of the aliases.
    pub poll: Duration,
    pub slo: Option<Slo>,
    /// Promote a canary that keeps the SLO (needs a canary, an SLO and a production alias).
    pub auto_promote: Option<AutoPromote>,
    pub allow_unvalidated: bool,
    /// Decide for symbols outside a universe version's universe too.
    pub any_symbol: bool,
    /// Bearer token for the mutating endpoints.
    pub token: Option<String>,
    /// Most symbols with a session.
    pub max_sessions: usize,
    /// Where the outside values of Feast sources that a bar does not carry are read.
    pub feast_online: Option<FeastOnline>,
}

/// [`ServeOptions::max_sessions`] unless set.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// Loads the versions the targets name, checks that they compute the same features, and
/// returns the server's state. Errors name the version that cannot be served and why.
pub fn prepare(
    registry: Arc<Registry>,
    options: ServeOptions,
    server: String,
) -> Result<Arc<AppState>, ServeError> {
    if !(0.0..=100.0).contains(&options.canary_percent) {
        return Err(ServeError::CanaryPercent(options.canary_percent));
    }
    if options.auto_promote.is_some() {
        let missing = if options.targets.canary.is_none() {
            Some("a canary to promote (--canary models:/NAME@candidate)")
        } else if options.slo.is_none() {
            Some("an SLO the canary must keep (--slo FILE)")
        } else if !matches!(
            options.targets.production.selector,
            VersionSelector::Alias(_)
        ) {
            Some("a production alias to move (models:/NAME@production, not a version number)")
        } else {
            None
        };
        if let Some(missing) = missing {
            return Err(ServeError::AutoPromote(missing));
        }
    }
    // Sessions are shared between the roles, so every served version computes production's
    // features.
    let load = |reference: &ModelRef, sessions: Option<&SessionFeatures>| {
        ServedModel::load(&registry, reference, options.allow_unvalidated, sessions).map_err(
            |error| ServeError::Load {
                reference: reference.clone(),
                error: Box::new(error),
            },
        )
    };
    let production = load(&options.targets.production, None)?;
    if options.any_symbol
        && let Some(feature) = production.features.cross_sectional()
    {
        return Err(ServeError::AnySymbolAcrossUniverse {
            version: production.uri(),
            feature,
        });
    }
    if let Some(feast) = &options.feast_online
        && !production
            .features
            .external
            .iter()
            .any(|f| f.feast.is_some())
    {
        return Err(ServeError::FeastOnline(format!(
            "--feast-online {}: {} reads no outside source from Feast (its features declare \
             no [[features.feast]]); serve it without --feast-online",
            feast.url(),
            production.uri()
        )));
    }
    let sessions = production.session_features();
    // A canary or shadow alias that names no version yet is followed from the start: the
    // version it comes to name is loaded then (a retrain's first candidate, say).
    let load_beside = |reference: &Option<ModelRef>| match reference {
        Some(r) if matches!(&registry.resolve(r), Err(e) if e.is_not_found()) => {
            tracing::info!("{r} names no version yet; it is served once it does");
            Ok(None)
        }
        Some(r) => load(r, Some(&sessions)).map(Some),
        None => Ok(None),
    };
    let canary = load_beside(&options.targets.canary)?;
    let record = |served: bool| (served && options.slo.is_some()).then(Default::default);
    let live = Live {
        canary_record: record(canary.is_some()),
        canary,
        shadow: load_beside(&options.targets.shadow)?,
        production,
        canary_percent: options.canary_percent,
        production_record: record(true),
    };
    let state = Arc::new(AppState::new(registry, options, live.clone(), server));
    for role in Role::ALL {
        if let Some(m) = live.model(role) {
            state.event("loaded", role, Some(m.version), None, String::new());
        }
    }
    Ok(state)
}

/// Serves on `listener` (TCP, or [`tls::TlsListener`]) until `shutdown` completes, then stops taking connections and lets
/// requests in flight finish. Follows the aliases every [`ServeOptions::poll`] (and on
/// `reload`).
pub async fn serve<L>(
    state: Arc<AppState>,
    listener: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let follow = tokio::spawn(watch::follow_aliases(state.clone()));
    let slo = state
        .slo
        .is_some()
        .then(|| tokio::spawn(watch::watch_slo(state.clone(), Duration::from_millis(250))));
    let result = axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Http);
    follow.abort();
    if let Some(slo) = slo {
        slo.abort();
    }
    result
}
