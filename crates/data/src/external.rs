//! Outside features: columns of another table (a volatility index, rates, another desk's
//! signals) joined onto bars point-in-time.
//!
//! - [`ExternalFeature`] is one `[[features.external]]` declaration: the source file, its
//!   timestamp / symbol / created columns, the value columns, how stale a value may get, what a
//!   missing value does and the (causal) transform.
//! - [`ExternalSource::load`] reads and validates the source (the bar loader's reading and
//!   timestamp parsing), grouped into one [`SourceSeries`] per symbol (one for a market-wide
//!   source).
//! - [`ExternalState`] is the online join: rows are pushed in as they become known and bar
//!   timestamps are asked in time order; [`ExternalStream`] drives one over a loaded series, and
//!   [`ExternalSource::join`] runs that stream over a whole series of bars. Both serialise with
//!   exact `f64`s, like [`FeatureStream`](crate::FeatureStream).
//! - [`FeastFeatures`] is one `[[features.feast]]` declaration: a Feast repository's feature
//!   service (or `view:feature` list), resolved to one [`ExternalFeature`] per view.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::DataError;

mod feast;
mod join;
mod source;

pub use feast::{FeastFeatures, FeastView, external_feature};
pub use join::{ExternalColumns, ExternalState, ExternalStream};
pub use source::{ExternalSource, SourceRow, SourceSeries};

/// One `[[features.external]]` table: columns of an outside source, joined onto every bar as
/// the latest value known at the bar's timestamp.
///
/// ```
/// let vix: ratchet_data::ExternalFeature = toml::from_str(r#"
///     name = "vix"
///     source = "data/vix.parquet"
///     timestamp = "event_timestamp"
///     columns = ["close"]
///     max_staleness = "5d"
///     missing = "drop"
///     transform = "zscore"
///     window = 20
/// "#).unwrap();
/// vix.validate()?;
/// assert_eq!(vix.column_names(), ["vix_close"]);
/// assert_eq!(vix.max_staleness.as_secs(), 5 * 86_400);
/// # Ok::<(), ratchet_data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalFeature {
    /// Names the produced columns (`{name}_{column}`): lowercase letters, digits and `_`,
    /// starting with a letter.
    pub name: String,
    /// A `.csv` or `.parquet` file.
    pub source: PathBuf,
    /// The column of the time each value became known (Feast's event timestamp). A value
    /// stamped `t` is used from the bar stamped `t` on.
    pub timestamp: String,
    /// The column naming the instrument each row belongs to; without it every row is for every
    /// symbol (market-wide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// The column of the time a row was written: rows may then repeat a timestamp
    /// (restatements), and a row counts from the later of its timestamp and its created time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Layout of the timestamp and created columns, as for bars (`"%Y-%m-%d %H:%M"`,
    /// `epoch_ms`, …); detected when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<String>,
    /// The value columns, as named in the source.
    pub columns: Vec<String>,
    /// A value older than this at a bar counts as missing there: `"5d"`, `"12h"`, `"90m"`,
    /// or `"none"` ([`NEVER_STALE`](Self::NEVER_STALE): a Feast view without a TTL).
    #[serde(with = "duration_text")]
    pub max_staleness: Duration,
    /// What a bar without a fresh value gets.
    pub missing: MissingRule,
    /// What is computed from the source's values (over its rows, in the order they became
    /// known).
    #[serde(default)]
    pub transform: Transform,
    /// Rows the `zscore` transform covers (the current one included); only with `zscore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Where the source comes from in Feast, when `[[features.feast]]` declared it: what
    /// `ratchet serve --feast-online` asks a feature server for, and what a version's
    /// `feast.*` tags name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feast: Option<FeastView>,
}

/// The outside sources of a config's `[[features.external]]`, loaded and validated, in the
/// config's order: what [`compute_universe_features`](crate::compute_universe_features) joins
/// (each file read once for every symbol).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutsideSources {
    sources: Vec<ExternalSource>,
}

impl OutsideSources {
    /// Reads every source of `config` (paths as written, relative to the working directory).
    pub fn load(config: &crate::FeatureConfig) -> Result<OutsideSources, DataError> {
        let sources = config
            .external
            .iter()
            .map(ExternalSource::load)
            .collect::<Result<_, _>>()?;
        Ok(OutsideSources { sources })
    }

    pub fn sources(&self) -> &[ExternalSource] {
        &self.sources
    }

    /// `symbol`'s rows of each source (the whole source when it is market-wide; `None` when
    /// it has none for the symbol), for [`FeatureStream::push_joined`](crate::FeatureStream::push_joined).
    pub fn series(&self, symbol: &str) -> Vec<Option<&SourceSeries>> {
        self.sources.iter().map(|s| s.series(symbol)).collect()
    }

    /// Errors unless these are the sources `config` declares.
    pub(crate) fn check_fits(&self, config: &crate::FeatureConfig) -> Result<(), DataError> {
        let loaded = self.sources.iter().map(|s| &s.feature);
        if !loaded.eq(config.external.iter()) {
            return Err(DataError::Config(format!(
                "the feature config declares {} outside sources and {} were loaded for it; \
                 load them with OutsideSources::load(config)",
                config.external.len(),
                self.sources.len()
            )));
        }
        Ok(())
    }

    /// Errors when a source has no row known at `first_bar`, `symbol`'s first bar: the bars
    /// would start before the outside data does.
    pub(crate) fn check_covers(&self, symbol: &str, first_bar: i64) -> Result<(), DataError> {
        self.sources
            .iter()
            .try_for_each(|s| s.check_covers(symbol, first_bar))
    }
}

/// What a bar gets when its outside value is missing: no row known yet, the transform still
/// warming up, or the latest row older than `max_staleness`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingRule {
    /// The bar gets no row.
    Drop,
    /// Joining stops with an error naming the bar.
    Error,
    /// The last value given is carried, and the extra column `{name}_carried` is 1 (else 0).
    Last,
}

/// What a source column becomes, computed over the source's rows (not the bars), causally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The value as it is.
    #[default]
    Raw,
    /// `(x - mean) / std` over the last `window` rows, current included (population std; 0
    /// when they are all equal).
    Zscore,
    /// `ln(x / previous x)`; the values must be positive.
    LogReturn,
    /// `x - previous x`.
    Diff,
}

impl Transform {
    /// Rows of the source needed before the transform has a value.
    pub(crate) fn rows_needed(self, window: Option<usize>) -> usize {
        match self {
            Transform::Raw => 1,
            Transform::LogReturn | Transform::Diff => 2,
            Transform::Zscore => window.unwrap_or(1),
        }
    }
}

impl ExternalFeature {
    /// `max_staleness = "none"`: a value stays usable however old it is.
    pub const NEVER_STALE: Duration = Duration::MAX;

    /// Checks the declaration on its own; an error says what to change.
    pub fn validate(&self) -> Result<(), DataError> {
        let err = |m: String| {
            Err(DataError::Config(format!(
                "[[features.external]] {:?}: {m}",
                self.name
            )))
        };
        let mut chars = self.name.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase())
            || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return err(
                "name must be lowercase letters, digits and _, starting with a letter (it names the columns, e.g. \"vix\" gives vix_close)".into(),
            );
        }
        if self.columns.is_empty() {
            return err(
                "columns is empty; list the source's value columns, e.g. columns = [\"close\"]"
                    .into(),
            );
        }
        let names = self.value_column_names();
        for (i, name) in names.iter().enumerate() {
            if self.columns[i].trim().is_empty() {
                return err(
                    "columns holds an empty name; give each value column's name in the source"
                        .into(),
                );
            }
            if let Some(j) = names[..i].iter().position(|n| n == name) {
                return err(format!(
                    "columns {:?} and {:?} both give the column {name}; list each source column once",
                    self.columns[j], self.columns[i]
                ));
            }
        }
        let roles = [
            Some(&self.timestamp),
            self.symbol.as_ref(),
            self.created.as_ref(),
        ];
        for (role, column) in ["timestamp", "symbol", "created"].iter().zip(roles) {
            if let Some(column) = column {
                if column.trim().is_empty() {
                    return err(format!("{role} is empty; name the source's {role} column"));
                }
                if self.columns.contains(column) {
                    return err(format!(
                        "{column:?} is the {role} column and a value column; a value column holds the feature's numbers"
                    ));
                }
            }
        }
        if self.max_staleness.is_zero() {
            return err("max_staleness is 0, so every value would be stale; give how long a value stays usable, e.g. \"5d\" or \"12h\"".into());
        }
        if let Some(feast) = &self.feast
            && let Some(problem) = feast.problem(&self.columns)
        {
            return err(problem);
        }
        match (self.transform, self.window) {
            (Transform::Zscore, None) => err(
                "transform = \"zscore\" needs window, the number of source rows its mean and standard deviation cover (e.g. window = 20)".into(),
            ),
            (Transform::Zscore, Some(w)) if w < 2 => err(format!(
                "window = {w}: a z-score needs at least 2 rows; use window = 2 or more"
            )),
            (Transform::Raw | Transform::LogReturn | Transform::Diff, Some(_)) => err(format!(
                "window is only read by transform = \"zscore\", not {:?}; remove it",
                self.transform
            )),
            _ => Ok(()),
        }
    }

    /// The columns this declaration adds, in order: `{name}_{column}` per value column
    /// (lowercased, other characters than letters and digits as `_`), then `{name}_carried`
    /// with `missing = "last"`.
    pub fn column_names(&self) -> Vec<String> {
        let mut names = self.value_column_names();
        if self.missing == MissingRule::Last {
            names.push(format!("{}_carried", self.name));
        }
        names
    }

    fn value_column_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| {
                let column: String = c
                    .trim()
                    .chars()
                    .map(|ch| {
                        if ch.is_alphanumeric() {
                            ch.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("{}_{column}", self.name)
            })
            .collect()
    }

    /// [`validate`](Self::validate) for each declaration, then that no two share a name or a
    /// produced column, nor a produced column of `taken` (the config's other columns).
    pub fn validate_all(features: &[ExternalFeature], taken: &[String]) -> Result<(), DataError> {
        let mut seen: Vec<(String, &str)> = taken.iter().map(|c| (c.clone(), "")).collect();
        for (i, feature) in features.iter().enumerate() {
            feature.validate()?;
            if features[..i].iter().any(|f| f.name == feature.name) {
                return Err(DataError::Config(format!(
                    "[[features.external]] {:?} is declared twice; give each a name of its own",
                    feature.name
                )));
            }
            for column in feature.column_names() {
                if let Some((_, owner)) = seen.iter().find(|(c, _)| *c == column) {
                    let owner = if owner.is_empty() {
                        "a bar feature".to_string()
                    } else {
                        format!("[[features.external]] {owner:?}")
                    };
                    return Err(DataError::Config(format!(
                        "[[features.external]] {:?}: its column {column} is also a column of {owner}; rename one of them",
                        feature.name
                    )));
                }
                seen.push((column, &feature.name));
            }
        }
        Ok(())
    }
}

/// A duration as humantime's text: read as `"5d"`, `"12h"`, `"1h 30m"`, written in humantime's
/// own canonical form (`"5days"`), so equal durations serialise (and hash) alike; `"none"` is
/// [`ExternalFeature::NEVER_STALE`].
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de};

    use super::ExternalFeature;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if *d == ExternalFeature::NEVER_STALE {
            return s.serialize_str("none");
        }
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "none" {
            return Ok(ExternalFeature::NEVER_STALE);
        }
        humantime::parse_duration(text.trim()).map_err(|e| {
            de::Error::custom(format!(
                "max_staleness {text:?} is not a duration ({e}); write it like \"5d\", \"12h\" or \"90m\", or \"none\" for no limit"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<ExternalFeature, String> {
        let f: ExternalFeature = toml::from_str(toml).map_err(|e| e.message().to_string())?;
        f.validate().map_err(|e| e.to_string())?;
        Ok(f)
    }

    const BASE: &str = r#"
        name = "vix"
        source = "vix.csv"
        timestamp = "ts"
        columns = ["Close", "Adj Close"]
        max_staleness = "36h"
        missing = "last"
    "#;

    #[test]
    fn declaration_reads_and_names_its_columns() {
        let f = parse(BASE).unwrap();
        assert_eq!(
            f.column_names(),
            ["vix_close", "vix_adj_close", "vix_carried"]
        );
        assert_eq!(f.max_staleness, Duration::from_secs(36 * 3600));
        assert_eq!(f.transform, Transform::Raw);
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(
            json,
            r#"{"name":"vix","source":"vix.csv","timestamp":"ts","columns":["Close","Adj Close"],"max_staleness":"1day 12h","missing":"last","transform":"raw"}"#
        );
        let back: ExternalFeature = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn bad_declarations_say_what_to_change() {
        let with = |extra: &str| parse(&format!("{BASE}\n{extra}")).unwrap_err();
        assert_eq!(
            with("colour = 1"),
            "unknown field `colour`, expected one of `name`, `source`, `timestamp`, `symbol`, `created`, `timestamp_format`, `columns`, `max_staleness`, `missing`, `transform`, `window`, `feast`"
        );
        let read = parse(&format!(
            "{BASE}\nfeast = {{ project = \"p\", view = \"prices\", features = [\"close\", \"adj\"], join_key = \"symbol\" }}"
        ))
        .unwrap();
        let view = read.feast.unwrap();
        assert_eq!(
            (view.service, view.alias, view.integer_key),
            (None, None, false)
        );
        assert_eq!(
            with("transform = \"zscore\""),
            "feature config: [[features.external]] \"vix\": transform = \"zscore\" needs window, the number of source rows its mean and standard deviation cover (e.g. window = 20)"
        );
        assert_eq!(
            with("transform = \"diff\"\nwindow = 3"),
            "feature config: [[features.external]] \"vix\": window is only read by transform = \"zscore\", not Diff; remove it"
        );
        assert_eq!(
            with("transform = \"zscore\"\nwindow = 1"),
            "feature config: [[features.external]] \"vix\": window = 1: a z-score needs at least 2 rows; use window = 2 or more"
        );
        assert_eq!(
            with("symbol = \"Close\""),
            "feature config: [[features.external]] \"vix\": \"Close\" is the symbol column and a value column; a value column holds the feature's numbers"
        );
        assert_eq!(
            with(
                "feast = { project = \"p\", view = \"vix\", features = [\"close\"], join_key = \"symbol\" }"
            ),
            "feature config: [[features.external]] \"vix\": feast names 1 features for 2 columns; name one Feast feature per column"
        );
        let bad_duration = parse(&BASE.replace("\"36h\"", "\"soon\"")).unwrap_err();
        assert!(
            bad_duration.starts_with("max_staleness \"soon\" is not a duration ("),
            "{bad_duration}"
        );
        assert!(
            bad_duration
                .ends_with("write it like \"5d\", \"12h\" or \"90m\", or \"none\" for no limit")
        );
        assert_eq!(
            parse(&BASE.replace("\"vix\"", "\"Vix\"")).unwrap_err(),
            "feature config: [[features.external]] \"Vix\": name must be lowercase letters, digits and _, starting with a letter (it names the columns, e.g. \"vix\" gives vix_close)"
        );
        assert_eq!(
            parse(&BASE.replace("\"Adj Close\"", "\"close\"")).unwrap_err(),
            "feature config: [[features.external]] \"vix\": columns \"Close\" and \"close\" both give the column vix_close; list each source column once"
        );
        assert_eq!(
            parse(&BASE.replace("\"36h\"", "\"0s\"")).unwrap_err(),
            "feature config: [[features.external]] \"vix\": max_staleness is 0, so every value would be stale; give how long a value stays usable, e.g. \"5d\" or \"12h\""
        );
    }

    #[test]
    fn max_staleness_none_never_expires_and_reads_back() {
        let f = parse(&BASE.replace("\"36h\"", "\" none \"")).unwrap();
        assert_eq!(f.max_staleness, ExternalFeature::NEVER_STALE);
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains(r#""max_staleness":"none""#), "{json}");
        assert_eq!(serde_json::from_str::<ExternalFeature>(&json).unwrap(), f);
    }

    #[test]
    fn declarations_must_not_collide() {
        let vix = parse(BASE).unwrap();
        let other = ExternalFeature {
            name: "vix_adj".into(),
            columns: vec!["close".into()],
            ..vix.clone()
        };
        let err = ExternalFeature::validate_all(&[vix.clone(), other], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "feature config: [[features.external]] \"vix_adj\": its column vix_adj_close is also a column of [[features.external]] \"vix\"; rename one of them"
        );
        let err = ExternalFeature::validate_all(&[vix.clone(), vix.clone()], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"vix\" is declared twice"), "{err}");
        let err = ExternalFeature::validate_all(std::slice::from_ref(&vix), &["vix_close".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("also a column of a bar feature; rename one of them"),
            "{err}"
        );
        ExternalFeature::validate_all(&[vix], &["rsi_14".into()]).unwrap();
    }
}
