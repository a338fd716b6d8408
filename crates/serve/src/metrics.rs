//! The server's Prometheus metrics, exposed at `GET /metrics` in the text format.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::deployment::{Live, Role};
use crate::model::ServedModel;

/// Every metric, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// By route and HTTP status.
    pub requests: IntCounterVec,
    /// Request latency by route.
    pub latency: HistogramVec,
    /// By version, role and outcome (`decided`, `warming_up`, `failed`, `fallback`).
    pub decisions: IntCounterVec,
    /// By kind (`bad_request`, `unauthorized`, `not_found`, `too_large`, `model_output`,
    /// `outside_missing`, `load_failed`, `rollback_failed`, `promote_failed`).
    pub errors: IntCounterVec,
    /// 1 for each served version, labelled with its identity.
    pub model_info: IntGaugeVec,
    pub swaps: IntCounter,
    pub swaps_refused: IntCounter,
    pub rollbacks: IntCounter,
    pub promotions: IntCounter,
    /// Bars whose outside value was missing or stale and carried, by source.
    pub outside_carried: IntCounterVec,
    /// Bars that got no row of a Feast source from `--feast-online`, by source and reason
    /// (`unreachable`, `timeout`, `error`, `not_found`, `after_bar`).
    pub feast_missing: IntCounterVec,
    /// Decisions of the canary or shadow that differ from production's on the same bar.
    pub disagreements: IntCounterVec,
    /// Cumulative paper log return of each version's positions, over every symbol.
    pub paper_log_return: GaugeVec,
    pub sessions: IntGauge,
    pub up: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            r.register(Box::new(m.clone()))
                .expect("metric names are unique");
            m
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounter::new(name, help).expect("valid metric"),
            )
        };
        Self {
            requests: counter_vec(
                "ratchet_requests_total",
                "HTTP requests by route and status.",
                &["route", "status"],
            ),
            latency: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "ratchet_request_duration_seconds",
                        "HTTP request latency by route.",
                    )
                    .buckets(vec![
                        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                        0.05, 0.1, 0.25, 1.0,
                    ]),
                    &["route"],
                )
                .expect("valid metric"),
            ),
            decisions: counter_vec(
                "ratchet_decisions_total",
                "Decisions by version, role and outcome (decided, warming_up, failed, fallback).",
                &["version", "role", "outcome"],
            ),
            errors: counter_vec(
                "ratchet_errors_total",
                "Errors by kind.",
                &["kind"],
            ),
            model_info: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("ratchet_model_info", "The versions being served (value 1)."),
                    &["role", "name", "version", "version_id", "feature_hash"],
                )
                .expect("valid metric"),
            ),
            swaps: counter("ratchet_swaps_total", "Versions swapped in while serving."),
            swaps_refused: counter(
                "ratchet_swaps_refused_total",
                "Alias moves not followed: the new version was refused or failed to load.",
            ),
            rollbacks: counter(
                "ratchet_rollbacks_total",
                "Aliases rolled back after an SLO breach.",
            ),
            promotions: counter(
                "ratchet_auto_promotions_total",
                "Canaries promoted to production after keeping the SLO (--auto-promote).",
            ),
            outside_carried: counter_vec(
                "ratchet_outside_carried_total",
                "Bars whose outside value was missing or stale and was carried from an earlier bar (missing = \"last\").",
                &["source"],
            ),
            feast_missing: counter_vec(
                "ratchet_feast_online_missing_total",
                "Bars that got no row of a Feast source from the feature server (--feast-online), by source and reason: unreachable, timeout, error, not_found, after_bar (stamped after the bar).",
                &["source", "reason"],
            ),
            disagreements: counter_vec(
                "ratchet_disagreements_total",
                "Canary or shadow decisions that differ from production's on the same bar.",
                &["role"],
            ),
            paper_log_return: register(
                &registry,
                GaugeVec::new(
                    Opts::new(
                        "ratchet_paper_log_return",
                        "Cumulative paper log return of a version's positions over every symbol it decided (the backtest's fill and cost rule).",
                    ),
                    &["version", "role"],
                )
                .expect("valid metric"),
            ),
            sessions: register(
                &registry,
                IntGauge::new("ratchet_sessions", "Symbols with a live session.")
                    .expect("valid metric"),
            ),
            up: register(
                &registry,
                Gauge::new("ratchet_ready", "1 when a verified, warmed model is serving.")
                    .expect("valid metric"),
            ),
            registry,
        }
    }

    /// Sets `ratchet_model_info` to the versions in `live`.
    pub fn show_live(&self, live: &Live) {
        self.model_info.reset();
        for role in Role::ALL {
            if let Some(m) = live.model(role) {
                self.model_info
                    .with_label_values(&[
                        role.as_str(),
                        &m.name,
                        &m.version.to_string(),
                        &m.version_id,
                        &m.feature_hash,
                    ])
                    .set(1);
            }
        }
        self.up.set(1.0);
    }

    /// Counts one decision.
    pub fn decision(&self, model: &ServedModel, role: Role, outcome: &str) {
        self.decisions
            .with_label_values(&[&model.version.to_string(), role.as_str(), outcome])
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
