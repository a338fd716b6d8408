//! How far a Sharpe ratio can be trusted: its standard error, the probabilistic Sharpe ratio
//! against a benchmark, the deflated Sharpe ratio of the best of many trials, and the
//! probability of backtest overfitting of a selection among trials.
//!
//! Sharpe ratios here are per period (`mean / stdev` of per-bar returns, not annualised);
//! multiply by `sqrt(periods per year)` to annualise one, divide to go back.
//!
//! ```
//! use ratchet_backtest::{SharpeEstimate, Trials, probability_of_backtest_overfitting};
//!
//! let returns: Vec<f64> = (0..500).map(|t| 0.001 + 0.01 * ((t * 7 % 13) as f64 - 6.0) / 6.0).collect();
//! let estimate = SharpeEstimate::of_returns(&returns)?;
//! let psr = estimate.probabilistic(0.0).unwrap(); // P(true Sharpe > 0)
//! // The same strategy, picked as the best of 50 trials whose Sharpe ratios vary by 0.05:
//! let dsr = estimate.deflated(&Trials::new(50, 0.05 * 0.05)?).unwrap();
//! assert!(dsr < psr);
//!
//! // Ten trials' returns over the same 480 bars, cut into 8 blocks:
//! let trials: Vec<Vec<f64>> = (0..10)
//!     .map(|k| (0..480).map(|t| (((t * (k + 3)) % 17) as f64 - 8.0) / 800.0).collect())
//!     .collect();
//! let overfitting = probability_of_backtest_overfitting(&trials, 8)?;
//! assert_eq!(overfitting.logits.len(), 70); // 8 choose 4 splits
//! assert!((0.0..=1.0).contains(&overfitting.probability));
//! # Ok::<(), ratchet_backtest::BacktestError>(())
//! ```

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::error::{BacktestError, input};
use crate::moments::Moments;

/// The Euler–Mascheroni constant (`std::f64::consts::EGAMMA` is not stable yet).
const EULER_MASCHERONI: f64 = 0.577_215_664_901_532_9;

/// Most blocks [`probability_of_backtest_overfitting`] accepts: 20 choose 10 = 184,756
/// splits, each scoring every trial on both halves.
pub const MAX_PARTITIONS: usize = 20;

/// A Sharpe ratio measured on `observations` returns, with the shape of their distribution
/// (what its standard error depends on).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharpeEstimate {
    /// `mean(r) / stdev(r)` per period, the standard deviation with `T - 1` in the denominator.
    pub sharpe: f64,
    /// `T`, the number of returns.
    pub observations: usize,
    /// `m3 / m2^1.5`, `mk` being the mean k-th power of the deviations from the mean
    /// (scipy's `skew(r)`).
    pub skewness: f64,
    /// `m4 / m2^2`, 3 for normal returns (not the excess; scipy's `kurtosis(r, fisher=False)`).
    pub kurtosis: f64,
}

impl SharpeEstimate {
    /// Measures `returns` (per-period, finite). Errors when there are fewer than two, when
    /// one is NaN or infinite (naming it), or when they are all equal (no Sharpe ratio).
    pub fn of_returns(returns: &[f64]) -> Result<Self, BacktestError> {
        Self::with_moments(returns.len(), &Moments::of(returns)).or_else(|e| {
            match returns.iter().position(|r| !r.is_finite()) {
                Some(i) => input(format!(
                    "return {i} is {}; returns must be finite",
                    returns[i]
                )),
                None => Err(e),
            }
        })
    }

    /// From returns' moments, computed once for the other metrics too.
    pub(crate) fn with_moments(
        observations: usize,
        moments: &Moments,
    ) -> Result<Self, BacktestError> {
        if observations < 2 {
            return input(format!(
                "a Sharpe ratio's standard error needs at least 2 returns, got {observations}"
            ));
        }
        let Moments {
            count,
            mean,
            m2,
            m3,
            m4,
            ..
        } = *moments;
        if !(m2.is_finite() && m3.is_finite() && m4.is_finite() && mean.is_finite()) {
            return input("the returns are not all finite");
        }
        if m2 <= 0.0 {
            return input(format!(
                "all {observations} returns are equal, so they have no Sharpe ratio"
            ));
        }
        let variance = m2 / count;
        Ok(Self {
            sharpe: mean / (m2 / (count - 1.0)).sqrt(),
            observations,
            skewness: m3 / count / variance.powf(1.5),
            kurtosis: m4 / count / (variance * variance),
        })
    }

    /// Standard error of the per-period Sharpe ratio for returns that are independent but
    /// not necessarily normal (Mertens 2002, in the `T - 1` form of Bailey & López de Prado
    /// 2012): `sqrt((1 - skewness * SR + (kurtosis - 1) / 4 * SR^2) / (T - 1))`. For normal
    /// returns it is Lo's (2002) `sqrt((1 + SR^2 / 2) / (T - 1))`.
    ///
    /// `None` when the bracket is not positive, which happens for two-valued returns at one
    /// particular Sharpe ratio (it is `(1 - skewness * SR / 2)^2` at the least), or for an
    /// estimate of fewer than 2 observations built by hand.
    pub fn standard_error(&self) -> Option<f64> {
        let sr = self.sharpe;
        let bracket = 1.0 - self.skewness * sr + (self.kurtosis - 1.0) / 4.0 * sr * sr;
        (bracket > 0.0 && bracket.is_finite() && self.observations >= 2)
            .then(|| (bracket / (self.observations - 1) as f64).sqrt())
    }

    /// Probabilistic Sharpe ratio (Bailey & López de Prado 2012): the probability that the
    /// true Sharpe ratio exceeds `benchmark` (per period), `Φ((SR - benchmark) / SE)`.
    /// The benchmark is taken as known, even when it is itself measured (buy-and-hold's).
    pub fn probabilistic(&self, benchmark: f64) -> Option<f64> {
        let z = (self.sharpe - benchmark) / self.standard_error()?;
        (!z.is_nan()).then(|| normal_cdf(z))
    }

    /// Deflated Sharpe ratio (Bailey & López de Prado 2014): the probabilistic Sharpe ratio
    /// against the Sharpe ratio the best of `trials` would show by luck alone,
    /// [`Trials::expected_max_sharpe`].
    pub fn deflated(&self, trials: &Trials) -> Option<f64> {
        self.probabilistic(trials.expected_max_sharpe())
    }
}

/// The trials a strategy was selected from: how many, and the variance of their per-period
/// Sharpe ratios. Both are inputs of the deflated Sharpe ratio.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trials {
    count: usize,
    sharpe_variance: f64,
}

impl Trials {
    /// `count` trials (at least 1) whose per-period Sharpe ratios have variance
    /// `sharpe_variance` (finite, not negative).
    pub fn new(count: usize, sharpe_variance: f64) -> Result<Self, BacktestError> {
        if count == 0 {
            return input("the number of trials must be at least 1");
        }
        if !(sharpe_variance.is_finite() && sharpe_variance >= 0.0) {
            return input(format!(
                "the variance of the trials' Sharpe ratios is {sharpe_variance}; it must be finite and not negative"
            ));
        }
        Ok(Self {
            count,
            sharpe_variance,
        })
    }

    /// The trials of these per-period Sharpe ratios (one per trial, at least two, finite):
    /// their count and sample variance (`N - 1` in the denominator). Annualised ratios are
    /// divided by `sqrt(periods per year)` first.
    pub fn from_sharpes(sharpes: &[f64]) -> Result<Self, BacktestError> {
        if sharpes.len() < 2 {
            return input(format!(
                "the variance of the trials' Sharpe ratios needs at least 2 trials, got {}",
                sharpes.len()
            ));
        }
        if let Some(i) = sharpes.iter().position(|s| !s.is_finite()) {
            return input(format!(
                "the Sharpe ratio of trial {i} is {}; each must be finite",
                sharpes[i]
            ));
        }
        let moments = Moments::of(sharpes);
        Self::new(sharpes.len(), moments.m2 / (moments.count - 1.0))
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn sharpe_variance(&self) -> f64 {
        self.sharpe_variance
    }

    /// The largest per-period Sharpe ratio expected among the trials if none had any skill
    /// (Bailey & López de Prado 2014, after the extreme-value approximation with the
    /// Euler–Mascheroni constant `γ`):
    /// `sqrt(V) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))`.
    /// One trial is no selection, and trials that all agree leave nothing to luck: 0.
    pub fn expected_max_sharpe(&self) -> f64 {
        if self.count < 2 || self.sharpe_variance == 0.0 {
            return 0.0;
        }
        let n = self.count as f64;
        let normal = Normal::standard();
        self.sharpe_variance.sqrt()
            * ((1.0 - EULER_MASCHERONI) * normal.inverse_cdf(1.0 - 1.0 / n)
                + EULER_MASCHERONI * normal.inverse_cdf(1.0 - 1.0 / (n * std::f64::consts::E)))
    }
}

/// The outcome of combinatorially symmetric cross-validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overfitting {
    /// Share of splits where the trial that did best in-sample ranked at or below the
    /// median out-of-sample (logit ≤ 0).
    pub probability: f64,
    /// One per split: `ln(w / (1 - w))`, `w` being the out-of-sample rank of the in-sample
    /// best divided by `trials + 1`. Splits are in increasing order of the bit mask of
    /// their in-sample blocks (bit `s` = block `s`).
    pub logits: Vec<f64>,
}

/// Probability of backtest overfitting (Bailey, Borwein, López de Prado & Zhu 2017) by
/// combinatorially symmetric cross-validation over the per-period return series of
/// `trials` (at least 2, all as long, finite).
///
/// The rows are cut into `partitions` blocks of equal length (even, 2 to
/// [`MAX_PARTITIONS`]; the `T mod partitions` earliest rows are left out). For each of the
/// `partitions choose partitions/2` ways to pick half the blocks as in-sample (the rest out
/// of sample), the trial with the highest in-sample Sharpe ratio (the first on a tie) is
/// ranked among all trials by out-of-sample Sharpe ratio (ties share the average rank).
/// A slice with no variance scores 0 when its mean is 0, else infinity of its mean's sign.
pub fn probability_of_backtest_overfitting<T: AsRef<[f64]>>(
    trials: &[T],
    partitions: usize,
) -> Result<Overfitting, BacktestError> {
    let rows = check_trials(trials)?;
    if partitions < 2 || !partitions.is_multiple_of(2) || partitions > MAX_PARTITIONS {
        return input(format!(
            "{partitions} partitions: combinatorially symmetric cross-validation needs an even number from 2 to {MAX_PARTITIONS}"
        ));
    }
    let block = rows / partitions;
    if block * partitions / 2 < 2 {
        return input(format!(
            "{rows} returns cut into {partitions} blocks leave fewer than 2 returns in each half; use fewer partitions or longer series"
        ));
    }
    let skip = rows % partitions;
    // blocks[trial][s]: the moments of block s of each trial.
    let blocks: Vec<Vec<Moments>> = trials
        .iter()
        .map(|t| {
            t.as_ref()[skip..]
                .chunks_exact(block)
                .map(Moments::of)
                .collect()
        })
        .collect();

    let half = partitions as u32 / 2;
    let (mut in_sample, mut out_of_sample) = (vec![0.0; trials.len()], vec![0.0; trials.len()]);
    let mut logits = Vec::new();
    for mask in (0u32..1 << partitions).filter(|m| m.count_ones() == half) {
        for (t, trial) in blocks.iter().enumerate() {
            let (mut inside, mut outside) = (Moments::default(), Moments::default());
            for (s, &m) in trial.iter().enumerate() {
                if mask & (1 << s) != 0 {
                    inside = inside.merge(m);
                } else {
                    outside = outside.merge(m);
                }
            }
            (in_sample[t], out_of_sample[t]) = (slice_sharpe(&inside), slice_sharpe(&outside));
        }
        let best =
            (1..in_sample.len()).fold(0, |b, t| if in_sample[t] > in_sample[b] { t } else { b });
        let score = out_of_sample[best];
        let below = out_of_sample.iter().filter(|&&s| s < score).count() as f64;
        let level = out_of_sample.iter().filter(|&&s| s == score).count() as f64;
        let relative_rank = (below + (level + 1.0) / 2.0) / (trials.len() as f64 + 1.0);
        logits.push((relative_rank / (1.0 - relative_rank)).ln());
    }
    let overfit = logits.iter().filter(|&&l| l <= 0.0).count();
    Ok(Overfitting {
        probability: overfit as f64 / logits.len() as f64,
        logits,
    })
}

/// The common length of the trials' return series, or an error naming the trial at fault.
fn check_trials<T: AsRef<[f64]>>(trials: &[T]) -> Result<usize, BacktestError> {
    if trials.len() < 2 {
        return input(format!(
            "the probability of backtest overfitting needs at least 2 trials, got {}",
            trials.len()
        ));
    }
    let rows = trials[0].as_ref().len();
    for (i, trial) in trials.iter().enumerate() {
        let returns = trial.as_ref();
        if returns.len() != rows {
            return input(format!(
                "trial {i} has {} returns but trial 0 has {rows}; every trial must cover the same bars",
                returns.len()
            ));
        }
        if let Some(r) = returns.iter().position(|r| !r.is_finite()) {
            return input(format!(
                "return {r} of trial {i} is {}; returns must be finite",
                returns[r]
            ));
        }
    }
    Ok(rows)
}

/// `Φ(z)` as `erfc(-z / sqrt 2) / 2`, which keeps its precision in the lower tail (no
/// `1 + erf` cancelling). libm's erfc rather than statrs': see the workspace Cargo.toml.
fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// Per-period Sharpe ratio of a slice from its moments; see
/// [`probability_of_backtest_overfitting`] for slices that do not vary.
fn slice_sharpe(m: &Moments) -> f64 {
    if m.m2 > 0.0 {
        m.mean / (m.m2 / (m.count - 1.0)).sqrt()
    } else if m.mean == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(m.mean)
    }
}
