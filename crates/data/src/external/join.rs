//! The point-in-time join as an online state: rows go in as they become known, bars are asked
//! in time order. The batch join is the same state run over a loaded series.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{ExternalFeature, MissingRule, SourceSeries, Transform};
use crate::DataError;
use crate::rolling::zscore;
use crate::timestamp::format_timestamp;

/// The online join of one outside feature for one symbol.
///
/// [`observe`](Self::observe) takes a source row when it becomes known (at the later of its
/// timestamp and its created time); [`at`](Self::at) answers a bar, bars in increasing time
/// order. The row used at bar `t` is the known row with the latest timestamp `<= t` and, among
/// rows of that timestamp, the latest created: Feast's rule, restricted to what was known at
/// `t`. A row that arrives after a later timestamp is already known changes nothing. The
/// transform runs over the rows taken in (a restatement replaces its timestamp's value), so it
/// is causal and independent of the bar calendar.
///
/// It serialises with serde (the declaration's rule and the running state, numbers as exact
/// text), so a snapshot continues bit for bit; nothing in it panics on a tampered snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExternalState {
    /// `{name}` or `{name} for {symbol}`, for errors.
    label: String,
    max_staleness_ms: i64,
    missing: MissingRule,
    transform: Transform,
    /// Rows the transform needs (1, 2 or its window).
    rows_needed: usize,
    /// Value columns.
    width: usize,
    /// Event timestamp and created time (`i64::MIN` without one) of the row in use.
    current: Option<(i64, i64)>,
    /// The raw rows of the last `rows_needed` timestamps taken in, oldest first, `width`
    /// values each.
    #[serde(with = "crate::exact_f64::deque")]
    history: VecDeque<f64>,
    /// Distinct timestamps taken in, up to `rows_needed` (the transform's warm-up).
    timestamps_taken: usize,
    /// The transform of the row in use, one per value column; empty while warming up.
    #[serde(with = "crate::exact_f64::deque")]
    value: Vec<f64>,
    /// The last values given to a bar (kept for `missing = "last"`); empty before the first.
    #[serde(with = "crate::exact_f64::deque")]
    last_given: Vec<f64>,
    last_bar: Option<i64>,
    /// The answer for the latest bar, and whether it carried an older value; not part of a
    /// snapshot.
    #[serde(skip)]
    row: Vec<f64>,
    #[serde(skip)]
    carried: bool,
}

/// Why a bar has no fresh value.
enum Missing {
    NothingKnown,
    Stale { timestamp: i64 },
}

impl ExternalState {
    /// A state with nothing known yet; `symbol` only names it in errors.
    pub fn new(feature: &ExternalFeature, symbol: Option<&str>) -> ExternalState {
        let label = match symbol {
            Some(s) => format!("{} for {s}", feature.name),
            None => feature.name.clone(),
        };
        let columns = feature.columns.len();
        ExternalState {
            label,
            max_staleness_ms: i64::try_from(feature.max_staleness.as_millis()).unwrap_or(i64::MAX),
            missing: feature.missing,
            transform: feature.transform,
            rows_needed: feature.transform.rows_needed(feature.window),
            width: columns,
            current: None,
            history: VecDeque::new(),
            timestamps_taken: 0,
            value: Vec::new(),
            last_given: Vec::new(),
            last_bar: None,
            row: Vec::new(),
            carried: false,
        }
    }

    /// Takes in a row that is known now: its event `timestamp`, its `created` time when the
    /// source has one, one value per declared column. Returns whether it is now the row in use
    /// (false for a row older than the one in use). A value that is not finite (or not positive
    /// for `log_return`), or the wrong number of values, is refused and changes nothing.
    pub fn observe(
        &mut self,
        timestamp: i64,
        created: Option<i64>,
        values: &[f64],
    ) -> Result<bool, DataError> {
        if values.len() != self.width {
            return Err(self.error(format!(
                "a row at {} has {} values for {} columns; give one value per declared column",
                format_timestamp(timestamp),
                values.len(),
                self.width
            )));
        }
        if let Some(v) = values
            .iter()
            .find(|v| !v.is_finite() || (self.transform == Transform::LogReturn && **v <= 0.0))
        {
            return Err(self.error(format!(
                "the value {v} at {} is {}; send a finite value{}",
                format_timestamp(timestamp),
                if v.is_finite() {
                    "not positive"
                } else {
                    "not finite"
                },
                if self.transform == Transform::LogReturn {
                    " above 0 (transform = \"log_return\")"
                } else {
                    ""
                }
            )));
        }
        let key = (timestamp, created.unwrap_or(i64::MIN));
        let restates = match self.current {
            Some(current) if key <= current => return Ok(false),
            Some((ts, _)) => ts == timestamp,
            None => false,
        };
        if restates {
            self.history
                .truncate(self.history.len().saturating_sub(self.width));
        } else {
            self.timestamps_taken = (self.timestamps_taken + 1).min(self.rows_needed);
        }
        self.history.extend(values);
        while self.history.len() > self.rows_needed * self.width {
            self.history.pop_front();
        }
        self.current = Some(key);
        self.value.clear();
        if self.timestamps_taken >= self.rows_needed {
            let (transform, width) = (self.transform, self.width);
            let rows = self.history.len() / width.max(1);
            let history = &self.history;
            self.value.extend(
                (0..width).map(|c| apply(transform, (0..rows).map(|r| history[r * width + c]))),
            );
        }
        Ok(true)
    }

    /// The values for the bar at `timestamp` (after the previous bar's): one per declared
    /// column, plus the carried flag (1 or 0) with `missing = "last"`. `None` while the
    /// transform warms up on its first rows, and when the bar has no fresh value and
    /// `missing = "drop"`; an error when it has none and `missing = "error"`, or `"last"` with
    /// nothing given before.
    pub fn at(&mut self, timestamp: i64) -> Result<Option<&[f64]>, DataError> {
        if let Some(previous) = self.last_bar
            && timestamp <= previous
        {
            return Err(self.error(format!(
                "bar {} does not come after the previous bar {}; give bars in increasing time order",
                format_timestamp(timestamp),
                format_timestamp(previous)
            )));
        }
        self.last_bar = Some(timestamp);
        self.carried = false;
        let missing = match self.current {
            None => Some(Missing::NothingKnown),
            Some((ts, _)) if timestamp.saturating_sub(ts) > self.max_staleness_ms => {
                Some(Missing::Stale { timestamp: ts })
            }
            Some(_) => None,
        };
        if missing.is_none() && self.value.is_empty() {
            // The transform's first rows: a warm-up, as for the bar features, whatever the
            // rule.
            return Ok(None);
        }
        self.row.clear();
        match (missing, self.missing) {
            (None, MissingRule::Last) => {
                self.row.extend_from_slice(&self.value);
                self.row.push(0.0);
                self.last_given.clone_from(&self.value);
            }
            (None, _) => self.row.extend_from_slice(&self.value),
            (Some(_), MissingRule::Drop) => return Ok(None),
            (Some(_), MissingRule::Last) if !self.last_given.is_empty() => {
                self.carried = true;
                self.row.extend_from_slice(&self.last_given);
                self.row.push(1.0);
            }
            (Some(why), rule) => {
                return Err(self.error(format!(
                    "no value for the bar at {}: {}; {}",
                    format_timestamp(timestamp),
                    self.describe(why),
                    match rule {
                        MissingRule::Last => "missing = \"last\" has no earlier value to carry, so start the bars later or extend the source back",
                        _ => "extend the source, raise max_staleness, or set missing = \"drop\" or \"last\"",
                    }
                )));
            }
        }
        Ok(Some(&self.row))
    }

    /// Whether the latest bar's answer carried an older value (`missing = "last"` with no
    /// fresh one).
    pub fn carried(&self) -> bool {
        self.carried
    }

    fn describe(&self, why: Missing) -> String {
        match why {
            Missing::NothingKnown => "the source has no row at or before it".to_string(),
            Missing::Stale { timestamp } => format!(
                "the latest row ({}) is older than max_staleness ({})",
                format_timestamp(timestamp),
                humantime::format_duration(std::time::Duration::from_millis(
                    self.max_staleness_ms.unsigned_abs()
                ))
            ),
        }
    }

    fn error(&self, message: String) -> DataError {
        DataError::External {
            feature: self.label.clone(),
            message,
        }
    }
}

/// The transform of one column's values over the rows kept (oldest first, current last).
fn apply(transform: Transform, history: impl DoubleEndedIterator<Item = f64> + Clone) -> f64 {
    let mut newest = history.clone().rev();
    let (Some(x), previous) = (newest.next(), newest.next()) else {
        return f64::NAN;
    };
    match (transform, previous) {
        (Transform::Raw, _) => x,
        (Transform::Diff, Some(p)) => x - p,
        (Transform::LogReturn, Some(p)) => (x / p).ln(),
        (Transform::Zscore, _) => {
            // Two passes over a short window: exact, and it must allow replacing the last value.
            let (sum, n) = history
                .clone()
                .fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
            let mean = sum / n;
            let var = history.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            zscore(x, mean, var.sqrt())
        }
        (Transform::Diff | Transform::LogReturn, None) => f64::NAN,
    }
}

/// An [`ExternalState`] driven by a loaded [`SourceSeries`]: at each bar it first takes in
/// every row known by then. This is what a feature stream keeps per symbol and outside
/// feature; its snapshot is the state and the position in the series (the series itself is
/// the source file, recorded by its sha256).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExternalStream {
    state: ExternalState,
    /// Rows of the series taken in so far (in the order they became known).
    rows_taken: usize,
}

impl ExternalStream {
    pub fn new(feature: &ExternalFeature, symbol: Option<&str>) -> ExternalStream {
        ExternalStream {
            state: ExternalState::new(feature, symbol),
            rows_taken: 0,
        }
    }

    /// The bar at `timestamp`, as [`ExternalState::at`], after taking in the rows of `series`
    /// known by then (none when the source has no rows for this symbol).
    pub fn push(
        &mut self,
        series: Option<&SourceSeries>,
        timestamp: i64,
    ) -> Result<Option<&[f64]>, DataError> {
        if let Some(series) = series {
            while let Some(row) = series.row(self.rows_taken)
                && row.known_at <= timestamp
            {
                self.state.observe(row.timestamp, row.created, row.values)?;
                self.rows_taken += 1;
            }
        }
        self.state.at(timestamp)
    }

    /// The online state, for rows that arrive with live bars ([`ExternalState::observe`]).
    pub fn state_mut(&mut self) -> &mut ExternalState {
        &mut self.state
    }

    pub fn state(&self) -> &ExternalState {
        &self.state
    }
}

/// The outside columns of a series of bars ([`ExternalSource::join`](super::ExternalSource::join)).
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalColumns {
    /// [`ExternalFeature::column_names`].
    pub names: Vec<String>,
    /// Row-major, one row per bar; a dropped bar's row is NaN.
    pub values: Vec<f64>,
    /// Per bar: false where `missing = "drop"` dropped it.
    pub kept: Vec<bool>,
    /// Bars dropped (`missing = "drop"`).
    pub dropped: usize,
    /// Bars given a carried value (`missing = "last"`).
    pub carried: usize,
}

impl ExternalColumns {
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// The row of bar `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let w = self.width();
        &self.values[i * w..(i + 1) * w]
    }
}

/// Runs a fresh [`ExternalStream`] over `bar_timestamps` (increasing).
pub(super) fn join_series(
    feature: &ExternalFeature,
    symbol: Option<&str>,
    series: Option<&SourceSeries>,
    bar_timestamps: &[i64],
) -> Result<ExternalColumns, DataError> {
    let names = feature.column_names();
    let width = names.len();
    let carried_flag = (feature.missing == MissingRule::Last).then_some(width - 1);
    let mut stream = ExternalStream::new(feature, symbol);
    let mut values = Vec::with_capacity(bar_timestamps.len() * width);
    let mut kept = Vec::with_capacity(bar_timestamps.len());
    let (mut dropped, mut carried) = (0, 0);
    for &t in bar_timestamps {
        match stream.push(series, t)? {
            Some(row) => {
                if carried_flag.is_some_and(|i| row[i] == 1.0) {
                    carried += 1;
                }
                values.extend_from_slice(row);
                kept.push(true);
            }
            None => {
                values.extend(std::iter::repeat_n(f64::NAN, width));
                kept.push(false);
                dropped += 1;
            }
        }
    }
    Ok(ExternalColumns {
        names,
        values,
        kept,
        dropped,
        carried,
    })
}
