//! A single-instrument trading environment over precomputed per-bar features.
//!
//! The agent chooses a target position at the close of bar `t` (short, flat or long); the
//! order fills at bar `t + 1`'s open by the rule in [`crate::execution`], the one the
//! backtests use as well. The observation at bar `t` holds the last `window` feature rows up
//! to and including `t`, then the current position and its unrealised return, so nothing the
//! agent sees or is paid on comes from after the bar it decides on.
//!
//! ```
//! use std::sync::Arc;
//! use ratchet_env::{Env, EpisodeMode, MarketData, Rng, TradingConfig, TradingEnv};
//!
//! // Six bars, one feature per bar (here simply the close).
//! let close = vec![100.0, 101.0, 99.0, 102.0, 104.0, 103.0];
//! let open = vec![100.0, 100.5, 100.0, 99.5, 102.5, 104.0];
//! let features: Vec<f32> = close.iter().map(|&c| c as f32).collect();
//! let data = Arc::new(MarketData::new(features, 1, open, close).unwrap());
//!
//! let config = TradingConfig { window: 2, ..TradingConfig::default() };
//! let mut env = TradingEnv::new(data, 0..6, config, EpisodeMode::FullRange).unwrap();
//! let mut obs = vec![0.0f32; env.observation_size()]; // 2 bars x 1 feature + position + PnL
//! env.reset(&mut Rng::seed_from(0), &mut obs);
//! assert_eq!(obs, [100.0, 101.0, 0.0, 0.0]);
//! let step = env.step(2, &mut obs); // go long at bar 1's close, filled at bar 2's open
//! assert_eq!(env.position(), 1.0);
//! assert!(step.reward < 0.0); // bar 2 closed below its open of 100, and costs were paid
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::execution::{Costs, bar_factor};
use crate::{Env, EnvError, MarketData, Rng, Step, position_of_action};

/// Log-return reward given to a bar that wipes the account out (`ln` of a factor <= 0 would
/// be `-inf` or NaN): a finite penalty, worse than any loss short of bankruptcy on a bar.
pub const BANKRUPTCY_LOG_RETURN: f64 = -10.0;

/// Below this variance estimate the differential Sharpe ratio is undefined (its
/// denominator is `variance^(3/2)`) and the reward is 0: at the start of an episode, and
/// after holding no position for so long that the estimates have decayed to nothing.
pub const DSR_MIN_VARIANCE: f64 = 1e-12;

/// What the agent is paid each bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// `ln(equity[t+1] / equity[t])`: sums to the log growth of the episode.
    #[default]
    LogReturn,
    /// `equity[t+1] - equity[t]`, net of costs, with equity starting at 1.
    Pnl,
    /// Moody & Saffell's differential Sharpe ratio of the bar's net return: the first-order
    /// change of an exponentially weighted Sharpe ratio (rate [`TradingConfig::dsr_eta`]).
    DifferentialSharpe,
}

/// Which instrument of a universe a training episode runs on (with one instrument, both
/// rules draw the same starts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolSampling {
    /// Any training bar of any instrument is equally likely to start an episode, so
    /// instruments are drawn in proportion to their bars.
    #[default]
    ByBars,
    /// Each environment takes the instruments in turn (environment `i` starts at the `i`-th),
    /// each episode at a start drawn uniformly within that instrument's range.
    RoundRobin,
}

impl SymbolSampling {
    pub fn is_by_bars(&self) -> bool {
        *self == SymbolSampling::ByBars
    }
}

/// Settings of a [`TradingEnv`]; the defaults suit daily bars.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TradingConfig {
    /// Bars of features in one observation (default 10).
    pub window: usize,
    /// Steps in a training episode ([`EpisodeMode::RandomStarts`]); a range too short for it
    /// gives episodes as long as the range allows (default 256).
    pub episode_length: usize,
    /// Whether action 0 means short; without shorting the actions are flat and long
    /// (default true).
    pub allow_short: bool,
    /// Commission and slippage charged on position changes (default 1 + 1 bps).
    pub costs: Costs,
    /// Reward paid each bar (default log return).
    pub reward: RewardKind,
    /// Adaptation rate of the differential Sharpe ratio's moving moments, in (0, 1]
    /// (default 0.01, a memory of about 100 bars).
    pub dsr_eta: f64,
    /// How a universe's training episodes choose their instrument (default by bars). Left
    /// out of the recorded form at its default, so older configs and hashes are unchanged.
    #[serde(skip_serializing_if = "SymbolSampling::is_by_bars")]
    pub symbol_sampling: SymbolSampling,
}

impl Default for TradingConfig {
    fn default() -> Self {
        Self {
            window: 10,
            episode_length: 256,
            allow_short: true,
            costs: Costs::default(),
            reward: RewardKind::LogReturn,
            dsr_eta: 0.01,
            symbol_sampling: SymbolSampling::ByBars,
        }
    }
}

impl TradingConfig {
    /// Floats in an observation over features `width` wide: the window's feature rows, then
    /// the position and the unrealised return.
    pub fn observation_size(&self, width: usize) -> usize {
        self.window * width + 2
    }

    /// Flat and long, and short when allowed.
    pub fn action_count(&self) -> usize {
        if self.allow_short { 3 } else { 2 }
    }

    /// Checks the values a [`TradingEnv`] cannot work with.
    pub fn validate(&self) -> Result<(), EnvError> {
        let bad = |msg: String| Err(EnvError::Config(format!("trading config: {msg}")));
        if self.window == 0 {
            return bad("window is 0; observe at least one bar".into());
        }
        if self.episode_length == 0 {
            return bad("episode_length is 0; an episode needs at least one step".into());
        }
        let Costs {
            cost_bps,
            slippage_bps,
        } = self.costs;
        for (name, v) in [("cost_bps", cost_bps), ("slippage_bps", slippage_bps)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} is {v}; it must be finite and >= 0"));
            }
        }
        // A reversal trades two units of equity; it must not cost all of it.
        if cost_bps + slippage_bps >= 5_000.0 {
            return bad(format!(
                "cost_bps + slippage_bps is {}; it must be below 5000 (50% per unit traded)",
                cost_bps + slippage_bps
            ));
        }
        if !(self.dsr_eta > 0.0 && self.dsr_eta <= 1.0) {
            return bad(format!("dsr_eta is {}; it must be in (0, 1]", self.dsr_eta));
        }
        Ok(())
    }
}

/// Where episodes start and how long they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeMode {
    /// Training: episodes of [`TradingConfig::episode_length`] steps from a start drawn
    /// uniformly from the generator passed to [`Env::reset`].
    RandomStarts,
    /// Evaluation: one episode over the whole range, from its first decision bar to its
    /// last bar; [`Env::reset`] draws nothing.
    FullRange,
}

/// One range of rows episodes run in.
#[derive(Clone, Debug)]
struct Segment {
    range: Range<usize>,
    /// First decision bar of the range.
    first_bar: usize,
    /// Steps of a random-start episode (`episode_length`, or fewer if the range is short).
    episode_steps: usize,
}

impl Segment {
    /// Number of bars a random-start episode may begin at.
    fn start_count(&self) -> usize {
        self.range.end - 1 - self.first_bar - self.episode_steps + 1
    }
}

/// Trades one instrument over a range of [`MarketData`] rows.
///
/// - **Actions**: with shorting, `0` short (-1), `1` flat (0), `2` long (+1); without,
///   `0` flat, `1` long. Positions are fractions of equity.
/// - **Observation** (`window * width + 2` floats): feature rows `t - window + 1 ..= t`,
///   oldest first, then the position held, then its unrealised return
///   `position * (close[t] / entry_price - 1)` (0 when flat).
/// - **Step** at decision bar `t`: the new position fills at `open[t + 1]`, costs are charged
///   on the change, and equity moves by [`bar_factor`] to `close[t + 1]`; the
///   environment then stands at bar `t + 1`.
/// - **End**: `terminated` when equity reaches 0 (bankrupt); `truncated` after
///   `episode_length` steps ([`EpisodeMode::RandomStarts`]) or at the range's last bar.
///
/// The first decision bar of a range is `range.start + window - 1` (a full window behind
/// it); the last is `range.end - 2` (its fill needs the next bar).
#[derive(Clone)]
pub struct TradingEnv {
    data: Arc<MarketData>,
    config: TradingConfig,
    mode: EpisodeMode,
    /// The ranges episodes run in (one per instrument of a universe), in row order.
    segments: Vec<Segment>,
    /// Segment of the current episode.
    segment: usize,
    /// [`SymbolSampling::RoundRobin`]: the segment the next episode runs in.
    next_segment: usize,
    // Episode state: everything `state()` saves.
    start: usize,
    t: usize,
    position: f64,
    /// Fill price of the latest position change (any positive price while flat).
    entry_price: f64,
    equity: f64,
    /// Moving estimates of the first and second moments of the return (DSR's A and B).
    dsr_a: f64,
    dsr_b: f64,
}

impl TradingEnv {
    /// An environment trading over rows `range` of `data`, positioned at the start of a
    /// full-range episode until the first [`Env::reset`].
    ///
    /// Fails if the data or configuration are invalid or the range does not fit a window
    /// plus one bar to fill the first decision.
    pub fn new(
        data: Arc<MarketData>,
        range: Range<usize>,
        config: TradingConfig,
        mode: EpisodeMode,
    ) -> Result<Self, EnvError> {
        Self::over_ranges(data, vec![range], config, mode)
    }

    /// An environment whose episodes run inside any of `ranges` (disjoint, in row order;
    /// a universe's instruments laid end to end in one [`MarketData`]), never across two.
    /// A random-start episode starts at any possible bar of any range with equal
    /// probability, so each range is drawn in proportion to its bars. A full-range episode
    /// runs over the first range (evaluate one instrument per environment).
    pub fn over_ranges(
        data: Arc<MarketData>,
        ranges: Vec<Range<usize>>,
        config: TradingConfig,
        mode: EpisodeMode,
    ) -> Result<Self, EnvError> {
        data.validate()?;
        config.validate()?;
        let rows = data.rows();
        if ranges.is_empty() {
            return Err(EnvError::Config("no bar range to trade over".into()));
        }
        let mut segments = Vec::with_capacity(ranges.len());
        for range in ranges {
            if range.start >= range.end || range.end > rows {
                return Err(EnvError::Config(format!(
                    "bar range {}..{} is empty or outside the data's {rows} bars",
                    range.start, range.end
                )));
            }
            if let Some(previous) = segments.last().map(|s: &Segment| s.range.end)
                && range.start < previous
            {
                return Err(EnvError::Config(format!(
                    "bar range {}..{} overlaps or precedes the one before it (ending at {previous})",
                    range.start, range.end
                )));
            }
            if range.len() <= config.window {
                return Err(EnvError::Config(format!(
                    "bar range {}..{} holds {} bars; window {} needs at least {} \
                     (a full window plus one bar to fill the first decision)",
                    range.start,
                    range.end,
                    range.len(),
                    config.window,
                    config.window + 1
                )));
            }
            let first_bar = range.start + config.window - 1;
            let available_steps = range.end - 1 - first_bar;
            segments.push(Segment {
                first_bar,
                episode_steps: config.episode_length.min(available_steps),
                range,
            });
        }
        let first_bar = segments[0].first_bar;
        let mut env = Self {
            start: first_bar,
            t: first_bar,
            position: 0.0,
            entry_price: 1.0,
            equity: 1.0,
            dsr_a: 0.0,
            dsr_b: 0.0,
            data,
            config,
            mode,
            segments,
            segment: 0,
            next_segment: 0,
        };
        env.begin_episode(first_bar);
        Ok(env)
    }

    /// With [`SymbolSampling::RoundRobin`], the `i`-th environment of a vector starts with
    /// the `i`-th range (wrapping), so that the copies cover the instruments side by side.
    pub fn starting_at_range(mut self, i: usize) -> Self {
        self.next_segment = i % self.segments.len();
        self
    }

    /// Position held now: -1, 0 or 1.
    pub fn position(&self) -> f64 {
        self.position
    }

    /// Account value, 1.0 at the start of each episode.
    pub fn equity(&self) -> f64 {
        self.equity
    }

    /// The bar whose close the current observation ends at (the next decision bar).
    pub fn bar(&self) -> usize {
        self.t
    }

    /// The bar the current episode started at.
    pub fn episode_start(&self) -> usize {
        self.start
    }

    pub fn config(&self) -> &TradingConfig {
        &self.config
    }

    pub fn mode(&self) -> EpisodeMode {
        self.mode
    }

    /// The rows of the data the current episode trades over.
    pub fn range(&self) -> Range<usize> {
        self.segments[self.segment].range.clone()
    }

    /// The position an action asks for. Panics if `action >= action_count()`.
    #[inline]
    pub fn action_to_position(&self, action: usize) -> f64 {
        assert!(
            action < self.action_count(),
            "action {action} is out of range: this TradingEnv has {} actions",
            self.action_count()
        );
        position_of_action(action, self.config.allow_short)
    }

    /// The last bar of an episode that starts at `start`.
    #[inline]
    fn end_bar(&self, start: usize) -> usize {
        match self.mode {
            EpisodeMode::RandomStarts => start + self.segments[self.segment].episode_steps,
            EpisodeMode::FullRange => self.segments[self.segment].range.end - 1,
        }
    }

    /// The segment holding bar `start`, if any.
    fn segment_of(&self, start: usize) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.range.end <= start);
        (i < self.segments.len() && self.segments[i].range.contains(&start)).then_some(i)
    }

    fn begin_episode(&mut self, start: usize) {
        self.segment = self.segment_of(start).unwrap_or(0);
        self.start = start;
        self.t = start;
        self.position = 0.0;
        self.entry_price = self.data.close[start];
        self.equity = 1.0;
        self.dsr_a = 0.0;
        self.dsr_b = 0.0;
    }

    #[inline]
    fn observe(&self, obs: &mut [f32]) {
        let unrealised = self.position * (self.data.close[self.t] / self.entry_price - 1.0);
        self.data
            .write_observation(self.t, self.config.window, self.position, unrealised, obs);
    }

    /// Moody & Saffell's differential Sharpe ratio for return `r`, updating the moments.
    #[inline]
    fn differential_sharpe(&mut self, r: f64) -> f64 {
        let (a, b) = (self.dsr_a, self.dsr_b);
        let delta_a = r - a;
        let delta_b = r * r - b;
        let variance = b - a * a;
        let d = if variance > DSR_MIN_VARIANCE {
            (b * delta_a - 0.5 * a * delta_b) / (variance * variance.sqrt())
        } else {
            0.0
        };
        self.dsr_a = a + self.config.dsr_eta * delta_a;
        self.dsr_b = b + self.config.dsr_eta * delta_b;
        d
    }
}

impl Env for TradingEnv {
    #[inline]
    fn observation_size(&self) -> usize {
        self.config.observation_size(self.data.width)
    }

    #[inline]
    fn action_count(&self) -> usize {
        self.config.action_count()
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        let start = match self.mode {
            EpisodeMode::RandomStarts
                if self.config.symbol_sampling == SymbolSampling::RoundRobin =>
            {
                let segment = &self.segments[self.next_segment];
                self.next_segment = (self.next_segment + 1) % self.segments.len();
                segment.first_bar + rng.below(segment.start_count() as u64) as usize
            }
            EpisodeMode::RandomStarts => {
                // One draw over every possible start of every segment.
                let total: usize = self.segments.iter().map(Segment::start_count).sum();
                let mut k = rng.below(total as u64) as usize;
                let mut start = self.segments[0].first_bar;
                for segment in &self.segments {
                    if k < segment.start_count() {
                        start = segment.first_bar + k;
                        break;
                    }
                    k -= segment.start_count();
                }
                start
            }
            EpisodeMode::FullRange => self.segments[0].first_bar,
        };
        self.begin_episode(start);
        self.observe(obs);
    }

    #[inline]
    fn step(&mut self, action: usize, obs: &mut [f32]) -> Step {
        let end = self.end_bar(self.start);
        assert!(
            self.t < end,
            "TradingEnv::step called after its episode ended at bar {end}; call reset first"
        );
        let new = self.action_to_position(action);
        let old = self.position;
        let t = self.t;
        let data = &*self.data;
        let next_open = data.open[t + 1];
        let factor = bar_factor(
            old,
            new,
            data.close[t],
            next_open,
            data.close[t + 1],
            self.config.costs,
        )
        .max(0.0);
        let equity = self.equity * factor;
        let reward = match self.config.reward {
            RewardKind::LogReturn => log_factor(factor),
            RewardKind::Pnl => equity - self.equity,
            RewardKind::DifferentialSharpe => self.differential_sharpe(factor - 1.0),
        };
        // A new position is entered at the fill price. Written as a bit select because
        // with exploring agents the condition is a coin flip, and a mispredicted branch
        // costs more than the rest of the bookkeeping.
        let changed = 0u64.wrapping_sub((new != old) as u64);
        self.entry_price = f64::from_bits(
            (next_open.to_bits() & changed) | (self.entry_price.to_bits() & !changed),
        );
        self.position = new;
        self.equity = equity;
        self.t = t + 1;
        self.observe(obs);
        let terminated = equity <= 0.0;
        Step {
            reward: reward as f32,
            terminated,
            truncated: !terminated && self.t == end,
        }
    }

    /// `[start, bar, position, entry_price, equity, dsr_a, dsr_b]`, and with
    /// [`SymbolSampling::RoundRobin`] the next episode's range; the step count is
    /// `bar - start`.
    fn state(&self) -> Vec<f64> {
        let mut state = vec![
            self.start as f64,
            self.t as f64,
            self.position,
            self.entry_price,
            self.equity,
            self.dsr_a,
            self.dsr_b,
        ];
        if self.config.symbol_sampling == SymbolSampling::RoundRobin {
            state.push(self.next_segment as f64);
        }
        state
    }

    fn restore(&mut self, state: &[f64]) -> Result<(), EnvError> {
        let bad = |msg: String| Err(EnvError::BadState(format!("trading environment: {msg}")));
        let round_robin = self.config.symbol_sampling == SymbolSampling::RoundRobin;
        let (state, next_segment) = match (state, round_robin) {
            ([head @ .., next], true) if head.len() == 7 => (head, Some(*next)),
            (state, false) => (state, None),
            _ => return bad(format!("expected 8 numbers, got {}", state.len())),
        };
        let &[start, t, position, entry_price, equity, dsr_a, dsr_b] = state else {
            return bad(format!("expected 7 numbers, got {}", state.len()));
        };
        let next_segment = match next_segment {
            Some(n) if n.fract() == 0.0 && n >= 0.0 && (n as usize) < self.segments.len() => {
                n as usize
            }
            Some(n) => {
                return bad(format!(
                    "next range {n} is not one of the {} ranges",
                    self.segments.len()
                ));
            }
            None => 0,
        };
        let as_bar =
            |v: f64| (v.fract() == 0.0 && v >= 0.0 && v < usize::MAX as f64).then_some(v as usize);
        let (Some(start), Some(t)) = (as_bar(start), as_bar(t)) else {
            return bad(format!(
                "start {start} and bar {t} must be whole bar numbers"
            ));
        };
        let valid_start = match self.mode {
            EpisodeMode::RandomStarts => self
                .segment_of(start)
                .map(|i| &self.segments[i])
                .is_some_and(|s| (s.first_bar..s.first_bar + s.start_count()).contains(&start)),
            EpisodeMode::FullRange => start == self.segments[0].first_bar,
        };
        if !valid_start {
            let ranges: Vec<String> = self
                .segments
                .iter()
                .map(|s| format!("{}..{}", s.range.start, s.range.end))
                .collect();
            return bad(format!(
                "episode start {start} is not a possible start for range {} in {:?} mode",
                ranges.join(", "),
                self.mode
            ));
        }
        self.segment = self.segment_of(start).unwrap_or(0);
        let positions_ok = position.fract() == 0.0
            && position <= 1.0
            && position >= if self.config.allow_short { -1.0 } else { 0.0 };
        if !positions_ok {
            return bad(format!(
                "position {position} is not one this environment takes"
            ));
        }
        if !(entry_price.is_finite() && entry_price > 0.0) {
            return bad(format!(
                "entry price {entry_price} must be finite and positive"
            ));
        }
        if !(equity.is_finite() && equity >= 0.0) {
            return bad(format!("equity {equity} must be finite and >= 0"));
        }
        if !(dsr_a.is_finite() && dsr_b.is_finite() && dsr_b >= 0.0) {
            return bad(format!(
                "DSR moments {dsr_a}, {dsr_b} must be finite, the second >= 0"
            ));
        }
        let end = self.end_bar(start);
        if !(start..=end).contains(&t) {
            return bad(format!("bar {t} lies outside the episode {start}..={end}"));
        }
        self.start = start;
        self.t = t;
        self.position = position;
        self.entry_price = entry_price;
        self.equity = equity;
        self.next_segment = next_segment;
        self.dsr_a = dsr_a;
        self.dsr_b = dsr_b;
        Ok(())
    }
}

/// `ln(factor)`, floored at [`BANKRUPTCY_LOG_RETURN`].
///
/// Bar factors are nearly always within a few percent of 1, where `ln(1 + x)` is
/// `2 atanh(x / (2 + x))`, a fast-converging odd series evaluated inline; it agrees with the
/// library logarithm to 2 ulps (far below the `f32` reward's precision) and, unlike the
/// library call, overlaps with the rest of the step. Larger moves take the library path.
#[inline]
fn log_factor(factor: f64) -> f64 {
    let x = factor - 1.0;
    if x.abs() < 0.0625 {
        // |s| < 1/31, so the first omitted term, s^13 / 13, is below 1e-19 * |s|.
        let s = x / (2.0 + x);
        let s2 = s * s;
        let tail = s2
            * (1.0 / 3.0
                + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0)))));
        2.0 * s + 2.0 * s * tail
    } else {
        factor.ln().max(BANKRUPTCY_LOG_RETURN)
    }
}

impl fmt::Debug for TradingEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TradingEnv")
            .field("range", &self.range())
            .field("mode", &self.mode)
            .field("config", &self.config)
            .field("start", &self.start)
            .field("bar", &self.t)
            .field("position", &self.position)
            .field("entry_price", &self.entry_price)
            .field("equity", &self.equity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
