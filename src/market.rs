//! Market data prepared for training and backtests: bars loaded and validated, features
//! computed (or read from the feature cache), rows split, and the per-row inputs the
//! trading environment and the backtester share.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use ratchet_backtest::PriceSeries;
use ratchet_data::{
    CacheOutcome, FeatureCache, FeatureFrame, LoadedBars, OutsideSources, Segment, Splits,
    compute_universe_features, load_bars, parse_bars, split,
};
use ratchet_env::MarketData;
use ratchet_registry::{DataSource, DateRange, OutsideSource};

pub struct Market {
    pub loaded: LoadedBars,
    pub frame: FeatureFrame,
    pub splits: Splits,
    /// Features and prices row-aligned with `frame`.
    pub data: Arc<MarketData>,
    /// The outside sources the features joined, as the version records them.
    pub outside: Vec<OutsideSource>,
}

/// Ratchet's machine-local directory: `$RATCHET_CACHE_DIR`, else `$XDG_CACHE_HOME/ratchet`,
/// else `~/.cache/ratchet`. It holds the feature cache (`features/`) and the run endings that
/// could not reach their store (`run-ends/`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RATCHET_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("ratchet")
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
    /// its features, and splits it by the config's split.
    pub fn prepare(config: &ratchet_config::TrainConfig) -> Result<Self> {
        if let Some(feature) = config.features.cross_sectional() {
            anyhow::bail!(
                "feature {feature} compares the symbols of a universe, and {} is one \
                 instrument; train on a universe ([data] files, or --data with a glob or \
                 several files), or remove the feature",
                config.data.file.display()
            );
        }
        Self::prepare_with(config, |frame| Ok(split(frame, &config.data.split)?))
    }

    /// Loads the data a registered version is judged on (as [`Market::prepare`]), split at the
    /// dates the version recorded, never re-split from the data file: a file that gained bars,
    /// or a different file at the same path, cannot move a version's validation or test range.
    /// Returns the ranges whose bars differ from those the version saw.
    pub fn prepare_recorded(
        config: &ratchet_config::TrainConfig,
        recorded: &DataSource,
        version: &str,
    ) -> Result<(Self, RangeCheck)> {
        let dates = |name: &str, r: &Option<DateRange>| {
            r.as_ref()
                .map(|r| (r.start.clone(), r.end.clone()))
                .with_context(|| format!("{version} recorded no {name} range"))
        };
        let (train, validation) = (
            dates("train", &recorded.train)?,
            dates("validation", &recorded.validation)?,
        );
        // A version that held back no test range records none.
        let test = recorded
            .test
            .as_ref()
            .map(|r| (r.start.clone(), r.end.clone()));
        let market = Self::prepare_with(config, |frame| {
            Splits::at_dates(
                frame,
                (&train.0, &train.1),
                (&validation.0, &validation.1),
                test.as_ref()
                    .map(|(first, last)| (first.as_str(), last.as_str())),
            )
            .with_context(|| {
                format!(
                    "finding the ranges of {version} in {}",
                    config.data.file.display()
                )
            })
        })?;
        let mut check = RangeCheck {
            version: version.to_string(),
            file: config.data.file.display().to_string(),
            changed: Vec::new(),
            unverified: None,
        };
        let segments = [
            ("train", &recorded.train, Some(&market.splits.train)),
            (
                "validation",
                &recorded.validation,
                Some(&market.splits.validation),
            ),
            ("test", &recorded.test, market.splits.test.as_ref()),
        ];
        for (name, range, segment) in segments {
            let (Some(range), Some(segment)) = (range, segment) else {
                continue;
            };
            match &range.bars_sha256 {
                Some(digest) if *digest != market.digest(segment) => check.changed.push((
                    name,
                    format!(
                        "the bars of its {name} range {} .. {} differ from those it saw ({} bars there now)",
                        range.start,
                        range.end,
                        segment.len()
                    ),
                )),
                Some(_) => {}
                None if recorded.sha256 != market.loaded.sha256 => {
                    check.unverified = Some(recorded.sha256.clone());
                }
                None => {}
            }
        }
        Ok((market, check))
    }

    fn prepare_with(
        config: &ratchet_config::TrainConfig,
        split_frame: impl FnOnce(&FeatureFrame) -> Result<Splits>,
    ) -> Result<Self> {
        if config.data.is_universe() {
            anyhow::bail!(
                "[data] files {:?} is a universe; this step reads one instrument",
                config.data.files
            );
        }
        let (file, load) = (config.data.file.as_path(), &config.data.load_options());
        let loaded = match ratchet_config::bundled::file(file) {
            Some(bytes) => parse_bars(file, bytes.to_vec(), load)?,
            None => load_bars(file, load)?,
        };
        let cache_key = loaded.sha256.clone();
        let outside = OutsideSources::load(&config.features)?;
        let (mut market, outcome) =
            Self::of_bars(config, loaded, &cache_key, &outside, split_frame)?;
        let last_bar = market.loaded.bars.timestamps.last().copied().unwrap_or(0);
        market.outside = outside_records(&outside, last_bar);
        let train = &market.splits.train;
        let test = match &market.splits.test {
            Some(test) => format!("test {} .. {}", test.first_date, test.last_date),
            None => "no test range held back".to_string(),
        };
        eprintln!(
            "data {}: {} bars; features {} ({}, {} warm-up bars dropped); train {} .. {}, {test}",
            file.display(),
            market.loaded.bars.len(),
            config.features.short_hash(),
            outcome,
            market.frame.first_bar,
            train.first_date,
            train.last_date,
        );
        Ok(market)
    }

    /// The market of bars already loaded: features computed (or read from the cache under
    /// `cache_key`, the digest of the bars' source) and rows split by `split_frame`.
    pub fn of_bars(
        config: &ratchet_config::TrainConfig,
        loaded: LoadedBars,
        cache_key: &str,
        outside: &OutsideSources,
        split_frame: impl FnOnce(&FeatureFrame) -> Result<Splits>,
    ) -> Result<(Self, CacheOutcome)> {
        let (frame, outcome) = features_of(config, &loaded, cache_key, outside)?;
        let splits = split_frame(&frame)?;
        Ok((Self::assemble(loaded, frame, splits)?, outcome))
    }

    /// A market from bars, their features and the split of their rows.
    pub fn assemble(loaded: LoadedBars, frame: FeatureFrame, splits: Splits) -> Result<Self> {
        let bars = &loaded.bars;
        let rows = frame.rows();
        let open = (0..rows).map(|i| bars.open[frame.bar_index(i)]).collect();
        let close = (0..rows).map(|i| bars.close[frame.bar_index(i)]).collect();
        let data = MarketData::new(frame.values.clone(), frame.width(), open, close)
            .with_context(|| format!("features of {}", loaded.path.display()))?;
        Ok(Self {
            loaded,
            frame,
            splits,
            data: Arc::new(data),
            outside: Vec::new(),
        })
    }

    /// SHA-256 of the bars behind a segment's feature rows (what a version records per range).
    pub fn digest(&self, segment: &Segment) -> String {
        let first_bar = self.frame.bar_index(segment.start);
        self.loaded
            .bars
            .digest(first_bar..first_bar + segment.len())
    }

    /// The test range, or an error saying none was held back (a dates split without
    /// `validation_end`, as `[retrain] test_bars = 0` makes).
    pub fn test_range(&self) -> Result<&Segment> {
        self.splits.test.as_ref().with_context(|| {
            format!(
                "no test range of {} was held back (a dates split without validation_end, or \
                 [retrain] test_bars = 0): name the bars with --from/--to",
                self.loaded.path.display()
            )
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

/// The features of `loaded` for `config`, computed or read from the feature cache under
/// `cache_key` (the digest of the bars' source); `outside` holds the config's outside sources.
pub fn features_of(
    config: &ratchet_config::TrainConfig,
    loaded: &LoadedBars,
    cache_key: &str,
    outside: &OutsideSources,
) -> Result<(FeatureFrame, CacheOutcome)> {
    loaded.check_features(&config.features)?;
    if !config.features.external.is_empty() {
        // Features that read outside sources depend on more than the bars the cache is
        // keyed by.
        let symbol = ratchet_data::symbol_of_file(&loaded.path);
        let frames =
            compute_universe_features(&[(&symbol, &loaded.bars)], &config.features, outside)?;
        let frame = frames.into_iter().next().expect("one frame per instrument");
        return Ok((frame, CacheOutcome::Uncached));
    }
    let cache = FeatureCache::new(feature_cache_dir());
    Ok(cache.load_or_compute(&loaded.bars, cache_key, &config.features)?)
}

/// The outside sources as a version whose last bar is stamped `until` records them.
pub fn outside_records(outside: &OutsideSources, until: i64) -> Vec<OutsideSource> {
    outside
        .sources()
        .iter()
        .map(|s| OutsideSource {
            name: s.feature.name.clone(),
            path: s.feature.source.display().to_string(),
            sha256: s.sha256.clone(),
            until: ratchet_data::format_timestamp(until),
            rows_sha256: s.digest_until(until),
        })
        .collect()
}

/// Refuses to continue `recorded` (a version's outside sources) on sources whose rows known
/// by the version's last bar changed: only rows after it may be new.
pub fn check_outside_history(
    recorded: &[OutsideSource],
    outside: &OutsideSources,
    version: &str,
) -> Result<()> {
    for record in recorded {
        let Some(source) = outside
            .sources()
            .iter()
            .find(|s| s.feature.name == record.name)
        else {
            continue; // a changed feature config is refused by its hash
        };
        if source.sha256 == record.sha256 {
            continue;
        }
        let (until, _) = ratchet_data::parse_timestamp(&record.until)
            .map_err(|e| anyhow::anyhow!("{version} recorded {:?}: {e}", record.until))?;
        if source.digest_until(until) != record.rows_sha256 {
            // A Feast view's file is named with the features it holds, as the desk knows them.
            let feast = source
                .feature
                .feast
                .as_ref()
                .map_or_else(String::new, |origin| {
                    format!(
                        ", the file of Feast features {} of project {}",
                        origin.service_references().collect::<Vec<_>>().join(", "),
                        origin.project
                    )
                });
            anyhow::bail!(
                "outside source {} ({}{feast}) changed at or before {}, the last bar {version} saw: \
                 rows it joined were restated, removed or added; continue only over rows appended \
                 after it, or train a new model",
                record.name,
                source.feature.source.display(),
                record.until
            );
        }
        eprintln!(
            "outside source {}: rows after {} are new since {version}; the earlier ones are as it saw them",
            record.name, record.until
        );
    }
    Ok(())
}

/// What [`Market::prepare_recorded`] found about a data file against a version's record.
pub struct RangeCheck {
    version: String,
    file: String,
    /// The recorded ranges whose bars differ now: the range's name and a line saying so.
    changed: Vec<(&'static str, String)>,
    /// The sha256 the version recorded for the whole file, when the file differs from it and
    /// the version predates per-range digests (so its ranges cannot be checked).
    unverified: Option<String>,
}

impl RangeCheck {
    /// Figures over `judged` ranges (`"validation"`, `"test"`) need their bars unchanged: an
    /// error names the first that changed. Changes elsewhere, and a file that cannot be
    /// checked, are warnings on stderr.
    pub fn require_unchanged(&self, judged: &[&str]) -> Result<()> {
        for (name, line) in &self.changed {
            if judged.contains(name) {
                anyhow::bail!(
                    "{} does not hold the bars {} saw: {line}; judge the version on the data file it recorded (sha256 in `ratchet models show`)",
                    self.file,
                    self.version
                );
            }
            eprintln!("warning: {}: for {}, {line}", self.file, self.version);
        }
        if let Some(sha256) = &self.unverified {
            eprintln!(
                "warning: {} changed since {} was trained (it recorded sha256 {}), and the version predates per-range digests: its recorded dates are used, but the bars inside them cannot be checked",
                self.file,
                self.version,
                sha256.get(..12).unwrap_or(sha256)
            );
        }
        Ok(())
    }
}
