//! What the feature test binaries share: the list of every feature kind.
#![allow(dead_code)] // each test binary uses a different subset

use ratchet_data::{FeatureConfig, FeatureSpec, Normalization};

/// Every feature kind once, none with its default parameters. `log_return_k` is the one
/// parameter the binaries choose differently: `features.rs` uses 1, `online_features.rs` 2,
/// and values pinned in each depend on it.
pub fn every_kind(log_return_k: usize) -> Vec<FeatureSpec> {
    vec![
        FeatureSpec::SimpleReturn { k: 3 },
        FeatureSpec::LogReturn { k: log_return_k },
        FeatureSpec::SmaRatio { fast: 5, slow: 15 },
        FeatureSpec::EmaRatio { fast: 4, slow: 13 },
        FeatureSpec::Rsi { period: 7 },
        FeatureSpec::Macd {
            fast: 5,
            slow: 11,
            signal: 4,
        },
        FeatureSpec::Volatility { window: 9 },
        FeatureSpec::Atr { period: 6 },
        FeatureSpec::ZscoreClose { window: 8 },
        FeatureSpec::ZscoreVolume { window: 12 },
    ]
}

/// [`every_kind`] in one config with a window of 10.
pub fn every_kind_config(log_return_k: usize, normalization: Normalization) -> FeatureConfig {
    FeatureConfig {
        window: 10,
        normalization,
        features: every_kind(log_return_k),
        external: Vec::new(),
        feast: Vec::new(),
    }
}
