//! Loading OHLCV bars from CSV and Parquet files, with validation.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::bars::{order_problem, price_problem, range_problem, volume_problem};
use crate::checksum::{io_error, sha256_hex};
use crate::timestamp::{TimestampError, epoch_ints_to_ms, parse_timestamps};
use crate::{Bars, DataError, FeatureConfig};

mod columns;

pub(crate) use columns::normalise;
use columns::{ColumnMap, VOLUME_ALIASES};
pub(crate) use columns::{Context, TimeColumns};

/// How to read a data file. The default reads the bundled files as they are.
///
/// In a TOML config:
/// ```
/// let opts: ratchet_data::LoadOptions = toml::from_str(r#"
///     timestamp_format = "%d.%m.%Y %H:%M:%S%.f"
///     repair = true
/// "#).unwrap();
/// assert!(opts.repair && !opts.use_adj_close);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Layout of the timestamp column: a chrono strftime pattern such as `"%d.%m.%Y %H:%M:%S%.f"`,
    /// or `epoch_s`, `epoch_ms`, `epoch_us`, `epoch_ns` for numbers. `None` detects ISO dates and
    /// date-times, RFC 3339, epoch numbers (unit told by magnitude) and common day-first and
    /// month-first layouts, and fails with a request to set this when the layout is ambiguous.
    pub timestamp_format: Option<String>,
    /// Use the `Adj Close` column as close, scaling open, high and low by the same factor
    /// (`adj_close / close`) so that bars stay consistent. Otherwise `Adj Close` is ignored.
    pub use_adj_close: bool,
    /// Sort rows by time and drop rows whose timestamp repeats an earlier one (the first in file
    /// order is kept) instead of failing. What was done is reported in [`LoadedBars`].
    pub repair: bool,
}

/// The two file formats read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Csv,
    Parquet,
}

impl FileFormat {
    /// The format a path's extension names (case-insensitive `.csv` or `.parquet`/`.pq`).
    pub fn from_path(path: &Path) -> Result<FileFormat, DataError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(FileFormat::Csv),
            "parquet" | "pq" => Ok(FileFormat::Parquet),
            _ => Err(DataError::UnsupportedFormat {
                path: path.to_path_buf(),
                extension: if ext.is_empty() {
                    "(none)".to_string()
                } else {
                    format!(".{ext}")
                },
            }),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "CSV",
            FileFormat::Parquet => "Parquet",
        }
    }

    /// File row number of data row `index` (0-based): CSV counts the header line, like an editor.
    pub(crate) fn row(self, index: usize) -> usize {
        match self {
            FileFormat::Csv => index + 2,
            FileFormat::Parquet => index + 1,
        }
    }
}

/// Bars loaded from a file, with what is needed to trace them back to it.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedBars {
    pub bars: Bars,
    /// The path as given.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes (lowercase hex), the same bytes the bars were parsed from.
    pub sha256: String,
    pub format: FileFormat,
    /// The column(s) the timestamps came from, as named in the file (`Date+Time` when combined).
    pub timestamp_column: String,
    /// The timestamp layout used (detected or given), e.g. `%Y-%m-%d` or `epoch_ms`.
    pub timestamp_format: String,
    /// The volume column, as named in the file; `None` when the file has none (the volumes
    /// are then NaN, and [`LoadedBars::check_features`] refuses features that read them).
    pub volume_column: Option<String>,
    /// Data rows in the file.
    pub rows_read: usize,
    /// Rows that were out of time order and moved by `repair`.
    pub rows_reordered: usize,
    /// Rows dropped by `repair` because their timestamp repeated an earlier row's.
    pub duplicates_dropped: usize,
    /// `rows_reordered + duplicates_dropped`: zero when the file needed no repair.
    pub rows_repaired: usize,
}

impl LoadedBars {
    /// Refuses `features` that read a column this file does not have (its volume).
    pub fn check_features(&self, features: &FeatureConfig) -> Result<(), DataError> {
        if self.volume_column.is_none()
            && let Some(feature) = features.reading_volume()
        {
            return Err(DataError::NoVolume {
                path: self.path.clone(),
                feature,
                accepted: VOLUME_ALIASES.join(", "),
            });
        }
        Ok(())
    }

    /// One line describing what `repair` did, or `None` when nothing was needed.
    pub fn repair_summary(&self) -> Option<String> {
        (self.rows_repaired > 0).then(|| {
            format!(
                "{}: repaired {} of {} rows ({} moved into time order, {} with a duplicate timestamp dropped, keeping the first)",
                self.path.display(),
                self.rows_repaired,
                self.rows_read,
                self.rows_reordered,
                self.duplicates_dropped
            )
        })
    }
}

/// Loads and validates OHLCV bars from a `.csv` or `.parquet` file.
///
/// Columns are matched by name, case-, space- and punctuation-insensitively: time from `Date`,
/// `Time`, `Timestamp`, `Datetime`, `Gmt time`, ... (separate `Date` and `Time` columns are
/// joined); `Open`/`O`, `High`/`H`, `Low`/`L`, `Close`/`C`/`Last`, `Volume`/`Vol`/`V`;
/// `Adj Close` only with [`LoadOptions::use_adj_close`]. Other columns are ignored.
///
/// Every problem is returned as a [`DataError`] naming the file, row and column.
///
/// ```
/// use ratchet_data::{load_bars, LoadOptions};
/// let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/FOREX_EURUSD_1H_ASK.csv");
/// let loaded = load_bars(&path, &LoadOptions::default())?;
/// assert_eq!(loaded.bars.len(), 6225);
/// assert_eq!(loaded.timestamp_format, "%d.%m.%Y %H:%M:%S%.f");
/// # Ok::<(), ratchet_data::DataError>(())
/// ```
pub fn load_bars(path: &Path, opts: &LoadOptions) -> Result<LoadedBars, DataError> {
    FileFormat::from_path(path)?;
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    parse_bars(path, bytes, opts)
}

/// [`load_bars`] of a file's contents already in memory (such as a data set built into a
/// binary); `path` names it in errors and in the result, and its extension gives the format.
pub fn parse_bars(
    path: &Path,
    bytes: Vec<u8>,
    opts: &LoadOptions,
) -> Result<LoadedBars, DataError> {
    let (format, sha256, df, rows) = read_bars_frame(path, bytes)?;
    bars_of_frame(path, format, sha256, df, rows, opts)
}

/// A bars file read into a frame of its data rows: its format, the SHA-256 of its bytes,
/// the frame, and each row's index among the file's data lines (blank lines dropped).
pub(crate) fn read_bars_frame(
    path: &Path,
    bytes: Vec<u8>,
) -> Result<(FileFormat, String, DataFrame, Vec<usize>), DataError> {
    let format = FileFormat::from_path(path)?;
    let sha256 = sha256_hex(&bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let df = read_frame(format, bytes).map_err(|e| DataError::Malformed {
        path: path.to_path_buf(),
        format: format.name(),
        message: one_line(&e.to_string()),
    })?;
    let (df, rows) = match format {
        FileFormat::Csv => drop_blank_lines(df),
        FileFormat::Parquet => {
            let rows = (0..df.height()).collect();
            Ok((df, rows))
        }
    }
    .map_err(|e| DataError::Malformed {
        path: path.to_path_buf(),
        format: format.name(),
        message: one_line(&e.to_string()),
    })?;
    if df.height() == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((format, sha256, df, rows))
}

/// The validated bars of a frame's rows (`rows[i]` is row `i`'s index among the file's data
/// lines, for error messages).
pub(crate) fn bars_of_frame(
    path: &Path,
    format: FileFormat,
    sha256: String,
    df: DataFrame,
    rows: Vec<usize>,
    opts: &LoadOptions,
) -> Result<LoadedBars, DataError> {
    let ctx = Context { path, format, rows };
    let columns = ColumnMap::find(&df, &ctx, opts.use_adj_close)?;
    let (timestamps, timestamp_format) = ctx.timestamps(&df, &columns.time, opts)?;

    let open = ctx.numbers(&df, &columns.open)?;
    let high = ctx.numbers(&df, &columns.high)?;
    let low = ctx.numbers(&df, &columns.low)?;
    let close = ctx.numbers(&df, &columns.close)?;
    let volume = match &columns.volume {
        Some(name) => ctx.numbers(&df, name)?,
        None => vec![f64::NAN; open.len()],
    };
    let adj_close = match &columns.adj_close {
        Some(name) => Some(ctx.numbers(&df, name)?),
        None => None,
    };

    for (name, values) in [
        (&columns.open, &open),
        (&columns.high, &high),
        (&columns.low, &low),
        (&columns.close, &close),
    ]
    .into_iter()
    .chain(columns.adj_close.as_ref().zip(adj_close.as_ref()))
    {
        ctx.check_prices(name, values)?;
    }
    if let Some(name) = &columns.volume {
        ctx.check_volume(name, &volume)?;
    }
    ctx.check_bar_consistency(&open, &high, &low, &close)?;

    let mut bars = Bars {
        timestamps,
        open,
        high,
        low,
        close,
        volume,
    };
    if let Some(adj) = adj_close {
        apply_adjusted_close(&mut bars, adj);
    }
    let rows_read = bars.len();
    let (rows_reordered, duplicates_dropped) = if opts.repair {
        repair_order(&mut bars)
    } else {
        ctx.check_order(&bars.timestamps, &columns.time.label())?;
        (0, 0)
    };
    Ok(LoadedBars {
        bars,
        path: path.to_path_buf(),
        sha256,
        format,
        timestamp_column: columns.time.label(),
        timestamp_format,
        volume_column: columns.volume,
        rows_read,
        rows_reordered,
        duplicates_dropped,
        rows_repaired: rows_reordered + duplicates_dropped,
    })
}

fn read_frame(format: FileFormat, bytes: Vec<u8>) -> PolarsResult<DataFrame> {
    match format {
        // Every column as text: values are parsed here so that errors can name the row.
        FileFormat::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_parse_options(CsvParseOptions::default().with_separator(separator(&bytes)))
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish(),
        FileFormat::Parquet => ParquetReader::new(Cursor::new(bytes)).finish(),
    }
}

/// The field separator of a CSV file: whichever of `,` `;` tab and `|` its header line holds
/// most often outside quotes (a header names at least the time and price columns, so the
/// separator appears in it several times); `,` when none does.
fn separator(bytes: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    let header = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut counts = [0usize; CANDIDATES.len()];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = CANDIDATES.iter().position(|&c| c == b) {
            counts[i] += 1;
        }
    }
    // The first of equal counts: a comma wins ties.
    let (best, count) =
        counts.iter().enumerate().fold(
            (0, 0),
            |best, (i, &n)| if n > best.1 { (i, n) } else { best },
        );
    if count == 0 { b',' } else { CANDIDATES[best] }
}

/// Drops blank lines (rows whose fields are all empty) from a CSV frame. Returns the frame and,
/// for each remaining row, its index among the file's data lines, so errors keep file row numbers.
fn drop_blank_lines(df: DataFrame) -> PolarsResult<(DataFrame, Vec<usize>)> {
    let n = df.height();
    let mut blank = vec![true; n];
    for col in df.columns() {
        let ca = col.str()?;
        for (b, v) in blank.iter_mut().zip(ca.iter()) {
            if v.is_some_and(|s| !s.trim().is_empty()) {
                *b = false;
            }
        }
    }
    let rows: Vec<usize> = (0..n).filter(|&i| !blank[i]).collect();
    if rows.len() == n {
        return Ok((df, rows));
    }
    let keep: Vec<bool> = blank.iter().map(|b| !b).collect();
    let df = df.filter(&BooleanChunked::from_slice("keep".into(), &keep))?;
    Ok((df, rows))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces close by the adjusted close and scales open, high and low by the same factor.
fn apply_adjusted_close(bars: &mut Bars, adj: Vec<f64>) {
    for (i, c) in adj.into_iter().enumerate() {
        let factor = c / bars.close[i];
        let o = bars.open[i] * factor;
        bars.open[i] = o;
        bars.close[i] = c;
        // Rounding of the products must not break high >= max(open, close) >= min(...) >= low.
        bars.high[i] = (bars.high[i] * factor).max(o).max(c);
        bars.low[i] = (bars.low[i] * factor).min(o).min(c);
    }
}

/// Sorts bars by time (stable) and drops repeats of a timestamp, keeping the first in file order.
/// Returns (rows moved, rows dropped).
fn repair_order(bars: &mut Bars) -> (usize, usize) {
    let n = bars.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| bars.timestamps[i]);
    let mut keep = Vec::with_capacity(n);
    for &i in &order {
        if keep
            .last()
            .is_none_or(|&last: &usize| bars.timestamps[last] != bars.timestamps[i])
        {
            keep.push(i);
        }
    }
    let dropped = n - keep.len();
    // A kept row moved when an earlier row of the file has a later timestamp.
    let mut kept = vec![false; n];
    for &i in &keep {
        kept[i] = true;
    }
    let mut running_max = i64::MIN;
    let mut moved = 0;
    for (&t, &kept) in bars.timestamps.iter().zip(&kept) {
        if kept && t < running_max {
            moved += 1;
        }
        running_max = running_max.max(t);
    }
    if moved > 0 || dropped > 0 {
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<_>>();
        *bars = Bars {
            timestamps: keep.iter().map(|&i| bars.timestamps[i]).collect(),
            open: pick(&bars.open),
            high: pick(&bars.high),
            low: pick(&bars.low),
            close: pick(&bars.close),
            volume: pick(&bars.volume),
        };
    }
    (moved, dropped)
}

#[cfg(test)]
mod tests {
    use super::columns::normalise;
    use super::*;

    #[test]
    fn names_normalise() {
        assert_eq!(normalise("Adj Close"), "adjclose");
        assert_eq!(normalise(" <GMT Time>"), "gmttime");
        assert_eq!(normalise("\u{feff}Date"), "date");
    }

    #[test]
    fn repair_sorts_and_deduplicates() {
        let mut bars = Bars {
            timestamps: vec![3, 1, 2, 2, 4, 1],
            open: vec![3.0, 1.0, 2.0, 2.5, 4.0, 1.5],
            high: vec![0.0; 6],
            low: vec![0.0; 6],
            close: vec![0.0; 6],
            volume: vec![0.0; 6],
        };
        let (moved, dropped) = repair_order(&mut bars);
        assert_eq!(bars.timestamps, vec![1, 2, 3, 4]);
        assert_eq!(bars.open, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((moved, dropped), (2, 2));
    }

    #[test]
    fn adjusted_close_keeps_bars_consistent() {
        let mut bars = Bars {
            timestamps: vec![0],
            open: vec![10.0],
            high: vec![10.3],
            low: vec![9.7],
            close: vec![10.3],
            volume: vec![1.0],
        };
        apply_adjusted_close(&mut bars, vec![5.15]);
        assert_eq!(bars.close, vec![5.15]);
        assert!((bars.open[0] - 5.0).abs() < 1e-12);
        assert!(bars.high[0] >= bars.close[0] && bars.low[0] <= bars.open[0]);
    }
}
