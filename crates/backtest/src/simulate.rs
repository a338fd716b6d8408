//! Turning positions into an equity curve with the shared fill rule of
//! [`ratchet_env::execution`]: a position decided at bar `t`'s close fills at bar `t + 1`'s
//! open, and equity moves from close to close by exactly [`bar_factor`].

use ratchet_env::execution::{Costs, bar_factor};
use serde::{Deserialize, Serialize};

use crate::error::{BacktestError, input};
use crate::prices::{PriceSeries, format_ms};

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
    pub entry_price: f64,
    /// Bar at whose open the exit filled; for a trade still open, the last bar (marked at
    /// its close).
    pub exit_bar: usize,
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
    let mut sim = Simulation {
        equity: Vec::new(),
        returns: Vec::new(),
        positions: Vec::new(),
        trades: Vec::new(),
        costs,
        bankrupt_at: None,
    };
    sim.resimulate(prices, positions, costs)?;
    Ok(sim)
}

impl Simulation {
    /// Replaces this simulation with that of `positions` (as [`simulate_positions`] would
    /// make it), reusing its buffers. For sweeps over many signals: three fresh
    /// million-bar vectors per run cost more in page faults than the simulation itself.
    ///
    /// On error the simulation is left empty.
    pub fn resimulate(
        &mut self,
        prices: &PriceSeries,
        positions: &[f64],
        costs: Costs,
    ) -> Result<(), BacktestError> {
        let mut held = std::mem::take(&mut self.positions);
        let buffers = Buffers {
            returns: std::mem::take(&mut self.returns),
            equity: std::mem::take(&mut self.equity),
            trades: std::mem::take(&mut self.trades),
        };
        validate_costs(costs)?;
        validate_positions(prices, positions)?;
        held.clear();
        held.push(0.0);
        held.extend_from_slice(&positions[..positions.len() - 1]);
        *self = run(prices, held, buffers, costs);
        Ok(())
    }
}

/// One finite position per bar.
fn validate_positions(prices: &PriceSeries, positions: &[f64]) -> Result<(), BacktestError> {
    let n = prices.len();
    if positions.len() != n {
        return input(format!(
            "positions must have one entry per bar ({n}), decided at that bar's close; got {}",
            positions.len()
        ));
    }
    // A non-short-circuiting `|` reduction vectorises; the search runs only on failure.
    if positions.iter().fold(false, |bad, p| bad | !p.is_finite()) {
        let i = positions
            .iter()
            .position(|p| !p.is_finite())
            .expect("a non-finite position");
        return input(format!(
            "positions[{i}] ({}) is {}; positions must be finite",
            format_ms(prices.timestamps()[i]),
            positions[i]
        ));
    }
    Ok(())
}

/// The position held and the price it was entered at: what a policy is told about its open
/// trade. [`simulate_policy`] and a live server keep one each, so both hand a policy the
/// same numbers.
///
/// ```
/// use ratchet_backtest::Holding;
/// let mut h = Holding::default();
/// h.fill(-1.0, 50.0); // short from the next open, 50
/// assert!((h.unrealised_return(45.0) - 0.1).abs() < 1e-12);
/// h.fill(-1.0, 40.0); // unchanged: the entry price stays
/// assert_eq!(h.entry_price, 50.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Holding {
    /// Fraction of equity: `-1` short, `0` flat, `1` long.
    pub position: f64,
    /// Fill price of the last change of position (0 before the first).
    pub entry_price: f64,
}

impl Holding {
    /// The open trade's return at `close`; 0 when flat.
    #[inline]
    pub fn unrealised_return(&self, close: f64) -> f64 {
        if self.position == 0.0 {
            0.0
        } else {
            self.position * (close / self.entry_price - 1.0)
        }
    }

    /// Moves to `target` at the fill price `open` (the next bar's open); holding the same
    /// position keeps its entry price.
    #[inline]
    pub fn fill(&mut self, target: f64, open: f64) {
        if target != self.position {
            self.entry_price = open;
            self.position = target;
        }
    }
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
    let mut holding = Holding::default();
    for bar in 0..n - 1 {
        let target = policy.decide(bar, holding.position, holding.unrealised_return(close[bar]));
        if !target.is_finite() {
            return input(format!(
                "the policy chose position {target} at bar {bar} ({}); positions must be finite",
                format_ms(prices.timestamps()[bar])
            ));
        }
        holding.fill(target, open[bar + 1]);
        held.push(holding.position);
    }
    Ok(run(prices, held, Buffers::default(), costs))
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

/// Output vectors to fill, emptied but keeping their capacity.
#[derive(Default)]
struct Buffers {
    returns: Vec<f64>,
    equity: Vec<f64>,
    trades: Vec<Trade>,
}

/// Bars simulated per block: the block's slices of every array (about 200 KB) stay in the
/// core's L2 cache between the two passes over it.
const BLOCK: usize = 4096;

/// The simulation proper, over validated inputs; `held[t]` is the position through bar
/// `t`'s session, `held[0] = 0`.
///
/// Block by block: pass 1 computes every bar's growth factor independently (vectorised),
/// pass 2 compounds them (the one serial dependency), pass 3 notes the round trips where
/// the position changes. Factors are clamped at 0 as in the trading environment: an account
/// cannot go below nothing, and once it is at nothing it trades no more.
fn run(prices: &PriceSeries, mut held: Vec<f64>, buffers: Buffers, costs: Costs) -> Simulation {
    let n = held.len();
    let (open, close) = (prices.open(), prices.close());
    // Filled block by block rather than zeroed first: a memset of memory about to be
    // overwritten costs as much as pass 1.
    let Buffers {
        mut returns,
        mut equity,
        mut trades,
    } = buffers;
    returns.clear();
    returns.reserve(n);
    returns.push(0.0);
    equity.clear();
    equity.reserve(n);
    equity.push(1.0);
    trades.clear();
    let mut value = 1.0;
    let mut book = TradeBook::new(prices, costs, trades);
    let mut bankrupt_at = None;

    let mut start = 1;
    while start < n {
        let end = (start + BLOCK).min(n);
        // Pass 1: every bar's growth factor, independently of the others (vectorised).
        returns.extend(
            (held[start - 1..end - 1].iter().zip(&held[start..end]))
                .zip(
                    close[start - 1..end - 1]
                        .iter()
                        .zip(&open[start..end])
                        .zip(&close[start..end]),
                )
                .map(|((&old, &new), ((&prev_close, &open), &close))| {
                    bar_factor(old, new, prev_close, open, close, costs).max(0.0)
                }),
        );
        // Pass 2: compound (a tight multiply chain, nothing else in the loop).
        equity.extend(returns[start..end].iter().map(|&factor| {
            value *= factor;
            value
        }));
        let bankrupt = (value == 0.0).then(|| {
            start
                + equity[start..end]
                    .iter()
                    .position(|&e| e == 0.0)
                    .expect("equity hit 0")
        });
        // Pass 3: the round trips, at the (few) bars where the position changes. Runs of
        // eight bars are tested at once (vectorised) and searched only if one changes.
        let last = bankrupt.unwrap_or(end - 1);
        let mut t = start;
        while t <= last {
            let run = (last + 1 - t).min(8);
            let window = &held[t - 1..t + run];
            if window
                .windows(2)
                .fold(false, |changed, w| changed | (w[0] != w[1]))
            {
                for u in t..t + run {
                    if held[u] != held[u - 1] {
                        book.change(u, equity[u - 1], held[u - 1], held[u]);
                    }
                }
            }
            t += run;
        }
        for r in &mut returns[start..end] {
            *r -= 1.0;
        }
        if let Some(b) = bankrupt {
            bankrupt_at = Some(b);
            if b + 1 < n {
                // Liquidated at the next open; flat and worthless from then on.
                book.change(b + 1, 0.0, held[b], 0.0);
                held[b + 1..].fill(0.0);
                returns.truncate(b + 1);
                returns.resize(n, 0.0);
                equity.truncate(b + 1);
                equity.resize(n, 0.0);
            }
            break;
        }
        start = end;
    }
    Simulation {
        trades: book.finish(equity[n - 1]),
        equity,
        returns,
        positions: held,
        costs,
        bankrupt_at,
    }
}

/// Round trips, assembled from the bars where the position changes.
///
/// At a change on bar `t` the account first carries the old position through the gap to
/// the open (`bar_factor` with no change and the open as the close gives exactly that gap
/// factor), then pays `|old|` units to close and `|new|` units to open. The exit value of
/// one trade is therefore the entry value of the next, and the pnls telescope to the final
/// equity minus 1.
struct TradeBook<'a> {
    prices: &'a PriceSeries,
    costs: Costs,
    trades: Vec<Trade>,
    /// The trade under way: side, entry bar and price, equity just before its own entry
    /// cost. (Keeping the price avoids reading the bar again, long out of cache, at exit.)
    open: Option<(Side, usize, f64, f64)>,
}

impl<'a> TradeBook<'a> {
    fn new(prices: &'a PriceSeries, costs: Costs, trades: Vec<Trade>) -> Self {
        Self {
            prices,
            costs,
            trades,
            open: None,
        }
    }

    /// The position moves from `old` to `new` at bar `t`'s open; `equity` is the value at
    /// bar `t - 1`'s close.
    fn change(&mut self, t: usize, equity: f64, old: f64, new: f64) {
        let new_side = side_of(new);
        if side_of(old) == new_side {
            return; // resized within the same trade
        }
        let (open, close) = (self.prices.open(), self.prices.close());
        let at_open = equity * bar_factor(old, old, close[t - 1], open[t], open[t], self.costs);
        let after_exit = (at_open * (1.0 - self.costs.charge(old))).max(0.0);
        if let Some(entry) = self.open.take() {
            self.trades.push(trade(entry, t, open[t], true, after_exit));
        }
        if let Some(side) = new_side {
            self.open = Some((side, t, open[t], after_exit));
        }
    }

    /// All trades, the one still open marked at the last close (`final_equity`).
    fn finish(mut self, final_equity: f64) -> Vec<Trade> {
        if let Some(entry) = self.open.take() {
            let last = self.prices.len() - 1;
            let exit_price = self.prices.close()[last];
            self.trades
                .push(trade(entry, last, exit_price, false, final_equity));
        }
        self.trades
    }
}

fn trade(
    (side, entry_bar, entry_price, start): (Side, usize, f64, f64),
    exit_bar: usize,
    exit_price: f64,
    closed: bool,
    end: f64,
) -> Trade {
    let pnl = end - start;
    Trade {
        side,
        entry_bar,
        entry_price,
        exit_bar,
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
