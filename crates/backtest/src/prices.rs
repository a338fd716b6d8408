use chrono::{DateTime, Utc};

use crate::error::{BacktestError, input};

/// The bars a backtest trades over: timestamps and the two prices the fill rule uses.
///
/// Built only through [`PriceSeries::new`], so every series a simulation sees has at least
/// two bars, aligned columns, strictly increasing timestamps and finite positive prices.
///
/// ```
/// use ratchet_backtest::PriceSeries;
/// let day = 86_400_000;
/// let prices = PriceSeries::new(vec![0, day, 2 * day], vec![10.0, 10.5, 10.2], vec![10.4, 10.1, 10.6])?;
/// assert_eq!(prices.len(), 3);
/// assert!(PriceSeries::new(vec![0, day], vec![10.0, f64::NAN], vec![10.0, 10.0]).is_err());
/// # Ok::<(), ratchet_backtest::BacktestError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PriceSeries {
    timestamps: Vec<i64>,
    open: Vec<f64>,
    close: Vec<f64>,
}

impl PriceSeries {
    /// `timestamps` are bar times in epoch milliseconds (UTC); `open[i]` and `close[i]`
    /// belong to bar `i`.
    pub fn new(
        timestamps: Vec<i64>,
        open: Vec<f64>,
        close: Vec<f64>,
    ) -> Result<Self, BacktestError> {
        let n = timestamps.len();
        if open.len() != n || close.len() != n {
            return input(format!(
                "timestamps, open and close must have one value per bar; got {n}, {} and {}",
                open.len(),
                close.len()
            ));
        }
        if n < 2 {
            return input(format!(
                "a backtest needs at least 2 bars (a decision and the bar it fills on); got {n}"
            ));
        }
        if let Some(i) = timestamps.windows(2).position(|w| w[1] <= w[0]) {
            return input(format!(
                "timestamps must be strictly increasing; bar {} ({}) is not after bar {i} ({})",
                i + 1,
                format_ms(timestamps[i + 1]),
                format_ms(timestamps[i])
            ));
        }
        for (name, prices) in [("open", &open), ("close", &close)] {
            if let Some(i) = prices.iter().position(|p| !(p.is_finite() && *p > 0.0)) {
                return input(format!(
                    "{name}[{i}] ({}) is {}; prices must be finite and positive",
                    format_ms(timestamps[i]),
                    prices[i]
                ));
            }
        }
        Ok(Self {
            timestamps,
            open,
            close,
        })
    }

    /// Number of bars (at least 2).
    #[allow(clippy::len_without_is_empty)] // never empty by construction
    pub fn len(&self) -> usize {
        self.close.len()
    }

    /// Bar times, epoch milliseconds UTC, strictly increasing.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    pub fn open(&self) -> &[f64] {
        &self.open
    }

    pub fn close(&self) -> &[f64] {
        &self.close
    }

    /// Time of bar `bar`.
    pub fn time(&self, bar: usize) -> DateTime<Utc> {
        to_datetime(self.timestamps[bar])
    }

    /// First and last bar times.
    pub fn span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.time(0), self.time(self.len() - 1))
    }
}

/// Epoch milliseconds to a UTC time; out-of-range values (beyond year ±262,000) saturate.
pub(crate) fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

pub(crate) fn format_ms(ms: i64) -> String {
    to_datetime(ms).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
