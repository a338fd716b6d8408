//! The in-memory bar series.

use std::ops::Range;

/// OHLCV bars as column vectors of equal length, timestamps strictly increasing.
///
/// [`load_bars`](crate::load_bars) guarantees the invariants for loaded data: equal lengths,
/// strictly increasing timestamps, finite positive prices with `low <= min(open, close)` and
/// `high >= max(open, close)`, finite non-negative volume.
///
/// ```
/// use ratchet_data::Bars;
/// let bars = Bars {
///     timestamps: vec![0, 60_000, 120_000],
///     open: vec![1.0, 1.1, 1.2],
///     high: vec![1.2, 1.3, 1.4],
///     low: vec![0.9, 1.0, 1.1],
///     close: vec![1.1, 1.2, 1.3],
///     volume: vec![10.0, 12.0, 9.0],
/// };
/// assert_eq!(bars.len(), 3);
/// assert_eq!(bars.slice(1..3).close, vec![1.2, 1.3]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bars {
    /// Bar open times as Unix epoch milliseconds, UTC.
    pub timestamps: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl Bars {
    /// Number of bars.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// A copy of the bars in `range` (indices into this series).
    ///
    /// Panics if the range is out of bounds, like slice indexing.
    pub fn slice(&self, range: Range<usize>) -> Bars {
        Bars {
            timestamps: self.timestamps[range.clone()].to_vec(),
            open: self.open[range.clone()].to_vec(),
            high: self.high[range.clone()].to_vec(),
            low: self.low[range.clone()].to_vec(),
            close: self.close[range.clone()].to_vec(),
            volume: self.volume[range].to_vec(),
        }
    }

    /// Checks that all columns have the same length; the message names the first one that does not.
    pub(crate) fn check_lengths(&self) -> Result<(), String> {
        let n = self.timestamps.len();
        for (name, len) in [
            ("open", self.open.len()),
            ("high", self.high.len()),
            ("low", self.low.len()),
            ("close", self.close.len()),
            ("volume", self.volume.len()),
        ] {
            if len != n {
                return Err(format!(
                    "column {name} has {len} values but there are {n} timestamps"
                ));
            }
        }
        Ok(())
    }
}
