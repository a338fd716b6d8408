//! Taking a checked `POST /v1/bars` request: every symbol's session locked and checked first,
//! then every bar through a copy of its session, the decisions of the answering model (with the
//! canary's fallback and the shadow's own track), and what they add to the metrics once the
//! whole request is taken.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ratchet_data::{CrossSection, DataError};

use super::*;

/// Takes a checked request in two phases. First every symbol's session is found and locked
/// (in symbol order, so requests never deadlock; then the universe's cross-section, if the
/// features have one), and the request is checked against them: every symbol in the served
/// universe, room for the new sessions, every symbol's first bar after its last. Then every
/// bar goes through a copy of its session (with cross-sectional features, all symbols' bars in
/// time order); only when all were taken do the copies replace the sessions and the request's
/// decisions and paper PnL count in the metrics.
pub(super) fn take_request(
    state: &AppState,
    live: &Live,
    requests: &[SymbolBars],
    feast: &[Vec<Option<Fetched>>],
    every_bar: bool,
) -> Result<Vec<SymbolDecision>, ApiError> {
    let symbols: Vec<&str> = requests.iter().map(|r| r.symbol.as_str()).collect();
    // The same answering model for every bar of a symbol: the symbol's hash decides it.
    let routes: Vec<_> = symbols.iter().map(|symbol| live.route(symbol)).collect();
    for (symbol, route) in symbols.iter().zip(&routes) {
        check_in_universe(state, symbol, route.1)?;
    }
    let mut found = state.find_sessions(&symbols);
    let _creating = if found.iter().any(Option::is_none) {
        let creating = state.creating();
        // Another request may have created some of them while this one waited.
        found = state.find_sessions(&symbols);
        let new = found.iter().filter(|s| s.is_none()).count();
        if new > 0 && state.session_count() + new > state.max_sessions {
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "too_many_sessions",
                message: format!(
                    "the request needs {new} new sessions, and the server holds sessions for {} \
                     symbols of its limit of {} (--max-sessions)",
                    state.session_count(),
                    state.max_sessions
                ),
            });
        }
        Some(creating)
    } else {
        None
    };
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_unstable_by_key(|&i| symbols[i]);
    let mut locked: Vec<Option<MutexGuard<Session>>> = (0..requests.len()).map(|_| None).collect();
    for &i in &order {
        locked[i] = found[i]
            .as_ref()
            .map(|s| s.lock().expect("no panics hold the lock"));
    }
    let mut cross = state
        .cross_section
        .as_ref()
        .map(|c| c.lock().expect("no panics hold the lock"));
    for (request, session) in requests.iter().zip(&locked) {
        if let Some(last) = session.as_ref().and_then(|s| s.last_timestamp())
            && request.bars[0].timestamp.ms <= last
        {
            return Err(ApiError::bad_request(format!(
                "{} bar 0: timestamp {} is not after the symbol's last bar ({})",
                request.symbol,
                format_timestamp(request.bars[0].timestamp.ms),
                format_timestamp(last)
            )));
        }
    }
    let mut work: Vec<Session> = locked
        .iter()
        .map(|session| match session {
            Some(s) => Session::clone(s),
            None => Session::new(&live.production)
                .expect("a served version's feature config was validated when it loaded"),
        })
        .collect();
    let mut cross_work = cross.as_deref().cloned();
    let mut effects = Effects::default();
    let mut answers: Vec<Answer> = requests
        .iter()
        .map(|r| Answer::new(every_bar, r.bars.len()))
        .collect();
    let mut take = |r: usize, b: usize, cross: Option<&mut CrossSection>| {
        let member = cross.map(|cross| {
            let member = cross
                .member(&requests[r].symbol)
                .expect("symbols outside the universe were refused");
            (cross, member)
        });
        take_bar(
            state,
            live,
            routes[r],
            &requests[r],
            b,
            feast.get(r).map(Vec::as_slice),
            &mut work[r],
            member,
            &mut effects,
            &mut answers[r],
        )
    };
    match &mut cross_work {
        None => {
            for (r, request) in requests.iter().enumerate() {
                for b in 0..request.bars.len() {
                    take(r, b, None)?;
                }
            }
        }
        // Every symbol's next bar, earliest first; each symbol's bars in the request's order,
        // so a bar out of order is refused by its session rather than sorted into place.
        Some(cross) => {
            let mut next: BinaryHeap<Reverse<(i64, usize, usize)>> = requests
                .iter()
                .enumerate()
                .map(|(r, request)| Reverse((request.bars[0].timestamp.ms, r, 0)))
                .collect();
            while let Some(Reverse((_, r, b))) = next.pop() {
                take(r, b, Some(cross))?;
                if let Some(bar) = requests[r].bars.get(b + 1) {
                    next.push(Reverse((bar.timestamp.ms, r, b + 1)));
                }
            }
        }
    }
    let answers: Vec<SymbolDecision> = requests
        .iter()
        .zip(answers)
        .zip(&work)
        .map(|((request, answer), session)| answer.finish(request, session))
        .collect();
    let mut new = Vec::new();
    for ((request, session), work) in requests.iter().zip(&mut locked).zip(work) {
        match session {
            Some(s) => **s = work,
            None => new.push((request.symbol.clone(), work)),
        }
    }
    if let (Some(cross), Some(work)) = (&mut cross, cross_work) {
        **cross = work;
    }
    if !new.is_empty() {
        state.add_sessions(new);
    }
    effects.apply(state, live);
    Ok(answers)
}

/// Refuses a symbol outside the answering version's universe, unless the server decides for
/// any symbol.
fn check_in_universe(state: &AppState, symbol: &str, model: &ServedModel) -> Result<(), ApiError> {
    let universe = &model.symbols;
    if state.any_symbol
        || universe.is_empty()
        || universe
            .binary_search_by(|s| s.as_str().cmp(symbol))
            .is_ok()
    {
        return Ok(());
    }
    const LISTED: usize = 10;
    let more = universe.len().saturating_sub(LISTED);
    Err(ApiError::bad_request(format!(
        "symbol {symbol:?} is not in the universe of models:/{}/{} ({}{}); serve with \
         --any-symbol to decide for other symbols too",
        model.name,
        model.version,
        universe[..universe.len().min(LISTED)].join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
    )))
}

/// What a request's decisions add to the metrics and the SLO record of each version, kept
/// until the whole request is taken. (Failed decisions are counted at once: they happened,
/// whether or not the request is answered.)
#[derive(Default)]
struct Effects {
    decisions: Vec<(Arc<ServedModel>, Role, &'static str)>,
    disagreements: Vec<Role>,
    paper: Vec<PaperReturn>,
    /// Outside sources whose value was carried, once per bar.
    carried: Vec<String>,
}

impl Effects {
    fn apply(self, state: &AppState, live: &Live) {
        for (model, role, outcome) in self.decisions {
            state.metrics.decision(&model, role, outcome);
        }
        for role in self.disagreements {
            state
                .metrics
                .disagreements
                .with_label_values(&[role.as_str()])
                .inc();
        }
        for paper in self.paper {
            book_paper(state, live, paper);
        }
        for source in self.carried {
            state
                .metrics
                .outside_carried
                .with_label_values(&[&source])
                .inc();
        }
    }
}

/// What one symbol's answer gathers as its bars are taken.
struct Answer {
    last: Option<Decided>,
    each: Option<Vec<BarDecision>>,
    timestamps_read_as: Vec<String>,
}

impl Answer {
    fn new(every_bar: bool, bars: usize) -> Self {
        Answer {
            last: None,
            each: every_bar.then(|| Vec::with_capacity(bars)),
            timestamps_read_as: Vec::new(),
        }
    }

    /// The symbol's answer: the decision after its last bar (and after each, with
    /// `every_bar`).
    fn finish(self, request: &SymbolBars, session: &Session) -> SymbolDecision {
        SymbolDecision {
            symbol: request.symbol.clone(),
            bars_accepted: request.bars.len(),
            timestamps_read_as: self.timestamps_read_as,
            decision: Decision::new(self.last.as_ref(), session),
            every_bar: self.each,
        }
    }
}

/// Feeds bar `b` of a symbol's request to (a copy of) its session and decides after it as a
/// backtest does. `feast` holds, per outside source, Feast's row for the symbol
/// (`--feast-online`), taken in before the bar when the bar does not carry the source and
/// the row is stamped at or before it.
#[allow(clippy::too_many_arguments)] // the request's state, threaded through one bar
fn take_bar(
    state: &AppState,
    live: &Live,
    route: (Role, &Arc<ServedModel>),
    request: &SymbolBars,
    b: usize,
    feast: Option<&[Option<Fetched>]>,
    session: &mut Session,
    cross: Option<(&mut CrossSection, usize)>,
    effects: &mut Effects,
    answer: &mut Answer,
) -> Result<(), ApiError> {
    let (symbol, bar) = (&request.symbol, &request.bars[b]);
    if !answer.timestamps_read_as.contains(&bar.timestamp.layout) {
        answer.timestamps_read_as.push(bar.timestamp.layout.clone());
    }
    let rows = bar
        .external
        .rows(&live.production.features, bar.timestamp.ms)
        .map_err(|e| ApiError::bad_request(format!("{symbol} bar {b}: {e}")))?;
    for row in rows {
        session
            .observe_outside(row.source, row.timestamp, row.created, &row.values)
            .map_err(|e| ApiError::bad_request(format!("{symbol} bar {b}: {e}")))?;
    }
    let from_feast = take_from_feast(state, live, bar, feast.unwrap_or_default(), session)
        .map_err(|e| ApiError::bad_request(format!("{symbol} bar {b}: {e}")))?;
    let filled = session.push(&as_bar(bar), cross).map_err(|e| match e {
        // A value Feast was to give is missing, and the version's rule makes that an error:
        // the server's source failed, not the request.
        DataError::External { .. } | DataError::Features(_) if !from_feast.is_empty() => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "outside_missing",
            message: format!(
                "{symbol}: {e} (from the Feast feature server: {})",
                from_feast
                    .iter()
                    .map(|(source, gave)| match gave {
                        Ok(timestamp) =>
                            format!("{source}: a row of {}", format_timestamp(*timestamp)),
                        Err(why) => format!("{source}: {}", why.as_str()),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        e => ApiError::bad_request(format!("{symbol}: {e}")),
    })?;
    effects
        .paper
        .extend([filled.served, filled.shadow].into_iter().flatten());
    effects.carried.extend(filled.carried);
    answer.last = if session.ready() {
        Some(decide(state, live, route, symbol, session, effects)?)
    } else {
        effects
            .decisions
            .push((live.production.clone(), Role::Production, "warming_up"));
        None
    };
    if let Some(each) = &mut answer.each {
        each.push(BarDecision {
            timestamp: format_timestamp(bar.timestamp.ms),
            decision: Decision::new(answer.last.as_ref(), session),
        });
    }
    Ok(())
}

/// Per Feast source asked for a bar: the timestamp of the row Feast gave, or why it gave none.
type FromFeast<'a> = Vec<(&'a str, Result<i64, FeastMissing>)>;

/// Takes Feast's rows for the bar into the session, for the Feast sources the bar does not
/// carry; counts each it got none of (or one stamped after it, which it must not see).
fn take_from_feast<'a>(
    state: &AppState,
    live: &'a Live,
    bar: &WireBar,
    feast: &[Option<Fetched>],
    session: &mut Session,
) -> Result<FromFeast<'a>, DataError> {
    let mut gave = Vec::new();
    for (index, (fetched, feature)) in feast
        .iter()
        .zip(&live.production.features.external)
        .enumerate()
    {
        let Some(fetched) = fetched else { continue };
        let source = feature.name.as_str();
        if bar.external.has(source) {
            continue;
        }
        let missing = match fetched {
            Fetched::Row { timestamp, .. } if *timestamp > bar.timestamp.ms => {
                FeastMissing::AfterBar
            }
            Fetched::Row { timestamp, values } => {
                session.observe_feast(index, source, *timestamp, values, bar.timestamp.ms)?;
                gave.push((source, Ok(*timestamp)));
                continue;
            }
            Fetched::Missing(why) => *why,
        };
        state
            .metrics
            .feast_missing
            .with_label_values(&[source, missing.as_str()])
            .inc();
        gave.push((source, Err(missing)));
    }
    Ok(gave)
}

/// The answering model's decision at the session's last bar, with the canary falling back to
/// production when its outputs are not finite, and the shadow deciding on its own track.
fn decide(
    state: &AppState,
    live: &Live,
    (role, model): (Role, &Arc<ServedModel>),
    symbol: &str,
    session: &mut Session,
    effects: &mut Effects,
) -> Result<Decided, ApiError> {
    let start = Instant::now();
    let target = session.decide(model, false);
    note_decision(live, role, !target.is_finite(), start);
    let (target, model, role) = if target.is_finite() {
        effects.decisions.push((model.clone(), role, "decided"));
        if role == Role::Canary {
            let production = session.decide(&live.production, false);
            if production != target {
                effects.disagreements.push(Role::Canary);
            }
        }
        (target, model.clone(), role)
    } else {
        state.metrics.decision(model, role, "failed");
        state
            .metrics
            .errors
            .with_label_values(&["model_output"])
            .inc();
        if role != Role::Canary {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "model_output",
                message: format!(
                    "{} gave non-finite outputs for {symbol}; no decision (the SLO watch rolls back a failing version)",
                    model.uri()
                ),
            });
        }
        let production = &live.production;
        let target = session.decide(production, false);
        if !target.is_finite() {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "model_output",
                message: format!(
                    "both the canary and {} gave non-finite outputs for {symbol}",
                    production.uri()
                ),
            });
        }
        effects
            .decisions
            .push((production.clone(), Role::Production, "fallback"));
        (target, production.clone(), Role::Production)
    };
    session.commit(target, model.clone(), role);
    if let Some(shadow) = &live.shadow {
        // Not timed: the shadow answers nobody and no SLO judges it.
        let shadow_target = session.decide(shadow, true);
        if !shadow_target.is_finite() {
            state.metrics.decision(shadow, Role::Shadow, "failed");
        } else {
            effects
                .decisions
                .push((shadow.clone(), Role::Shadow, "decided"));
            if shadow_target != target {
                effects.disagreements.push(Role::Shadow);
            }
            session.commit(shadow_target, shadow.clone(), Role::Shadow);
        }
    }
    Ok((target, model, role))
}

fn note_decision(live: &Live, role: Role, failed: bool, start: Instant) {
    if let Some(recorder) = live.recorder(role) {
        recorder.decision(failed, start.elapsed());
    }
}

fn book_paper(state: &AppState, live: &Live, paper: PaperReturn) {
    let version = paper.model.version;
    state
        .metrics
        .paper_log_return
        .with_label_values(&[&version.to_string(), paper.role.as_str()])
        .add(paper.log_return);
    // Judged on its own: a return of a version no longer live in that role is not its successor's.
    if live.model(paper.role).is_some_and(|m| m.version == version)
        && let Some(recorder) = live.recorder(paper.role)
    {
        recorder.paper(paper.log_return);
    }
}
