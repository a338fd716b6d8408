//! Turning positions into an equity curve with the shared fill rule of
//! [`ratchet_env::execution`]: a position decided at bar `t`'s close fills at bar `t + 1`'s
//! open, and equity moves from close to close by exactly [`bar_factor`].

use chrono::{DateTime, Utc};
use ratchet_env::execution::{Costs, bar_factor};
use serde::{Deserialize, Serialize};

use crate::error::{BacktestError, input};
use crate::prices::{PriceSeries, format_ms, to_datetime};

/// The outcome of trading a [`PriceSeries`]: one value per bar in every vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// Account value at each bar's close, starting from `equity[0] = 1`.
    pub equity: Vec<f64>,
    /// `returns[t] = equity[t] / equity[t - 1] - 1`, net of costs; `returns[0] = 0`.
    pub returns: Vec<f64>,
    /// Position held through bar `t`'s session (filled at its open): the decision taken at
    /// bar `t - 1`'s close. `positions[0] = 0`: nothing can fill before the first bar.
    pub positions: Vec<f64>,
    /// Round trips, in time order; the last one may still be open.
    pub trades: Vec<Trade>,
    /// The costs the simulation was charged.
    pub costs: Costs,
    /// The bar at whose close equity reached 0, if it did; the account holds nothing after.
    pub bankrupt_at: Option<usize>,
}

/// Direction of a [`Trade`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Long,
    Short,
}

/// One round trip: from the fill that opens a position (from flat, or reversing the previous
/// one) to the fill that closes or reverses it. Size changes on the same side stay within
/// the trade and their costs are charged to it.
///
/// Money is counted in the account's equity units (equity starts at 1), so the `pnl` of all
/// trades sums to the final equity minus 1: a reversal's cost is split between the trade it
/// closes (`|old position|` units) and the one it opens (`|new position|` units).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub side: Side,
    /// Bar at whose open the entry filled.
    pub entry_bar: usize,
    pub entry_time: DateTime<Utc>,
    pub entry_price: f64,
    /// Bar at whose open the exit filled; for a trade still open, the last bar (marked at
    /// its close).
    pub exit_bar: usize,
    pub exit_time: DateTime<Utc>,
    pub exit_price: f64,
    /// False for the trade still open at the end, valued at the last close.
    pub closed: bool,
    /// Bar sessions the position was held.
    pub bars: usize,
    /// Change of equity from just before the entry fill to just after the exit fill, net of
    /// both fills' costs.
    pub pnl: f64,
    /// `pnl` over the equity the trade started with.
    pub trade_return: f64,
}

/// Decides positions bar by bar, for strategies whose decision depends on what they hold
/// (a trained network observes its position and unrealised return).
///
/// Closures `FnMut(usize, f64, f64) -> f64` are policies.
pub trait Policy {
    /// Target position after bar `bar`'s close, filled at bar `bar + 1`'s open.
    ///
    /// `position` is the position held at that close and `unrealised_return` its open
    /// return `position * (close[bar] / entry_price - 1)`, where `entry_price` is the open
    /// at which the position last changed (so 0 when flat): the same two numbers the
    /// trading environment appends to its observations.
    fn decide(&mut self, bar: usize, position: f64, unrealised_return: f64) -> f64;
}

impl<F: FnMut(usize, f64, f64) -> f64> Policy for F {
    fn decide(&mut self, bar: usize, position: f64, unrealised_return: f64) -> f64 {
        self(bar, position, unrealised_return)
    }
}

/// Simulates positions decided at each bar's close: `positions[t]` fills at bar `t + 1`'s
/// open, so `positions` has one entry per bar and the last one never fills.
///
/// Positions are fractions of equity (`1` long, `-1` short, `0.5` half long, ...).
///
/// ```
/// use ratchet_backtest::{PriceSeries, simulate_positions};
/// use ratchet_env::execution::Costs;
/// let day = 86_400_000;
/// let prices = PriceSeries::new(vec![0, day, 2 * day], vec![100.0, 100.0, 110.0], vec![100.0, 110.0, 121.0])?;
/// let free = Costs { cost_bps: 0.0, slippage_bps: 0.0 };
/// // Long from bar 0's close: filled at bar 1's open (100), held to the last close (121).
/// let sim = simulate_positions(&prices, &[1.0, 1.0, 0.0], free)?;
/// assert_eq!(sim.positions, [0.0, 1.0, 1.0]);
/// assert!((sim.equity[2] - 1.21).abs() < 1e-12);
/// assert_eq!(sim.trades.len(), 1);
/// # Ok::<(), ratchet_backtest::BacktestError>(())
/// ```
pub fn simulate_positions(
    prices: &PriceSeries,
    positions: &[f64],
    costs: Costs,
) -> Result<Simulation, BacktestError> {
    validate_costs(costs)?;
    let n = prices.len();
    if positions.len() != n {
        return input(format!(
            "positions must have one entry per bar ({n}), decided at that bar's close; got {}",
            positions.len()
        ));
    }
    if let Some(i) = positions.iter().position(|p| !p.is_finite()) {
        return input(format!(
            "positions[{i}] ({}) is {}; positions must be finite",
            format_ms(prices.timestamps()[i]),
            positions[i]
        ));
    }
    let mut held = Vec::with_capacity(n);
    held.push(0.0);
    held.extend_from_slice(&positions[..n - 1]);
    Ok(run(prices, held, costs))
}

/// Runs `policy` over every bar that can still fill (all but the last), feeding it the
/// position and unrealised return it holds, and simulates the positions it chose.
///
/// ```
/// use ratchet_backtest::{PriceSeries, simulate_policy};
/// use ratchet_env::execution::Costs;
/// let day = 86_400_000;
/// let prices = PriceSeries::new(vec![0, day, 2 * day, 3 * day], vec![10.0; 4], vec![10.0, 11.0, 9.0, 10.0])?;
/// // Go long, and get out once the open trade is losing.
/// let mut policy = |_bar: usize, position: f64, unrealised: f64| if position > 0.0 && unrealised < 0.0 { 0.0 } else { 1.0 };
/// let sim = simulate_policy(&prices, &mut policy, Costs::default())?;
/// assert_eq!(sim.positions, [0.0, 1.0, 1.0, 0.0]);
/// # Ok::<(), ratchet_backtest::BacktestError>(())
/// ```
pub fn simulate_policy(
    prices: &PriceSeries,
    policy: &mut impl Policy,
    costs: Costs,
) -> Result<Simulation, BacktestError> {
    validate_costs(costs)?;
    let (open, close) = (prices.open(), prices.close());
    let n = prices.len();
    let mut held = Vec::with_capacity(n);
    held.push(0.0);
    let mut position = 0.0;
    let mut entry_price = 0.0;
    for bar in 0..n - 1 {
        let unrealised = if position == 0.0 {
            0.0
        } else {
            position * (close[bar] / entry_price - 1.0)
        };
        let target = policy.decide(bar, position, unrealised);
        if !target.is_finite() {
            return input(format!(
                "the policy chose position {target} at bar {bar} ({}); positions must be finite",
                format_ms(prices.timestamps()[bar])
            ));
        }
        if target != position {
            entry_price = open[bar + 1];
            position = target;
        }
        held.push(position);
    }
    Ok(run(prices, held, costs))
}

/// Costs the shared rule can charge: finite, non-negative, and below 50% per unit traded,
/// so a full reversal (two units) cannot cost the whole account.
pub(crate) fn validate_costs(costs: Costs) -> Result<(), BacktestError> {
    let Costs {
        cost_bps,
        slippage_bps,
    } = costs;
    for (name, v) in [("cost_bps", cost_bps), ("slippage_bps", slippage_bps)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(BacktestError::Costs(format!(
                "{name} is {v}; it must be finite and >= 0"
            )));
        }
    }
    if cost_bps + slippage_bps >= 5_000.0 {
        return Err(BacktestError::Costs(format!(
            "cost_bps + slippage_bps is {}; it must be below 5000 (50% per unit traded)",
            cost_bps + slippage_bps
        )));
    }
    Ok(())
}

/// The simulation proper, over validated inputs; `held[t]` is the position through bar
/// `t`'s session, `held[0] = 0`.
fn run(prices: &PriceSeries, mut held: Vec<f64>, costs: Costs) -> Simulation {
    let n = held.len();
    let (open, close) = (prices.open(), prices.close());

    // Pass 1, independent per bar (vectorisable): each bar's growth factor, clamped at 0
    // as in the trading environment (an account cannot go below nothing).
    let mut returns = vec![0.0; n];
    for ((r, (&old, &new)), ((&prev_close, &open), &close)) in returns[1..]
        .iter_mut()
        .zip(held[..n - 1].iter().zip(&held[1..]))
        .zip(close[..n - 1].iter().zip(&open[1..]).zip(&close[1..]))
    {
        *r = bar_factor(old, new, prev_close, open, close, costs).max(0.0);
    }

    // Pass 2, the one serial dependency: compound the factors.
    let mut equity = vec![0.0; n];
    let mut value = 1.0;
    equity[0] = value;
    for (e, r) in equity[1..].iter_mut().zip(&mut returns[1..]) {
        value *= *r;
        *e = value;
        *r -= 1.0;
    }

    // A wiped-out account trades no more: liquidate at the next open and stay flat.
    let bankrupt_at = if value == 0.0 {
        let b = equity
            .iter()
            .position(|&e| e == 0.0)
            .expect("final equity is 0");
        if b + 1 < n {
            held[b + 1..].fill(0.0);
            returns[b + 1..].fill(0.0);
        }
        Some(b)
    } else {
        None
    };

    let trades = extract_trades(prices, &held, &equity, costs);
    Simulation {
        equity,
        returns,
        positions: held,
        trades,
        costs,
        bankrupt_at,
    }
}

/// Pass 3, touching only the bars where the position changes: the round trips.
///
/// At a change on bar `t` the account first carries the old position through the gap to
/// the open (`bar_factor` with no change and the open as the close gives exactly that
/// gap factor), then pays `|old|` units to close and `|new|` units to open. The exit value
/// of one trade is therefore the entry value of the next, and the pnls telescope to the
/// final equity minus 1.
fn extract_trades(prices: &PriceSeries, held: &[f64], equity: &[f64], costs: Costs) -> Vec<Trade> {
    let (open, close) = (prices.open(), prices.close());
    let n = held.len();
    let mut trades = Vec::new();
    // (side, entry bar, equity just before the entry fill's own cost)
    let mut current: Option<(Side, usize, f64)> = None;
    for t in 1..n {
        let (old, new) = (held[t - 1], held[t]);
        if old == new {
            continue;
        }
        let (old_side, new_side) = (side_of(old), side_of(new));
        if old_side == new_side {
            continue; // resized within the same trade
        }
        let at_open = equity[t - 1] * bar_factor(old, old, close[t - 1], open[t], open[t], costs);
        let after_exit = (at_open * (1.0 - costs.charge(old))).max(0.0);
        if let Some((side, entry_bar, start)) = current.take() {
            trades.push(make_trade(
                prices, side, entry_bar, start, t, open[t], true, after_exit,
            ));
        }
        if let Some(side) = new_side {
            current = Some((side, t, after_exit));
        }
    }
    if let Some((side, entry_bar, start)) = current {
        let last = n - 1;
        trades.push(make_trade(
            prices,
            side,
            entry_bar,
            start,
            last,
            close[last],
            false,
            equity[last],
        ));
    }
    trades
}

#[allow(clippy::too_many_arguments)]
fn make_trade(
    prices: &PriceSeries,
    side: Side,
    entry_bar: usize,
    start: f64,
    exit_bar: usize,
    exit_price: f64,
    closed: bool,
    end: f64,
) -> Trade {
    let ts = prices.timestamps();
    let pnl = end - start;
    Trade {
        side,
        entry_bar,
        entry_time: to_datetime(ts[entry_bar]),
        entry_price: prices.open()[entry_bar],
        exit_bar,
        exit_time: to_datetime(ts[exit_bar]),
        exit_price,
        closed,
        bars: exit_bar - entry_bar + usize::from(!closed),
        pnl,
        trade_return: if start > 0.0 { pnl / start } else { 0.0 },
    }
}

fn side_of(position: f64) -> Option<Side> {
    if position > 0.0 {
        Some(Side::Long)
    } else if position < 0.0 {
        Some(Side::Short)
    } else {
        None
    }
}
