//! Every metric checked against arithmetic written out by hand on a six-bar series.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use ratchet_backtest::{Backtest, Frequency, PriceSeries, Side, simulate_positions};
use ratchet_env::execution::Costs;

const DAY: i64 = 86_400_000;
/// Monday 2024-01-01 00:00 UTC.
const MONDAY: i64 = 1_704_067_200_000;

fn close_to(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

fn some_close_to(actual: Option<f64>, expected: f64, what: &str) {
    close_to(
        actual.unwrap_or_else(|| panic!("{what} is undefined")),
        expected,
        what,
    );
}

/// Mon 1, Tue 2, Wed 3, Thu 4, Fri 5, Mon 8 January 2024.
fn prices() -> PriceSeries {
    let days = [0, 1, 2, 3, 4, 7];
    PriceSeries::new(
        days.iter().map(|d| MONDAY + d * DAY).collect(),
        vec![100.0, 101.0, 104.0, 101.0, 100.0, 103.0],
        vec![100.0, 103.0, 102.0, 99.0, 101.0, 104.0],
    )
    .unwrap()
}

const COSTS: Costs = Costs {
    cost_bps: 10.0,
    slippage_bps: 10.0,
};

#[test]
fn every_metric_matches_hand_arithmetic() {
    let prices = prices();
    // Decisions at each close: long, stay long, reverse to short, flat, long, (never filled).
    let sim = simulate_positions(&prices, &[1.0, 1.0, -1.0, 0.0, 1.0, 0.0], COSTS).unwrap();
    assert_eq!(sim.positions, [0.0, 1.0, 1.0, -1.0, 0.0, 1.0]);

    // Growth factor of each bar, close to close; 20 bps per unit traded.
    // bar 1: flat -> long at open 101, pay 1 unit, long 101 -> 103.
    let f1 = (1.0 - 0.002) * (103.0 / 101.0);
    // bar 2: long through the gap 103 -> 104 and the session 104 -> 102.
    let f2 = (104.0 / 103.0) * (102.0 / 104.0);
    // bar 3: long through the gap 102 -> 101, pay 2 units to reverse, short 101 -> 99.
    let f3 = (101.0 / 102.0) * (1.0 - 0.004) * (1.0 + (1.0 - 99.0 / 101.0));
    // bar 4: short through the gap 99 -> 100, pay 1 unit to go flat.
    let f4 = (1.0 - (100.0 / 99.0 - 1.0)) * (1.0 - 0.002);
    // bar 5: flat -> long at 103, pay 1 unit, long 103 -> 104.
    let f5 = (1.0 - 0.002) * (104.0 / 103.0);
    let e = [
        1.0,
        f1,
        f1 * f2,
        f1 * f2 * f3,
        f1 * f2 * f3 * f4,
        f1 * f2 * f3 * f4 * f5,
    ];
    for (t, (&got, &want)) in sim.equity.iter().zip(&e).enumerate() {
        close_to(got, want, &format!("equity[{t}]"));
    }
    let r = [f1 - 1.0, f2 - 1.0, f3 - 1.0, f4 - 1.0, f5 - 1.0];
    for (t, &want) in r.iter().enumerate() {
        close_to(sim.returns[t + 1], want, &format!("returns[{}]", t + 1));
    }

    let backtest = Backtest::new(&prices, sim, Frequency::infer(prices.timestamps())).unwrap();
    assert_eq!(
        backtest.frequency.periods_per_year, 252.0,
        "{}",
        backtest.frequency.rule
    );
    let m = &backtest.strategy_metrics;
    let ppy: f64 = 252.0;

    assert_eq!(m.bars, 6);
    close_to(m.years, 5.0 / 252.0, "years");
    close_to(m.total_return, e[5] - 1.0, "total return");
    some_close_to(m.cagr, e[5].powf(252.0 / 5.0) - 1.0, "CAGR");

    let mean = (r[0] + r[1] + r[2] + r[3] + r[4]) / 5.0;
    let squares = (r[0] - mean).powi(2)
        + (r[1] - mean).powi(2)
        + (r[2] - mean).powi(2)
        + (r[3] - mean).powi(2)
        + (r[4] - mean).powi(2);
    let stdev = (squares / 4.0).sqrt();
    some_close_to(m.annual_volatility, stdev * ppy.sqrt(), "volatility");
    some_close_to(m.sharpe, mean / stdev * ppy.sqrt(), "Sharpe");
    // Bars 2 and 4 lost money: the downside deviation counts only them, over all 5 bars.
    assert!(r[1] < 0.0 && r[3] < 0.0 && r[0] > 0.0 && r[2] > 0.0 && r[4] > 0.0);
    let downside = ((r[1] * r[1] + r[3] * r[3]) / 5.0).sqrt();
    some_close_to(m.sortino, mean / downside * ppy.sqrt(), "Sortino");

    // Peak at bar 1; bar 4 is the deepest point below it, and bar 5 is still under it.
    assert!(e[1] > e[2] && e[1] > e[3] && e[1] > e[4] && e[1] > e[5] && e[4] < e[2]);
    let max_dd = 1.0 - e[4] / e[1];
    close_to(m.max_drawdown, max_dd, "max drawdown");
    assert_eq!(
        m.max_drawdown_duration_bars, 4,
        "bar 1 to the last bar, bar 5"
    );
    close_to(m.max_drawdown_duration_days, 6.0, "2 Jan to 8 Jan");
    assert_eq!(m.max_drawdown_peak, prices.time(1));
    assert_eq!(m.max_drawdown_trough, prices.time(4));
    assert!(!m.max_drawdown_recovered);
    some_close_to(m.calmar, (e[5].powf(252.0 / 5.0) - 1.0) / max_dd, "Calmar");

    // Trades: long 1 -> 3 (closed by the reversal), short 3 -> 4, long from 5 (open).
    // The reversal's cost is split: 1 unit closes the long, 1 unit opens the short.
    let long_end = e[2] * (101.0 / 102.0) * (1.0 - 0.002);
    let pnl = [long_end - 1.0, e[4] - long_end, e[5] - e[4]];
    let trades = &backtest.strategy.trades;
    assert_eq!(trades.len(), 3);
    for (t, &want) in trades.iter().zip(&pnl) {
        close_to(t.pnl, want, "trade pnl");
    }
    assert!(pnl[0] < 0.0 && pnl[1] > 0.0 && pnl[2] > 0.0);
    assert_eq!(m.trades, 3);
    some_close_to(m.win_rate, 2.0 / 3.0, "win rate");
    some_close_to(
        m.profit_factor,
        (pnl[1] + pnl[2]) / -pnl[0],
        "profit factor",
    );
    close_to(m.turnover, 1.0 + 0.0 + 2.0 + 1.0 + 1.0, "turnover");
    some_close_to(m.annual_turnover, 5.0 / (5.0 / 252.0), "annual turnover");
    close_to(
        m.exposure,
        4.0 / 5.0,
        "exposure: bars 1, 2, 3 and 5 hold a position",
    );

    // The Sharpe ratio's standard error (Mertens' form, T - 1 = 4) from the population
    // moments of the deviations d = r - mean, annualised like the ratio.
    let d: Vec<f64> = r.iter().map(|x| x - mean).collect();
    let moment = |k: i32| d.iter().map(|x| x.powi(k)).sum::<f64>() / 5.0;
    let skewness = moment(3) / moment(2).powf(1.5);
    let kurtosis = moment(4) / (moment(2) * moment(2));
    some_close_to(m.skewness, skewness, "skewness");
    some_close_to(m.kurtosis, kurtosis, "kurtosis");
    let sr = mean / stdev;
    let se = ((1.0 - skewness * sr + (kurtosis - 1.0) / 4.0 * sr * sr) / 4.0).sqrt();
    some_close_to(m.sharpe_standard_error, se * ppy.sqrt(), "Sharpe SE");
    // Φ(SR / SE) and Φ((SR - SR_hold) / SE), from scripts/stats_reference.sh (scipy).
    assert!((m.sharpe_standard_error.unwrap() - 7.951_185_217_947_507).abs() < 1e-12);
    assert!((m.probabilistic_sharpe.unwrap() - 0.617_859_579_789_050_4).abs() < 1e-14);
    assert!(
        (m.probabilistic_sharpe_vs_buy_and_hold.unwrap() - 0.434_364_664_905_668_5).abs() < 1e-14
    );
    assert_eq!(m.deflated_sharpe, None, "no trials given");
    let hold = &backtest.buy_and_hold_metrics;
    assert_eq!(
        hold.probabilistic_sharpe_vs_buy_and_hold, None,
        "buy-and-hold is not compared with itself"
    );

    // The same figures as plain decimals (worked out separately), against a slip in the
    // arithmetic above.
    close_to(
        m.total_return,
        0.009_145_548_712_285_567,
        "total return, decimal",
    );
    assert!((m.sharpe.unwrap() - 2.384_274_775_427_787).abs() < 1e-9);
    assert!((m.sortino.unwrap() - 4.318_079_961_253_529).abs() < 1e-9);
    assert!((m.annual_volatility.unwrap() - 0.199_269_637_750_604_27).abs() < 1e-9);
    assert!((m.cagr.unwrap() - 0.582_238_574_968_726_4).abs() < 1e-9);
    assert!((m.max_drawdown - 0.016_032_484_848_484_85).abs() < 1e-12);
}

#[test]
fn buy_and_hold_is_bought_at_the_second_open_and_held() {
    let prices = prices();
    let sim = simulate_positions(&prices, &[0.0; 6], COSTS).unwrap();
    let backtest = Backtest::new(&prices, sim, Frequency::fixed(252.0)).unwrap();
    let hold = &backtest.buy_and_hold;
    assert_eq!(hold.positions, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    // Entry cost at open 101, then close to close: 103 / 101 * 104 / 103.
    let last = (1.0 - 0.002) * 104.0 / 101.0;
    close_to(hold.equity[5], last, "buy-and-hold final equity");
    let m = &backtest.buy_and_hold_metrics;
    close_to(m.total_return, last - 1.0, "buy-and-hold return");
    assert_eq!(m.trades, 1);
    assert!(!hold.trades[0].closed);
    assert_eq!(hold.trades[0].side, Side::Long);
    close_to(m.turnover, 1.0, "bought once");
    close_to(m.exposure, 1.0, "always in the market");

    // A strategy that never trades has flat equity: no volatility, so no Sharpe; no
    // trades, so no win rate; no drawdown, so no Calmar.
    let flat = &backtest.strategy_metrics;
    assert_eq!(flat.total_return, 0.0);
    assert_eq!(flat.annual_volatility, Some(0.0));
    assert_eq!((flat.sharpe, flat.sortino, flat.calmar), (None, None, None));
    assert_eq!(
        (flat.sharpe_standard_error, flat.skewness, flat.kurtosis),
        (None, None, None)
    );
    assert_eq!(
        (
            flat.probabilistic_sharpe,
            flat.probabilistic_sharpe_vs_buy_and_hold
        ),
        (None, None)
    );
    // Nor a deflated one, whatever the trials.
    let trials = ratchet_backtest::Trials::new(10, 0.01).unwrap();
    let deflated = backtest.clone().with_trials(trials);
    assert_eq!(deflated.strategy_metrics.deflated_sharpe, None);
    assert_eq!(deflated.trials, Some(trials));
    assert_eq!((flat.win_rate, flat.profit_factor), (None, None));
    assert_eq!(flat.max_drawdown, 0.0);
    assert_eq!(flat.max_drawdown_duration_bars, 0);
    assert!(flat.max_drawdown_recovered);
    assert_eq!(flat.exposure, 0.0);
}

#[test]
fn a_recovered_drawdown_ends_at_the_new_high() {
    let days = [0, 1, 2, 3, 4];
    let prices = PriceSeries::new(
        days.iter().map(|d| MONDAY + d * DAY).collect(),
        vec![10.0, 10.0, 9.0, 9.5, 11.0],
        vec![10.0, 9.0, 9.5, 11.0, 12.0],
    )
    .unwrap();
    let free = Costs {
        cost_bps: 0.0,
        slippage_bps: 0.0,
    };
    // Long from bar 1 at open 10: equity 0.9, 0.95, 1.1, 1.2 — the peak is bar 0 (1.0).
    let sim = simulate_positions(&prices, &[1.0; 5], free).unwrap();
    let m = ratchet_backtest::Metrics::compute(&prices, &sim, 252.0);
    close_to(m.max_drawdown, 1.0 - 0.9, "max drawdown");
    assert!(m.max_drawdown_recovered);
    assert_eq!(
        m.max_drawdown_duration_bars, 3,
        "bar 0 to bar 3, the first above 1.0"
    );
    assert_eq!(m.max_drawdown_peak, prices.time(0));
    assert_eq!(m.max_drawdown_trough, prices.time(1));
}
