//! `report.json`, `report.md` and `report.html`, written atomically into one directory; and
//! the layout every Ratchet HTML report uses ([`Page`], [`section`], [`legend`], value axes on
//! round gridlines: [`Axis`]), which other crates' pages (the sweep leaderboard) build on.

mod chart;
mod format;
mod html;
mod markdown;
mod page;
mod universe;

pub use chart::{Axis, Coord, decimals};
pub use page::{Page, legend, section};
pub use universe::{
    SymbolRow, SymbolRun, UNIVERSE_REPORT_SCHEMA, UniverseReport, write_universe_reports,
};

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use ratchet_env::execution::Costs;
use serde::{Deserialize, Serialize};

use crate::Backtest;
use crate::error::BacktestError;
use crate::frequency::Frequency;
use crate::metrics::Metrics;
use crate::prices::{PriceSeries, to_datetime};
use crate::simulate::Trade;
use crate::stats::Trials;

/// Version of the `report.json` layout.
pub const REPORT_SCHEMA: &str = "ratchet.backtest.report/1";

/// An inclusive span of time, such as a model's training range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the caller knows about the backtest that the numbers do not say. Every field is
/// optional; `extra` carries anything else worth recording (algorithm, seed, run id).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportMetadata {
    /// Heading of the reports; "Backtest" when empty.
    pub title: String,
    pub model_name: Option<String>,
    pub model_version: Option<String>,
    /// `models:/NAME/VERSION`.
    pub model_uri: Option<String>,
    pub feature_hash: Option<String>,
    pub data_file: Option<String>,
    pub extra: BTreeMap<String, String>,
}

/// Everything [`write_reports`] needs.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// The bars the backtest ran on.
    pub prices: &'a PriceSeries,
    pub backtest: &'a Backtest,
    pub metadata: &'a ReportMetadata,
    /// The model's training range, checked for overlap (look-ahead leakage).
    pub training_range: Option<TimeRange>,
}

/// Where the reports went, and the leakage warning for the caller to print.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportPaths {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub leakage: Option<String>,
}

/// Returns of one calendar month (UTC): last close of the month over the last close of the
/// previous month (the first bar's close for the first month) minus 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonthlyReturn {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
    pub strategy: f64,
    pub buy_and_hold: f64,
}

/// A [`Trade`] with the times of its fills, as the reports list it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeRecord {
    pub entry_time: DateTime<Utc>,
    pub exit_time: DateTime<Utc>,
    #[serde(flatten)]
    pub trade: Trade,
}

/// The content of `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: String,
    pub generated_at: DateTime<Utc>,
    /// Version of ratchet-backtest that wrote the report.
    pub generator_version: String,
    pub metadata: ReportMetadata,
    pub costs: Costs,
    /// First and last bar of the backtest.
    pub range: TimeRange,
    pub bars: usize,
    pub periods_per_year: f64,
    pub frequency: Frequency,
    pub training_range: Option<TimeRange>,
    /// Set when `range` overlaps `training_range`: the results are (partly) in-sample.
    pub leakage: Option<String>,
    /// Time of the close at which the strategy's equity reached 0, if it did.
    pub bankrupt_at: Option<DateTime<Utc>>,
    pub strategy: Metrics,
    pub buy_and_hold: Metrics,
    /// The trials the strategy was selected from, which its deflated Sharpe ratio accounts
    /// for; absent when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<Trials>,
    pub monthly_returns: Vec<MonthlyReturn>,
    pub trades: Vec<TradeRecord>,
}

impl Report {
    fn build(input: &ReportInput) -> Self {
        let ReportInput {
            prices,
            backtest,
            metadata,
            training_range,
        } = *input;
        let (start, end) = prices.span();
        Self {
            schema: REPORT_SCHEMA.to_string(),
            generated_at: Utc::now(),
            generator_version: env!("CARGO_PKG_VERSION").to_string(),
            metadata: metadata.clone(),
            costs: backtest.strategy.costs,
            range: TimeRange { start, end },
            bars: prices.len(),
            periods_per_year: backtest.frequency.periods_per_year,
            frequency: backtest.frequency.clone(),
            training_range,
            leakage: training_range.and_then(|t| leakage_warning(prices, &t)),
            bankrupt_at: backtest.strategy.bankrupt_at.map(|b| prices.time(b)),
            strategy: backtest.strategy_metrics.clone(),
            buy_and_hold: backtest.buy_and_hold_metrics.clone(),
            trials: backtest.trials,
            monthly_returns: monthly_returns(
                prices.timestamps(),
                &backtest.strategy.equity,
                &backtest.buy_and_hold.equity,
            ),
            trades: backtest
                .strategy
                .trades
                .iter()
                .map(|t| TradeRecord {
                    entry_time: prices.time(t.entry_bar),
                    exit_time: prices.time(t.exit_bar),
                    trade: t.clone(),
                })
                .collect(),
        }
    }

    fn title(&self) -> &str {
        match self.metadata.title.trim() {
            "" => "Backtest",
            t => t,
        }
    }
}

/// The warning to show when the bars of `prices` overlap `training` (inclusive), naming
/// both ranges and how many bars were seen in training; `None` when they are disjoint.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use ratchet_backtest::{PriceSeries, TimeRange, leakage_warning};
/// let day = 86_400_000;
/// let prices = PriceSeries::new((0..10).map(|d| d * day).collect(), vec![1.0; 10], vec![1.0; 10])?;
/// let training = |end_day| TimeRange { start: Utc.timestamp_millis_opt(-100 * day).unwrap(), end: Utc.timestamp_millis_opt(end_day * day).unwrap() };
/// assert!(leakage_warning(&prices, &training(-1)).is_none());
/// assert!(leakage_warning(&prices, &training(2)).unwrap().contains("3 of 10 bars"));
/// # Ok::<(), ratchet_backtest::BacktestError>(())
/// ```
pub fn leakage_warning(prices: &PriceSeries, training: &TimeRange) -> Option<String> {
    let ts = prices.timestamps();
    let (train_start, train_end) = (
        training.start.timestamp_millis(),
        training.end.timestamp_millis(),
    );
    let first = ts.partition_point(|&t| t < train_start);
    let past = ts.partition_point(|&t| t <= train_end);
    let inside = past.saturating_sub(first);
    if inside == 0 {
        return None;
    }
    let (start, end) = prices.span();
    Some(format!(
        "look-ahead leakage: the backtest range {} .. {} overlaps the model's training range \
         {} .. {}; {inside} of {} bars ({:.1}%) were seen in training, so these results are \
         in-sample and overstate what the model does on unseen data. Backtest only bars after {}.",
        format::time(start),
        format::time(end),
        format::time(training.start),
        format::time(training.end),
        ts.len(),
        100.0 * inside as f64 / ts.len() as f64,
        format::time(training.end),
    ))
}

/// Writes `report.json`, `report.md` and `report.html` into `dir` (created if missing).
/// Each file is written to a temporary name and renamed into place once all three are
/// complete, so a reader never sees a partial report; on error the temporaries are removed.
pub fn write_reports(dir: &Path, input: &ReportInput) -> Result<ReportPaths, BacktestError> {
    let report = Report::build(input);
    let json = serde_json::to_string_pretty(&report).expect("a report always serialises to JSON");
    let markdown = markdown::render(&report);
    let html = html::render(&report, input);
    let mut paths = write_files(
        dir,
        [
            ("report.json", json),
            ("report.md", markdown),
            ("report.html", html),
        ],
    )?;
    paths.leakage = report.leakage;
    Ok(paths)
}

/// Writes the three report files into `dir` (created if missing): each to a temporary name,
/// renamed into place once all three are complete, so a reader never sees a partial report;
/// on error the temporaries are removed.
fn write_files(dir: &Path, files: [(&str, String); 3]) -> Result<ReportPaths, BacktestError> {
    fs::create_dir_all(dir).map_err(|error| BacktestError::Write {
        path: dir.to_path_buf(),
        error,
    })?;
    let mut staged = Vec::new();
    let result = files.iter().try_for_each(|(name, text)| {
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        staged.push(tmp.clone());
        write_synced(&tmp, text.as_bytes())
            .map_err(|error| BacktestError::Write { path: tmp, error })
    });
    let result = result.and_then(|()| {
        staged.iter().zip(&files).try_for_each(|(tmp, (name, _))| {
            let path = dir.join(name);
            fs::rename(tmp, &path).map_err(|error| BacktestError::Write { path, error })
        })
    });
    if let Err(e) = result {
        for tmp in &staged {
            let _ = fs::remove_file(tmp);
        }
        return Err(e);
    }
    Ok(ReportPaths {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
        leakage: None,
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Monthly returns of both equity curves, found by binary search on the month boundaries.
fn monthly_returns(ts: &[i64], strategy: &[f64], buy_and_hold: &[f64]) -> Vec<MonthlyReturn> {
    let change = |eq: &[f64], base: usize, last: usize| {
        if eq[base] > 0.0 {
            eq[last] / eq[base] - 1.0
        } else {
            0.0
        }
    };
    let first = to_datetime(ts[0]);
    let (mut year, mut month) = (first.year(), first.month());
    let mut base = 0;
    let mut begin = 0;
    let mut out = Vec::new();
    while begin < ts.len() {
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let boundary = NaiveDate::from_ymd_opt(next_year, next_month, 1)
            .map(|d| {
                d.and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis()
            })
            .unwrap_or(i64::MAX);
        let end = begin + ts[begin..].partition_point(|&t| t < boundary);
        if end > begin {
            let last = end - 1;
            out.push(MonthlyReturn {
                year,
                month,
                strategy: change(strategy, base, last),
                buy_and_hold: change(buy_and_hold, base, last),
            });
            base = last;
        }
        (year, month, begin) = (next_year, next_month, end);
    }
    out
}
