//! Train / validation / test splits of a feature frame, recorded as row ranges and date ranges.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::timestamp::{format_date, format_timestamp, parse_boundary, parse_start};
use crate::{DataError, FeatureFrame};

/// How to split a frame into consecutive segments: train, then validation, then test (held
/// back unless a dates split leaves out `validation_end`).
///
/// In TOML: `split = { kind = "fraction", train = 0.7, validation = 0.15 }` or
/// `split = { kind = "dates", train_end = "2015-12-31", validation_end = "2016-12-31" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitSpec {
    /// The first `train` fraction of rows, then `validation`; the test segment is the rest.
    Fraction { train: f64, validation: f64 },
    /// Rows up to and including `train_end`, then up to and including `validation_end`; the test
    /// segment is everything after. ISO dates (`2015-12-31`, the whole day, UTC) or date-times.
    /// Without `validation_end`, every row after `train_end` validates and no test range is
    /// held back (a model retrained on the newest bars; `backtest` then needs `--from`/`--to`).
    Dates {
        /// Rows from this date on are trained on (a rolling window); from the first row when
        /// absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_start: Option<String>,
        train_end: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        validation_end: Option<String>,
    },
}

impl Default for SplitSpec {
    /// 70 % train, 15 % validation, 15 % test.
    fn default() -> Self {
        SplitSpec::Fraction {
            train: 0.7,
            validation: 0.15,
        }
    }
}

/// A contiguous range of frame rows and the dates it covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// First row (index into the [`FeatureFrame`]).
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// ISO 8601 date (`2009-05-22`) of the first row, or date-time (`2017-01-01T22:00:00Z`) for
    /// intraday data.
    pub first_date: String,
    /// Same for the last row.
    pub last_date: String,
}

impl Segment {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the segment has no rows (never the case for segments made by [`split`]).
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The rows as a range.
    pub fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// The segments of a split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splits {
    pub train: Segment,
    pub validation: Segment,
    /// `None` when the split holds back no test range.
    pub test: Option<Segment>,
}

impl Splits {
    /// One past the last row judged: the end of the test range, or of the validation range
    /// when no test range is held back.
    pub fn judged_end(&self) -> usize {
        self.test.as_ref().map_or(self.validation.end, |t| t.end)
    }

    /// The segments of `frame` inside recorded date ranges (inclusive `first .. last`, as a
    /// version records its [`Segment`]s' dates): how a registered version finds its own
    /// train, validation and test rows again in a data file that may have grown or changed.
    /// A range that holds no row of `frame` is an error naming it.
    pub fn at_dates(
        frame: &FeatureFrame,
        train: (&str, &str),
        validation: (&str, &str),
        test: Option<(&str, &str)>,
    ) -> Result<Splits, DataError> {
        let daily = is_daily(frame);
        let segment = |name: &str, (first, last): (&str, &str)| {
            let (start, end) = match (parse_start(first), parse_boundary(last)) {
                (Some(s), Some(e)) => (s, e),
                _ => {
                    return Err(DataError::Split(format!(
                        "the recorded {name} range {first} .. {last} is not a pair of ISO dates or date-times"
                    )));
                }
            };
            let rows = frame.timestamps.partition_point(|&t| t < start)
                ..frame.timestamps.partition_point(|&t| t < end);
            if rows.is_empty() {
                return Err(DataError::Split(format!(
                    "no feature row falls in the recorded {name} range {first} .. {last} (the rows cover {}); use the data file the version was trained on",
                    covered(frame)
                )));
            }
            Ok(segment_of(frame, daily, rows.start, rows.end))
        };
        Ok(Splits {
            train: segment("train", train)?,
            validation: segment("validation", validation)?,
            test: test.map(|test| segment("test", test)).transpose()?,
        })
    }
}

/// Splits `frame` into consecutive, non-empty train, validation and (unless `spec` holds back
/// none) test segments.
///
/// ```
/// use ratchet_data::{split, FeatureFrame, SplitSpec};
/// let frame = FeatureFrame {
///     names: vec!["x".into()],
///     values: vec![0.0; 10],
///     first_bar: 0,
///     timestamps: (0..10).map(|d| d * 86_400_000).collect(), // 1970-01-01 .. 1970-01-10
/// };
/// let s = split(&frame, &SplitSpec::Fraction { train: 0.6, validation: 0.2 })?;
/// let test = s.test.unwrap();
/// assert_eq!((s.train.range(), s.validation.range(), test.range()), (0..6, 6..8, 8..10));
/// assert_eq!(test.first_date, "1970-01-09");
/// let dates = |validation_end: Option<&str>| SplitSpec::Dates {
///     train_start: None,
///     train_end: "1970-01-05".into(),
///     validation_end: validation_end.map(String::from),
/// };
/// let s = split(&frame, &dates(Some("1970-01-07")))?;
/// assert_eq!((s.train.end, s.validation.end, s.test.map(|t| t.end)), (5, 7, Some(10)));
/// // No validation end: the rest validates, and no test range is held back.
/// let s = split(&frame, &dates(None))?;
/// assert_eq!((s.validation.range(), s.test), (5..10, None));
/// # Ok::<(), ratchet_data::DataError>(())
/// ```
pub fn split(frame: &FeatureFrame, spec: &SplitSpec) -> Result<Splits, DataError> {
    let n = frame.rows();
    let err = |m: String| Err(DataError::Split(m));
    let (train_start, train_end, validation_end) = match spec {
        SplitSpec::Fraction { train, validation } => {
            let ok = |f: f64| f.is_finite() && f > 0.0;
            if !(ok(*train) && ok(*validation) && train + validation < 1.0) {
                return err(format!(
                    "fractions train = {train}, validation = {validation} must be positive with a sum below 1 (the test segment gets the rest)"
                ));
            }
            let train_end = (n as f64 * train).round() as usize;
            let validation_end = (n as f64 * (train + validation)).round() as usize;
            (0, train_end, Some(validation_end))
        }
        SplitSpec::Dates {
            train_start,
            train_end,
            validation_end,
        } => {
            let bound = |name: &str, s: &str| {
                parse_boundary(s).ok_or_else(|| {
                    DataError::Split(format!(
                        "{name} {s:?} is not an ISO date (YYYY-MM-DD) or date-time; fix it"
                    ))
                })
            };
            let t = bound("train_end", train_end)?;
            let rows_before = |limit: i64| frame.timestamps.partition_point(|&ts| ts < limit);
            let validation_end = match validation_end {
                None => None,
                Some(validation_end) => {
                    let v = bound("validation_end", validation_end)?;
                    if t >= v {
                        return err(format!(
                            "train_end {train_end} must be before validation_end {validation_end}"
                        ));
                    }
                    Some(rows_before(v))
                }
            };
            let start = match train_start {
                None => 0,
                Some(s) => {
                    let start = parse_start(s).ok_or_else(|| {
                        DataError::Split(format!(
                            "train_start {s:?} is not an ISO date (YYYY-MM-DD) or date-time; fix it"
                        ))
                    })?;
                    rows_before(start)
                }
            };
            (start, rows_before(t), validation_end)
        }
    };
    let held_back = validation_end.is_some();
    let validation_end = validation_end.unwrap_or(n);
    let bounds = [
        (train_start, train_end, "train"),
        (train_end, validation_end, "validation"),
    ]
    .into_iter()
    .chain(held_back.then_some((validation_end, n, "test")));
    if let Some((_, _, name)) = bounds.into_iter().find(|(s, e, _)| s >= e) {
        return err(format!(
            "the {name} segment would be empty ({n} feature rows covering {}); move the split boundaries",
            covered(frame)
        ));
    }
    let daily = is_daily(frame);
    let segment = |start: usize, end: usize| segment_of(frame, daily, start, end);
    Ok(Splits {
        train: segment(train_start, train_end),
        validation: segment(train_end, validation_end),
        test: held_back.then(|| segment(validation_end, n)),
    })
}

/// The split of a universe as dates every instrument is cut at: `spec` itself when it
/// gives dates; for fractions, the dates that cut the union of all instruments' timestamps
/// (`frames`) at those fractions, so that each instrument's train, validation and test
/// ranges cover the same period whatever its calendar.
pub fn common_split(frames: &[&FeatureFrame], spec: &SplitSpec) -> Result<SplitSpec, DataError> {
    let SplitSpec::Fraction { train, validation } = spec else {
        return Ok(spec.clone());
    };
    let mut union: Vec<i64> = frames
        .iter()
        .flat_map(|f| f.timestamps.iter().copied())
        .collect();
    union.sort_unstable();
    union.dedup();
    let n = union.len();
    let train_end = (n as f64 * train).round() as usize;
    let validation_end = (n as f64 * (train + validation)).round() as usize;
    if train_end == 0 || validation_end <= train_end || validation_end >= n {
        return Err(DataError::Split(format!(
            "fractions train = {train}, validation = {validation} leave an empty range in the \
             universe's {n} distinct timestamps"
        )));
    }
    Ok(SplitSpec::Dates {
        train_start: None,
        train_end: format_timestamp(union[train_end - 1]),
        validation_end: Some(format_timestamp(union[validation_end - 1])),
    })
}

/// Whether every row is at midnight (daily data): segments then print dates alone.
fn is_daily(frame: &FeatureFrame) -> bool {
    frame
        .timestamps
        .iter()
        .all(|t| t.rem_euclid(86_400_000) == 0)
}

/// Rows `start..end` (non-empty) as a segment, with their first and last dates.
fn segment_of(frame: &FeatureFrame, daily: bool, start: usize, end: usize) -> Segment {
    let fmt = |t: i64| match daily {
        true => format_date(t),
        false => format_timestamp(t),
    };
    Segment {
        start,
        end,
        first_date: fmt(frame.timestamps[start]),
        last_date: fmt(frame.timestamps[end - 1]),
    }
}

/// The span the frame's rows cover, for error messages.
fn covered(frame: &FeatureFrame) -> String {
    match (frame.timestamps.first(), frame.timestamps.last()) {
        (Some(a), Some(b)) => format!("{} .. {}", format_timestamp(*a), format_timestamp(*b)),
        _ => "no rows".to_string(),
    }
}
