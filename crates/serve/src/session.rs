//! One symbol's live state: its online features, the window of feature rows the policy reads,
//! and the position held. Bars go in one at a time; after each, the served model decides the
//! position for the next bar exactly as a backtest would (same features, same observation,
//! same [`Holding`] bookkeeping, same decision rule).

use std::sync::Arc;

use ratchet_agents::trading_policy::Scratch;
use ratchet_backtest::Holding;
use ratchet_data::{Bar, CrossSection, DataError, FeatureStream};
use ratchet_env::execution::bar_factor;

use crate::deployment::Role;
use crate::model::ServedModel;

/// The last `window` feature rows, oldest first, as one contiguous slice.
#[derive(Clone, Debug)]
struct WindowRows {
    values: Vec<f32>,
    /// `window * width`.
    len: usize,
}

impl WindowRows {
    fn new(window: usize, width: usize) -> Self {
        let len = window * width;
        Self {
            values: Vec::with_capacity(2 * len),
            len,
        }
    }

    fn push(&mut self, row: &[f32]) {
        // Kept at most two windows long, so the window is always one slice and old rows are
        // moved once per `window` bars.
        if self.values.len() + row.len() > 2 * self.len {
            let keep = self.len - row.len();
            self.values.drain(..self.values.len() - keep);
        }
        self.values.extend_from_slice(row);
    }

    fn full(&self) -> bool {
        self.values.len() >= self.len
    }

    fn rows_missing(&self, width: usize) -> usize {
        (self.len.saturating_sub(self.values.len())) / width
    }

    fn window(&self) -> &[f32] {
        &self.values[self.values.len() - self.len..]
    }
}

/// A position decided by a model, filled at the next bar's open.
#[derive(Clone)]
struct Pending {
    target: f64,
    model: Arc<ServedModel>,
    role: Role,
}

/// The trading of one model (the one that answers, or a shadow) on one symbol.
#[derive(Clone, Default)]
pub struct Track {
    holding: Holding,
    pending: Option<Pending>,
}

impl Track {
    pub fn position(&self) -> f64 {
        self.holding.position
    }
}

/// Paper PnL earned over one bar by the model whose decision was held through it.
pub struct PaperReturn {
    pub model: Arc<ServedModel>,
    pub role: Role,
    /// Log growth of equity over the bar (the backtest's fill and cost rule).
    pub log_return: f64,
}

/// What happened to a track when a bar arrived.
pub struct Filled {
    pub served: Option<PaperReturn>,
    pub shadow: Option<PaperReturn>,
    /// The outside sources whose value at this bar was missing or stale and carried.
    pub carried: Vec<String>,
}

/// One symbol's state. A request works on a copy and keeps it only when every symbol of the
/// request was taken, so a rejected request changes nothing.
#[derive(Clone)]
pub struct Session {
    stream: FeatureStream,
    rows: WindowRows,
    width: usize,
    last_close: Option<f64>,
    pub served: Track,
    pub shadow: Track,
    scratch: Scratch,
    /// Per outside source (by its index in the config), the row last taken in from Feast
    /// (`--feast-online`): its event timestamp and values.
    feast_rows: Vec<Option<(i64, Vec<f64>)>>,
}

impl Session {
    /// A session computing `model`'s features, with no bars yet.
    pub fn new(model: &ServedModel) -> Result<Self, DataError> {
        let width = model.features.column_names().len();
        Ok(Self {
            stream: FeatureStream::new(&model.features)?,
            rows: WindowRows::new(model.features.window, width),
            width,
            last_close: None,
            served: Track::default(),
            shadow: Track::default(),
            scratch: model.policy.scratch(),
            feast_rows: Vec::new(),
        })
    }

    /// The timestamp of the last bar taken.
    pub fn last_timestamp(&self) -> Option<i64> {
        self.stream.last_timestamp()
    }

    /// Bars still needed before the first decision; 0 once the window is full.
    pub fn bars_needed(&self) -> usize {
        if self.stream.warming_up() {
            self.stream.bars_needed() + self.rows.rows_missing(self.width) - 1
        } else {
            self.rows.rows_missing(self.width)
        }
    }

    /// Takes the next bar: fills the positions decided at the previous bar at this bar's open
    /// (returning the paper PnL each earned), and adds the bar's feature row to the window.
    /// With cross-sectional features, `cross` is the universe's state and this symbol's member
    /// index in it (see [`FeatureStream::push_in`]). On error the session is unchanged, except
    /// for the rare feature that comes out non-finite after the bar was taken (see
    /// [`FeatureStream::push`]).
    pub fn push(
        &mut self,
        bar: &Bar,
        cross: Option<(&mut CrossSection, usize)>,
    ) -> Result<Filled, DataError> {
        let row = match cross {
            Some((cross, member)) => self.stream.push_in(bar, cross, member)?,
            None => self.stream.push(bar)?,
        };
        if let Some(row) = row {
            self.rows.push(row);
        }
        let prev_close = self.last_close.replace(bar.close);
        let fill = |track: &mut Track| {
            let pending = track.pending.take()?;
            let old = track.holding.position;
            track.holding.fill(pending.target, bar.open);
            let prev_close = prev_close?;
            let factor = bar_factor(
                old,
                pending.target,
                prev_close,
                bar.open,
                bar.close,
                pending.model.costs,
            );
            Some(PaperReturn {
                model: pending.model,
                role: pending.role,
                log_return: factor.max(0.0).ln(),
            })
        };
        Ok(Filled {
            served: fill(&mut self.served),
            shadow: fill(&mut self.shadow),
            carried: self.stream.outside_carried().map(str::to_string).collect(),
        })
    }

    /// Takes in a row of the outside source `source` that is known now (before the bar it came
    /// with); see [`ExternalState::observe`](ratchet_data::ExternalState::observe).
    pub fn observe_outside(
        &mut self,
        source: &str,
        timestamp: i64,
        created: Option<i64>,
        values: &[f64],
    ) -> Result<(), DataError> {
        let state = self
            .stream
            .outside_mut(source)
            .ok_or_else(|| DataError::Features(format!("no outside source {source:?}")))?;
        state.observe(timestamp, created, values)?;
        Ok(())
    }

    /// Takes in the row Feast holds for the outside source `source` (number `index` of the
    /// config's), read for the bar at `now`: the row taken in last is not taken in again, and
    /// one that changes the values of that row's timestamp (restated in Feast since) replaces
    /// it as of `now`, as a restatement with a created time does in training.
    pub fn observe_feast(
        &mut self,
        index: usize,
        source: &str,
        timestamp: i64,
        values: &[f64],
        now: i64,
    ) -> Result<(), DataError> {
        if self.feast_rows.len() <= index {
            self.feast_rows.resize(index + 1, None);
        }
        let created = match &self.feast_rows[index] {
            Some((t, v)) if *t == timestamp && v == values => return Ok(()),
            Some((t, _)) if *t == timestamp => Some(now),
            _ => None,
        };
        self.observe_outside(source, timestamp, created, values)?;
        self.feast_rows[index] = Some((timestamp, values.to_vec()));
        Ok(())
    }

    /// Whether the window is full, so models can decide.
    pub fn ready(&self) -> bool {
        self.rows.full()
    }

    /// `model`'s target for the next bar given `track`'s holding, at the last bar's close;
    /// NaN when the model's outputs are not finite. Call only when [`ready`](Self::ready).
    pub fn decide(&mut self, model: &ServedModel, shadow: bool) -> f64 {
        let close = self.last_close.expect("a full window has bars");
        let track = if shadow { &self.shadow } else { &self.served };
        model.policy.decide(
            self.rows.window(),
            track.holding.position,
            track.holding.unrealised_return(close),
            &mut self.scratch,
        )
    }

    /// Records `target`, decided by `model` in `role`, as the position its track (the shadow's
    /// or the answered one) moves to at the next bar's open.
    pub fn commit(&mut self, target: f64, model: Arc<ServedModel>, role: Role) {
        let track = if role == Role::Shadow {
            &mut self.shadow
        } else {
            &mut self.served
        };
        track.pending = Some(Pending {
            target,
            model,
            role,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratchet_agents::{InferenceMlp, NamedTensor, TradingPolicy};
    use ratchet_data::FeatureConfig;

    /// A served model over the default features whose network always says "long".
    fn always_long() -> ServedModel {
        let features = FeatureConfig::default();
        let inputs = features.window * features.column_names().len() + 2;
        let w = NamedTensor::new("layers.0.weight", vec![inputs, 3], vec![0.0; inputs * 3]);
        let b = NamedTensor::new("layers.0.bias", vec![3], vec![0.0, 0.0, 1.0]);
        let net = InferenceMlp::from_tensors(&[w, b], "", Default::default(), Default::default())
            .unwrap();
        ServedModel {
            name: "m".into(),
            version: 1,
            version_id: "v2026-01-01--00h00".into(),
            status: ratchet_registry::VersionStatus::Production,
            feature_hash: features.hash(),
            costs: Default::default(),
            policy: TradingPolicy::new(net, true).unwrap(),
            symbols: Vec::new(),
            loaded_at: chrono::Utc::now(),
            features,
        }
    }

    fn bar(i: i64) -> Bar {
        let close = 100.0 + (i as f64 * 0.3).sin();
        Bar {
            timestamp: i * 60_000,
            open: close - 0.1,
            high: close + 0.5,
            low: close - 0.5,
            close,
            volume: 1e3,
        }
    }

    #[test]
    fn bars_needed_counts_down_to_the_first_decision() {
        let model = Arc::new(always_long());
        let mut session = Session::new(&model).unwrap();
        let first = session.bars_needed();
        let cfg = &model.features;
        assert_eq!(first, cfg.warm_up() + cfg.window);
        for i in 0..first as i64 {
            assert!(!session.ready());
            assert_eq!(session.bars_needed(), first - i as usize);
            session.push(&bar(i), None).unwrap();
        }
        assert!(session.ready());
        assert_eq!(session.bars_needed(), 0);
        // Long from the next open, then the paper return of holding it.
        assert_eq!(session.decide(&model, false), 1.0);
        session.commit(1.0, model.clone(), Role::Production);
        let next = bar(first as i64);
        let filled = session.push(&next, None).unwrap();
        let paper = filled.served.unwrap();
        let prev_close = bar(first as i64 - 1).close;
        let expected = ratchet_env::execution::bar_factor(
            0.0,
            1.0,
            prev_close,
            next.open,
            next.close,
            model.costs,
        )
        .ln();
        assert_eq!(paper.log_return, expected);
        assert_eq!(session.served.position(), 1.0);
        assert!(filled.shadow.is_none());
    }

    #[test]
    fn the_window_is_the_last_rows_in_order() {
        let mut w = WindowRows::new(3, 2);
        assert_eq!(w.rows_missing(2), 3);
        for i in 0..10 {
            w.push(&[i as f32, -(i as f32)]);
            let have = (i + 1).min(3);
            assert_eq!(w.rows_missing(2), 3 - have);
            if w.full() {
                let expected: Vec<f32> =
                    (i - 2..=i).flat_map(|j| [j as f32, -(j as f32)]).collect();
                assert_eq!(w.window(), expected);
            }
            assert!(w.values.len() <= 12);
        }
    }
}
