//! `ratchet backtest`: a registered version's greedy policy over a date range, with reports.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::DateTime;
use serde::Serialize;

use ratchet_backtest::{ReportInput, ReportMetadata, TimeRange, write_reports};
use ratchet_mlflow::Metric;

use crate::checkpoint;
use ratchet_config::EnvKind;

use crate::cli::BacktestArgs;
use crate::judge::{headline, policy_backtest};
use crate::market::Market;

mod universe;

#[derive(Serialize)]
pub struct BacktestOutput {
    pub model_uri: String,
    pub range: (String, String),
    pub periods_per_year: f64,
    pub leakage: Option<String>,
    /// Whether the range overlaps the version's test range; then the look is counted.
    pub test_range: bool,
    /// The version's test looks, this one included (when the range overlaps its test range).
    pub test_looks: Option<u64>,
    pub reports: Vec<PathBuf>,
    pub metrics: std::collections::BTreeMap<String, f64>,
}

pub fn run(tracking_uri: &str, args: BacktestArgs) -> Result<()> {
    let registry = ratchet_registry::Registry::open(tracking_uri)?;
    let (output, lines) = backtest(&registry, &args)?;
    if args.json {
        return crate::output::print_json(&output);
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// Backtests `args.model` as `ratchet backtest` does (reports, `backtest/*` metrics on its
/// run, a counted look when the range overlaps its test range) and returns the result and
/// the lines `ratchet backtest` prints.
pub fn backtest(
    registry: &ratchet_registry::Registry,
    args: &BacktestArgs,
) -> Result<(BacktestOutput, Vec<String>)> {
    // The policy needs the weights only: the optimizer state and a DQN's replay buffer
    // (possibly gigabytes) are not read.
    let (version, weights) = checkpoint::load_weights(registry, &args.model)?;
    if version.config.run.env != EnvKind::Trading {
        bail!(
            "{} was trained on CartPole; backtests need a model trained on market data",
            version.uri
        );
    }
    let mut config = version.config.clone();
    if config.data.is_universe() {
        return universe::backtest(registry, args, &version, &weights, config);
    }
    if let Some(d) = &args.data {
        config.data.file = d.clone();
    }
    let (market, check) =
        Market::prepare_recorded(&config, &version.metadata.training.data, &version.uri)?;
    let whole_test_split = args.from.is_none() && args.to.is_none();
    let range = match (&args.from, &args.to) {
        (None, None) => market
            .test_range()
            .with_context(|| format!("{} has no bars to backtest by default", version.uri))?
            .range(),
        (from, to) => {
            let ts = &market.frame.timestamps;
            let start = match from {
                Some(d) => {
                    let first = parse_date(d, false)?;
                    ts.partition_point(|&t| t < first)
                }
                None => 0,
            };
            let end = match to {
                Some(d) => {
                    let last = parse_date(d, true)?;
                    ts.partition_point(|&t| t <= last)
                }
                None => ts.len(),
            };
            if end <= start + 1 {
                // A backtest decides at one bar's close and fills at the next one's open.
                bail!(
                    "{} of {} between {} and {} (the data covers {} .. {}); a backtest \
                     needs at least 2 bars: one to decide at and the next to fill at",
                    if end > start { "only 1 bar" } else { "no bars" },
                    config.data.file.display(),
                    from.as_deref().unwrap_or("the start"),
                    to.as_deref().unwrap_or("the end"),
                    ratchet_data::format_timestamp(ts[0]),
                    ratchet_data::format_timestamp(ts[ts.len() - 1]),
                );
            }
            start..end
        }
    };
    // Figures over the version's validation or test bars need the bars it saw there.
    let overlaps =
        |segment: &ratchet_data::Segment| range.start < segment.end && segment.start < range.end;
    let judged: Vec<&str> = [
        ("validation", Some(&market.splits.validation)),
        ("test", market.splits.test.as_ref()),
    ]
    .into_iter()
    .filter(|(_, segment)| segment.is_some_and(overlaps))
    .map(|(name, _)| name)
    .collect();
    check.require_unchanged(&judged)?;
    config.trading.window = config.features.window;
    let sizes = (
        config.trading.observation_size(market.data.width),
        config.trading.action_count(),
    );
    if let Some(d) = version.differences(&config, sizes).first() {
        bail!(
            "{} does not fit {}: {d}",
            version.uri,
            config.data.file.display()
        );
    }
    let policy = config
        .trading_policy(&weights)
        .with_context(|| format!("loading the weights of {}", version.uri))?;
    let (prices, backtest) = policy_backtest(&market, &config.trading, policy, range)?;
    let metadata = report_metadata(
        &version,
        &config,
        config.data.file.display().to_string(),
        ("seed", config.run.seed.to_string()),
    );
    let training_range = match &version.metadata.training.data.train {
        Some(r) => Some(time_range(&r.start, &r.end)?),
        None => None,
    };
    let out = report_dir(args, &version);
    let paths = write_reports(
        &out,
        &ReportInput {
            prices: &prices,
            backtest: &backtest,
            metadata: &metadata,
            training_range,
        },
    )
    .with_context(|| format!("writing reports to {}", out.display()))?;
    if let Some(warning) = &paths.leakage {
        eprintln!("warning: {warning}");
    }
    let metrics = headline(&backtest);
    let (first, last) = prices.span();
    let test_range = match &version.metadata.training.data.test {
        Some(r) => {
            let test = time_range(&r.start, &r.end)?;
            first <= test.end && last >= test.start
        }
        None => false,
    };
    // The version's own test split, as training recorded it: logged as test/* too (the
    // sweep's val-vs-test scatter reads them).
    let whole_test_split = test_range && whole_test_split && args.data.is_none();
    log_to_run(registry, &version, &metrics, whole_test_split)?;
    let test_looks = if test_range {
        let test = version.metadata.training.data.test.as_ref();
        let looks = registry
            .record_test_look(&checkpoint::parse_ref(&version.uri)?)
            .with_context(|| format!("counting the test look of {}", version.uri))?;
        eprintln!(
            "note: this backtest overlaps the test range of {} ({} .. {}): test looks {looks}",
            version.uri,
            test.map_or("", |r| r.start.as_str()),
            test.map_or("", |r| r.end.as_str()),
        );
        Some(looks)
    } else {
        None
    };
    let output = BacktestOutput {
        model_uri: version.uri.clone(),
        range: (first.to_rfc3339(), last.to_rfc3339()),
        periods_per_year: backtest.frequency.periods_per_year,
        leakage: paths.leakage.clone(),
        test_range,
        test_looks,
        reports: vec![
            paths.json.clone(),
            paths.markdown.clone(),
            paths.html.clone(),
        ],
        metrics,
    };
    let s = &backtest.strategy_metrics;
    let h = &backtest.buy_and_hold_metrics;
    let mut lines = vec![
        format!(
            "backtest of {} over {} .. {} ({} bars)",
            version.uri,
            first.format("%Y-%m-%d %H:%M"),
            last.format("%Y-%m-%d %H:%M"),
            prices.len()
        ),
        format!(
            "  periods per year  {} ({})",
            backtest.frequency.periods_per_year, backtest.frequency.rule
        ),
        format!(
            "  total return      {:+.2}%   buy & hold {:+.2}%",
            s.total_return * 100.0,
            h.total_return * 100.0
        ),
        format!(
            "  sharpe            {}   buy & hold {}",
            opt(s.sharpe),
            opt(h.sharpe)
        ),
        format!(
            "  max drawdown      {:.2}%   buy & hold {:.2}%",
            s.max_drawdown * 100.0,
            h.max_drawdown * 100.0
        ),
        format!("  trades            {}", s.trades),
    ];
    if let Some(looks) = test_looks {
        lines.push(format!("  test looks        {looks} (this one included)"));
    }
    lines.push(format!("reports: {}", out.display()));
    for p in &output.reports {
        lines.push(format!("  {}", p.display()));
    }
    Ok((output, lines))
}

/// What a report says about the version it backtests; `extra` is one more key and value.
fn report_metadata(
    version: &checkpoint::LoadedVersion,
    config: &ratchet_config::TrainConfig,
    data_file: String,
    (key, value): (&str, String),
) -> ReportMetadata {
    ReportMetadata {
        title: format!("Backtest of {}", version.uri),
        model_name: Some(version.name.clone()),
        model_version: Some(version.version.to_string()),
        model_uri: Some(version.uri.clone()),
        feature_hash: Some(config.features.hash()),
        data_file: Some(data_file),
        extra: [
            (
                "algorithm".to_string(),
                version.metadata.training.algorithm.clone(),
            ),
            ("run_id".to_string(), version.run_id.clone()),
            (key.to_string(), value),
        ]
        .into_iter()
        .collect(),
    }
}

/// `--out`, or `reports/NAME-vVERSION`.
fn report_dir(args: &BacktestArgs, version: &checkpoint::LoadedVersion) -> PathBuf {
    args.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(format!("{}-v{}", version.name, version.version))
    })
}

/// Logs a backtest's figures to the version's run as `backtest/*`, and as `test/*` too when
/// the backtest covered the version's whole recorded test split.
fn log_to_run(
    registry: &ratchet_registry::Registry,
    version: &checkpoint::LoadedVersion,
    metrics: &std::collections::BTreeMap<String, f64>,
    whole_test_split: bool,
) -> Result<()> {
    let now = ratchet_mlflow::now_ms();
    let prefixes: &[&str] = if whole_test_split {
        &["backtest", "test"]
    } else {
        &["backtest"]
    };
    let logged: Vec<Metric> = prefixes
        .iter()
        .flat_map(|p| {
            metrics.iter().map(move |(k, v)| Metric {
                key: format!("{p}/{k}"),
                value: *v,
                timestamp: now,
                step: 0,
            })
        })
        .collect();
    registry
        .store()
        .log_metrics(&version.run_id, &logged)
        .with_context(|| format!("logging the backtest to run {}", version.run_id))
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
}

/// [`ratchet_data::parse_date`] as a command's error.
fn parse_date(text: &str, end_of_range: bool) -> Result<i64> {
    ratchet_data::parse_date(text, end_of_range).map_err(anyhow::Error::msg)
}

/// A training range as the report wants it.
fn time_range(first: &str, last: &str) -> Result<TimeRange> {
    Ok(TimeRange {
        start: DateTime::from_timestamp_millis(parse_date(first, false)?).expect("in range"),
        end: DateTime::from_timestamp_millis(parse_date(last, true)?).expect("in range"),
    })
}
