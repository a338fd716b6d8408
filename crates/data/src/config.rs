//! The feature configuration, its parsing and its canonical hash.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checksum::sha256_hex;
use crate::{DataError, ExternalFeature, FeastFeatures};

/// Semantic version of the feature code. It is part of every [`FeatureConfig::hash`], so a change
/// to how any feature is computed (bump it!) invalidates cached features and tells the registry
/// that models trained before are not compatible.
pub const FEATURE_SCHEMA_VERSION: &str = "1.0.0";

/// Which features to compute from bars, in which order, and how to normalise them.
///
/// Declared in the `[features]` table of a training config:
/// ```
/// use ratchet_data::{FeatureConfig, FeatureSpec, Normalization};
/// let cfg = FeatureConfig::from_toml_str(r#"
///     [features]
///     window = 16
///     normalization = { kind = "rolling_zscore", window = 50 }
///     features = [
///         { kind = "log_return", k = 1 },
///         { kind = "rsi", period = 14 },
///         { kind = "macd", fast = 12, slow = 26, signal = 9 },
///     ]
/// "#)?;
/// assert_eq!(cfg.window, 16);
/// assert_eq!(cfg.features[1], FeatureSpec::Rsi { period: 14 });
/// assert_eq!(cfg.column_names(), ["log_return_1", "rsi_14", "macd_12_26_9_line", "macd_12_26_9_signal", "macd_12_26_9_hist"]);
/// assert_eq!(cfg.short_hash().len(), 12);
/// # Ok::<(), ratchet_data::DataError>(())
/// ```
/// Omitted keys take their defaults (see [`FeatureConfig::default`]); unknown keys are errors, so
/// a typo cannot silently fall back to a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Observation window: how many consecutive feature rows an agent sees per decision.
    #[serde(deserialize_with = "count")]
    pub window: usize,
    /// Normalisation applied to every feature column after it is computed.
    pub normalization: Normalization,
    /// The features, in column order.
    pub features: Vec<FeatureSpec>,
    /// Columns of outside sources joined point-in-time (`[[features.external]]`), after the
    /// features' columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<ExternalFeature>,
    /// Features of Feast repositories (`[[features.feast]]`), as written; reading the
    /// repositories ([`resolve_feast`](Self::resolve_feast)) turns them into `external`
    /// declarations, which is what a version records and hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feast: Vec<FeastFeatures>,
}

/// An inline table with its `kind` first, as the configs write features (TOML's own order is
/// alphabetical).
fn kind_first(value: &toml::Value) -> String {
    let Some(table) = value.as_table() else {
        return value.to_string();
    };
    let kind = table.get("kind").map(|k| format!("kind = {k}"));
    let rest = table
        .iter()
        .filter(|(key, _)| key.as_str() != "kind")
        .map(|(key, v)| format!("{key} = {v}"));
    let fields: Vec<String> = kind.into_iter().chain(rest).collect();
    format!("{{ {} }}", fields.join(", "))
}

/// How feature columns are normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalization {
    /// Raw feature values.
    None,
    /// `(x - mean) / std` over the last `window` rows up to and including the current one (past
    /// data only); 0 where the window's standard deviation is 0.
    RollingZscore {
        #[serde(deserialize_with = "count")]
        window: usize,
    },
}

impl Default for Normalization {
    fn default() -> Self {
        Normalization::RollingZscore { window: 100 }
    }
}

/// One feature and its parameters. All are computed from the current and past bars only.
///
/// Prices enter as ratios, so features compare across price levels (GOOGL at 200 and at 1,200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureSpec {
    /// `close[t] / close[t-k] - 1`.
    SimpleReturn {
        #[serde(deserialize_with = "count")]
        k: usize,
    },
    /// `ln(close[t] / close[t-k])`.
    LogReturn {
        #[serde(deserialize_with = "count")]
        k: usize,
    },
    /// `SMA(close, fast) / SMA(close, slow) - 1`.
    SmaRatio {
        #[serde(deserialize_with = "count")]
        fast: usize,
        #[serde(deserialize_with = "count")]
        slow: usize,
    },
    /// `EMA(close, fast) / EMA(close, slow) - 1`; each EMA starts as the SMA of its first `span`
    /// closes, then `alpha = 2 / (span + 1)`.
    EmaRatio {
        #[serde(deserialize_with = "count")]
        fast: usize,
        #[serde(deserialize_with = "count")]
        slow: usize,
    },
    /// Wilder's relative strength index over `period` bars, scaled to `[0, 1]` (RSI / 100).
    Rsi {
        #[serde(deserialize_with = "count")]
        period: usize,
    },
    /// MACD as a fraction of the slow EMA (the percentage price oscillator): three columns,
    /// `line = (EMA_fast - EMA_slow) / EMA_slow`, `signal = EMA(line, signal)`, `hist = line - signal`.
    Macd {
        #[serde(deserialize_with = "count")]
        fast: usize,
        #[serde(deserialize_with = "count")]
        slow: usize,
        #[serde(deserialize_with = "count")]
        signal: usize,
    },
    /// Standard deviation (population) of the last `window` one-bar log returns.
    Volatility {
        #[serde(deserialize_with = "count")]
        window: usize,
    },
    /// Wilder's average true range over `period` bars, as a fraction of close.
    Atr {
        #[serde(deserialize_with = "count")]
        period: usize,
    },
    /// `(close - mean) / std` of the last `window` closes (0 when std is 0).
    ZscoreClose {
        #[serde(deserialize_with = "count")]
        window: usize,
    },
    /// `(volume - mean) / std` of the last `window` volumes (0 when std is 0).
    ZscoreVolume {
        #[serde(deserialize_with = "count")]
        window: usize,
    },
    /// Cross-sectional: the mean k-bar log return of the universe (see
    /// [`CrossSection`](crate::CrossSection) for which bars count).
    UniverseReturn {
        #[serde(deserialize_with = "count")]
        k: usize,
    },
    /// Cross-sectional: the fraction of the universe's other symbols whose k-bar log return is
    /// below this symbol's (ties count half; 0.5 alone), in `[0, 1]`.
    ReturnRank {
        #[serde(deserialize_with = "count")]
        k: usize,
    },
    /// Cross-sectional: this symbol's k-bar log return minus the universe's mean.
    ExcessReturn {
        #[serde(deserialize_with = "count")]
        k: usize,
    },
}

impl FeatureSpec {
    /// Column names this feature produces (MACD produces three).
    pub fn column_names(&self) -> Vec<String> {
        match *self {
            FeatureSpec::SimpleReturn { k } => vec![format!("simple_return_{k}")],
            FeatureSpec::LogReturn { k } => vec![format!("log_return_{k}")],
            FeatureSpec::SmaRatio { fast, slow } => vec![format!("sma_ratio_{fast}_{slow}")],
            FeatureSpec::EmaRatio { fast, slow } => vec![format!("ema_ratio_{fast}_{slow}")],
            FeatureSpec::Rsi { period } => vec![format!("rsi_{period}")],
            FeatureSpec::Macd { fast, slow, signal } => ["line", "signal", "hist"]
                .iter()
                .map(|part| format!("macd_{fast}_{slow}_{signal}_{part}"))
                .collect(),
            FeatureSpec::Volatility { window } => vec![format!("volatility_{window}")],
            FeatureSpec::Atr { period } => vec![format!("atr_{period}")],
            FeatureSpec::ZscoreClose { window } => vec![format!("zscore_close_{window}")],
            FeatureSpec::ZscoreVolume { window } => vec![format!("zscore_volume_{window}")],
            FeatureSpec::UniverseReturn { k } => vec![format!("universe_return_{k}")],
            FeatureSpec::ReturnRank { k } => vec![format!("return_rank_{k}")],
            FeatureSpec::ExcessReturn { k } => vec![format!("excess_return_{k}")],
        }
    }

    /// The return horizon `k` of a cross-sectional feature (one computed from every symbol of
    /// a universe); `None` for a feature of one symbol's own bars.
    pub fn horizon(&self) -> Option<usize> {
        match *self {
            FeatureSpec::UniverseReturn { k }
            | FeatureSpec::ReturnRank { k }
            | FeatureSpec::ExcessReturn { k } => Some(k),
            _ => None,
        }
    }

    /// Index of the first bar where this feature is defined (bars before it are warm-up).
    pub fn warm_up(&self) -> usize {
        match *self {
            FeatureSpec::SimpleReturn { k }
            | FeatureSpec::LogReturn { k }
            | FeatureSpec::UniverseReturn { k }
            | FeatureSpec::ReturnRank { k }
            | FeatureSpec::ExcessReturn { k } => k,
            FeatureSpec::SmaRatio { slow, .. } | FeatureSpec::EmaRatio { slow, .. } => slow - 1,
            FeatureSpec::Rsi { period } | FeatureSpec::Atr { period } => period,
            FeatureSpec::Macd { slow, signal, .. } => slow - 1 + signal - 1,
            FeatureSpec::Volatility { window } => window,
            FeatureSpec::ZscoreClose { window } | FeatureSpec::ZscoreVolume { window } => {
                window - 1
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        let name = &self.column_names()[0];
        let positive = |what: &str, v: usize| {
            if v == 0 {
                Err(format!("{name}: {what} must be at least 1"))
            } else {
                Ok(())
            }
        };
        let at_least_two = |what: &str, v: usize| {
            if v < 2 {
                Err(format!(
                    "{name}: {what} must be at least 2 (a statistic over one bar is constant)"
                ))
            } else {
                Ok(())
            }
        };
        let ordered = |fast: usize, slow: usize| {
            if fast >= slow {
                Err(format!(
                    "{name}: fast ({fast}) must be smaller than slow ({slow})"
                ))
            } else {
                Ok(())
            }
        };
        match *self {
            FeatureSpec::SimpleReturn { k }
            | FeatureSpec::LogReturn { k }
            | FeatureSpec::UniverseReturn { k }
            | FeatureSpec::ReturnRank { k }
            | FeatureSpec::ExcessReturn { k } => positive("k", k),
            FeatureSpec::SmaRatio { fast, slow } | FeatureSpec::EmaRatio { fast, slow } => {
                positive("fast", fast)?;
                ordered(fast, slow)
            }
            FeatureSpec::Rsi { period } | FeatureSpec::Atr { period } => positive("period", period),
            FeatureSpec::Macd { fast, slow, signal } => {
                positive("fast", fast)?;
                positive("signal", signal)?;
                ordered(fast, slow)
            }
            FeatureSpec::Volatility { window }
            | FeatureSpec::ZscoreClose { window }
            | FeatureSpec::ZscoreVolume { window } => at_least_two("window", window),
        }
    }
}

impl Default for FeatureConfig {
    /// Window 10, rolling z-score normalisation over 100 rows, and: log returns over 1 and 5 bars,
    /// SMA ratio 10/20, RSI 14, MACD 12/26/9, volatility 20, ATR 14, z-scores of close and volume
    /// over 20 bars (11 columns).
    fn default() -> Self {
        FeatureConfig {
            window: 10,
            normalization: Normalization::default(),
            features: vec![
                FeatureSpec::LogReturn { k: 1 },
                FeatureSpec::LogReturn { k: 5 },
                FeatureSpec::SmaRatio { fast: 10, slow: 20 },
                FeatureSpec::Rsi { period: 14 },
                FeatureSpec::Macd {
                    fast: 12,
                    slow: 26,
                    signal: 9,
                },
                FeatureSpec::Volatility { window: 20 },
                FeatureSpec::Atr { period: 14 },
                FeatureSpec::ZscoreClose { window: 20 },
                FeatureSpec::ZscoreVolume { window: 20 },
            ],
            external: Vec::new(),
            feast: Vec::new(),
        }
    }
}

impl FeatureConfig {
    /// The `[features]` table as the example configs write it (each feature an inline table
    /// on its own line), to paste into a training config.
    pub fn to_config_toml(&self) -> String {
        let table = toml::Table::try_from(self).expect("a feature config is a TOML table");
        let mut out = String::from("[features]\n");
        // Single values first, then the list that runs over many lines.
        let (lists, values): (Vec<_>, Vec<_>) = table.iter().partition(|(_, v)| v.is_array());
        for (key, value) in values {
            out.push_str(&format!("{key} = {}\n", kind_first(value)));
        }
        for (key, value) in lists {
            out.push_str(&format!("{key} = [\n"));
            for item in value.as_array().into_iter().flatten() {
                out.push_str(&format!("    {},\n", kind_first(item)));
            }
            out.push_str("]\n");
        }
        out
    }

    /// The column name of the first cross-sectional feature (one that reads every symbol of a
    /// universe), if any.
    pub fn cross_sectional(&self) -> Option<String> {
        self.features
            .iter()
            .find(|f| f.horizon().is_some())
            .map(|f| f.column_names()[0].clone())
    }

    /// The column name of the first feature that reads volumes, if any.
    pub fn reading_volume(&self) -> Option<String> {
        self.features
            .iter()
            .find(|f| matches!(f, FeatureSpec::ZscoreVolume { .. }))
            .and_then(|f| f.column_names().into_iter().next())
    }

    /// Parses the `[features]` table of a training config, or a bare feature table, and validates it.
    pub fn from_toml_str(s: &str) -> Result<Self, DataError> {
        let mut table: toml::Table = toml::from_str(s).map_err(|e| toml_error(s, &e))?;
        let table = match table.remove("features") {
            Some(toml::Value::Table(features)) => features,
            Some(other) => {
                table.insert("features".to_string(), other);
                table
            }
            None => table,
        };
        let cfg: FeatureConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| toml_error(s, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a JSON feature config (the form stored with model versions) and validates it.
    pub fn from_json_str(s: &str) -> Result<Self, DataError> {
        let cfg: FeatureConfig = serde_json::from_str(s).map_err(|e| {
            DataError::Config(format!(
                "invalid JSON: {e}; fix the config (see FeatureConfig docs)"
            ))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The canonical serialisation that [`hash`](Self::hash) digests: compact JSON of
    /// `{"feature_config": …, "schema_version": FEATURE_SCHEMA_VERSION}` with object keys sorted,
    /// no whitespace, and integers written as integers. It depends only on the config's values, not
    /// on how it was written.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::json!({
            "feature_config": self,
            "schema_version": FEATURE_SCHEMA_VERSION,
        });
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// SHA-256 of [`canonical_json`](Self::canonical_json), 64 lowercase hex characters.
    pub fn hash(&self) -> String {
        sha256_hex(self.canonical_json().as_bytes())
    }

    /// The first 12 characters of [`hash`](Self::hash), for display.
    pub fn short_hash(&self) -> String {
        self.hash().chars().take(12).collect()
    }

    /// Names of the feature columns, in order: the features', then the outside sources'.
    pub fn column_names(&self) -> Vec<String> {
        let mut names = self.bar_column_names();
        names.extend(self.external.iter().flat_map(ExternalFeature::column_names));
        names
    }

    /// Names of the columns computed from bars (the features'), in order.
    pub(crate) fn bar_column_names(&self) -> Vec<String> {
        self.features
            .iter()
            .flat_map(FeatureSpec::column_names)
            .collect()
    }

    /// Bars dropped at the start of every [`FeatureFrame`](crate::FeatureFrame): the longest
    /// indicator warm-up plus, with rolling normalisation, its window minus one.
    pub fn warm_up(&self) -> usize {
        match self.normalization {
            Normalization::None => self.indicator_warm_up(),
            Normalization::RollingZscore { window } => self.indicator_warm_up() + window - 1,
        }
    }

    /// The first bar where every indicator is defined: the longest indicator warm-up.
    pub(crate) fn indicator_warm_up(&self) -> usize {
        self.features
            .iter()
            .map(FeatureSpec::warm_up)
            .max()
            .unwrap_or(0)
    }

    /// Reads the Feast repositories of `[[features.feast]]` (paths from the working directory,
    /// as every path of a config) and appends one outside feature per view they give to
    /// `external`, leaving `feast` empty: the features are then those declarations, read and
    /// hashed like any outside source.
    pub fn resolve_feast(&mut self) -> Result<(), DataError> {
        for feast in std::mem::take(&mut self.feast) {
            self.external
                .extend(feast.resolve(std::path::Path::new(""))?);
        }
        Ok(())
    }

    /// Checks every parameter; the error names the offending feature and what to change.
    pub fn validate(&self) -> Result<(), DataError> {
        let err = |m: String| Err(DataError::Config(m));
        if let Some(feast) = self.feast.first() {
            return err(format!(
                "[[features.feast]] repo {:?} is not read yet; read the repositories first \
                 (FeatureConfig::resolve_feast, which loading a config file does)",
                feast.repo
            ));
        }
        if self.window == 0 {
            return err("window must be at least 1".to_string());
        }
        if self.features.is_empty() {
            return err("no features listed; add at least one to `features`".to_string());
        }
        if let Normalization::RollingZscore { window } = self.normalization
            && window < 2
        {
            return err(format!(
                "normalization window {window} must be at least 2 (or use kind = \"none\")"
            ));
        }
        for spec in &self.features {
            spec.validate().map_err(DataError::Config)?;
        }
        ExternalFeature::validate_all(&self.external, &self.bar_column_names())?;
        let names = self.bar_column_names();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return err(format!("feature {name} is listed twice; remove one"));
            }
        }
        Ok(())
    }
}

/// A TOML error as one line with its line and column.
fn toml_error(src: &str, e: &toml::de::Error) -> DataError {
    let at = e
        .span()
        .map(|span| {
            let before = src.get(..span.start).unwrap_or(src);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default();
    DataError::Config(format!(
        "invalid TOML{at}: {}; fix the config (see FeatureConfig docs)",
        e.message().split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// Writes `value` as compact JSON with sorted object keys (whatever the map's own order).
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => match n.as_f64() {
            // Integral floats print as integers, so 20 and 20.0 are the same number.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                out.push_str(&(f as i64).to_string())
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

/// Deserialises a count (window, period, k) from an integer or an integral float (`20.0`).
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct Count;
    impl Visitor<'_> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative whole number")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
            usize::try_from(v).map_err(|_| {
                E::custom(format!(
                    "{v} is negative; expected a non-negative whole number"
                ))
            })
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<usize, E> {
            if v.fract() == 0.0 && (0.0..9.0e15).contains(&v) {
                Ok(v as usize)
            } else {
                Err(E::custom(format!("{v} is not a non-negative whole number")))
            }
        }
    }
    d.deserialize_any(Count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_toml_reads_back_as_a_training_config_section() {
        let config = FeatureConfig::default();
        let text = config.to_config_toml();
        assert_eq!(
            text.lines().take(4).collect::<Vec<_>>(),
            [
                "[features]",
                "normalization = { kind = \"rolling_zscore\", window = 100 }",
                "window = 10",
                "features = [",
            ]
        );
        assert!(
            text.contains("\n    { kind = \"log_return\", k = 5 },\n"),
            "{text}"
        );
        assert_eq!(FeatureConfig::from_toml_str(&text).unwrap(), config);
    }

    #[test]
    fn canonical_form_is_sorted_and_compact() {
        let cfg = FeatureConfig {
            window: 4,
            normalization: Normalization::None,
            features: vec![FeatureSpec::SmaRatio { fast: 2, slow: 3 }],
            external: Vec::new(),
            feast: Vec::new(),
        };
        assert_eq!(
            cfg.canonical_json(),
            r#"{"feature_config":{"features":[{"fast":2,"kind":"sma_ratio","slow":3}],"normalization":{"kind":"none"},"window":4},"schema_version":"1.0.0"}"#
        );
    }

    #[test]
    fn integral_floats_are_counts() {
        let cfg = FeatureConfig::from_json_str(
            r#"{"window": 10.0, "features": [{"kind": "rsi", "period": 14.0}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.window, 10);
        assert_eq!(cfg.features, vec![FeatureSpec::Rsi { period: 14 }]);
        assert!(FeatureConfig::from_json_str(r#"{"window": 10.5}"#).is_err());
        assert!(FeatureConfig::from_json_str(r#"{"window": -1}"#).is_err());
    }

    #[test]
    fn warm_up_of_default() {
        // MACD 26/9 needs 25 + 8 bars, normalisation 99 more.
        assert_eq!(FeatureConfig::default().warm_up(), 33 + 99);
    }
}
