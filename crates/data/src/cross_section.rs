//! Cross-sectional features: at each bar of one symbol, statistics of the whole universe's
//! k-bar log returns as they were known at that moment.
//!
//! The rule that keeps them causal whatever order same-time bars arrive in: a symbol's value
//! at its bar stamped `t` reads its own k-bar return at `t` and every other symbol's latest
//! k-bar return stamped **before** `t` (a symbol with none yet is left out). Bars enter in
//! time order across the universe, so a live server that takes bars as they close computes
//! exactly what a batch computation over the files did.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::config::FeatureSpec;
use crate::indicator::Indicator;
use crate::timestamp::format_timestamp;
use crate::{Bars, DataError};

/// The universe's latest k-bar returns, shared by the [`FeatureStream`](crate::FeatureStream)s
/// of its symbols: each pushes its bars through [`FeatureStream::push_in`](crate::FeatureStream::push_in)
/// with this and its member index.
#[derive(Clone, Debug)]
pub struct CrossSection {
    symbols: Vec<String>,
    /// One per distinct return horizon of the config's cross-sectional features.
    horizons: Vec<Horizon>,
    /// The timestamp of the latest bar taken.
    now: Option<i64>,
}

/// The returns of one horizon `k` known before `now`.
#[derive(Clone, Debug)]
struct Horizon {
    k: usize,
    /// Per member, its latest k-bar return stamped before `now` (NaN: none yet).
    settled: Vec<f64>,
    /// Per member, its return stamped `now` (NaN: none), which the others read only once
    /// time moves past `now`.
    pending: Vec<f64>,
    has_pending: bool,
    /// The settled returns, sorted; their sum (in member order) and count.
    sorted: Vec<f64>,
    sum: f64,
}

impl CrossSection {
    /// The cross-section of `symbols` (member `i` is `symbols[i]`) for the cross-sectional
    /// features among `features`.
    pub fn new(symbols: Vec<String>, features: &[FeatureSpec]) -> Self {
        let mut ks: Vec<usize> = features.iter().filter_map(FeatureSpec::horizon).collect();
        ks.sort_unstable();
        ks.dedup();
        let horizons = ks
            .into_iter()
            .map(|k| Horizon {
                k,
                settled: vec![f64::NAN; symbols.len()],
                pending: vec![f64::NAN; symbols.len()],
                has_pending: false,
                sorted: Vec::new(),
                sum: 0.0,
            })
            .collect();
        CrossSection {
            symbols,
            horizons,
            now: None,
        }
    }

    /// The member index of `symbol`, if it is in the universe.
    pub fn member(&self, symbol: &str) -> Option<usize> {
        self.symbols.iter().position(|s| s == symbol)
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The timestamp of the latest bar taken, if any.
    pub fn latest(&self) -> Option<i64> {
        self.now
    }

    /// Why a bar of `member` stamped `timestamp` cannot be taken now, if it cannot.
    pub(crate) fn refusal(&self, member: usize, timestamp: i64) -> Option<String> {
        if member >= self.symbols.len() {
            return Some(format!(
                "member {member} is not in the universe of {} symbols",
                self.symbols.len()
            ));
        }
        match self.now {
            Some(now) if timestamp < now => Some(format!(
                "its timestamp is before {}, the latest bar the universe has taken; features \
                 across symbols need every symbol's bars in time order",
                format_timestamp(now)
            )),
            _ => None,
        }
    }

    /// Moves time to `timestamp` (not before the latest): the values stamped earlier become
    /// visible to every symbol.
    pub(crate) fn advance(&mut self, timestamp: i64) {
        if self.now.is_some_and(|now| timestamp <= now) {
            return;
        }
        self.now = Some(timestamp);
        for horizon in &mut self.horizons {
            horizon.settle();
        }
    }

    /// The value of `spec` for `member` whose own k-bar return at the current time is `own`,
    /// and records `own` for the others to read once time moves on. NaN while `own` is.
    pub(crate) fn value(&mut self, spec: &FeatureSpec, member: usize, own: f64) -> f64 {
        let Some(k) = spec.horizon() else {
            return f64::NAN;
        };
        let h = self
            .horizons
            .iter()
            .position(|horizon| horizon.k == k)
            .expect("a cross-section has a horizon for every cross-sectional feature");
        if own.is_nan() {
            return f64::NAN;
        }
        let horizon = &mut self.horizons[h];
        horizon.pending[member] = own;
        horizon.has_pending = true;
        match spec {
            FeatureSpec::UniverseReturn { .. } => horizon.mean_with(member, own),
            FeatureSpec::ExcessReturn { .. } => own - horizon.mean_with(member, own),
            FeatureSpec::ReturnRank { .. } => horizon.rank_of(member, own),
            _ => f64::NAN,
        }
    }
}

impl CrossSection {
    /// The cross-sectional feature values of every bar of every member (`(symbol, bars)`),
    /// taking the bars in time order across the members (ties in member order) exactly as
    /// live streams do: per member, one value per cross-sectional feature of `features` per
    /// bar, bar after bar. Cheap (one return per bar), so the rest of the features can be
    /// computed per member in parallel.
    pub(crate) fn values_of(members: &[(&str, &Bars)], features: &[FeatureSpec]) -> Vec<Vec<f64>> {
        let specs: Vec<&FeatureSpec> = features.iter().filter(|f| f.horizon().is_some()).collect();
        let symbols = members.iter().map(|(s, _)| s.to_string()).collect();
        let mut cross = CrossSection::new(symbols, features);
        // Each member's own return at each bar per feature, by the indicator its stream runs
        // (per member, in parallel); then replaced in place by the feature's value, in time
        // order across the members.
        let n = specs.len();
        let mut values: Vec<Vec<f64>> = members
            .par_iter()
            .map(|(_, bars)| {
                let mut indicators: Vec<Indicator> =
                    specs.iter().map(|spec| Indicator::new(spec)).collect();
                let mut own = Vec::with_capacity(bars.len() * n);
                for t in 0..bars.len() {
                    let (bar, previous_close) =
                        (bars.bar(t), t.checked_sub(1).map(|p| bars.close[p]));
                    for indicator in &mut indicators {
                        let mut return_k = [f64::NAN];
                        indicator.update(&bar, previous_close, &mut return_k);
                        own.push(return_k[0]);
                    }
                }
                own
            })
            .collect();
        let mut next: BinaryHeap<Reverse<(i64, usize, usize)>> = members
            .iter()
            .enumerate()
            .filter(|(_, (_, bars))| !bars.is_empty())
            .map(|(m, (_, bars))| Reverse((bars.timestamps[0], m, 0)))
            .collect();
        while let Some(Reverse((timestamp, m, t))) = next.pop() {
            cross.advance(timestamp);
            for (j, spec) in specs.iter().enumerate() {
                let slot = &mut values[m][t * n + j];
                *slot = cross.value(spec, m, *slot);
            }
            let bars = members[m].1;
            if t + 1 < bars.len() {
                next.push(Reverse((bars.timestamps[t + 1], m, t + 1)));
            }
        }
        values
    }
}

impl Horizon {
    /// Makes the pending returns visible.
    fn settle(&mut self) {
        if !self.has_pending {
            return;
        }
        self.has_pending = false;
        for (settled, pending) in self.settled.iter_mut().zip(&mut self.pending) {
            if !pending.is_nan() {
                *settled = std::mem::replace(pending, f64::NAN);
            }
        }
        self.sorted.clear();
        self.sorted
            .extend(self.settled.iter().copied().filter(|v| !v.is_nan()));
        // Summed in member order, so the sum does not depend on the order bars arrived in.
        self.sum = self.sorted.iter().sum();
        self.sorted.sort_unstable_by(f64::total_cmp);
    }

    /// The other members' settled returns: their sum and count.
    fn others(&self, member: usize) -> (f64, usize) {
        let mine = self.settled[member];
        if mine.is_nan() {
            (self.sum, self.sorted.len())
        } else {
            (self.sum - mine, self.sorted.len() - 1)
        }
    }

    /// The mean of `own` and the other members' settled returns.
    fn mean_with(&self, member: usize, own: f64) -> f64 {
        let (sum, count) = self.others(member);
        (sum + own) / (count + 1) as f64
    }

    /// The fraction of the other members whose return is below `own` (ties count half); 0.5
    /// alone.
    fn rank_of(&self, member: usize, own: f64) -> f64 {
        let below = self.sorted.partition_point(|&v| v < own);
        let not_above = self.sorted.partition_point(|&v| v <= own);
        let (mut below, mut ties) = (below, not_above - below);
        let mine = self.settled[member];
        if mine < own {
            below -= 1;
        } else if mine == own {
            ties -= 1;
        }
        let (_, count) = self.others(member);
        if count == 0 {
            0.5
        } else {
            (below as f64 + 0.5 * ties as f64) / count as f64
        }
    }
}

/// Refuses a cross-sectional config's bar outside a universe.
pub(crate) fn needs_universe(spec: &FeatureSpec) -> DataError {
    DataError::Features(format!(
        "feature {} reads the whole universe's bars; push bars with FeatureStream::push_in and \
         the universe's CrossSection",
        spec.column_names()[0]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> [FeatureSpec; 3] {
        [
            FeatureSpec::UniverseReturn { k: 1 },
            FeatureSpec::ReturnRank { k: 1 },
            FeatureSpec::ExcessReturn { k: 1 },
        ]
    }

    fn take(cross: &mut CrossSection, member: usize, t: i64, own: f64) -> [f64; 3] {
        cross.advance(t);
        specs().map(|spec| cross.value(&spec, member, own))
    }

    #[test]
    fn same_time_bars_read_only_earlier_values_in_any_order() {
        let symbols = || vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let mut cross = CrossSection::new(symbols(), &specs());
        // t=1: nobody has an earlier value: each sees only itself.
        assert_eq!(take(&mut cross, 0, 1, 0.5), [0.5, 0.5, 0.0]);
        assert_eq!(take(&mut cross, 1, 1, -0.25), [-0.25, 0.5, 0.0]);
        // t=2: A reads B's 1-stamped -0.25 and its own new value; C has no value yet.
        assert_eq!(take(&mut cross, 0, 2, 1.0), [0.375, 1.0, 0.625]);
        // C arrives at t=2: it reads A's and B's t=1 values, not A's t=2 one.
        assert_eq!(take(&mut cross, 2, 2, 1.25), [0.5, 1.0, 0.75]);
        // t=3: B reads A's and C's t=2 values.
        assert_eq!(take(&mut cross, 1, 3, 0.0), [0.75, 0.0, -0.75]);
        // The same bars with C before A at t=2 give the same values.
        let mut other = CrossSection::new(symbols(), &specs());
        take(&mut other, 1, 1, -0.25);
        take(&mut other, 0, 1, 0.5);
        assert_eq!(take(&mut other, 2, 2, 1.25), [0.5, 1.0, 0.75]);
        assert_eq!(take(&mut other, 0, 2, 1.0), [0.375, 1.0, 0.625]);
        assert_eq!(take(&mut other, 1, 3, 0.0), [0.75, 0.0, -0.75]);
    }

    #[test]
    fn ties_count_half_and_earlier_times_are_refused() {
        let symbols = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let mut cross = CrossSection::new(symbols, &specs());
        take(&mut cross, 0, 1, 0.5);
        take(&mut cross, 1, 1, 0.25);
        take(&mut cross, 2, 1, 0.75);
        // A at t=2 with 0.25: B ties (half), C is above.
        assert_eq!(take(&mut cross, 0, 2, 0.25)[1], 0.25);
        assert!(cross.refusal(1, 1).is_some());
        assert!(cross.refusal(1, 2).is_none());
        assert!(cross.refusal(3, 2).is_some());
    }
}
