//! How a position is held, changed and charged between two bars: the one rule that both
//! training ([`crate`]'s trading environment) and backtests use, so a policy is judged by
//! exactly the accounting it was trained under.
//!
//! The decision taken at bar `t` sees data up to bar `t`'s close only and is filled at bar
//! `t + 1`'s open. Over the interval from close `t` to close `t + 1` the account therefore
//!
//! 1. holds the old position through the gap `close[t] -> open[t+1]`,
//! 2. pays `|new - old| * (cost_bps + slippage_bps) / 10_000` of equity at the open fill,
//! 3. holds the new position from `open[t+1]` to `close[t+1]`.
//!
//! Positions are fractions of equity (`-1` short, `0` flat, `1` long), so the equity factor
//! of one bar is
//! `(1 + old * (open'/close - 1)) * (1 - |new - old| * c) * (1 + new * (close'/open' - 1))`.
//!
//! ```
//! use ratchet_env::execution::{Costs, bar_factor};
//! let costs = Costs { cost_bps: 10.0, slippage_bps: 5.0 };
//! // Flat to long at an open of 100, close 110: +10% minus 15 bps of entry cost.
//! let f = bar_factor(0.0, 1.0, 100.0, 100.0, 110.0, costs);
//! assert!((f - (1.0 - 0.0015) * 1.1).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// Trading frictions, in basis points of traded notional.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// Commission and fees per unit of position change.
    pub cost_bps: f64,
    /// Price impact / spread crossing per unit of position change.
    pub slippage_bps: f64,
}

impl Default for Costs {
    fn default() -> Self {
        Self {
            cost_bps: 1.0,
            slippage_bps: 1.0,
        }
    }
}

impl Costs {
    /// Fraction of equity paid for changing the position by `delta` (absolute units).
    #[inline]
    pub fn charge(&self, delta: f64) -> f64 {
        delta.abs() * (self.cost_bps + self.slippage_bps) * 1e-4
    }
}

/// Growth factor of equity from close `t` to close `t + 1` when the position moves from
/// `old` to `new` at the open of `t + 1`.
#[inline]
pub fn bar_factor(
    old: f64,
    new: f64,
    close: f64,
    next_open: f64,
    next_close: f64,
    costs: Costs,
) -> f64 {
    let gap = 1.0 + old * (next_open / close - 1.0);
    let fee = 1.0 - costs.charge(new - old);
    let session = 1.0 + new * (next_close / next_open - 1.0);
    gap * fee * session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_round_trip() {
        let c = Costs {
            cost_bps: 10.0,
            slippage_bps: 10.0,
        };
        // Long from flat at open 101 (close before 100), close 103.
        let f1 = bar_factor(0.0, 1.0, 100.0, 101.0, 103.0, c);
        assert!((f1 - 0.998 * (103.0 / 101.0)).abs() < 1e-12);
        // Long to short: gap 103 -> 102 long, then pay 2 units x 20 bps, short 102 -> 100.
        let f2 = bar_factor(1.0, -1.0, 103.0, 102.0, 100.0, c);
        let expected = (102.0 / 103.0) * (1.0 - 0.004) * (1.0 - (100.0 / 102.0 - 1.0));
        assert!((f2 - expected).abs() < 1e-12);
        // Holding flat costs nothing and earns nothing.
        assert_eq!(bar_factor(0.0, 0.0, 100.0, 90.0, 120.0, c), 1.0);
    }
}
