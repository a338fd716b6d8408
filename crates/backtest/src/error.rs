use std::path::PathBuf;

/// Everything a backtest refuses, each naming the field and bar at fault.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// Prices, timestamps or positions that cannot be simulated.
    #[error("invalid backtest input: {0}")]
    Input(String),
    /// Costs that are negative, not finite, or so large a reversal would cost everything.
    #[error("invalid costs: {0}")]
    Costs(String),
    /// A report file could not be written; nothing partial is left behind.
    #[error("cannot write report {path}: {error}")]
    Write {
        path: PathBuf,
        // Shown in the message, so not also returned by `source()`: error chains would
        // print it twice.
        error: std::io::Error,
    },
}

pub(crate) fn input<T>(msg: impl Into<String>) -> Result<T, BacktestError> {
    Err(BacktestError::Input(msg.into()))
}
