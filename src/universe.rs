//! The market data of a universe: each instrument loaded, validated and featurised on its
//! own (no statistic of one symbol reads another's bars), split at dates common to all, and
//! laid end to end in one [`MarketData`] for training ([`Universe::end_to_end`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ratchet_config::{ShortHistory, TrainConfig};
use ratchet_data::{OutsideSources, SplitSpec, Splits, Universe as Bars, common_split, split};
use ratchet_env::MarketData;
use ratchet_registry::{DataSource, DateRange};
use rayon::prelude::*;

use crate::agent::TrainingRows;
use crate::market::{Market, features_of, outside_records};

/// One instrument of a universe.
pub struct Member {
    pub symbol: String,
    pub market: Market,
}

/// A universe's instruments, sorted by symbol.
pub struct Universe {
    pub members: Vec<Member>,
    /// [`ratchet_data::Universe::hash`] of every instrument loaded (skipped ones included:
    /// it names the data, not the choice made from it).
    pub hash: String,
    /// The files, glob patterns expanded.
    pub files: Vec<PathBuf>,
    /// The outside sources the features joined, as the version records them.
    pub outside: Vec<ratchet_registry::OutsideSource>,
}

/// The market data of a run: one instrument (`[data] file`) or a universe (`[data] files`).
pub enum TrainingData {
    Instrument(Box<Market>),
    Universe(Universe),
}

impl TrainingData {
    pub fn prepare(config: &TrainConfig) -> Result<Self> {
        Ok(if config.data.is_universe() {
            TrainingData::Universe(Universe::prepare(config)?)
        } else {
            TrainingData::Instrument(Box::new(Market::prepare(config)?))
        })
    }

    /// Each instrument with its symbol: one named by its file, or a universe's members.
    pub fn instruments(&self) -> Vec<(String, &Market)> {
        match self {
            TrainingData::Instrument(market) => {
                vec![(ratchet_data::symbol_of_file(&market.loaded.path), market)]
            }
            TrainingData::Universe(universe) => universe
                .members
                .iter()
                .map(|m| (m.symbol.clone(), &m.market))
                .collect(),
        }
    }

    /// The rows training environments run on: the training range of each instrument.
    pub fn training_rows(&self) -> Result<TrainingRows> {
        Ok(match self {
            TrainingData::Instrument(market) => TrainingRows {
                data: market.data.clone(),
                ranges: vec![market.splits.train.range()],
            },
            TrainingData::Universe(universe) => {
                let (data, offsets) = universe.end_to_end(|m| m.data.rows())?;
                let ranges = universe
                    .members
                    .iter()
                    .zip(offsets)
                    .map(|(m, offset)| {
                        let train = m.market.splits.train.range();
                        offset + train.start..offset + train.end
                    })
                    .collect();
                TrainingRows { data, ranges }
            }
        })
    }
}

/// `[data] files` with glob patterns expanded (a pattern must match at least one file; a
/// plain path is kept as given, so that a built-in data file is found from any directory).
fn expand(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for pattern in patterns {
        if !pattern.contains(['*', '?', '[']) {
            files.push(PathBuf::from(pattern));
            continue;
        }
        let matched = glob::glob(pattern)
            .with_context(|| format!("data.files: {pattern:?} is not a valid glob pattern"))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("data.files: reading the files of {pattern:?}"))?;
        if matched.is_empty() {
            bail!("data.files: {pattern:?} matches no file");
        }
        files.extend(matched);
    }
    Ok(files)
}

/// The files of `[data] files` (globs expanded) and every instrument in them.
fn load(config: &TrainConfig) -> Result<(Vec<PathBuf>, Bars)> {
    let files = expand(&config.data.files)?;
    let contents = files
        .iter()
        .map(|path| {
            let bytes = match ratchet_config::bundled::file(path) {
                Some(bytes) => bytes.to_vec(),
                None => std::fs::read(path)
                    .with_context(|| format!("reading data file {}", path.display()))?,
            };
            Ok((path.clone(), bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    let bars = Bars::parse(contents, &config.data.load_options())?;
    Ok((files, bars))
}

impl Universe {
    /// Loads every file of `[data] files`, computes each instrument's features (cached by
    /// the digest of its own bars), and splits them at the same dates: the config's dates,
    /// or those that cut the union of all instruments' timestamps at its fractions.
    pub fn prepare(config: &TrainConfig) -> Result<Self> {
        let (files, bars) = load(config)?;
        let hash = bars.hash();
        let symbols = bars.members.len();
        // Features first, then the split common to all of them.
        let loaded: Vec<_> = bars
            .members
            .into_iter()
            .map(|member| (member.symbol, member.loaded))
            .collect();
        let outside = OutsideSources::load(&config.features)?;
        let frames = featurise(config, &loaded, &outside)?;
        let mut featured: Vec<_> = loaded
            .into_iter()
            .zip(frames)
            .map(|((symbol, loaded), frame)| (symbol, loaded, frame))
            .collect();
        let frames: Vec<_> = featured.iter().map(|(_, _, frame)| frame).collect();
        let dates = common_split(&frames, &config.data.split)?;
        let window = config.features.window;
        let mut kept = Vec::with_capacity(symbols);
        let mut skipped = Vec::new();
        for (symbol, loaded, frame) in featured.drain(..) {
            let fits = split(&frame, &dates)
                .map_err(|e| e.to_string())
                .and_then(|splits| {
                    let test = splits.test.as_ref().map(|t| ("test", t.len(), 2));
                    let short = [
                        ("training", splits.train.len(), window + 1),
                        ("validation", splits.validation.len(), 2),
                    ]
                    .into_iter()
                    .chain(test)
                    .find(|(_, bars, needed)| bars < needed);
                    match short {
                        Some((name, bars, needed)) => Err(format!(
                            "{bars} bars in the {name} range, fewer than the {needed} it needs"
                        )),
                        None => Ok(splits),
                    }
                });
            match fits {
                Ok(splits) => kept.push((symbol, loaded, frame, splits)),
                Err(why) => match config.data.short_history {
                    ShortHistory::Skip => skipped.push((symbol, why)),
                    ShortHistory::Error => bail!(
                        "symbol {symbol}: {why}; give it more history, or set [data] \
                         short_history = \"skip\" to leave it out"
                    ),
                },
            }
        }
        if kept.is_empty() {
            bail!("no instrument of the universe has enough history for the split: {skipped:?}");
        }
        if !skipped.is_empty() && config.features.cross_sectional().is_some() {
            // The cross-section is the universe trained on, as a backtest of the version
            // computes it: without the symbols left out. (Their rows and splits stay the same.)
            let loaded: Vec<_> = kept
                .iter()
                .map(|(symbol, loaded, ..)| (symbol.clone(), loaded.clone()))
                .collect();
            for (member, frame) in kept.iter_mut().zip(featurise(config, &loaded, &outside)?) {
                member.2 = frame;
            }
        }
        let members = kept
            .into_iter()
            .map(|(symbol, loaded, frame, splits)| {
                let market = Market::assemble(loaded, frame, splits)
                    .with_context(|| format!("symbol {symbol}"))?;
                Ok(Member { symbol, market })
            })
            .collect::<Result<Vec<_>>>()?;
        let cut = match &dates {
            SplitSpec::Dates {
                train_end,
                validation_end: Some(validation_end),
                ..
            } => format!("train .. {train_end}, validation .. {validation_end}, test after"),
            SplitSpec::Dates { train_end, .. } => {
                format!("train .. {train_end}, validation after, no test range")
            }
            SplitSpec::Fraction { .. } => "?".to_string(),
        };
        let names: Vec<&str> = members.iter().map(|m| m.symbol.as_str()).collect();
        eprintln!(
            "universe {}: {} symbols ({}); features {}; every symbol split at {cut}",
            config.data.files.join(", "),
            names.len(),
            names.join(", "),
            config.features.short_hash(),
        );
        for (symbol, why) in &skipped {
            eprintln!("warning: universe: {symbol} left out: {why}");
        }
        Ok(Universe::of_members(members, hash, files, &outside))
    }

    /// The instruments a version recorded, each split at its own recorded dates (never
    /// re-split); an error names a symbol that is gone, or whose validation or test bars
    /// differ from those the version saw.
    pub fn prepare_recorded(
        config: &TrainConfig,
        recorded: &DataSource,
        version: &str,
    ) -> Result<Self> {
        let (files, bars) = load(config)?;
        let hash = bars.hash();
        let mut loaded: std::collections::BTreeMap<String, _> = bars
            .members
            .into_iter()
            .map(|m| (m.symbol, m.loaded))
            .collect();
        let recorded_bars = recorded
            .symbols
            .iter()
            .map(|source| {
                let symbol = &source.symbol;
                let bars = loaded.remove(symbol).with_context(|| {
                    format!(
                        "{version} was trained on symbol {symbol}, which [data] files no longer hold"
                    )
                })?;
                Ok((symbol.clone(), bars))
            })
            .collect::<Result<Vec<_>>>()?;
        let outside = OutsideSources::load(&config.features)?;
        let frames = featurise(config, &recorded_bars, &outside)?;
        let mut members = Vec::with_capacity(recorded.symbols.len());
        for ((source, (_, bars)), frame) in recorded.symbols.iter().zip(recorded_bars).zip(frames) {
            let symbol = &source.symbol;
            let range = |r: &DateRange| (r.start.clone(), r.end.clone());
            let (train, validation, test) = (
                range(&source.train),
                range(&source.validation),
                source.test.as_ref().map(range),
            );
            let splits = Splits::at_dates(
                &frame,
                (&train.0, &train.1),
                (&validation.0, &validation.1),
                test.as_ref()
                    .map(|(first, last)| (first.as_str(), last.as_str())),
            )
            .with_context(|| format!("finding the ranges of {version} for symbol {symbol}"))?;
            let market = Market::assemble(bars, frame, splits)?;
            for (name, range, segment) in [
                (
                    "validation",
                    Some(&source.validation),
                    Some(&market.splits.validation),
                ),
                ("test", source.test.as_ref(), market.splits.test.as_ref()),
            ] {
                let (Some(range), Some(segment)) = (range, segment) else {
                    continue;
                };
                if range
                    .bars_sha256
                    .as_deref()
                    .is_some_and(|d| d != market.digest(segment))
                {
                    bail!(
                        "symbol {symbol}: the bars of its {name} range {} .. {} differ from those \
                         {version} saw; judge the version on the data it recorded",
                        range.start,
                        range.end
                    );
                }
            }
            members.push(Member {
                symbol: symbol.clone(),
                market,
            });
        }
        Ok(Universe::of_members(members, hash, files, &outside))
    }

    /// A universe of `members`, recording `outside` as of its last bar.
    fn of_members(
        members: Vec<Member>,
        hash: String,
        files: Vec<PathBuf>,
        outside: &OutsideSources,
    ) -> Self {
        let last_bar = members
            .iter()
            .filter_map(|m| m.market.loaded.bars.timestamps.last().copied())
            .max()
            .unwrap_or(0);
        Universe {
            members,
            hash,
            files,
            outside: outside_records(outside, last_bar),
        }
    }

    /// Every instrument's rows `..end(market)` laid end to end in one [`MarketData`], the
    /// layout training runs on (instruments in symbol order), and the row each one starts at.
    pub fn end_to_end(
        &self,
        end: impl Fn(&Market) -> usize,
    ) -> Result<(Arc<MarketData>, Vec<usize>)> {
        let width = self.members.first().map_or(0, |m| m.market.data.width);
        let (mut features, mut open, mut close) = (Vec::new(), Vec::new(), Vec::new());
        let mut offsets = Vec::with_capacity(self.members.len());
        for member in &self.members {
            let (data, rows) = (&member.market.data, end(&member.market));
            offsets.push(open.len());
            features.extend_from_slice(&data.features[..rows * width]);
            open.extend_from_slice(&data.open[..rows]);
            close.extend_from_slice(&data.close[..rows]);
        }
        let data = MarketData::new(features, width, open, close)?;
        Ok((Arc::new(data), offsets))
    }
}

/// The features of the universe's instruments (in their order): each one's own, computed or
/// read from the cache under the digest of its own bars (the symbols of a long-format file share
/// the file's), in parallel; with cross-sectional or outside features, all of them together
/// (not cached: they depend on every instrument, or on the outside sources).
fn featurise(
    config: &TrainConfig,
    members: &[(String, ratchet_data::LoadedBars)],
    outside: &OutsideSources,
) -> Result<Vec<ratchet_data::FeatureFrame>> {
    if config.features.cross_sectional().is_some() || !config.features.external.is_empty() {
        for (symbol, loaded) in members {
            loaded
                .check_features(&config.features)
                .with_context(|| format!("symbol {symbol}"))?;
        }
        let bars: Vec<_> = members
            .iter()
            .map(|(symbol, loaded)| (symbol.as_str(), &loaded.bars))
            .collect();
        return ratchet_data::compute_universe_features(&bars, &config.features, outside)
            .context("computing the universe's features");
    }
    members
        .par_iter()
        .map(|(symbol, loaded)| {
            let key = loaded.bars.digest(0..loaded.bars.len());
            let (frame, _) = features_of(config, loaded, &key, outside)
                .with_context(|| format!("symbol {symbol}"))?;
            Ok(frame)
        })
        .collect()
}
