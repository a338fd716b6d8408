//! Finding the columns of a bars file by name and reading each field's values out of them,
//! every problem named by file, row and column.

use std::path::Path;

use polars::prelude::*;

use super::*;

/// Where values come from, for error messages.
pub(crate) struct Context<'a> {
    pub(crate) path: &'a Path,
    pub(crate) format: FileFormat,
    /// Index among the file's data rows of each row read.
    pub(crate) rows: Vec<usize>,
}

/// Lowercase letters and digits only: `Adj. Close`, `adj_close` and `ADJCLOSE` all become `adjclose`.
pub(crate) fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

pub(super) const TIME_ALIASES: &[&str] = &[
    "timestamp",
    "datetime",
    "date",
    "time",
    "gmttime",
    "localtime",
    "opentime",
    "ts",
];
pub(super) const OPEN_ALIASES: &[&str] = &["open", "o", "openprice"];
pub(super) const HIGH_ALIASES: &[&str] = &["high", "h", "highprice"];
pub(super) const LOW_ALIASES: &[&str] = &["low", "l", "lowprice"];
pub(super) const CLOSE_ALIASES: &[&str] = &["close", "c", "closeprice", "last"];
pub(super) const ADJ_CLOSE_ALIASES: &[&str] = &["adjclose", "adjustedclose"];
pub(super) const VOLUME_ALIASES: &[&str] = &["volume", "vol", "v"];

/// The timestamp source: one column, or a date column and a time column joined with a space.
pub(crate) enum TimeColumns {
    One(String),
    DateAndTime(String, String),
}

impl TimeColumns {
    pub(super) fn label(&self) -> String {
        match self {
            TimeColumns::One(name) => name.clone(),
            TimeColumns::DateAndTime(d, t) => format!("{d}+{t}"),
        }
    }
}

/// The file's column name for each field.
pub(super) struct ColumnMap {
    pub(super) time: TimeColumns,
    pub(super) open: String,
    pub(super) high: String,
    pub(super) low: String,
    pub(super) close: String,
    pub(super) adj_close: Option<String>,
    /// Optional: only a feature that reads volumes needs it.
    pub(super) volume: Option<String>,
}

impl ColumnMap {
    pub(super) fn find(
        df: &DataFrame,
        ctx: &Context,
        use_adj_close: bool,
    ) -> Result<ColumnMap, DataError> {
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let matching = |aliases: &[&str]| -> Vec<&String> {
            names
                .iter()
                .filter(|n| aliases.contains(&normalise(n).as_str()))
                .collect()
        };
        let missing = |field: &'static str, aliases: &[&str]| DataError::MissingColumn {
            path: ctx.path.to_path_buf(),
            field,
            accepted: aliases.join(", "),
            found: names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let ambiguous = |field: &'static str, found: &[&String]| DataError::AmbiguousColumn {
            path: ctx.path.to_path_buf(),
            field,
            columns: found
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let one = |field: &'static str, aliases: &[&str]| -> Result<String, DataError> {
            match matching(aliases).as_slice() {
                [] => Err(missing(field, aliases)),
                [name] => Ok((*name).clone()),
                many => Err(ambiguous(field, many)),
            }
        };

        let time_found = matching(TIME_ALIASES);
        let time = match time_found.as_slice() {
            [] => return Err(missing("timestamp", TIME_ALIASES)),
            [name] => TimeColumns::One((*name).clone()),
            [a, b] if [normalise(a), normalise(b)] == ["date", "time"] => {
                TimeColumns::DateAndTime((*a).clone(), (*b).clone())
            }
            [a, b] if [normalise(a), normalise(b)] == ["time", "date"] => {
                TimeColumns::DateAndTime((*b).clone(), (*a).clone())
            }
            many => return Err(ambiguous("timestamp", many)),
        };
        Ok(ColumnMap {
            time,
            open: one("open", OPEN_ALIASES)?,
            high: one("high", HIGH_ALIASES)?,
            low: one("low", LOW_ALIASES)?,
            close: one("close", CLOSE_ALIASES)?,
            adj_close: if use_adj_close {
                Some(one(
                    "adjusted close (use_adj_close is set)",
                    ADJ_CLOSE_ALIASES,
                )?)
            } else {
                None
            },
            volume: match matching(VOLUME_ALIASES).as_slice() {
                [] => None,
                [name] => Some((*name).clone()),
                many => return Err(ambiguous("volume", many)),
            },
        })
    }
}

impl Context<'_> {
    /// The file row number of row `index` as read.
    pub(crate) fn row(&self, index: usize) -> usize {
        self.format.row(self.rows[index])
    }

    pub(crate) fn invalid(&self, index: usize, column: &str, problem: String) -> DataError {
        DataError::InvalidValue {
            path: self.path.to_path_buf(),
            row: self.row(index),
            column: column.to_string(),
            problem,
        }
    }

    pub(crate) fn column<'df>(&self, df: &'df DataFrame, name: &str) -> &'df Column {
        df.column(name)
            .expect("column names come from the frame itself")
    }

    /// Text cells of a string column, trimmed; a missing cell is an error.
    pub(crate) fn texts<'df>(
        &self,
        df: &'df DataFrame,
        name: &str,
    ) -> Result<Option<Vec<&'df str>>, DataError> {
        let col = self.column(df, name);
        let Ok(ca) = col.str() else {
            return Ok(None);
        };
        ca.iter()
            .enumerate()
            .map(|(i, v)| match v.map(str::trim) {
                Some(s) if !s.is_empty() => Ok(s),
                _ => Err(self.invalid(
                    i,
                    name,
                    "missing value; fill it in or remove the row".to_string(),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub(crate) fn numbers(&self, df: &DataFrame, name: &str) -> Result<Vec<f64>, DataError> {
        if let Some(texts) = self.texts(df, name)? {
            return texts
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.parse::<f64>().map_err(|_| {
                        self.invalid(
                            i,
                            name,
                            format!("cannot read {s:?} as a number; fix the value"),
                        )
                    })
                })
                .collect();
        }
        let col = self.column(df, name);
        if !col.dtype().is_primitive_numeric() {
            return Err(self.column_type(name, col.dtype(), "numbers"));
        }
        let cast = col
            .cast(&DataType::Float64)
            .map_err(|_| self.column_type(name, col.dtype(), "numbers"))?;
        let ca = cast.f64().expect("cast to Float64");
        ca.iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    self.invalid(
                        i,
                        name,
                        "missing value; fill it in or remove the row".to_string(),
                    )
                })
            })
            .collect()
    }

    pub(crate) fn column_type(
        &self,
        name: &str,
        found: &DataType,
        expected: &'static str,
    ) -> DataError {
        DataError::ColumnType {
            path: self.path.to_path_buf(),
            column: name.to_string(),
            found: found.to_string(),
            expected,
        }
    }

    pub(crate) fn timestamps(
        &self,
        df: &DataFrame,
        time: &TimeColumns,
        opts: &LoadOptions,
    ) -> Result<(Vec<i64>, String), DataError> {
        let label = time.label();
        let format = opts.timestamp_format.as_deref();
        let map_err = |e: TimestampError| match e {
            TimestampError::Value { index, problem } => self.invalid(index, &label, problem),
            TimestampError::Format(problem) => DataError::TimestampFormat {
                path: self.path.to_path_buf(),
                column: label.clone(),
                problem,
            },
        };
        match time {
            TimeColumns::DateAndTime(d, t) => {
                let (Some(dates), Some(times)) = (self.texts(df, d)?, self.texts(df, t)?) else {
                    return Err(self.column_type(
                        &label,
                        self.column(df, d).dtype(),
                        "text dates and times",
                    ));
                };
                let joined: Vec<String> = dates
                    .iter()
                    .zip(&times)
                    .map(|(d, t)| format!("{d} {t}"))
                    .collect();
                let refs: Vec<&str> = joined.iter().map(String::as_str).collect();
                parse_timestamps(&refs, format).map_err(map_err)
            }
            TimeColumns::One(name) => {
                if let Some(texts) = self.texts(df, name)? {
                    return parse_timestamps(&texts, format).map_err(map_err);
                }
                let col = self.column(df, name);
                let missing = |i| {
                    self.invalid(
                        i,
                        name,
                        "missing timestamp; fill it in or remove the row".to_string(),
                    )
                };
                let physical = |dtype: &DataType| -> Result<Vec<i64>, DataError> {
                    let cast = col
                        .cast(dtype)
                        .and_then(|c| c.cast(&DataType::Int64))
                        .map_err(|_| self.column_type(name, col.dtype(), "timestamps"))?;
                    let ca = cast.i64().expect("cast to Int64");
                    ca.iter()
                        .enumerate()
                        .map(|(i, v)| v.ok_or_else(|| missing(i)))
                        .collect()
                };
                match col.dtype() {
                    DataType::Datetime(unit, _) => {
                        let per_ms = match unit {
                            TimeUnit::Milliseconds => 1,
                            TimeUnit::Microseconds => 1_000,
                            TimeUnit::Nanoseconds => 1_000_000,
                        };
                        let raw = physical(col.dtype())?;
                        Ok((
                            raw.iter().map(|v| v.div_euclid(per_ms)).collect(),
                            "parquet datetime".to_string(),
                        ))
                    }
                    DataType::Date => {
                        let days = physical(&DataType::Int32)?;
                        Ok((
                            days.iter().map(|d| d * 86_400_000).collect(),
                            "parquet date".to_string(),
                        ))
                    }
                    d if d.is_integer() => {
                        let raw = physical(&DataType::Int64)?;
                        match format {
                            Some(f) if !f.starts_with("epoch_") => {
                                // An integer column such as 20170103 with an explicit pattern.
                                let texts: Vec<String> =
                                    raw.iter().map(|v| v.to_string()).collect();
                                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                                parse_timestamps(&refs, format).map_err(map_err)
                            }
                            _ => epoch_ints_to_ms(&raw, format).map_err(map_err),
                        }
                    }
                    d if d.is_float() => {
                        let cast = col
                            .cast(&DataType::Float64)
                            .map_err(|_| self.column_type(name, d, "timestamps"))?;
                        let texts = cast
                            .f64()
                            .expect("cast to Float64")
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v.map(|v| v.to_string()).ok_or_else(|| missing(i)))
                            .collect::<Result<Vec<_>, _>>()?;
                        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                        parse_timestamps(&refs, format).map_err(map_err)
                    }
                    other => Err(self.column_type(name, other, "timestamps")),
                }
            }
        }
    }

    pub(super) fn check_prices(&self, column: &str, values: &[f64]) -> Result<(), DataError> {
        for (i, &v) in values.iter().enumerate() {
            if let Some(problem) = price_problem(v) {
                return Err(self.invalid(i, column, format!("{problem}, fix or remove the row")));
            }
        }
        Ok(())
    }

    pub(super) fn check_volume(&self, column: &str, values: &[f64]) -> Result<(), DataError> {
        for (i, &v) in values.iter().enumerate() {
            if let Some(problem) = volume_problem(v) {
                return Err(self.invalid(i, column, format!("{problem}; fix or remove the row")));
            }
        }
        Ok(())
    }

    pub(super) fn check_bar_consistency(
        &self,
        open: &[f64],
        high: &[f64],
        low: &[f64],
        close: &[f64],
    ) -> Result<(), DataError> {
        for i in 0..open.len() {
            if let Some(problem) = range_problem(open[i], high[i], low[i], close[i]) {
                return Err(DataError::InvalidBar {
                    path: self.path.to_path_buf(),
                    row: self.row(i),
                    problem,
                });
            }
        }
        Ok(())
    }

    pub(super) fn check_order(&self, timestamps: &[i64], column: &str) -> Result<(), DataError> {
        for i in 1..timestamps.len() {
            let (prev, cur) = (timestamps[i - 1], timestamps[i]);
            if let Some(problem) = order_problem(prev, cur) {
                return Err(DataError::Unordered {
                    path: self.path.to_path_buf(),
                    row: self.row(i),
                    column: column.to_string(),
                    current: cur,
                    previous: prev,
                    previous_row: self.row(i - 1),
                    problem,
                });
            }
        }
        Ok(())
    }
}
