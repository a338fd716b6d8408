//! Market data prepared for training and backtests: bars loaded and validated, features
//! computed (or read from the feature cache), rows split, and the per-row inputs the
//! trading environment and the backtester share.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use ratchet_backtest::PriceSeries;
use ratchet_data::{FeatureCache, FeatureFrame, LoadedBars, Splits, load_bars, parse_bars, split};
use ratchet_env::MarketData;

pub struct Market {
    pub loaded: LoadedBars,
    pub frame: FeatureFrame,
    pub splits: Splits,
    /// Features and prices row-aligned with `frame`.
    pub data: Arc<MarketData>,
}

/// Ratchet's machine-local directory: `$RATCHET_CACHE_DIR`, else `$XDG_CACHE_HOME/ratchet`,
/// else `~/.cache/ratchet`. It holds the feature cache (`features/`) and the run endings that
/// could not reach their store (`run-ends/`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RATCHET_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("ratchet")
}

/// The feature cache directory.
pub fn feature_cache_dir() -> PathBuf {
    cache_dir().join("features")
}

/// Where run endings wait that could not be recorded in their store (see
/// [`RunEndJournal`](ratchet_mlflow::RunEndJournal)).
pub fn run_end_journal() -> ratchet_mlflow::RunEndJournal {
    ratchet_mlflow::RunEndJournal::new(cache_dir().join("run-ends"))
}

impl Market {
    /// Loads the config's data file (or its built-in copy), computes (or reads from the cache)
    /// its features, and splits it.
    pub fn prepare(config: &crate::config::TrainConfig) -> Result<Self> {
        let (file, load) = (config.data.file.as_path(), &config.data.load_options());
        let (features, split_spec) = (&config.features, &config.data.split);
        let loaded = match crate::bundled::file(file) {
            Some(bytes) => parse_bars(file, bytes.to_vec(), load)?,
            None => load_bars(file, load)?,
        };
        loaded.check_features(features)?;
        let cache = FeatureCache::new(feature_cache_dir());
        let (frame, outcome) = cache.load_or_compute(&loaded.bars, &loaded.sha256, features)?;
        let splits = split(&frame, split_spec)?;
        let bars = &loaded.bars;
        let rows = frame.rows();
        let open = (0..rows).map(|i| bars.open[frame.bar_index(i)]).collect();
        let close = (0..rows).map(|i| bars.close[frame.bar_index(i)]).collect();
        let data = MarketData::new(frame.values.clone(), frame.width(), open, close)
            .with_context(|| format!("features of {}", file.display()))?;
        let (train, test) = (&splits.train, &splits.test);
        eprintln!(
            "data {}: {} bars; features {} ({}, {} warm-up bars dropped); train {} .. {}, test {} .. {}",
            file.display(),
            loaded.bars.len(),
            features.short_hash(),
            outcome,
            frame.first_bar,
            train.first_date,
            train.last_date,
            test.first_date,
            test.last_date,
        );
        Ok(Self {
            loaded,
            frame,
            splits,
            data: Arc::new(data),
        })
    }

    /// Prices of feature rows `range`, for the backtester.
    pub fn prices(&self, range: std::ops::Range<usize>) -> Result<PriceSeries> {
        Ok(PriceSeries::new(
            self.frame.timestamps[range.clone()].to_vec(),
            self.data.open[range.clone()].to_vec(),
            self.data.close[range].to_vec(),
        )?)
    }
}
