//! Market data for Ratchet: OHLCV loading and validation, feature configs with a canonical hash,
//! causal features computed bar by bar (the same [`FeatureStream`] for batches and live bars), a
//! feature cache and train/validation/test splits.
//!
//! ```
//! use ratchet_data::{compute_features, load_bars, split, FeatureConfig, LoadOptions, SplitSpec};
//!
//! let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/STOCKS_GOOGL.csv");
//! let loaded = load_bars(&path, &LoadOptions::default())?;
//! let cfg = FeatureConfig::default();
//! let frame = compute_features(&loaded.bars, &cfg)?;
//! let splits = split(&frame, &SplitSpec::default())?;
//! println!(
//!     "{} bars (sha256 {}), features {} ({} columns, {} warm-up bars dropped), train {} .. {}",
//!     loaded.bars.len(), &loaded.sha256[..12], cfg.short_hash(), frame.width(), frame.first_bar,
//!     splits.train.first_date, splits.train.last_date,
//! );
//! # Ok::<(), ratchet_data::DataError>(())
//! ```

mod bars;
mod cache;
mod checksum;
mod config;
mod cross_section;
mod error;
mod exact_f64;
mod external;
mod feast;
mod features;
mod indicator;
mod load;
mod rolling;
mod split;
mod stream;
mod timestamp;
mod universe;

pub use bars::{Bar, Bars};
pub use cache::{CacheOutcome, FeatureCache};
pub use checksum::sha256_file;
pub use config::{FEATURE_SCHEMA_VERSION, FeatureConfig, FeatureSpec, Normalization};
pub use cross_section::CrossSection;
pub use error::DataError;
pub use external::{
    ExternalColumns, ExternalFeature, ExternalSource, ExternalState, ExternalStream, FeastFeatures,
    FeastView, MissingRule, OutsideSources, SourceRow, SourceSeries, Transform, external_feature,
};
pub use feast::{
    EntityKey, ExportNames, FeastLineage, FeastRepo, FeastTarget, write_entity_frame,
    write_feast_repo,
};
pub use features::{FeatureFrame, compute_features, compute_universe_features};
pub use load::{FileFormat, LoadOptions, LoadedBars, load_bars, parse_bars};
pub use split::{Segment, SplitSpec, Splits, common_split, split};
pub use stream::FeatureStream;
pub use timestamp::{format_date, format_timestamp, parse_date, parse_timestamp};
pub use universe::{SYMBOL_ALIASES, SymbolBars, Universe, parse_universe_file, symbol_of_file};
