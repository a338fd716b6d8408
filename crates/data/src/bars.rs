//! The in-memory bar series.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

    /// SHA-256 (lowercase hex) of the bars in `range`: each bar's timestamp and OHLCV values,
    /// bit for bit. A version records it per split range, so that a data file which gained
    /// bars elsewhere still proves it holds the same bars inside the range.
    ///
    /// Panics if the range is out of bounds, like slice indexing.
    pub fn digest(&self, range: Range<usize>) -> String {
        let mut hasher = Sha256::new();
        for i in range {
            hasher.update(self.timestamps[i].to_le_bytes());
            for column in [&self.open, &self.high, &self.low, &self.close, &self.volume] {
                hasher.update(column[i].to_bits().to_le_bytes());
            }
        }
        hex::encode(hasher.finalize())
    }

    /// Bar `i` on its own. Panics if `i >= len()`, like slice indexing.
    pub fn bar(&self, i: usize) -> Bar {
        Bar {
            timestamp: self.timestamps[i],
            open: self.open[i],
            high: self.high[i],
            low: self.low[i],
            close: self.close[i],
            volume: self.volume[i],
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

/// One OHLCV bar, what [`FeatureStream::push`](crate::FeatureStream::push) takes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// Open time as Unix epoch milliseconds, UTC.
    pub timestamp: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// What is wrong with this bar on its own, by the rules [`load_bars`](crate::load_bars)
    /// applies to every row: finite positive prices, finite non-negative volume, and a high and a
    /// low that enclose open and close.
    pub fn problem(&self) -> Option<String> {
        for (column, price) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if let Some(problem) = price_problem(price) {
                return Some(format!("{column}: {problem}"));
            }
        }
        volume_problem(self.volume)
            .or_else(|| range_problem(self.open, self.high, self.low, self.close))
    }
}

/// Why `price` is not a valid price, if it is not.
pub(crate) fn price_problem(price: f64) -> Option<String> {
    let problem = if price.is_nan() {
        "price is NaN"
    } else if price.is_infinite() {
        "price is infinite"
    } else if price < 0.0 {
        "price is negative"
    } else if price == 0.0 {
        "price is zero"
    } else {
        return None;
    };
    Some(format!(
        "{problem} ({price}); prices must be finite and positive"
    ))
}

/// Why `volume` is not a valid volume, if it is not.
pub(crate) fn volume_problem(volume: f64) -> Option<String> {
    (!volume.is_finite() || volume < 0.0)
        .then(|| format!("volume {volume} is not a finite non-negative number"))
}

/// How a bar's high and low fail to enclose its open and close, if they do.
pub(crate) fn range_problem(open: f64, high: f64, low: f64, close: f64) -> Option<String> {
    let (o, h, l, c) = (open, high, low, close);
    if h < l {
        Some(format!("high {h} is below low {l}"))
    } else if h < o || h < c {
        Some(format!(
            "high {h} is below {} {}",
            if h < o { "open" } else { "close" },
            if h < o { o } else { c }
        ))
    } else if l > o || l > c {
        Some(format!(
            "low {l} is above {} {}",
            if l > o { "open" } else { "close" },
            if l > o { o } else { c }
        ))
    } else {
        None
    }
}

/// How timestamp `current` fails to come after `previous`, if it does: "repeats" or
/// "is earlier than".
pub(crate) fn order_problem(previous: i64, current: i64) -> Option<&'static str> {
    if current == previous {
        Some("repeats")
    } else if current < previous {
        Some("is earlier than")
    } else {
        None
    }
}
