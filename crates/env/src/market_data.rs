//! The per-bar market inputs an environment, a backtest and a live server read, and the one
//! layout of an observation built from them.

use crate::EnvError;

/// Per-bar market inputs, already aligned: row `i` of `features` belongs to the bar whose
/// prices are `open[i]` and `close[i]`, and must have been computed from bars `..=i` only.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketData {
    /// `rows() * width` values, row-major (one row per bar).
    pub features: Vec<f32>,
    /// Features per bar.
    pub width: usize,
    pub open: Vec<f64>,
    pub close: Vec<f64>,
}

/// Writes an observation: the feature rows of the window (oldest first, `window * width`
/// values), then `position` and its `unrealised_return`. The one layout that training
/// ([`MarketData::write_observation`]), backtests and a live server use.
/// `obs.len() == window_rows.len() + 2`.
///
/// ```
/// let mut obs = [0.0f32; 6];
/// ratchet_env::write_observation(&[1.0, 2.0, 3.0, 4.0], -1.0, 0.25, &mut obs);
/// assert_eq!(obs, [1.0, 2.0, 3.0, 4.0, -1.0, 0.25]);
/// ```
#[inline]
pub fn write_observation(
    window_rows: &[f32],
    position: f64,
    unrealised_return: f64,
    obs: &mut [f32],
) {
    let w = window_rows.len();
    obs[..w].copy_from_slice(window_rows);
    obs[w] = position as f32;
    obs[w + 1] = unrealised_return as f32;
}

/// The position an action asks for: actions are short, flat, long (`-1, 0, 1`) with shorting
/// and flat, long (`0, 1`) without.
///
/// ```
/// use ratchet_env::position_of_action;
/// assert_eq!(position_of_action(0, true), -1.0);
/// assert_eq!(position_of_action(0, false), 0.0);
/// ```
#[inline]
pub fn position_of_action(action: usize, allow_short: bool) -> f64 {
    action as f64 - if allow_short { 1.0 } else { 0.0 }
}

impl MarketData {
    /// Checks the shapes and values and wraps them. Prices must be finite and positive,
    /// features finite; the error names the offending field and row.
    pub fn new(
        features: Vec<f32>,
        width: usize,
        open: Vec<f64>,
        close: Vec<f64>,
    ) -> Result<Self, EnvError> {
        let data = Self {
            features,
            width,
            open,
            close,
        };
        data.validate()?;
        Ok(data)
    }

    /// Writes the observation of decision bar `row`: feature rows `row - window + 1 ..= row`
    /// (oldest first), then `position` and its `unrealised_return`. The one layout both
    /// [`TradingEnv`] and backtests of a trained policy use. `row + 1 >= window` and
    /// `obs.len() == window * width + 2`.
    #[inline]
    pub fn write_observation(
        &self,
        row: usize,
        window: usize,
        position: f64,
        unrealised_return: f64,
        obs: &mut [f32],
    ) {
        let end = (row + 1) * self.width;
        let rows = &self.features[end - window * self.width..end];
        write_observation(rows, position, unrealised_return, obs);
    }

    /// Number of bars.
    pub fn rows(&self) -> usize {
        self.close.len()
    }

    /// The checks of [`MarketData::new`], for data assembled through the public fields.
    pub fn validate(&self) -> Result<(), EnvError> {
        let bad = |msg: String| Err(EnvError::Config(format!("market data: {msg}")));
        if self.width == 0 {
            return bad("width is 0; every bar needs at least one feature".into());
        }
        let rows = self.close.len();
        if self.open.len() != rows {
            return bad(format!(
                "open has {} bars but close has {rows}; they must be aligned",
                self.open.len()
            ));
        }
        if self.features.len() != rows * self.width {
            return bad(format!(
                "features hold {} values, expected {rows} bars x {} features = {}",
                self.features.len(),
                self.width,
                rows * self.width
            ));
        }
        for (name, prices) in [("open", &self.open), ("close", &self.close)] {
            if let Some(i) = prices.iter().position(|p| !(p.is_finite() && *p > 0.0)) {
                return bad(format!(
                    "{name}[{i}] is {}; prices must be finite and positive",
                    prices[i]
                ));
            }
        }
        if let Some(k) = self.features.iter().position(|v| !v.is_finite()) {
            return bad(format!(
                "feature {} of bar {} is {}; features must be finite (drop warm-up rows first)",
                k % self.width,
                k / self.width,
                self.features[k]
            ));
        }
        Ok(())
    }
}
