//! Sharpe-ratio statistics against values worked out by hand and against numpy/scipy
//! (`scripts/stats_reference.sh` prints the constants below; see that script for the
//! formulas it applies independently of this crate).

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_backtest::{
    BacktestError, MAX_PARTITIONS, SharpeEstimate, Trials, probability_of_backtest_overfitting,
};

/// `actual` within `tolerance` of `expected`, relative to its size (absolute below 1).
fn close_to(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

/// Uniforms in [0, 1) from a 64-bit LCG (Knuth's MMIX constants), as the script draws them.
fn lcg_uniforms(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Small uniform noise with a rare large loss: negatively skewed, fat-tailed.
fn fat_tailed_returns(seed: u64, n: usize) -> Vec<f64> {
    lcg_uniforms(seed, n)
        .into_iter()
        .map(|u| 0.0004 + 0.01 * (u - 0.5) - 0.05 * f64::from(u8::from(u < 0.01)))
        .collect()
}

// Printed by scripts/stats_reference.sh (numpy 2.4.6, scipy 1.17.1).
const SMALL: [f64; 10] = [
    0.012, -0.008, 0.021, -0.015, 0.004, 0.009, -0.003, 0.017, -0.011, 0.006,
];
const SMALL_SHARPE: f64 = 0.2638717235540541;
const SMALL_SKEWNESS: f64 = -0.0898518751504172;
const SMALL_KURTOSIS: f64 = 1.7776922029455082;
const SMALL_SE: f64 = 0.3394843660346782;
const SMALL_PSR_0: f64 = 0.7815008717780065;
const SMALL_PSR_0_1: f64 = 0.6853483587310246;
const SMALL_SR0_10_TRIALS: f64 = 0.157459830134575;
const SMALL_DSR_10_TRIALS: f64 = 0.623031179454232;
const LONG_SHARPE: f64 = -0.015437789009404472;
const LONG_SKEWNESS: f64 = -6.8365283755137325;
const LONG_KURTOSIS: f64 = 61.43415528527195;
const LONG_SE: f64 = 0.013403279544778622;
const LONG_PSR_0: f64 = 0.12470329557772741;
/// N = 2, 10, 100, 1000 trials, variance 1.
const EXPECTED_MAX: [f64; 4] = [
    0.5197553442805939,
    1.57459830134575,
    2.5306028932016846,
    3.255121513652723,
];
/// Twice the out-of-sample rank of the in-sample best, per split, in mask order.
const CSCV_RANKS_X2: [u32; 70] = [
    6, 2, 8, 10, 8, 2, 8, 6, 8, 6, 6, 8, 4, 8, 4, 10, 8, 4, 6, 10, 4, 10, 4, 8, 2, 8, 4, 10, 6, 6,
    4, 4, 4, 6, 4, 2, 6, 8, 6, 2, 10, 4, 10, 6, 6, 8, 10, 6, 10, 6, 8, 10, 10, 8, 6, 8, 2, 8, 2, 6,
    2, 2, 10, 2, 2, 4, 6, 2, 2, 2,
];
const CSCV_PBO: f64 = 0.6142857142857143;

#[test]
fn two_valued_returns_by_hand() {
    // 3%, -1%, 3%, -1%: mean 1%, deviations ±2%, so no skew and kurtosis 1; the sample
    // standard deviation is 2% * sqrt(4/3), so SR = 0.01 / (0.02 * sqrt(4/3)) = sqrt(3)/4.
    // The bracket 1 - 0 * SR + (1 - 1)/4 * SR^2 is 1, so SE = sqrt(1 / 3), and
    // PSR(0) = Φ((sqrt(3)/4) / (1/sqrt(3))) = Φ(3/4).
    let e = SharpeEstimate::of_returns(&[0.03, -0.01, 0.03, -0.01]).unwrap();
    assert_eq!(e.observations, 4);
    close_to(e.sharpe, 3f64.sqrt() / 4.0, 1e-15, "Sharpe");
    close_to(e.skewness, 0.0, 1e-15, "skewness");
    close_to(e.kurtosis, 1.0, 1e-14, "kurtosis");
    close_to(
        e.standard_error().unwrap(),
        (1.0f64 / 3.0).sqrt(),
        1e-14,
        "SE",
    );
    // Φ(0.75), Python's statistics.NormalDist().cdf(0.75).
    close_to(
        e.probabilistic(0.0).unwrap(),
        0.7733726476231317,
        1e-14,
        "PSR",
    );
    // At the benchmark itself the odds are even, whatever the error.
    assert_eq!(e.probabilistic(e.sharpe), Some(0.5));
}

#[test]
fn normal_shape_gives_lo_standard_error() {
    // With skewness 0 and kurtosis 3 the bracket is Lo's (2002) 1 + SR^2 / 2.
    let e = SharpeEstimate {
        sharpe: 0.1,
        observations: 253,
        skewness: 0.0,
        kurtosis: 3.0,
    };
    close_to(
        e.standard_error().unwrap(),
        ((1.0 + 0.01 / 2.0) / 252.0f64).sqrt(),
        1e-15,
        "SE",
    );
}

#[test]
fn small_series_matches_scipy() {
    let e = SharpeEstimate::of_returns(&SMALL).unwrap();
    close_to(e.sharpe, SMALL_SHARPE, 1e-14, "Sharpe");
    close_to(e.skewness, SMALL_SKEWNESS, 1e-13, "skewness");
    close_to(e.kurtosis, SMALL_KURTOSIS, 1e-13, "kurtosis");
    close_to(e.standard_error().unwrap(), SMALL_SE, 1e-14, "SE");
    close_to(e.probabilistic(0.0).unwrap(), SMALL_PSR_0, 1e-14, "PSR(0)");
    close_to(
        e.probabilistic(0.1).unwrap(),
        SMALL_PSR_0_1,
        1e-14,
        "PSR(0.1)",
    );
    let trials = Trials::new(10, 0.01).unwrap();
    close_to(
        trials.expected_max_sharpe(),
        SMALL_SR0_10_TRIALS,
        1e-14,
        "expected max",
    );
    close_to(
        e.deflated(&trials).unwrap(),
        SMALL_DSR_10_TRIALS,
        1e-14,
        "DSR",
    );
}

#[test]
fn long_fat_tailed_series_matches_scipy() {
    // 5,000 returns span three of the blocks whose moments are merged (2,048 each).
    let e = SharpeEstimate::of_returns(&fat_tailed_returns(7, 5000)).unwrap();
    assert_eq!(e.observations, 5000);
    close_to(e.sharpe, LONG_SHARPE, 1e-12, "Sharpe");
    close_to(e.skewness, LONG_SKEWNESS, 1e-12, "skewness");
    close_to(e.kurtosis, LONG_KURTOSIS, 1e-12, "kurtosis");
    close_to(e.standard_error().unwrap(), LONG_SE, 1e-12, "SE");
    close_to(e.probabilistic(0.0).unwrap(), LONG_PSR_0, 1e-12, "PSR(0)");
}

#[test]
fn expected_maximum_sharpe_matches_scipy() {
    for (n, expected) in [2, 10, 100, 1000].into_iter().zip(EXPECTED_MAX) {
        let trials = Trials::new(n, 1.0).unwrap();
        close_to(
            trials.expected_max_sharpe(),
            expected,
            1e-14,
            &format!("N = {n}"),
        );
        // It scales with the standard deviation of the trials' Sharpe ratios.
        let spread = Trials::new(n, 0.04).unwrap();
        close_to(
            spread.expected_max_sharpe(),
            0.2 * expected,
            1e-14,
            "V = 0.04",
        );
    }
    // One trial, or trials that all agree, leave nothing to selection.
    assert_eq!(Trials::new(1, 5.0).unwrap().expected_max_sharpe(), 0.0);
    assert_eq!(Trials::new(50, 0.0).unwrap().expected_max_sharpe(), 0.0);
}

#[test]
fn deflation_grows_with_the_number_of_trials() {
    let e = SharpeEstimate::of_returns(&SMALL).unwrap();
    assert_eq!(
        e.deflated(&Trials::new(1, 0.01).unwrap()),
        e.probabilistic(0.0),
        "one trial: DSR is PSR against 0"
    );
    let dsr: Vec<f64> = [2, 10, 100, 1000]
        .iter()
        .map(|&n| e.deflated(&Trials::new(n, 0.01).unwrap()).unwrap())
        .collect();
    assert!(dsr.windows(2).all(|w| w[1] < w[0]), "{dsr:?}");
}

#[test]
fn trials_from_sharpe_ratios() {
    // Mean 0.2; squared deviations 0.01, 0, 0.01; sample variance 0.02 / 2.
    let t = Trials::from_sharpes(&[0.1, 0.2, 0.3]).unwrap();
    assert_eq!(t.count(), 3);
    close_to(t.sharpe_variance(), 0.01, 1e-15, "variance");
}

#[test]
fn bad_statistics_input_is_an_error() {
    let message = |r: Result<SharpeEstimate, BacktestError>| r.unwrap_err().to_string();
    assert!(message(SharpeEstimate::of_returns(&[])).contains("at least 2 returns, got 0"));
    assert!(message(SharpeEstimate::of_returns(&[0.01])).contains("at least 2 returns, got 1"));
    assert!(
        message(SharpeEstimate::of_returns(&[0.01; 5]))
            .contains("all 5 returns are equal, so they have no Sharpe ratio")
    );
    assert!(
        message(SharpeEstimate::of_returns(&[0.01, f64::NAN, 0.02]))
            .contains("return 1 is NaN; returns must be finite")
    );
    assert!(
        message(SharpeEstimate::of_returns(&[f64::INFINITY]))
            .contains("return 0 is inf; returns must be finite")
    );

    // An estimate built by hand from too few observations has no standard error.
    let single = SharpeEstimate {
        sharpe: 0.1,
        observations: 1,
        skewness: 0.0,
        kurtosis: 3.0,
    };
    assert_eq!(
        (single.standard_error(), single.probabilistic(0.0)),
        (None, None)
    );

    let message = |r: Result<Trials, BacktestError>| r.unwrap_err().to_string();
    assert!(message(Trials::new(0, 1.0)).contains("number of trials must be at least 1"));
    assert!(message(Trials::new(3, -0.1)).contains("is -0.1; it must be finite and not negative"));
    assert!(message(Trials::new(3, f64::NAN)).contains("is NaN"));
    assert!(message(Trials::from_sharpes(&[0.5])).contains("at least 2 trials, got 1"));
    assert!(message(Trials::from_sharpes(&[0.5, f64::NAN])).contains("trial 1 is NaN"));
}

#[test]
fn a_dominant_trial_is_never_overfit() {
    // Two blocks; trial 1 beats trial 0 in both. Either split picks trial 1 in-sample and
    // it ranks 2nd of 2 out of sample: w = 2/3, logit ln 2.
    let trials = [
        vec![0.01, -0.01, 0.01, -0.01],
        vec![0.03, -0.01, 0.02, 0.00],
    ];
    let o = probability_of_backtest_overfitting(&trials, 2).unwrap();
    assert_eq!(o.probability, 0.0);
    assert_eq!(o.logits.len(), 2);
    for l in &o.logits {
        close_to(*l, 2f64.ln(), 1e-15, "logit");
    }
}

#[test]
fn a_reversing_trial_is_always_overfit() {
    // Trial 0 stays flat (a slice without variance and mean 0 scores 0); trial 1 gains in
    // the first half and loses in the second. In-sample first half: trial 1 is best and
    // ranks last out of sample. In-sample second half: flat is best (0 > negative) and
    // ranks last out of sample (0 < positive). Both splits: w = 1/3, logit -ln 2.
    let trials = [vec![0.0; 4], vec![0.02, 0.01, -0.01, -0.02]];
    let o = probability_of_backtest_overfitting(&trials, 2).unwrap();
    assert_eq!(o.probability, 1.0);
    for l in &o.logits {
        close_to(*l, -(2f64.ln()), 1e-15, "logit");
    }
}

#[test]
fn tied_trials_share_their_rank() {
    // Trials 0 and 1 are identical and gain in both halves; trial 2 is flat. In-sample the
    // first of the tie, trial 0, is chosen; out of sample it shares ranks 2 and 3 with
    // trial 1: rank 2.5 of 3, w = 2.5 / 4, logit ln(5/3) > 0.
    let gaining = vec![0.02, 0.01, 0.03, 0.01];
    let trials = [gaining.clone(), gaining, vec![0.0; 4]];
    let o = probability_of_backtest_overfitting(&trials, 2).unwrap();
    assert_eq!(o.probability, 0.0);
    for l in &o.logits {
        close_to(*l, (5.0f64 / 3.0).ln(), 1e-15, "logit");
    }
}

#[test]
fn cscv_matches_the_numpy_reference() {
    // 6 trials over 1003 rows: noise plus a drift growing with the trial's number, which
    // reverses halfway for the odd-numbered trials. 8 blocks of 125 rows (the first 3
    // rows left out), 70 splits.
    let trials: Vec<Vec<f64>> = (0..6u64)
        .map(|k| {
            lcg_uniforms(100 + k, 1003)
                .into_iter()
                .enumerate()
                .map(|(t, u)| {
                    let drift = if k % 2 == 1 && t >= 500 { -1.0 } else { 1.0 };
                    0.01 * (u - 0.5) + 0.0001 * k as f64 * drift / 5.0
                })
                .collect()
        })
        .collect();
    let o = probability_of_backtest_overfitting(&trials, 8).unwrap();
    assert_eq!(o.logits.len(), CSCV_RANKS_X2.len());
    for (i, (&logit, &twice_rank)) in o.logits.iter().zip(&CSCV_RANKS_X2).enumerate() {
        let w = twice_rank as f64 / 2.0 / 7.0;
        close_to(logit, (w / (1.0 - w)).ln(), 1e-14, &format!("split {i}"));
    }
    close_to(o.probability, CSCV_PBO, 1e-15, "PBO");
}

#[test]
fn bad_cscv_input_is_an_error() {
    let ok = vec![0.01, -0.02, 0.03, 0.0, 0.01, 0.02, -0.01, 0.0];
    let message = |trials: &[Vec<f64>], partitions| {
        probability_of_backtest_overfitting(trials, partitions)
            .unwrap_err()
            .to_string()
    };
    assert!(message(std::slice::from_ref(&ok), 2).contains("at least 2 trials, got 1"));
    assert!(
        message(&[ok.clone(), ok[..6].to_vec()], 2)
            .contains("trial 1 has 6 returns but trial 0 has 8")
    );
    let mut nan = ok.clone();
    nan[3] = f64::NAN;
    assert!(message(&[ok.clone(), nan], 2).contains("return 3 of trial 1 is NaN"));
    for partitions in [0, 3, MAX_PARTITIONS + 2] {
        assert!(
            message(&[ok.clone(), ok.clone()], partitions)
                .contains(&format!("{partitions} partitions: "))
        );
    }
    assert!(
        message(&[ok.clone(), ok], 16)
            .contains("8 returns cut into 16 blocks leave fewer than 2 returns in each half")
    );
}
