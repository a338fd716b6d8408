//! Reading an outside source: the bar loader's file reading and timestamp parsing, then the
//! checks a point-in-time join needs, each error naming the file, row and column.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::{DataFrame, DataType};
use sha2::{Digest, Sha256};

use super::join::{ExternalColumns, join_series};
use super::{ExternalFeature, Transform};
use crate::checksum::io_error;
use crate::load::{Context, FileFormat, TimeColumns, read_bars_frame};
use crate::timestamp::format_timestamp;
use crate::{DataError, LoadOptions};

/// A validated outside source: its rows grouped by symbol, in the order they became known.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalSource {
    pub feature: ExternalFeature,
    /// SHA-256 of the file's bytes (lowercase hex), for the version's metadata.
    pub sha256: String,
    /// The timestamp layout read (`%Y-%m-%d`, `rfc3339`, `epoch_ms`, `parquet datetime`, …).
    pub timestamp_format: String,
    /// Data rows in the file.
    pub rows: usize,
    /// Things said once about the source, such as timestamps read as UTC for want of a zone.
    pub warnings: Vec<String>,
    /// By symbol; one series under `""` for a market-wide source.
    series: BTreeMap<String, SourceSeries>,
}

/// One symbol's rows of a source, ordered by the time each became known (the later of its
/// timestamp and its created time), then by timestamp and created.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSeries {
    timestamps: Vec<i64>,
    /// Empty without a created column.
    created: Vec<i64>,
    known_at: Vec<i64>,
    /// Row-major, one value per declared column.
    values: Vec<f64>,
    width: usize,
}

/// One row of a [`SourceSeries`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceRow<'a> {
    pub timestamp: i64,
    pub created: Option<i64>,
    pub known_at: i64,
    pub values: &'a [f64],
}

impl SourceSeries {
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Row `i` in the order rows became known.
    pub fn row(&self, i: usize) -> Option<SourceRow<'_>> {
        Some(SourceRow {
            timestamp: *self.timestamps.get(i)?,
            created: self.created.get(i).copied(),
            known_at: self.known_at[i],
            values: &self.values[i * self.width..(i + 1) * self.width],
        })
    }

    /// When the first row became known.
    pub fn first_known(&self) -> Option<i64> {
        self.known_at.first().copied()
    }
}

impl ExternalSource {
    /// Reads `feature.source` (`.csv` or `.parquet`) and validates it for `feature` (which
    /// should have passed [`ExternalFeature::validate`]).
    pub fn load(feature: &ExternalFeature) -> Result<ExternalSource, DataError> {
        let path = feature.source.as_path();
        FileFormat::from_path(path)?;
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        Self::parse(feature, path, bytes)
    }

    /// [`load`](Self::load) of a file's bytes already in memory; `path` names it in errors and
    /// its extension gives the format.
    pub fn parse(
        feature: &ExternalFeature,
        path: &Path,
        bytes: Vec<u8>,
    ) -> Result<ExternalSource, DataError> {
        let (format, sha256, df, rows) = read_bars_frame(path, bytes)?;
        let ctx = Context { path, format, rows };
        for (role, column) in [
            ("timestamp column", Some(&feature.timestamp)),
            ("symbol column", feature.symbol.as_ref()),
            ("created column", feature.created.as_ref()),
        ]
        .into_iter()
        .filter_map(|(role, c)| c.map(|c| (role, c)))
        .chain(feature.columns.iter().map(|c| ("value column", c)))
        {
            if df.column(column).is_err() {
                return Err(DataError::ExternalColumn {
                    path: path.to_path_buf(),
                    feature: feature.name.clone(),
                    column: column.clone(),
                    role,
                    found: df
                        .get_column_names()
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let opts = LoadOptions {
            timestamp_format: feature.timestamp_format.clone(),
            ..LoadOptions::default()
        };
        let mut warnings = Vec::new();
        let mut times = |column: &String| -> Result<(Vec<i64>, String), DataError> {
            let (values, layout) = ctx.timestamps(&df, &TimeColumns::One(column.clone()), &opts)?;
            if !has_zone(&df, column, &layout) {
                warnings.push(format!(
                    "{}: column {column:?} has no time zone ({layout}); read as UTC",
                    path.display()
                ));
            }
            Ok((values, layout))
        };
        let (timestamps, timestamp_format) = times(&feature.timestamp)?;
        let created = match &feature.created {
            Some(c) => Some(times(c)?.0),
            None => None,
        };
        let symbols = match &feature.symbol {
            Some(c) => Some(symbol_texts(&ctx, &df, c)?),
            None => None,
        };
        let columns = feature
            .columns
            .iter()
            .map(|c| {
                let values = ctx.numbers(&df, c)?;
                check_values(&ctx, c, &values, feature.transform)?;
                Ok(values)
            })
            .collect::<Result<Vec<_>, DataError>>()?;

        // Row indices per symbol, in file order.
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for i in 0..timestamps.len() {
            let symbol = symbols.as_ref().map_or("", |s| &*s[i]);
            match groups.get_mut(symbol) {
                Some(rows) => rows.push(i),
                None => {
                    groups.insert(symbol, vec![i]);
                }
            }
        }
        let mut series = BTreeMap::new();
        for (symbol, rows) in groups {
            check_order(
                &ctx,
                feature,
                symbol,
                &rows,
                &timestamps,
                created.as_deref(),
            )?;
            series.insert(
                symbol.to_string(),
                SourceSeries::of_rows(&rows, &timestamps, created.as_deref(), &columns),
            );
        }
        Ok(ExternalSource {
            feature: feature.clone(),
            sha256,
            timestamp_format,
            rows: timestamps.len(),
            warnings,
            series,
        })
    }

    /// The rows for `symbol`: the whole source when it is market-wide, `None` when it has no
    /// row for the symbol.
    pub fn series(&self, symbol: &str) -> Option<&SourceSeries> {
        match self.feature.symbol {
            None => self.series.get(""),
            Some(_) => self.series.get(symbol),
        }
    }

    /// The symbols with rows (none for a market-wide source).
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.series
            .keys()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The outside columns for one symbol's bars (timestamps increasing): a fresh
    /// [`ExternalStream`](super::ExternalStream) pushed every bar. A source with no row known
    /// at the first bar is an error whatever the `missing` rule: the bars start before the
    /// outside data does.
    pub fn join(&self, symbol: &str, bar_timestamps: &[i64]) -> Result<ExternalColumns, DataError> {
        if let Some(&first_bar) = bar_timestamps.first() {
            self.check_covers(symbol, first_bar)?;
        }
        self.join_all_bars(symbol, bar_timestamps)
    }

    /// SHA-256 of the rows known at or before `until` (every symbol's, in symbol order; each
    /// row's timestamp, created time and values): equal when a file only gained rows after
    /// `until`, so continuing a version can tell appended rows from changed history.
    pub fn digest_until(&self, until: i64) -> String {
        let mut hasher = Sha256::new();
        for (symbol, series) in &self.series {
            hasher.update(symbol.as_bytes());
            hasher.update([0]);
            for row in (0..series.len()).filter_map(|i| series.row(i)) {
                if row.known_at > until {
                    continue;
                }
                hasher.update(row.timestamp.to_le_bytes());
                hasher.update(row.created.unwrap_or(i64::MIN).to_le_bytes());
                for v in row.values {
                    hasher.update(v.to_bits().to_le_bytes());
                }
            }
        }
        hex::encode(hasher.finalize())
    }

    /// Errors when no row for `symbol` is known at `first_bar`.
    pub(crate) fn check_covers(&self, symbol: &str, first_bar: i64) -> Result<(), DataError> {
        let first_known = self.series(symbol).and_then(SourceSeries::first_known);
        if first_known.is_some_and(|known| known <= first_bar) {
            return Ok(());
        }
        Err(DataError::External {
            feature: match &self.feature.symbol {
                Some(_) => format!("{} for {symbol}", self.feature.name),
                None => self.feature.name.clone(),
            },
            message: match first_known {
                Some(known) => format!(
                    "{}: its first row is known at {}, after the first bar ({}); extend the source back or start the bars at or after its first row",
                    self.feature.source.display(),
                    format_timestamp(known),
                    format_timestamp(first_bar)
                ),
                None => format!(
                    "{}: no row for this symbol; add its rows to the source or leave the symbol out",
                    self.feature.source.display()
                ),
            },
        })
    }

    /// [`join`](Self::join) without its check of the first bar: bars before the source's
    /// first row (or all bars, for a symbol without rows) have no value and follow the
    /// `missing` rule, as Feast's `get_historical_features` gives them nulls.
    pub fn join_all_bars(
        &self,
        symbol: &str,
        bar_timestamps: &[i64],
    ) -> Result<ExternalColumns, DataError> {
        let label = self.feature.symbol.as_ref().map(|_| symbol);
        join_series(&self.feature, label, self.series(symbol), bar_timestamps)
    }
}

/// The symbol column as text: text as it is, integers (Feast's INT64 entity keys) in decimal.
fn symbol_texts<'df>(
    ctx: &Context,
    df: &'df DataFrame,
    column: &str,
) -> Result<Vec<Cow<'df, str>>, DataError> {
    if let Some(texts) = ctx.texts(df, column)? {
        return Ok(texts.into_iter().map(Cow::Borrowed).collect());
    }
    let col = ctx.column(df, column);
    if !col.dtype().is_integer() {
        return Err(ctx.column_type(column, col.dtype(), "text or integer symbols"));
    }
    let ints = col
        .cast(&DataType::Int64)
        .map_err(|_| ctx.column_type(column, col.dtype(), "text or integer symbols"))?;
    ints.i64()
        .expect("cast to Int64")
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.map(|v| Cow::Owned(v.to_string())).ok_or_else(|| {
                ctx.invalid(
                    i,
                    column,
                    "missing value; fill it in or remove the row".to_string(),
                )
            })
        })
        .collect()
}

impl SourceSeries {
    fn of_rows(
        rows: &[usize],
        timestamps: &[i64],
        created: Option<&[i64]>,
        columns: &[Vec<f64>],
    ) -> SourceSeries {
        let created_of = |i: usize| created.map_or(i64::MIN, |c| c[i]);
        let known_at = |i: usize| timestamps[i].max(created_of(i));
        let mut order = rows.to_vec();
        order.sort_by_key(|&i| (known_at(i), timestamps[i], created_of(i)));
        SourceSeries {
            timestamps: order.iter().map(|&i| timestamps[i]).collect(),
            created: created.map_or_else(Vec::new, |c| order.iter().map(|&i| c[i]).collect()),
            known_at: order.iter().map(|&i| known_at(i)).collect(),
            values: order
                .iter()
                .flat_map(|&i| columns.iter().map(move |c| c[i]))
                .collect(),
            width: columns.len(),
        }
    }
}

/// Whether a parsed timestamp column said its zone: an offset in the text or the Parquet
/// type, or epoch numbers (UTC by definition).
fn has_zone(df: &DataFrame, column: &str, layout: &str) -> bool {
    match df.column(column).map(|c| c.dtype()) {
        Ok(DataType::Datetime(_, zone)) => zone.is_some(),
        Ok(DataType::Date) => false,
        _ => {
            layout == "rfc3339"
                || layout.starts_with("epoch_")
                || ["%z", "%:z", "%#z", "%+"]
                    .iter()
                    .any(|z| layout.contains(z))
        }
    }
}

fn check_values(
    ctx: &Context,
    column: &str,
    values: &[f64],
    transform: Transform,
) -> Result<(), DataError> {
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(ctx.invalid(
                i,
                column,
                format!("value {v} is not finite; fix the value or remove the row"),
            ));
        }
        if transform == Transform::LogReturn && v <= 0.0 {
            return Err(ctx.invalid(
                i,
                column,
                format!("value {v} is not positive, and transform = \"log_return\" divides by it; fix the value or use transform = \"diff\""),
            ));
        }
    }
    Ok(())
}

/// One symbol's rows must be in timestamp order; a timestamp may repeat only with a created
/// column, and then with a different created time.
fn check_order(
    ctx: &Context,
    feature: &ExternalFeature,
    symbol: &str,
    rows: &[usize],
    timestamps: &[i64],
    created: Option<&[i64]>,
) -> Result<(), DataError> {
    let of_symbol = if symbol.is_empty() {
        String::new()
    } else {
        format!(" of symbol {symbol}")
    };
    let mut same_timestamp: Vec<usize> = Vec::new();
    for pair in rows.windows(2) {
        let (prev, cur) = (pair[0], pair[1]);
        let (a, b) = (timestamps[prev], timestamps[cur]);
        if b < a {
            return Err(ctx.invalid(
                cur,
                &feature.timestamp,
                format!(
                    "timestamp {} is earlier than row {} ({}){of_symbol}; sort the source by timestamp",
                    format_timestamp(b),
                    ctx.row(prev),
                    format_timestamp(a)
                ),
            ));
        }
        if b > a {
            same_timestamp.clear();
            continue;
        }
        let Some(created) = created else {
            return Err(ctx.invalid(
                cur,
                &feature.timestamp,
                format!(
                    "timestamp {} repeats row {}{of_symbol}; remove the duplicate, or name a created column so that later rows restate earlier ones",
                    format_timestamp(b),
                    ctx.row(prev)
                ),
            ));
        };
        if same_timestamp.is_empty() {
            same_timestamp.push(prev);
        }
        if let Some(&twin) = same_timestamp.iter().find(|&&r| created[r] == created[cur]) {
            return Err(ctx.invalid(
                cur,
                feature.created.as_deref().unwrap_or_default(),
                format!(
                    "timestamp {} and created {} repeat row {}{of_symbol}; a restatement needs a later created time, so fix it or remove the duplicate",
                    format_timestamp(b),
                    format_timestamp(created[cur]),
                    ctx.row(twin)
                ),
            ));
        }
        same_timestamp.push(cur);
    }
    Ok(())
}
