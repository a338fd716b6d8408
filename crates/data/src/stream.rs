//! Features computed one bar at a time: what a live server keeps per symbol, and what
//! [`compute_features`](crate::compute_features) runs over a whole series.

use std::mem::discriminant;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::bars::order_problem;
use crate::config::{FeatureConfig, Normalization};
use crate::cross_section::{CrossSection, needs_universe};
use crate::external::{ExternalState, ExternalStream, SourceSeries};
use crate::indicator::Indicator;
use crate::rolling::{RollingMeanStd, zscore};
use crate::timestamp::format_timestamp;
use crate::{Bar, DataError};

/// The online state of a [`FeatureConfig`]: push bars in time order, get each bar's normalised
/// feature row once the warm-up is over.
///
/// It is the only implementation of the features: [`compute_features`](crate::compute_features)
/// pushes every bar of a series through one, so a row computed live is bit for bit the row of the
/// same bar in a batch [`FeatureFrame`](crate::FeatureFrame) (and in the feature cache).
///
/// The first [`FeatureConfig::warm_up`] pushes return `None`; [`bars_needed`](Self::bars_needed)
/// says how many more bars it takes until the first row. Each pushed bar is validated as
/// [`load_bars`](crate::load_bars) validates rows, and its timestamp must come after the previous
/// bar's; a rejected bar leaves the stream unchanged.
///
/// The stream serialises with serde (its config and running state, numbers as exact text), so a
/// server can snapshot and restore sessions in any serde format; a restored stream continues
/// exactly, bit for bit, where the original was. Deserialising checks that the state fits its
/// config.
///
/// ```
/// use ratchet_data::{Bar, FeatureConfig, FeatureStream};
/// let cfg = FeatureConfig::default();
/// let mut stream = FeatureStream::new(&cfg)?;
/// assert_eq!(stream.bars_needed(), cfg.warm_up() + 1);
/// for i in 0..=cfg.warm_up() {
///     let close = 100.0 + (i as f64 * 0.3).sin();
///     let bar = Bar { timestamp: i as i64 * 60_000, open: close, high: close + 0.5, low: close - 0.5, close, volume: 1e3 };
///     match stream.push(&bar)? {
///         None => assert!(stream.warming_up()),
///         Some(row) => assert_eq!(row.len(), cfg.column_names().len()),
///     }
/// }
/// assert!(!stream.warming_up());
/// let snapshot = serde_json::to_string(&stream).unwrap();
/// let restored: FeatureStream = serde_json::from_str(&snapshot).unwrap();
/// assert_eq!(restored.bars_pushed(), cfg.warm_up() + 1);
/// # Ok::<(), ratchet_data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FeatureStream {
    state: StreamState,
    /// Derived from the state, not part of a snapshot: the bar from which every indicator is
    /// defined, the first outside column and each outside source's width, and scratch space
    /// for the latest bar's values.
    indicator_warm_up: usize,
    outside_start: usize,
    outside_widths: Vec<usize>,
    raw: Vec<f64>,
    row: Vec<f32>,
}

/// What a snapshot holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StreamState {
    config: FeatureConfig,
    /// One per feature of the config, in order.
    indicators: Vec<Indicator>,
    /// One per column with rolling z-score normalisation, none without.
    normalisers: Vec<RollingMeanStd>,
    bars_pushed: usize,
    last: Option<LastBar>,
    /// One per outside source of the config, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outside: Vec<ExternalStream>,
    /// Whether a row was returned: from then on a bar without outside values is an error,
    /// since feature rows have no gaps.
    #[serde(default)]
    started: bool,
}

/// What the next bar needs of the one before it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct LastBar {
    timestamp: i64,
    #[serde(with = "crate::exact_f64")]
    close: f64,
}

impl FeatureStream {
    /// A stream that has seen no bars. Errors if the config is invalid.
    pub fn new(config: &FeatureConfig) -> Result<Self, DataError> {
        config.validate()?;
        let normalisers = match config.normalization {
            Normalization::None => Vec::new(),
            Normalization::RollingZscore { window } => config
                .column_names()
                .iter()
                .map(|_| RollingMeanStd::new(window))
                .collect(),
        };
        Self::from_state(StreamState {
            config: config.clone(),
            indicators: config.features.iter().map(Indicator::new).collect(),
            normalisers,
            bars_pushed: 0,
            last: None,
            outside: config
                .external
                .iter()
                .map(|f| ExternalStream::new(f, None))
                .collect(),
            started: false,
        })
    }

    /// Checks that the state fits its config and adds the derived fields.
    fn from_state(state: StreamState) -> Result<Self, DataError> {
        let config = &state.config;
        config.validate()?;
        let width = config.column_names().len();
        let expected_normalisers = match config.normalization {
            Normalization::None => 0,
            Normalization::RollingZscore { .. } => width,
        };
        let fits = state.indicators.len() == config.features.len()
            && state
                .indicators
                .iter()
                .zip(&config.features)
                .all(|(ind, spec)| discriminant(ind) == discriminant(&Indicator::new(spec)))
            && state.normalisers.len() == expected_normalisers
            && state.outside.len() == config.external.len();
        if !fits {
            return Err(DataError::Features(format!(
                "the feature stream's state does not fit its config {}; restore it from a snapshot this version wrote",
                config.short_hash()
            )));
        }
        Ok(FeatureStream {
            indicator_warm_up: config.indicator_warm_up(),
            outside_start: config.bar_column_names().len(),
            outside_widths: config
                .external
                .iter()
                .map(|f| f.column_names().len())
                .collect(),
            raw: vec![f64::NAN; width],
            row: vec![0.0; width],
            state,
        })
    }

    /// Adds the next bar and returns its feature row (one value per
    /// [`FeatureConfig::column_names`]), or `None` while warming up.
    ///
    /// Errors, leaving the stream unchanged, when the bar has a NaN, infinite, zero or negative
    /// price, a negative or non-finite volume, a high below its low, open or close (or a low above
    /// them), or a timestamp not after the previous bar's, and when the config has
    /// cross-sectional features (those need [`push_in`](Self::push_in)). Errors after taking the
    /// bar when a feature comes out non-finite (prices so extreme that a ratio overflows).
    pub fn push(&mut self, bar: &Bar) -> Result<Option<&[f32]>, DataError> {
        self.take(bar, Across::Nothing, &[])
    }

    /// [`push`](Self::push) for a config with outside sources: `outside` holds this symbol's
    /// rows of each source (as [`OutsideSources::series`](crate::OutsideSources::series)
    /// gives them), of which those known by the bar's time are taken in first. Rows that
    /// arrive with live bars go in through [`outside_mut`](Self::outside_mut) instead, and the
    /// bar through `push`.
    pub fn push_joined(
        &mut self,
        bar: &Bar,
        outside: &[Option<&SourceSeries>],
    ) -> Result<Option<&[f32]>, DataError> {
        self.take(bar, Across::Nothing, outside)
    }

    /// The outside sources whose value at the latest bar was missing or stale and carried
    /// from an earlier bar (`missing = "last"`).
    pub fn outside_carried(&self) -> impl Iterator<Item = &str> {
        self.state
            .config
            .external
            .iter()
            .zip(&self.state.outside)
            .filter(|(_, stream)| stream.state().carried())
            .map(|(feature, _)| feature.name.as_str())
    }

    /// The online join of the outside source `name`, to take in rows as they become known
    /// (a live feed); `None` when the config has no such source.
    pub fn outside_mut(&mut self, name: &str) -> Option<&mut ExternalState> {
        let i = self
            .state
            .config
            .external
            .iter()
            .position(|f| f.name == name)?;
        Some(self.state.outside[i].state_mut())
    }

    /// [`push`](Self::push) for a symbol of a universe whose config has cross-sectional
    /// features: `cross` is the universe's shared state and `member` this symbol's index in
    /// it. Also errors, leaving both unchanged, when the bar is stamped before the latest bar
    /// the universe has taken (bars enter in time order across symbols).
    pub fn push_in(
        &mut self,
        bar: &Bar,
        cross: &mut CrossSection,
        member: usize,
    ) -> Result<Option<&[f32]>, DataError> {
        self.take(bar, Across::Live(cross, member), &[])
    }

    /// [`push_in`](Self::push_in) with the bar's cross-sectional values (one per
    /// cross-sectional feature, in config order) computed beforehand by
    /// [`CrossSection::values_of`].
    pub(crate) fn push_computed(
        &mut self,
        bar: &Bar,
        values: &[f64],
        outside: &[Option<&SourceSeries>],
    ) -> Result<Option<&[f32]>, DataError> {
        self.take(bar, Across::Computed(values), outside)
    }

    fn take(
        &mut self,
        bar: &Bar,
        mut across: Across,
        outside: &[Option<&SourceSeries>],
    ) -> Result<Option<&[f32]>, DataError> {
        let state = &mut self.state;
        let index = state.bars_pushed;
        let reject = |problem| DataError::RejectedBar {
            index,
            timestamp: bar.timestamp,
            problem,
        };
        if let Some(problem) = bar.problem() {
            return Err(reject(problem));
        }
        if let Some(last) = &state.last
            && let Some(problem) = order_problem(last.timestamp, bar.timestamp)
        {
            return Err(reject(format!(
                "its timestamp {problem} the previous bar's ({})",
                format_timestamp(last.timestamp)
            )));
        }

        if let Some(spec) = state.config.features.iter().find(|f| f.horizon().is_some()) {
            match &across {
                Across::Nothing => return Err(needs_universe(spec)),
                Across::Live(cross, member) => {
                    if let Some(problem) = cross.refusal(*member, bar.timestamp) {
                        return Err(reject(problem));
                    }
                }
                Across::Computed(_) => {}
            }
        }

        // The outside values first: a missing one that is an error leaves the indicators as
        // they were.
        let mut at = self.outside_start;
        let mut outside_missing = None;
        for (i, (stream, &width)) in state
            .outside
            .iter_mut()
            .zip(&self.outside_widths)
            .enumerate()
        {
            match stream.push(outside.get(i).copied().flatten(), bar.timestamp)? {
                Some(values) => self.raw[at..at + width].copy_from_slice(values),
                None => outside_missing = Some(i),
            }
            at += width;
        }

        let previous_close = state.last.map(|last| last.close);
        if let Across::Live(cross, _) = &mut across {
            cross.advance(bar.timestamp);
        }
        let (mut at, mut computed) = (0, 0);
        for (indicator, spec) in state.indicators.iter_mut().zip(&state.config.features) {
            let width = indicator.width();
            let out = &mut self.raw[at..at + width];
            indicator.update(bar, previous_close, out);
            if spec.horizon().is_some() {
                // The indicator gave this symbol's own return; the feature reads the universe.
                match &mut across {
                    Across::Live(cross, member) => out[0] = cross.value(spec, *member, out[0]),
                    Across::Computed(values) => out[0] = values[computed],
                    Across::Nothing => {}
                }
                computed += 1;
            }
            at += width;
        }
        state.bars_pushed += 1;
        state.last = Some(LastBar {
            timestamp: bar.timestamp,
            close: bar.close,
        });
        if let Some(i) = outside_missing {
            if state.started {
                return Err(DataError::Features(format!(
                    "bar {index} ({}): outside feature {} has no fresh value, and feature rows \
                     have no gaps once they began; set missing = \"last\" to carry its last \
                     value, or raise max_staleness",
                    format_timestamp(bar.timestamp),
                    state.config.external[i].name
                )));
            }
            // Like a warm-up: no row until every outside value is there.
            return Ok(None);
        }
        if index < self.indicator_warm_up {
            return Ok(None);
        }
        // Every normaliser sees every bar from the indicator warm-up on; they fill up together.
        let mut normalised = true;
        for (x, normaliser) in self.raw.iter_mut().zip(&mut state.normalisers) {
            match normaliser.push(*x) {
                Some((mean, std)) => *x = zscore(*x, mean, std),
                None => normalised = false,
            }
        }
        if !normalised {
            return Ok(None);
        }
        state.started = true;
        for (out, x) in self.row.iter_mut().zip(&self.raw) {
            *out = *x as f32;
        }
        if let Some(column) = self.row.iter().position(|v| !v.is_finite()) {
            return Err(DataError::Features(format!(
                "feature {} is not finite at bar {index} ({}); the bars there are extreme, check the data",
                state.config.column_names()[column],
                format_timestamp(bar.timestamp)
            )));
        }
        Ok(Some(&self.row))
    }

    /// The config the stream computes.
    pub fn config(&self) -> &FeatureConfig {
        &self.state.config
    }

    /// Bars taken so far (rejected bars do not count).
    pub fn bars_pushed(&self) -> usize {
        self.state.bars_pushed
    }

    /// The timestamp of the last bar taken (epoch milliseconds), if any.
    pub fn last_timestamp(&self) -> Option<i64> {
        self.state.last.map(|last| last.timestamp)
    }

    /// How many more bars it takes until [`push`](Self::push) returns the first row; 0 once it
    /// returns rows.
    pub fn bars_needed(&self) -> usize {
        (self.state.config.warm_up() + 1).saturating_sub(self.state.bars_pushed)
    }

    /// True until the stream returns rows (`bars_needed() > 0`).
    pub fn warming_up(&self) -> bool {
        self.bars_needed() > 0
    }
}

/// Where a bar's cross-sectional features come from.
enum Across<'a> {
    /// The config has none.
    Nothing,
    /// The universe's state and this symbol's member index in it.
    Live(&'a mut CrossSection, usize),
    /// Computed beforehand, one per cross-sectional feature.
    Computed(&'a [f64]),
}

impl Serialize for FeatureStream {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.state.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FeatureStream {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FeatureStream::from_state(StreamState::deserialize(deserializer)?)
            .map_err(de::Error::custom)
    }
}
