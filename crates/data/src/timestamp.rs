//! Timestamp parsing: explicit formats, automatic detection among common layouts, epoch numbers.
//!
//! Detection tries every known layout on the whole column and keeps those that parse every row.
//! One survivor (or several that agree on every value) is used; survivors that disagree — a column
//! of `01/02/2017`-style dates where no day exceeds 12, say — are reported as ambiguous so that the
//! user names the format instead of getting silently wrong dates.

use std::sync::LazyLock;

use chrono::format::{self, Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};

/// Units of numeric epoch timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    /// The unit a column of epoch numbers is in, told apart by magnitude: any date after
    /// 1973-03-03 has more than 11 digits in milliseconds but fewer in seconds, and so on.
    fn from_magnitude(max_abs: f64) -> EpochUnit {
        if max_abs < 1e11 {
            EpochUnit::Seconds
        } else if max_abs < 1e14 {
            EpochUnit::Millis
        } else if max_abs < 1e17 {
            EpochUnit::Micros
        } else {
            EpochUnit::Nanos
        }
    }

    fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "epoch_s",
            EpochUnit::Millis => "epoch_ms",
            EpochUnit::Micros => "epoch_us",
            EpochUnit::Nanos => "epoch_ns",
        }
    }

    fn from_name(name: &str) -> Option<EpochUnit> {
        match name {
            "epoch_s" => Some(EpochUnit::Seconds),
            "epoch_ms" => Some(EpochUnit::Millis),
            "epoch_us" => Some(EpochUnit::Micros),
            "epoch_ns" => Some(EpochUnit::Nanos),
            _ => None,
        }
    }

    /// Converts an integer count of this unit to milliseconds (floor for finer units).
    fn int_to_ms(self, v: i64) -> Option<i64> {
        match self {
            EpochUnit::Seconds => v.checked_mul(1000),
            EpochUnit::Millis => Some(v),
            EpochUnit::Micros => Some(v.div_euclid(1_000)),
            EpochUnit::Nanos => Some(v.div_euclid(1_000_000)),
        }
    }

    fn float_to_ms(self, v: f64) -> Option<i64> {
        let ms = match self {
            EpochUnit::Seconds => v * 1e3,
            EpochUnit::Millis => v,
            EpochUnit::Micros => v / 1e3,
            EpochUnit::Nanos => v / 1e6,
        }
        .floor();
        // Stay inside chrono's representable range so the value can be formatted later.
        (ms.is_finite() && ms.abs() < 8.0e15).then_some(ms as i64)
    }
}

/// What a strftime pattern produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternKind {
    /// A date and time with a UTC offset (`%z`, `%:z`, ...).
    Offset,
    /// A date and time without offset, taken as UTC.
    Naive,
    /// A date alone, taken as midnight UTC.
    Date,
}

/// A way of turning one cell into epoch milliseconds.
#[derive(Clone, Debug, PartialEq)]
enum Layout {
    /// Numbers; the unit is fixed, or `None` to infer it from the column's magnitude.
    Epoch(Option<EpochUnit>),
    /// RFC 3339 / ISO 8601 date-times with `Z` or an offset, `T` or space separated.
    Rfc3339,
    Pattern(Pattern),
}

/// A strftime pattern, compiled once for the whole column.
#[derive(Clone, Debug, PartialEq)]
struct Pattern {
    fmt: String,
    items: Vec<Item<'static>>,
    kind: PatternKind,
}

impl Pattern {
    /// `None` when `fmt` is not valid strftime syntax.
    fn new(fmt: &str, kind: PatternKind) -> Option<Pattern> {
        let items = StrftimeItems::new(fmt).parse_to_owned().ok()?;
        Some(Pattern {
            fmt: fmt.to_string(),
            items,
            kind,
        })
    }

    fn parse(&self, s: &str) -> Option<i64> {
        let mut parsed = Parsed::new();
        format::parse(&mut parsed, s, self.items.iter()).ok()?;
        match self.kind {
            PatternKind::Offset => parsed.to_datetime().ok().map(|d| d.timestamp_millis()),
            PatternKind::Naive => parsed
                .to_naive_datetime_with_offset(0)
                .ok()
                .map(|d| d.and_utc().timestamp_millis()),
            PatternKind::Date => parsed
                .to_naive_date()
                .ok()
                .map(|d| d.and_time(NaiveTime::MIN).and_utc().timestamp_millis()),
        }
    }
}

/// Layouts tried, in order, when the user gives no format. Dotted dates are day-first only (the
/// European convention, used by e.g. Dukascopy exports); slashed and dashed day/month dates are
/// tried both ways and left to the ambiguity check.
const AUTO_PATTERNS: &[(&str, PatternKind)] = &[
    ("%Y-%m-%dT%H:%M:%S%.f", PatternKind::Naive),
    ("%Y-%m-%d %H:%M:%S%.f", PatternKind::Naive),
    ("%Y-%m-%dT%H:%M", PatternKind::Naive),
    ("%Y-%m-%d %H:%M", PatternKind::Naive),
    ("%Y-%m-%d", PatternKind::Date),
    ("%Y/%m/%d %H:%M:%S%.f", PatternKind::Naive),
    ("%Y/%m/%d %H:%M", PatternKind::Naive),
    ("%Y/%m/%d", PatternKind::Date),
    ("%Y.%m.%d %H:%M:%S%.f", PatternKind::Naive),
    ("%Y.%m.%d %H:%M", PatternKind::Naive),
    ("%Y.%m.%d", PatternKind::Date),
    ("%Y%m%d", PatternKind::Date),
    ("%d.%m.%Y %H:%M:%S%.f", PatternKind::Naive),
    ("%d.%m.%Y %H:%M", PatternKind::Naive),
    ("%d.%m.%Y", PatternKind::Date),
    ("%d/%m/%Y %H:%M:%S%.f", PatternKind::Naive),
    ("%d/%m/%Y %H:%M", PatternKind::Naive),
    ("%d/%m/%Y", PatternKind::Date),
    ("%m/%d/%Y %H:%M:%S%.f", PatternKind::Naive),
    ("%m/%d/%Y %H:%M", PatternKind::Naive),
    ("%m/%d/%Y", PatternKind::Date),
    ("%d-%m-%Y %H:%M:%S%.f", PatternKind::Naive),
    ("%d-%m-%Y %H:%M", PatternKind::Naive),
    ("%d-%m-%Y", PatternKind::Date),
    ("%m-%d-%Y %H:%M:%S%.f", PatternKind::Naive),
    ("%m-%d-%Y %H:%M", PatternKind::Naive),
    ("%m-%d-%Y", PatternKind::Date),
];

/// A timestamp problem, located by 0-based value index where it concerns one value.
#[derive(Debug, PartialEq)]
pub(crate) enum TimestampError {
    Value { index: usize, problem: String },
    Format(String),
}

const SET_FORMAT_HINT: &str = "set timestamp_format to the column's chrono strftime pattern (for example \"%d.%m.%Y %H:%M:%S%.f\"), or to epoch_s / epoch_ms for numbers";

enum Number {
    Int(i64),
    Float(f64),
}

fn parse_number(s: &str) -> Option<Number> {
    if let Ok(v) = s.parse::<i64>() {
        return Some(Number::Int(v));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(Number::Float(v)),
        _ => None,
    }
}

impl Layout {
    fn describe(&self) -> String {
        match self {
            Layout::Epoch(Some(unit)) => unit.name().to_string(),
            Layout::Epoch(None) => "epoch numbers".to_string(),
            Layout::Rfc3339 => "rfc3339".to_string(),
            Layout::Pattern(p) => p.fmt.clone(),
        }
    }

    /// Parses every value, or returns the index of the first value it cannot parse. Returns the
    /// layout's description with the unit resolved (for epoch numbers).
    fn parse_all(&self, values: &[&str]) -> Result<(Vec<i64>, String), usize> {
        match self {
            Layout::Epoch(unit) => {
                let numbers = values
                    .iter()
                    .enumerate()
                    .map(|(i, s)| parse_number(s).ok_or(i))
                    .collect::<Result<Vec<_>, usize>>()?;
                let unit = unit.unwrap_or_else(|| {
                    let max_abs = numbers
                        .iter()
                        .map(|n| match n {
                            Number::Int(v) => v.unsigned_abs() as f64,
                            Number::Float(v) => v.abs(),
                        })
                        .fold(0.0, f64::max);
                    EpochUnit::from_magnitude(max_abs)
                });
                let ms = numbers
                    .iter()
                    .enumerate()
                    .map(|(i, n)| {
                        match n {
                            Number::Int(v) => unit.int_to_ms(*v),
                            Number::Float(v) => unit.float_to_ms(*v),
                        }
                        .ok_or(i)
                    })
                    .collect::<Result<Vec<_>, usize>>()?;
                Ok((ms, unit.name().to_string()))
            }
            Layout::Rfc3339 => values
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|d| d.timestamp_millis())
                        .map_err(|_| i)
                })
                .collect::<Result<Vec<_>, usize>>()
                .map(|v| (v, self.describe())),
            Layout::Pattern(p) => values
                .iter()
                .enumerate()
                .map(|(i, s)| p.parse(s).ok_or(i))
                .collect::<Result<Vec<_>, usize>>()
                .map(|v| (v, p.fmt.clone())),
        }
    }
}

/// Parses text timestamps (already trimmed, none missing) into epoch milliseconds, UTC.
///
/// `format` is a chrono strftime pattern or one of `epoch_s`, `epoch_ms`, `epoch_us`, `epoch_ns`;
/// `None` detects the layout. Returns the values and the layout used, for the record.
pub(crate) fn parse_timestamps(
    values: &[&str],
    format: Option<&str>,
) -> Result<(Vec<i64>, String), TimestampError> {
    let Some(first) = values.first() else {
        return Ok((Vec::new(), format.unwrap_or("none").to_string()));
    };
    match format {
        Some(fmt) => {
            let layout = user_layout(fmt, first)?;
            layout.parse_all(values).map_err(|index| TimestampError::Value {
                index,
                problem: format!(
                    "timestamp {:?} does not match timestamp_format {fmt:?}; fix the row or the format",
                    values[index]
                ),
            })
        }
        None => detect_and_parse(values),
    }
}

/// The layout for a user-given format, with the pattern kind found by trying it on the first value.
fn user_layout(fmt: &str, first: &str) -> Result<Layout, TimestampError> {
    if let Some(unit) = EpochUnit::from_name(fmt) {
        return Ok(Layout::Epoch(Some(unit)));
    }
    if StrftimeItems::new(fmt).parse().is_err() {
        return Err(TimestampError::Format(format!(
            "timestamp_format {fmt:?} is not a valid chrono strftime pattern; fix it (e.g. \"%Y-%m-%d %H:%M:%S\")"
        )));
    }
    [PatternKind::Offset, PatternKind::Naive, PatternKind::Date]
        .into_iter()
        .filter_map(|kind| Pattern::new(fmt, kind))
        .find(|p| p.parse(first).is_some())
        .map(Layout::Pattern)
        .ok_or_else(|| TimestampError::Value {
            index: 0,
            problem: format!(
                "timestamp {first:?} does not match timestamp_format {fmt:?}; fix the format (chrono strftime syntax)"
            ),
        })
}

/// Every layout detection tries, in order, compiled once: `ratchet serve` detects each bar's
/// timestamp on its own, and compiling the patterns per call cost more than the decision.
static AUTO_LAYOUTS: LazyLock<Vec<Layout>> = LazyLock::new(|| {
    [Layout::Epoch(None), Layout::Rfc3339]
        .into_iter()
        .chain(
            AUTO_PATTERNS
                .iter()
                .filter_map(|(fmt, kind)| Pattern::new(fmt, *kind).map(Layout::Pattern)),
        )
        .collect()
});

fn detect_and_parse(values: &[&str]) -> Result<(Vec<i64>, String), TimestampError> {
    let mut parsed: Vec<(Vec<i64>, String)> = Vec::new();
    let mut furthest: Option<(usize, String)> = None;
    for layout in AUTO_LAYOUTS.iter() {
        match layout.parse_all(values) {
            Ok(result) => parsed.push(result),
            Err(index) => {
                if index > 0 && furthest.as_ref().is_none_or(|(f, _)| index > *f) {
                    furthest = Some((index, layout.describe()));
                }
            }
        }
    }
    match parsed.len() {
        0 => Err(match furthest {
            Some((index, layout)) => TimestampError::Value {
                index,
                problem: format!(
                    "timestamp {:?} does not match the layout of the rows above ({layout}); fix the row, or {SET_FORMAT_HINT}",
                    values[index]
                ),
            },
            None => TimestampError::Value {
                index: 0,
                problem: format!("unrecognised timestamp {:?}; {SET_FORMAT_HINT}", values[0]),
            },
        }),
        _ => {
            let (first, rest) = parsed.split_first().expect("non-empty");
            if rest.iter().all(|(v, _)| *v == first.0) {
                Ok(parsed.swap_remove(0))
            } else {
                let names: Vec<String> =
                    parsed.iter().map(|(_, name)| format!("{name:?}")).collect();
                Err(TimestampError::Format(format!(
                    "timestamps like {:?} can be read in several ways ({}) that give different dates; set timestamp_format to the right one",
                    values[0],
                    names.join(", ")
                )))
            }
        }
    }
}

/// Converts integer epoch values (e.g. a Parquet integer column) to milliseconds.
pub(crate) fn epoch_ints_to_ms(
    values: &[i64],
    format: Option<&str>,
) -> Result<(Vec<i64>, String), TimestampError> {
    let unit = match format {
        Some(fmt) => EpochUnit::from_name(fmt).ok_or_else(|| {
            TimestampError::Format(format!(
                "the column holds numbers, so timestamp_format must be epoch_s, epoch_ms, epoch_us or epoch_ns, not {fmt:?}"
            ))
        })?,
        None => EpochUnit::from_magnitude(values.iter().map(|v| v.unsigned_abs() as f64).fold(0.0, f64::max)),
    };
    let ms = values
        .iter()
        .enumerate()
        .map(|(index, v)| {
            unit.int_to_ms(*v).ok_or_else(|| TimestampError::Value {
                index,
                problem: format!("timestamp {v} is out of range for {}", unit.name()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ms, unit.name().to_string()))
}

/// Reads one timestamp the way a data file's column is read when no `timestamp_format` is set
/// (epoch seconds or milliseconds told apart by magnitude, RFC 3339, `2018-08-30`,
/// `2018-08-30 00:00:00`, …; UTC unless it carries an offset). Returns epoch milliseconds
/// and the layout that read it (`epoch_s`, `rfc3339`, `%Y-%m-%d`, …); an error says why not.
pub fn parse_timestamp(text: &str) -> Result<(i64, String), String> {
    match detect_and_parse(&[text.trim()]) {
        Ok((mut ms, layout)) => Ok((ms.remove(0), layout)),
        Err(TimestampError::Format(problem)) => Err(problem),
        Err(TimestampError::Value { .. }) => Err(format!(
            "{text:?} is not a timestamp the data loader reads (epoch seconds or milliseconds, \
             RFC 3339, 2018-08-30, 2018-08-30 00:00:00, …)"
        )),
    }
}

/// ISO 8601 text for an epoch-millisecond timestamp: `2017-01-01T22:00:00Z` (with milliseconds
/// only when they are not zero).
pub fn format_timestamp(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("{ms} ms since 1970-01-01"),
    }
}

/// ISO 8601 date (`2017-01-01`) of an epoch-millisecond timestamp, in UTC.
pub fn format_date(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.date_naive().format("%Y-%m-%d").to_string(),
        None => format!("{ms} ms since 1970-01-01"),
    }
}

/// Parses an ISO date (`2016-12-31`) or date-time into its first instant in epoch
/// milliseconds, and whether it was a date alone (a whole day).
fn parse_instant(s: &str) -> Option<(i64, bool)> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some((
            d.and_time(NaiveTime::MIN).and_utc().timestamp_millis(),
            true,
        ));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp_millis())
        .ok()
        .or_else(|| {
            [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
            .map(|d| d.and_utc().timestamp_millis())
        })
        .map(|at| (at, false))
}

/// A date a user gives for one end of a range: `YYYY-MM-DD` (the whole day: its first instant,
/// or its last millisecond for the end of a range) or an ISO date-time, in epoch milliseconds.
///
/// ```
/// use ratchet_data::parse_date;
/// assert_eq!(parse_date("1970-01-02", false), Ok(86_400_000));
/// assert_eq!(parse_date("1970-01-02", true), Ok(2 * 86_400_000 - 1));
/// assert_eq!(parse_date("1970-01-02T00:00:01Z", true), Ok(86_401_000));
/// ```
pub fn parse_date(text: &str, end_of_range: bool) -> Result<i64, String> {
    let (at, whole_day) = parse_instant(text).ok_or_else(|| {
        format!(
            "cannot read the date '{text}': use YYYY-MM-DD or an ISO date-time like \
             2017-06-01T14:00:00Z"
        )
    })?;
    Ok(if whole_day && end_of_range {
        at + 86_400_000 - 1
    } else {
        at
    })
}

/// Parses a split boundary: an ISO date (`2016-12-31`, meaning the whole day) or date-time. Returns
/// the exclusive upper bound in epoch milliseconds: a bar belongs before the boundary when its
/// timestamp is less than this.
pub(crate) fn parse_boundary(s: &str) -> Option<i64> {
    let (at, whole_day) = parse_instant(s)?;
    at.checked_add(if whole_day { 86_400_000 } else { 1 })
}

/// Parses the first date of a range (an ISO date or date-time, as [`format_date`] and
/// [`format_timestamp`] print them): the inclusive lower bound in epoch milliseconds.
pub(crate) fn parse_start(s: &str) -> Option<i64> {
    parse_instant(s).map(|(at, _)| at)
}

#[cfg(test)]
mod tests;
