//! The market data sets shipped in `data/`, built into the binary so that the default
//! configuration and the example configs work from any directory, `cargo install`ed
//! included.

use std::path::Path;

/// `(path relative to the repository, contents)` of each bundled data set.
const BUNDLED: [(&str, &[u8]); 2] = [
    (
        "data/STOCKS_GOOGL.csv",
        include_bytes!("../data/STOCKS_GOOGL.csv"),
    ),
    (
        "data/FOREX_EURUSD_1H_ASK.csv",
        include_bytes!("../data/FOREX_EURUSD_1H_ASK.csv"),
    ),
];

/// The built-in copy of `path` when it names a bundled data set (as the configs do,
/// `data/NAME.csv`) and no such file exists here; a file that exists always wins.
pub fn data_set(path: &Path) -> Option<&'static [u8]> {
    if path.exists() {
        return None;
    }
    BUNDLED
        .iter()
        .find(|(name, _)| path == Path::new(name))
        .map(|(_, bytes)| *bytes)
}
