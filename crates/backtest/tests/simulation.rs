//! The simulator against the shared fill rule, trade extraction, policies and bad input.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_backtest::{
    BacktestError, PriceSeries, Side, simulate_policy, simulate_positions, sma_crossover,
};
use ratchet_env::execution::{Costs, bar_factor};

const HOUR: i64 = 3_600_000;

fn series(open: &[f64], close: &[f64]) -> PriceSeries {
    let ts = (0..open.len() as i64)
        .map(|i| 1_700_000_000_000 + i * HOUR)
        .collect();
    PriceSeries::new(ts, open.to_vec(), close.to_vec()).unwrap()
}

const COSTS: Costs = Costs {
    cost_bps: 7.0,
    slippage_bps: 3.0,
};

#[test]
fn equity_is_the_product_of_bar_factors() {
    let open = [50.0, 50.5, 51.0, 49.0, 48.0, 50.0, 52.0, 51.5];
    let close = [50.2, 50.8, 49.5, 48.2, 49.9, 51.7, 51.0, 53.0];
    let prices = series(&open, &close);
    let decided = [0.5, 1.0, -1.0, -1.0, 0.0, 1.0, 0.25, 0.0];
    let sim = simulate_positions(&prices, &decided, COSTS).unwrap();

    let mut held = 0.0;
    let mut equity = 1.0;
    assert_eq!(sim.equity[0], 1.0);
    for t in 1..open.len() {
        let new = decided[t - 1];
        let factor = bar_factor(held, new, close[t - 1], open[t], close[t], COSTS);
        equity *= factor;
        assert_eq!(sim.positions[t], new, "position through bar {t}");
        assert!((sim.equity[t] - equity).abs() < 1e-14, "equity at bar {t}");
        assert!(
            (sim.returns[t] - (factor - 1.0)).abs() < 1e-14,
            "return at bar {t}"
        );
        held = new;
    }
    // The pnls of the round trips add up to the whole gain, costs included.
    let total: f64 = sim.trades.iter().map(|t| t.pnl).sum();
    assert!(
        (total - (equity - 1.0)).abs() < 1e-14,
        "{total} vs {}",
        equity - 1.0
    );
}

#[test]
fn hand_example_of_the_fill_rule() {
    // Decide long at bar 0's close (100); it fills at bar 1's open (102), not at 100.
    let prices = series(&[99.0, 102.0, 103.0], &[100.0, 104.0, 101.0]);
    let sim = simulate_positions(&prices, &[1.0, 0.0, 0.0], COSTS).unwrap();
    // 10 bps on entry, long 102 -> 104; then exit at 103 paying 10 bps (the gap 104 -> 103
    // is held long), flat afterwards.
    let e1 = (1.0 - 0.001) * 104.0 / 102.0;
    let e2 = e1 * (103.0 / 104.0) * (1.0 - 0.001);
    assert!((sim.equity[1] - e1).abs() < 1e-15);
    assert!((sim.equity[2] - e2).abs() < 1e-15);
    assert_eq!(sim.trades.len(), 1);
    let t = &sim.trades[0];
    assert_eq!(
        (t.side, t.entry_bar, t.exit_bar, t.bars, t.closed),
        (Side::Long, 1, 2, 1, true)
    );
    assert_eq!((t.entry_price, t.exit_price), (102.0, 103.0));
    assert!((t.pnl - (e2 - 1.0)).abs() < 1e-15);
    assert!((t.trade_return - (e2 - 1.0)).abs() < 1e-15);
}

#[test]
fn trades_split_on_reversals_not_on_resizing() {
    let n = 10;
    let prices = series(&vec![10.0; n], &vec![10.0; n]);
    // flat, long 0.5, long 1 (resize), short, short, flat, flat, long, long, (end)
    let decided = [0.5, 1.0, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
    let sim = simulate_positions(&prices, &decided, COSTS).unwrap();
    let summary: Vec<_> = sim
        .trades
        .iter()
        .map(|t| (t.side, t.entry_bar, t.exit_bar, t.bars, t.closed))
        .collect();
    assert_eq!(
        summary,
        [
            (Side::Long, 1, 3, 2, true),
            (Side::Short, 3, 5, 2, true),
            (Side::Long, 7, 9, 3, false),
        ]
    );
    // With flat prices every trade loses exactly its costs: the long pays 0.5 + 0.5 units
    // to build and 1 unit to close; the short 1 unit each way; the open long 1 unit so far.
    // The reversal at bar 3 charges 2 units of the equity at that open: one to each trade.
    let c = 0.001;
    let e2 = (1.0 - 0.5 * c) * (1.0 - 0.5 * c);
    let t0_end = e2 * (1.0 - c);
    assert!((sim.trades[0].pnl - (t0_end - 1.0)).abs() < 1e-15);
    let t1_end = e2 * (1.0 - 2.0 * c) * (1.0 - c);
    assert!((sim.trades[1].pnl - (t1_end - t0_end)).abs() < 1e-15);
    assert!((sim.trades[2].pnl - (t1_end * (1.0 - c) - t1_end)).abs() < 1e-15);
    assert_eq!(
        sim.trades[2].exit_price, 10.0,
        "an open trade is marked at the last close"
    );
}

#[test]
fn policy_sees_position_and_unrealised_return_like_the_environment() {
    let open = [10.0, 10.0, 11.0, 12.0, 12.5, 12.0];
    let close = [10.0, 10.5, 11.5, 12.5, 12.0, 12.0];
    let prices = series(&open, &close);
    let mut seen = Vec::new();
    let mut policy = |bar: usize, position: f64, unrealised: f64| {
        seen.push((bar, position, unrealised));
        match bar {
            0 | 1 => 1.0,
            2 => -1.0,
            _ => position,
        }
    };
    let sim = simulate_policy(&prices, &mut policy, COSTS).unwrap();
    assert_eq!(seen.len(), 5, "every bar but the last decides");
    // Long filled at bar 1's open (10): at bar 1's close 10.5 the unrealised return is 5%.
    assert_eq!(seen[0], (0, 0.0, 0.0));
    assert_eq!(seen[1], (1, 1.0, 10.5 / 10.0 - 1.0));
    assert_eq!(seen[2], (2, 1.0, 11.5 / 10.0 - 1.0));
    // Reversed at bar 3's open (12): short, close 12.5 -> -(12.5 / 12 - 1).
    assert_eq!(seen[3], (3, -1.0, -(12.5 / 12.0 - 1.0)));
    assert_eq!(seen[4], (4, -1.0, -(12.0 / 12.0 - 1.0)));

    let same = simulate_positions(&prices, &[1.0, 1.0, -1.0, -1.0, -1.0, 0.0], COSTS).unwrap();
    assert_eq!(
        sim, same,
        "a policy run equals the fast path on the positions it chose"
    );
}

#[test]
fn sma_crossover_matches_plain_averages() {
    let close: Vec<f64> = (0..400)
        .map(|i| 100.0 + 5.0 * (i as f64 / 5.0).sin() + i as f64 * 0.01)
        .collect();
    let positions = sma_crossover(&close, 5, 20).unwrap();
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    for t in 0..close.len() {
        let expected = if t < 19 {
            0.0
        } else if mean(&close[t - 4..=t]) > mean(&close[t - 19..=t]) {
            1.0
        } else {
            0.0
        };
        assert_eq!(positions[t], expected, "bar {t}");
    }
    let prices = series(&close, &close);
    let sim = simulate_positions(&prices, &positions, COSTS).unwrap();
    assert!(sim.trades.len() > 10, "{} trades", sim.trades.len());
    assert!(sim.trades.iter().all(|t| t.side == Side::Long));
    assert!(matches!(
        sma_crossover(&close, 20, 5),
        Err(BacktestError::Input(_))
    ));
}

#[test]
fn a_wiped_out_account_stays_flat_at_zero() {
    // Short 1 unit into a price that triples: the gap factor is 1 - (30/10 - 1) < 0.
    let prices = series(&[10.0, 10.0, 30.0, 31.0], &[10.0, 10.0, 30.0, 29.0]);
    let sim = simulate_positions(&prices, &[-1.0, -1.0, -1.0, -1.0], COSTS).unwrap();
    assert_eq!(sim.bankrupt_at, Some(2));
    assert_eq!(sim.equity[2..], [0.0, 0.0]);
    assert_eq!(sim.positions[3], 0.0, "liquidated");
    assert_eq!(sim.returns[2], -1.0);
    assert_eq!(sim.returns[3], 0.0);
    let total: f64 = sim.trades.iter().map(|t| t.pnl).sum();
    assert!(
        (total + 1.0).abs() < 1e-12,
        "all of the account was lost: {total}"
    );
}

fn input_error(result: Result<impl std::fmt::Debug, BacktestError>) -> String {
    match result {
        Err(BacktestError::Input(msg)) => msg,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn bad_input_is_an_error_naming_the_problem() {
    let ts = vec![0, HOUR, 2 * HOUR];
    let ok = vec![1.0, 1.0, 1.0];
    let msg = input_error(PriceSeries::new(ts.clone(), vec![1.0, 1.0], ok.clone()));
    assert!(msg.contains("one value per bar"), "{msg}");
    let msg = input_error(PriceSeries::new(vec![], vec![], vec![]));
    assert!(msg.contains("at least 2 bars"), "{msg}");
    let msg = input_error(PriceSeries::new(
        ts.clone(),
        vec![1.0, f64::NAN, 1.0],
        ok.clone(),
    ));
    assert!(msg.contains("open[1]") && msg.contains("NaN"), "{msg}");
    let msg = input_error(PriceSeries::new(
        ts.clone(),
        ok.clone(),
        vec![1.0, 1.0, -2.0],
    ));
    assert!(msg.contains("close[2]"), "{msg}");
    let msg = input_error(PriceSeries::new(
        vec![0, HOUR, HOUR],
        ok.clone(),
        ok.clone(),
    ));
    assert!(
        msg.contains("strictly increasing") && msg.contains("bar 2"),
        "{msg}"
    );

    let prices = PriceSeries::new(ts, ok.clone(), ok).unwrap();
    let msg = input_error(simulate_positions(&prices, &[1.0, 1.0], COSTS));
    assert!(msg.contains("one entry per bar (3)"), "{msg}");
    let msg = input_error(simulate_positions(
        &prices,
        &[1.0, f64::INFINITY, 0.0],
        COSTS,
    ));
    assert!(msg.contains("positions[1]"), "{msg}");
    let msg = input_error(simulate_policy(&prices, &mut |_, _, _| f64::NAN, COSTS));
    assert!(msg.contains("at bar 0"), "{msg}");
    let negative = Costs {
        cost_bps: -1.0,
        slippage_bps: 0.0,
    };
    assert!(matches!(
        simulate_positions(&prices, &[0.0; 3], negative),
        Err(BacktestError::Costs(m)) if m.contains("cost_bps")
    ));
}

/// A random walk and random positions over several simulation blocks, against the plain
/// per-bar loop.
#[test]
fn long_random_series_matches_the_plain_loop() {
    let n = 10_007;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut price = 100.0;
    let (mut open, mut close) = (Vec::new(), Vec::new());
    for _ in 0..n {
        open.push(price * (1.0 + (next() - 0.5) * 0.002));
        price *= 1.0 + (next() - 0.5) * 0.02;
        close.push(price);
    }
    let levels = [-1.0, -0.5, 0.0, 0.5, 1.0];
    let mut decided = Vec::new();
    let mut p = 0.0;
    for _ in 0..n {
        if next() < 0.05 {
            p = levels[(next() * 5.0) as usize];
        }
        decided.push(p);
    }
    let prices = series(&open, &close);
    let sim = simulate_positions(&prices, &decided, COSTS).unwrap();

    let (mut equity, mut held, mut side_changes) = (1.0, 0.0, 0);
    let side = |p: f64| (p > 0.0) as i8 - (p < 0.0) as i8;
    for t in 1..n {
        let new = decided[t - 1];
        equity *= bar_factor(held, new, close[t - 1], open[t], close[t], COSTS);
        assert!((sim.equity[t] - equity).abs() < 1e-12 * equity, "bar {t}");
        if side(new) != side(held) && side(held) != 0 {
            side_changes += 1; // a trade closes here
        }
        held = new;
    }
    let open_at_end = usize::from(side(held) != 0);
    assert_eq!(sim.trades.len(), side_changes + open_at_end);
    assert!(sim.trades.len() > 100);
    let total: f64 = sim.trades.iter().map(|t| t.pnl).sum();
    assert!((total - (equity - 1.0)).abs() < 1e-10);
    for w in sim.trades.windows(2) {
        assert!(w[0].exit_bar <= w[1].entry_bar && w[0].closed);
    }
}

#[test]
fn resimulating_reuses_buffers_and_matches_a_fresh_run() {
    let close: Vec<f64> = (0..300).map(|i| 50.0 + (i as f64 / 7.0).cos()).collect();
    let prices = series(&close, &close);
    let mut signal = Vec::new();
    ratchet_backtest::sma_crossover_into(&close, 3, 12, &mut signal).unwrap();
    assert_eq!(signal, sma_crossover(&close, 3, 12).unwrap());
    let mut sim = simulate_positions(&prices, &signal, COSTS).unwrap();
    let other: Vec<f64> = signal.iter().map(|p| -p).collect();
    sim.resimulate(&prices, &other, COSTS).unwrap();
    assert_eq!(sim, simulate_positions(&prices, &other, COSTS).unwrap());
    assert!(sim.resimulate(&prices, &other[..10], COSTS).is_err());
    assert!(
        sim.equity.is_empty() && sim.trades.is_empty(),
        "left empty on error"
    );
}
