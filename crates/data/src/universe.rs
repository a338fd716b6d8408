//! A universe: the bars of many instruments, each validated on its own, from files of one
//! instrument each (named by the file) or in long format with a `symbol`/`ticker` column.
//!
//! ```
//! use ratchet_data::{LoadOptions, Universe};
//! let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
//! let files = [data.join("STOCKS_GOOGL.csv"), data.join("FOREX_EURUSD_1H_ASK.csv")];
//! let universe = Universe::load(&files, &LoadOptions::default())?;
//! assert_eq!(universe.symbols(), ["FOREX_EURUSD_1H_ASK", "STOCKS_GOOGL"]);
//! assert_eq!(universe.members[1].loaded.bars.len(), 2335);
//! # Ok::<(), ratchet_data::DataError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::checksum::io_error;
use crate::load::{bars_of_frame, read_bars_frame};
use crate::{DataError, LoadOptions, LoadedBars};

/// Column names (compared case- and punctuation-insensitively) that name a row's instrument.
pub const SYMBOL_ALIASES: &[&str] = &["symbol", "ticker"];

/// One instrument's bars.
#[derive(Clone, Debug, PartialEq)]
pub struct SymbolBars {
    pub symbol: String,
    /// Its bars; `path` and `sha256` are those of the file they came from (shared by every
    /// symbol of a long-format file).
    pub loaded: LoadedBars,
}

/// Instruments sorted by symbol, each with its own bars and calendar.
#[derive(Clone, Debug, PartialEq)]
pub struct Universe {
    pub members: Vec<SymbolBars>,
}

impl Universe {
    /// Loads every file (CSV or Parquet); see [`parse_universe_file`].
    pub fn load(files: &[PathBuf], opts: &LoadOptions) -> Result<Universe, DataError> {
        let contents = files
            .iter()
            .map(|path| {
                let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
                Ok((path.clone(), bytes))
            })
            .collect::<Result<Vec<_>, DataError>>()?;
        Universe::parse(contents, opts)
    }

    /// [`Universe::load`] of files already in memory.
    pub fn parse(
        files: Vec<(PathBuf, Vec<u8>)>,
        opts: &LoadOptions,
    ) -> Result<Universe, DataError> {
        let mut by_symbol: BTreeMap<String, SymbolBars> = BTreeMap::new();
        for (path, bytes) in files {
            for member in parse_universe_file(&path, bytes, opts)? {
                // Symbols name metrics (`val/SYMBOL/sharpe`) and tags: keep them plain.
                let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
                if !member.symbol.chars().all(plain) {
                    return Err(DataError::Universe(format!(
                        "symbol {:?} in {} has characters other than letters, digits, '.', '-' \
                         and '_'; rename it",
                        member.symbol,
                        path.display()
                    )));
                }
                if let Some(earlier) = by_symbol.get(&member.symbol) {
                    return Err(DataError::Universe(format!(
                        "symbol {} is in both {} and {}; keep it in one file",
                        member.symbol,
                        earlier.loaded.path.display(),
                        path.display()
                    )));
                }
                by_symbol.insert(member.symbol.clone(), member);
            }
        }
        Ok(Universe {
            members: by_symbol.into_values().collect(),
        })
    }

    pub fn symbols(&self) -> Vec<&str> {
        self.members.iter().map(|m| m.symbol.as_str()).collect()
    }

    /// SHA-256 (hex) over the sorted symbols and the SHA-256 of each one's file: equal for
    /// the same instruments read from the same bytes.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        for member in &self.members {
            hasher.update(format!("{}\t{}\n", member.symbol, member.loaded.sha256));
        }
        hex::encode(hasher.finalize())
    }
}

/// The symbol of a file of one instrument: its name without the extension
/// (`STOCKS_GOOGL.csv` is `STOCKS_GOOGL`).
pub fn symbol_of_file(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The instruments of one file: with a `symbol` or `ticker` column, one per distinct value
/// (rows in file order, each symbol validated on its own, errors naming the symbol and the
/// file's row); without one, the file's bars under its name (`STOCKS_GOOGL.csv` is
/// `STOCKS_GOOGL`).
pub fn parse_universe_file(
    path: &Path,
    bytes: Vec<u8>,
    opts: &LoadOptions,
) -> Result<Vec<SymbolBars>, DataError> {
    let (format, sha256, df, rows) = read_bars_frame(path, bytes)?;
    let symbol_columns: Vec<String> = df
        .get_column_names()
        .iter()
        .filter(|name| SYMBOL_ALIASES.contains(&crate::load::normalise(name).as_str()))
        .map(|name| name.to_string())
        .collect();
    let column = match symbol_columns.as_slice() {
        [] => {
            let symbol = symbol_of_file(path);
            let loaded = bars_of_frame(path, format, sha256, df, rows, opts)?;
            return Ok(vec![SymbolBars { symbol, loaded }]);
        }
        [one] => one.clone(),
        many => {
            return Err(DataError::AmbiguousColumn {
                path: path.to_path_buf(),
                field: "symbol",
                columns: many.join(", "),
            });
        }
    };
    let malformed = |e: PolarsError| DataError::Malformed {
        path: path.to_path_buf(),
        format: format.name(),
        message: e.to_string(),
    };
    let symbols = df
        .column(&column)
        .and_then(|c| c.cast(&DataType::String))
        .map_err(malformed)?;
    let symbols = symbols.str().map_err(malformed)?;
    // Row indices per symbol, in file order.
    let mut groups: BTreeMap<String, Vec<IdxSize>> = BTreeMap::new();
    for (i, value) in symbols.iter().enumerate() {
        match value.map(str::trim).filter(|s| !s.is_empty()) {
            Some(symbol) => groups
                .entry(symbol.to_string())
                .or_default()
                .push(i as IdxSize),
            None => {
                return Err(DataError::InvalidValue {
                    path: path.to_path_buf(),
                    row: format.row(rows[i]),
                    column,
                    problem: "missing symbol; fill it in or remove the row".into(),
                });
            }
        }
    }
    let df = df.drop(&column).map_err(malformed)?;
    // Each instrument is validated on its own: in parallel, results in symbol order.
    groups
        .into_par_iter()
        .map(|(symbol, indices)| {
            let member_rows = indices.iter().map(|&i| rows[i as usize]).collect();
            let part = df
                .take(&IdxCa::from_vec("rows".into(), indices))
                .map_err(malformed)?;
            let loaded = bars_of_frame(path, format, sha256.clone(), part, member_rows, opts)
                .map_err(|e| DataError::InSymbol {
                    symbol: symbol.clone(),
                    source: Box::new(e),
                })?;
            Ok(SymbolBars { symbol, loaded })
        })
        .collect()
}
