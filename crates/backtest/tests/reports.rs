//! report.json / report.md / report.html: content, round trip, leakage flag, atomicity.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use ratchet_backtest::{
    Backtest, BacktestError, Frequency, PriceSeries, Report, ReportInput, ReportMetadata,
    ReportPaths, TimeRange, Trials, simulate_positions, sma_crossover, write_reports,
};
use ratchet_env::execution::Costs;

fn googl_backtest() -> (PriceSeries, Backtest) {
    let prices = common::googl();
    let positions = sma_crossover(prices.close(), 10, 50).unwrap();
    let sim = simulate_positions(&prices, &positions, Costs::default()).unwrap();
    let backtest = Backtest::new(&prices, sim, Frequency::infer(prices.timestamps())).unwrap();
    (prices, backtest)
}

// The GOOGL SMA(10/50) backtest's Sharpe statistics, recomputed from the CSV by
// scripts/stats_reference.sh (numpy's simulation of the same fill rule, scipy's moments and
// normal distribution).
const GOOGL_SHARPE: f64 = 0.5444136344825096;
const GOOGL_SE: f64 = 0.3204769014032865;
const GOOGL_SKEWNESS: f64 = 1.743974218947538;
const GOOGL_KURTOSIS: f64 = 37.21959992550532;
const GOOGL_PSR_0: f64 = 0.9553178797112102;
const GOOGL_PSR_HOLD: f64 = 0.09583073051499419;
/// Selected from 40 trials whose annualised Sharpe ratios vary by 0.25.
const GOOGL_DSR_40: f64 = 0.04297030781020655;
const HOLD_SHARPE: f64 = 0.9628538596026566;
const HOLD_SE: f64 = 0.3220380416122263;
const HOLD_SKEWNESS: f64 = 0.9064718266419683;
const HOLD_KURTOSIS: f64 = 17.42649556213065;
const HOLD_PSR_0: f64 = 0.9986045470818458;

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what} is undefined"));
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

fn metadata() -> ReportMetadata {
    ReportMetadata {
        title: "googl-ppo v3 <test> & co".into(),
        model_name: Some("googl-ppo".into()),
        model_version: Some("3".into()),
        model_uri: Some("models:/googl-ppo/3".into()),
        feature_hash: Some("9f2c4e1d".into()),
        data_file: Some("data/STOCKS_GOOGL.csv".into()),
        extra: BTreeMap::from([("algorithm".to_string(), "ppo".to_string())]),
    }
}

/// Writes the reports of `backtest` without metadata into a new temporary directory.
fn write_plain(
    prices: &PriceSeries,
    backtest: &Backtest,
    training_range: Option<TimeRange>,
) -> (tempfile::TempDir, ReportPaths) {
    let dir = tempfile::tempdir().unwrap();
    let input = ReportInput {
        prices,
        backtest,
        metadata: &ReportMetadata::default(),
        training_range,
    };
    let paths = write_reports(dir.path(), &input).unwrap();
    (dir, paths)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn reports_are_complete_and_round_trip() {
    let (prices, backtest) = googl_backtest();
    let meta = metadata();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports/googl");
    let training = TimeRange {
        start: common::date("2009-05-22"),
        end: common::date("2016-12-30"),
    };
    let input = ReportInput {
        prices: &prices,
        backtest: &backtest,
        metadata: &meta,
        training_range: Some(training),
    };
    let paths = write_reports(&out, &input).unwrap();
    assert_eq!(
        files_in(&out),
        ["report.html", "report.json", "report.md"],
        "no temporaries left"
    );

    // Leakage: the whole GOOGL file overlaps a training range inside it.
    let leak = paths.leakage.as_deref().expect("overlap must be flagged");
    assert!(leak.contains("look-ahead leakage"), "{leak}");
    assert!(leak.contains("2009-05-22 .. 2016-12-30"), "{leak}");

    // JSON: parses into the public type and carries what the CLI and readers need. (Floats
    // are compared to the last bit or so: serde_json's default parser may round the last
    // digit differently from the shortest representation it printed.)
    let text = std::fs::read_to_string(&paths.json).unwrap();
    let report: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(report.periods_per_year, 252.0);
    assert_json_close(&report.strategy, &backtest.strategy_metrics);
    assert_json_close(&report.buy_and_hold, &backtest.buy_and_hold_metrics);
    let trades: Vec<_> = report.trades.iter().map(|t| t.trade.clone()).collect();
    assert_json_close(&trades, &backtest.strategy.trades);
    let last = &report.trades[report.trades.len() - 1];
    assert_eq!(last.entry_time, prices.time(last.trade.entry_bar));
    assert_eq!(
        last.exit_time,
        prices.time(prices.len() - 1),
        "still open at the end"
    );
    assert_eq!(report.metadata, meta);
    assert_eq!(report.costs, Costs::default());
    assert_eq!(report.training_range, Some(training));
    assert_eq!(report.leakage.as_deref(), Some(leak));
    assert_eq!(report.bars, prices.len());
    assert_eq!((report.range.start, report.range.end), prices.span());
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "total_return",
        "cagr",
        "annual_volatility",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "max_drawdown_duration_bars",
        "max_drawdown_duration_days",
        "win_rate",
        "profit_factor",
        "trades",
        "turnover",
        "exposure",
        "sharpe_standard_error",
        "probabilistic_sharpe",
        "probabilistic_sharpe_vs_buy_and_hold",
        "skewness",
        "kurtosis",
    ] {
        assert!(
            value["strategy"].get(key).is_some(),
            "strategy.{key} missing"
        );
        assert!(
            value["buy_and_hold"].get(key).is_some(),
            "buy_and_hold.{key} missing"
        );
    }
    // The Sharpe statistics, as the reference computes them from the CSV.
    let (s, h) = (&report.strategy, &report.buy_and_hold);
    assert_close(s.sharpe, GOOGL_SHARPE, "strategy Sharpe");
    assert_close(s.sharpe_standard_error, GOOGL_SE, "strategy Sharpe SE");
    assert_close(s.skewness, GOOGL_SKEWNESS, "strategy skewness");
    assert_close(s.kurtosis, GOOGL_KURTOSIS, "strategy kurtosis");
    assert_close(s.probabilistic_sharpe, GOOGL_PSR_0, "strategy PSR(0)");
    assert_close(
        s.probabilistic_sharpe_vs_buy_and_hold,
        GOOGL_PSR_HOLD,
        "strategy PSR(buy and hold)",
    );
    assert_close(h.sharpe, HOLD_SHARPE, "buy-and-hold Sharpe");
    assert_close(h.sharpe_standard_error, HOLD_SE, "buy-and-hold Sharpe SE");
    assert_close(h.skewness, HOLD_SKEWNESS, "buy-and-hold skewness");
    assert_close(h.kurtosis, HOLD_KURTOSIS, "buy-and-hold kurtosis");
    assert_close(h.probabilistic_sharpe, HOLD_PSR_0, "buy-and-hold PSR(0)");
    assert_eq!(h.probabilistic_sharpe_vs_buy_and_hold, None);
    // Without trials there is no deflated Sharpe ratio, not even as null.
    assert_eq!((s.deflated_sharpe, report.trials), (None, None));
    assert!(value["strategy"].get("deflated_sharpe").is_none());
    assert!(value.get("trials").is_none());
    // A report written before these statistics existed still parses; they read as None.
    let mut older = value.clone();
    for side in ["strategy", "buy_and_hold"] {
        let metrics = older[side].as_object_mut().unwrap();
        for key in [
            "sharpe_standard_error",
            "probabilistic_sharpe",
            "probabilistic_sharpe_vs_buy_and_hold",
            "skewness",
            "kurtosis",
        ] {
            metrics.remove(key).unwrap();
        }
    }
    let older: Report = serde_json::from_value(older).unwrap();
    assert_eq!(older.strategy.probabilistic_sharpe, None);
    assert_eq!(older.buy_and_hold.kurtosis, None);

    // 2009-05 .. 2018-08: 112 months, compounding to the total return.
    assert_eq!(report.monthly_returns.len(), 112);
    let compound: f64 = report
        .monthly_returns
        .iter()
        .map(|m| 1.0 + m.strategy)
        .product();
    assert!((compound - 1.0 - report.strategy.total_return).abs() < 1e-9);

    // Markdown: the tables and the warning.
    let md = std::fs::read_to_string(&paths.markdown).unwrap();
    assert!(
        md.starts_with("# googl-ppo v3 <test> & co\n"),
        "{}",
        md.chars().take(80).collect::<String>()
    );
    assert!(md.contains("> **WARNING: look-ahead leakage"));
    assert!(md.contains("| Metric | Strategy | Buy & hold |"));
    for label in [
        "Sharpe ratio",
        "Sortino ratio",
        "Calmar ratio",
        "Max drawdown",
        "Win rate",
        "Profit factor",
        "Exposure",
    ] {
        assert!(md.contains(&format!("| {label} |")), "{label} row missing");
    }
    for row in [
        "| Sharpe ratio | 0.54 | 0.96 |",
        "| Sharpe standard error | 0.32 | 0.32 |",
        "| Probabilistic Sharpe (vs 0) | 95.53% | 99.86% |",
        "| Probabilistic Sharpe (vs buy and hold) | 9.58% | n/a |",
        "| Skewness of returns | 1.74 | 0.91 |",
        "| Kurtosis of returns | 37.22 | 17.43 |",
    ] {
        assert!(md.contains(row), "{row} missing");
    }
    assert!(!md.contains("Deflated"));
    assert!(md.contains("| Year | Jan | Feb |"));
    assert!(md.contains("| 2017 |"));
    assert!(md.contains("| Feature hash | 9f2c4e1d |"));
    assert!(md.contains("| Periods per year | 252 (daily bars"));
    assert!(md.contains(&format!(
        "## Trades ({} in all",
        backtest.strategy.trades.len()
    )));

    // HTML: the four charts, escaped text, the warning, and nothing fetched from outside.
    let html = std::fs::read_to_string(&paths.html).unwrap();
    for id in [
        "chart-equity",
        "chart-drawdown",
        "chart-monthly",
        "chart-position",
    ] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "{id} missing"
        );
    }
    assert_eq!(html.matches("<svg ").count(), 4);
    assert!(html.contains(
        "<tr><td>Probabilistic Sharpe (vs buy and hold)</td><td class=\"n\">9.58%</td><td class=\"n\">n/a</td></tr>"
    ));
    assert!(html.contains(
        "<div class=\"card\"><div class=\"k\">Sharpe ratio</div><div class=\"v\">0.54</div><div class=\"b\">buy &amp; hold 0.96</div></div>"
    ));
    assert!(!html.contains("Deflated"));
    assert!(html.contains("id=\"leakage-warning\""));
    assert!(html.contains("googl-ppo v3 &lt;test&gt; &amp; co"));
    assert!(!html.contains("<test>"));
    common::assert_no_external_references(&html);
}

/// `a` and `b` serialise to the same JSON, numbers equal within 1e-15 relative.
fn assert_json_close<T: serde::Serialize>(a: &T, b: &T) {
    fn walk(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
        use serde_json::Value::*;
        match (a, b) {
            (Number(x), Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                    "{at}: {x} vs {y}"
                );
            }
            (Array(x), Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}: lengths");
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    walk(x, y, &format!("{at}[{i}]"));
                }
            }
            (Object(x), Object(y)) => {
                assert_eq!(
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>(),
                    "{at}: keys"
                );
                for (k, v) in x {
                    walk(v, &y[k], &format!("{at}.{k}"));
                }
            }
            _ => assert_eq!(a, b, "{at}"),
        }
    }
    walk(
        &serde_json::to_value(a).unwrap(),
        &serde_json::to_value(b).unwrap(),
        "",
    );
}

#[test]
fn a_strategy_selected_from_trials_reports_its_deflated_sharpe() {
    let (prices, backtest) = googl_backtest();
    // The best of 40 trials whose annualised Sharpe ratios had a variance of 0.25.
    let trials = Trials::new(40, 0.25 / 252.0).unwrap();
    let backtest = backtest.with_trials(trials);
    let (_dir, paths) = write_plain(&prices, &backtest, None);

    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(&paths.json).unwrap()).unwrap();
    assert_close(report.strategy.deflated_sharpe, GOOGL_DSR_40, "DSR");
    assert_eq!(report.buy_and_hold.deflated_sharpe, None);
    assert_eq!(report.trials, Some(trials));
    assert_json_close(&report.strategy, &backtest.strategy_metrics);

    let md = std::fs::read_to_string(&paths.markdown).unwrap();
    assert!(
        md.contains("| Deflated Sharpe | 4.30% | n/a |"),
        "DSR row missing"
    );
    assert!(md.contains(
        "| Selected from | 40 trials, their Sharpe ratios' variance 0.2500 annualised (the deflated Sharpe accounts for them) |"
    ));
    let html = std::fs::read_to_string(&paths.html).unwrap();
    assert!(html.contains(
        "<tr><td>Deflated Sharpe</td><td class=\"n\">4.30%</td><td class=\"n\">n/a</td></tr>"
    ));
}

#[test]
fn disjoint_training_range_is_not_flagged() {
    let (prices, backtest) = googl_backtest();
    let training = TimeRange {
        start: common::date("2001-01-01"),
        end: common::date("2009-05-21"),
    };
    let (_dir, paths) = write_plain(&prices, &backtest, Some(training));
    assert_eq!(paths.leakage, None);
    let report: Report =
        serde_json::from_str(&std::fs::read_to_string(&paths.json).unwrap()).unwrap();
    assert_eq!(report.leakage, None);
    assert!(
        !std::fs::read_to_string(&paths.markdown)
            .unwrap()
            .contains("WARNING")
    );
    let html = std::fs::read_to_string(&paths.html).unwrap();
    assert!(!html.contains("leakage-warning"));
    assert!(
        html.contains("<h1>Backtest</h1>"),
        "an empty title falls back to Backtest"
    );

    // One bar inside the training range is enough to flag it.
    let touching = TimeRange {
        start: common::date("2001-01-01"),
        end: common::date("2009-05-22"),
    };
    let leak = ratchet_backtest::leakage_warning(&prices, &touching).unwrap();
    assert!(
        leak.contains(&format!("1 of {} bars", prices.len())),
        "{leak}"
    );
}

#[test]
fn a_million_bar_report_stays_small() {
    // One million hourly bars on weekdays, a noisy random walk, and a fast SMA crossover:
    // tens of thousands of trades.
    let n = 1_000_000;
    let mut ts = Vec::with_capacity(n);
    let mut t = 1_262_563_200_000i64; // Monday 2010-01-04
    while ts.len() < n {
        let weekday = (t.div_euclid(86_400_000) + 3).rem_euclid(7);
        if weekday < 5 {
            ts.push(t);
        }
        t += 3_600_000;
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut price = 100.0;
    let close: Vec<f64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            price *= 1.0 + ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.004;
            price
        })
        .collect();
    let prices = PriceSeries::new(ts, close.clone(), close).unwrap();
    let positions = sma_crossover(prices.close(), 10, 50).unwrap();
    let sim = simulate_positions(&prices, &positions, Costs::default()).unwrap();
    let backtest = Backtest::new(&prices, sim, Frequency::infer(prices.timestamps())).unwrap();
    assert_eq!(
        backtest.frequency.periods_per_year,
        24.0 * 252.0,
        "{}",
        backtest.frequency.rule
    );
    let (_dir, paths) = write_plain(&prices, &backtest, None);
    let html = std::fs::metadata(&paths.html).unwrap().len();
    assert!(html < 1_000_000, "report.html is {html} bytes for 1M bars");
    let text = std::fs::read_to_string(&paths.html).unwrap();
    // Each line is drawn from at most 2,000 points.
    for d in text.split(" d=\"").skip(1) {
        let path = d.split('"').next().unwrap();
        let points = path.matches(['L', 'H']).count();
        assert!(points <= 2_100, "a path with {points} points");
    }
    common::assert_no_external_references(&text);
}

#[test]
fn unwritable_directory_is_an_error_and_leaves_nothing() {
    let (prices, backtest) = googl_backtest();
    let meta = ReportMetadata::default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let input = ReportInput {
        prices: &prices,
        backtest: &backtest,
        metadata: &meta,
        training_range: None,
    };
    let err = write_reports(&file.join("out"), &input).unwrap_err();
    assert!(matches!(err, BacktestError::Write { .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
    assert_eq!(files_in(dir.path()), ["not-a-dir"]);
}

#[test]
fn simulation_and_prices_must_match() {
    let (prices, backtest) = googl_backtest();
    let short = PriceSeries::new(
        prices.timestamps()[..10].to_vec(),
        prices.open()[..10].to_vec(),
        prices.close()[..10].to_vec(),
    )
    .unwrap();
    let err = Backtest::new(&short, backtest.strategy, Frequency::fixed(252.0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("covers 2335 bars but the prices 10"),
        "{err}"
    );
}
