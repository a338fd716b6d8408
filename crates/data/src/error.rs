//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading bars, reading a feature config, computing features,
/// using the feature cache or splitting a data set.
///
/// Every message is a single human-readable line that names the file, and the row (1-based, as a
/// text editor numbers the lines of a CSV file, header included) and column where they are known,
/// and ends by telling the user what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data file does not exist.
    #[error("{}: file not found; check the path (relative paths start from the current directory)", .path.display())]
    NotFound { path: PathBuf },

    /// The file exists but could not be read.
    #[error("{}: cannot read the file ({error}); check its permissions", .path.display())]
    Io {
        path: PathBuf,
        // Shown in the message, so not also returned by `source()`: error chains would
        // print it twice.
        error: std::io::Error,
    },

    /// The file's extension is neither `.csv` nor `.parquet`.
    #[error("{}: unsupported file type {extension:?}; use a .csv or .parquet file", .path.display())]
    UnsupportedFormat { path: PathBuf, extension: String },

    /// polars could not parse the file as the format its extension promises.
    #[error("{}: not a valid {format} file ({message}); check that the file is complete and really is {format}", .path.display())]
    Malformed {
        path: PathBuf,
        format: &'static str,
        message: String,
    },

    /// The file holds no bars.
    #[error("{}: the file has no data rows; it needs a header and at least one bar", .path.display())]
    Empty { path: PathBuf },

    /// A required column is absent.
    #[error("{}: no {field} column (accepted names: {accepted}); columns found: {found}; rename the column", .path.display())]
    MissingColumn {
        path: PathBuf,
        field: &'static str,
        accepted: String,
        found: String,
    },

    /// A feature reads volumes and the file has no volume column.
    #[error("{}: feature {feature} reads volumes and the file has no volume column (accepted names: {accepted}); add one, or drop the feature from [features]", .path.display())]
    NoVolume {
        path: PathBuf,
        feature: String,
        accepted: String,
    },

    /// Several columns claim the same role.
    #[error("{}: columns {columns} can all be read as the {field} column; keep only one of them", .path.display())]
    AmbiguousColumn {
        path: PathBuf,
        field: &'static str,
        columns: String,
    },

    /// A column whose data type cannot hold what it should (e.g. booleans as prices).
    #[error("{}: column {column:?} has type {found}, expected {expected}; convert the column", .path.display())]
    ColumnType {
        path: PathBuf,
        column: String,
        found: String,
        expected: &'static str,
    },

    /// One cell is missing, unparseable or out of range.
    #[error("{}: row {row}, column {column:?}: {problem}", .path.display())]
    InvalidValue {
        path: PathBuf,
        row: usize,
        column: String,
        problem: String,
    },

    /// A bar whose prices contradict each other (high below low, and so on).
    #[error("{}: row {row}: {problem}; fix or remove the row", .path.display())]
    InvalidBar {
        path: PathBuf,
        row: usize,
        problem: String,
    },

    /// The timestamp column's format could not be determined.
    #[error("{}: column {column:?}: {problem}", .path.display())]
    TimestampFormat {
        path: PathBuf,
        column: String,
        problem: String,
    },

    /// Timestamps go backwards or repeat.
    #[error("{}: row {row}, column {column:?}: timestamp {} {problem} row {previous_row} ({}); sort the file and remove duplicate rows, or load with repair enabled to do it automatically", .path.display(), iso(.current), iso(.previous))]
    Unordered {
        path: PathBuf,
        row: usize,
        column: String,
        /// Epoch milliseconds of this row.
        current: i64,
        /// Epoch milliseconds of the row before.
        previous: i64,
        previous_row: usize,
        problem: &'static str,
    },

    /// A bar that a [`FeatureStream`](crate::FeatureStream) (or `compute_features`) refuses:
    /// an invalid price or volume, a high and low that do not enclose open and close, or a
    /// timestamp not after the previous bar's. The stream is left as it was.
    #[error("bar {index} ({}): {problem}; fix or drop the bar", iso(.timestamp))]
    RejectedBar {
        /// Position in the stream, from 0 (the index in `Bars` for `compute_features`).
        index: usize,
        /// Epoch milliseconds of the bar.
        timestamp: i64,
        problem: String,
    },

    /// A feature config that cannot be parsed or makes no sense.
    #[error("feature config: {0}")]
    Config(String),

    /// Features could not be computed from the given bars.
    #[error("features: {0}")]
    Features(String),

    /// The feature cache could not be written.
    #[error("feature cache {}: {message}", .path.display())]
    Cache { path: PathBuf, message: String },

    /// A train/validation/test split that cannot be made.
    #[error("split: {0}")]
    Split(String),

    /// A problem with one instrument of a universe (its bars, or too few of them).
    #[error("symbol {symbol}: {source}")]
    InSymbol {
        symbol: String,
        source: Box<DataError>,
    },

    /// A column declared by an outside feature that its source does not have.
    #[error("{}: no column {column:?} (the {role} of outside feature {feature:?}); columns found: {found}; fix the name in [[features.external]] or in the file", .path.display())]
    ExternalColumn {
        path: PathBuf,
        feature: String,
        column: String,
        role: &'static str,
        found: String,
    },

    /// An outside feature that cannot give a bar its value: no row before the bars start,
    /// a missing or stale value under `missing = "error"`, a refused live row.
    #[error("outside feature {feature}: {message}")]
    External { feature: String, message: String },

    /// A Feast repository that could not be written.
    #[error("Feast repository {}: {message}", .path.display())]
    Feast { path: PathBuf, message: String },

    /// A Feast repository whose definitions could not be read, or name features that cannot
    /// be joined (the error names the file).
    #[error("[[features.feast]] {0}")]
    FeastDefinitions(#[from] ratchet_feast::FeastError),

    /// A universe that cannot be assembled (a symbol in two files, no file at all, …).
    #[error("universe: {0}")]
    Universe(String),
}

fn iso(ms: &i64) -> String {
    crate::format_timestamp(*ms)
}
