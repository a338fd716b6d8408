//! `ratchet retrain`: continue a registered version on data that grew, judge the result (the
//! challenger) against the alias's current holder (the champion) on the same new validation
//! bars, register it with both evaluations, and gate it into the candidate alias.
//!
//! A retrain is identified by its key: the source version, the data file's sha256 and the
//! resolved config. The key is a tag of the run (so a killed run is found and resumed) and of
//! the version from its creation (so the same inputs again find it and do nothing). The work
//! holds the model's `retrain` lock ([`TrackingStore::lock_model_work`]), released when its
//! holder ends or dies, so two retrains at once make one version.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use ratchet_backtest::SharpeEstimate;
use ratchet_config::{Decision, EnvKind, Figures, RetrainConfig, TrainConfig};
use ratchet_data::{LoadedBars, Segment, SplitSpec, format_timestamp, load_bars, parse_date};
use ratchet_mlflow::{RunStatus, TrackingStore};
use ratchet_registry::{ModelRef, Registry, VersionSelector, VersionStatus};

use crate::checkpoint;
use crate::cli::{RetrainArgs, TrainArgs};
use crate::commands::train::{self, Job};
use crate::judge::{self, Evaluation};
use crate::market::Market;
use crate::universe::TrainingData;

/// Exit codes a scheduler tells the outcomes apart by (errors exit 1).
pub const EXIT_CANDIDATE: i32 = 0;
pub const EXIT_NOTHING_NEW: i32 = 3;
pub const EXIT_REJECTED: i32 = 4;

/// Run and version tag: the retrain's key (source, data sha256, resolved config).
pub const KEY_TAG: &str = "ratchet.retrain.key";
/// Version tags: the source version, the champion judged, the gates' decision (`passed` or
/// `rejected`) and its reason, and the two evaluations ([`Judged`] as JSON).
pub const SOURCE_TAG: &str = "ratchet.retrain.source";
pub const CHAMPION_TAG: &str = "ratchet.retrain.champion";
pub const DECISION_TAG: &str = "ratchet.retrain.decision";
pub const REASON_TAG: &str = "ratchet.retrain.reason";
pub const CHALLENGER_VAL_TAG: &str = "ratchet.retrain.challenger_val";
pub const CHAMPION_VAL_TAG: &str = "ratchet.retrain.champion_val";

/// The name of the model's lock held while a retrain works.
const LOCK_WORK: &str = "retrain";
/// How often `--wait-for-data` looks at the data file.
const POLL: Duration = Duration::from_secs(2);

/// One policy judged greedily on the new validation range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Judged {
    /// Left out of the challenger's tag: the version's number is not known before it is
    /// created.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_uri: String,
    /// First and last date of the validation range.
    pub range: (String, String),
    /// SHA-256 of the range's bars (the same for the challenger and the champion).
    pub bars_sha256: String,
    pub sharpe: Option<f64>,
    /// Probabilistic Sharpe ratio against 0, from the per-bar returns.
    pub psr: Option<f64>,
    pub max_drawdown: f64,
    pub total_return: f64,
}

impl Judged {
    fn new(
        model_uri: String,
        segment: &Segment,
        bars_sha256: String,
        metrics: &BTreeMap<String, f64>,
        returns: &[f64],
    ) -> Self {
        Judged {
            model_uri,
            range: (segment.first_date.clone(), segment.last_date.clone()),
            bars_sha256,
            sharpe: metrics.get("sharpe").copied(),
            psr: SharpeEstimate::of_returns(returns)
                .ok()
                .and_then(|e| e.probabilistic(0.0)),
            max_drawdown: metrics.get("max_drawdown").copied().unwrap_or(0.0),
            total_return: metrics.get("total_return").copied().unwrap_or(0.0),
        }
    }

    fn figures(&self) -> Figures {
        Figures {
            sharpe: self.sharpe,
            psr: self.psr,
            max_drawdown: self.max_drawdown,
        }
    }
}

/// What `--json` prints.
#[derive(Serialize)]
struct RetrainOutput {
    /// `candidate`, `nothing_new` or `rejected`.
    outcome: &'static str,
    exit_code: i32,
    /// Why: the gate failed, or why there was nothing to do.
    reason: Option<String>,
    /// The version continued (`None`: the first version of the model).
    source: Option<String>,
    key: String,
    /// The version made (`models:/NAME/N`); for `nothing_new`, the one these inputs made
    /// before, if any.
    version: Option<String>,
    run_id: Option<String>,
    challenger: Option<Judged>,
    champion: Option<Judged>,
    candidate_alias: String,
    /// Where the time of a retrain that trained went (`None` otherwise).
    seconds: Option<Timings>,
}

/// Where a retrain's time went, in seconds of wall time.
#[derive(Serialize)]
struct Timings {
    /// The source's metadata, the data file read, the key looked up, the ranges cut, the claim.
    inputs: f64,
    /// Features, the agent, and the source's (or the interrupted run's) state restored.
    preparation: f64,
    /// The champion's weights read and its backtest on the validation range.
    champion_evaluation: f64,
    /// Training and the challenger's evaluation.
    training_and_evaluation: f64,
    /// The run and its metrics, the version with its checkpoint, the decision applied.
    registration: f64,
    total: f64,
}

/// What a retrained version records of its retrain (`models show`).
#[derive(Serialize)]
pub struct RetrainRecord {
    pub key: String,
    pub source: Option<String>,
    /// `passed` or `rejected`.
    pub decision: String,
    pub reason: Option<String>,
    pub challenger: Option<Judged>,
    pub champion: Option<Judged>,
}

impl RetrainRecord {
    /// One line: the decision and the two Sharpe ratios.
    pub fn summary(&self) -> String {
        let sharpe = |j: &Option<Judged>| crate::output::number(j.as_ref().and_then(|j| j.sharpe));
        let against = match &self.champion {
            Some(c) => format!(
                " against {} (val sharpe {} vs {})",
                c.model_uri,
                sharpe(&self.challenger),
                sharpe(&self.champion)
            ),
            None => format!(" (val sharpe {})", sharpe(&self.challenger)),
        };
        match &self.reason {
            Some(reason) => format!("{}{against}: {reason}", self.decision),
            None => format!("{}{against}", self.decision),
        }
    }
}

/// The retrain record in the tags of version `uri`; `None` for a version no retrain made.
pub fn record_of(uri: &str, tags: &BTreeMap<String, String>) -> Option<RetrainRecord> {
    let judged = |k: &str| {
        tags.get(k)
            .and_then(|v| serde_json::from_str::<Judged>(v).ok())
    };
    Some(RetrainRecord {
        key: tags.get(KEY_TAG)?.clone(),
        source: tags.get(SOURCE_TAG).filter(|s| *s != "none").cloned(),
        decision: tags.get(DECISION_TAG)?.clone(),
        reason: tags.get(REASON_TAG).cloned(),
        challenger: judged(CHALLENGER_VAL_TAG).map(|j| Judged {
            model_uri: uri.to_string(),
            ..j
        }),
        champion: judged(CHAMPION_VAL_TAG),
    })
}

/// Runs the command; the exit code of its outcome.
pub fn run(tracking_uri: &str, args: RetrainArgs) -> Result<i32> {
    let started = Instant::now();
    train::stop_on_ctrl_c()?;
    let store: Arc<dyn TrackingStore> = Arc::from(ratchet_mlflow::open_store(tracking_uri)?);
    let registry = Registry::new(store.clone());
    let requested = match &args.config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::default(),
    };
    let mut settings = requested.retrain.clone();
    if let Some(alias) = &args.candidate_alias {
        settings.candidate_alias = alias.clone();
    }
    ratchet_mlflow::names::validate_alias(&settings.candidate_alias)
        .context("the candidate alias")?;
    let reference = ModelRef::parse(&args.model)?;
    let source = match registry.resolve(&reference) {
        Ok(found) => Some(found),
        Err(e) if e.is_not_found() && !matches!(reference.selector, VersionSelector::Number(_)) => {
            None
        }
        Err(e) => return Err(e.into()),
    };
    let config_hash = resolved_hash(&requested, &settings, args.steps)?;
    let source_uri = source
        .as_ref()
        .map(|s| format!("models:/{}/{}", s.name, s.version));
    let output = |outcome, exit_code, reason: String, key: &str| RetrainOutput {
        outcome,
        exit_code,
        reason: Some(reason),
        source: source_uri.clone(),
        key: key.to_string(),
        version: None,
        run_id: None,
        challenger: None,
        champion: None,
        candidate_alias: settings.candidate_alias.clone(),
        seconds: None,
    };

    // What the source was trained on, from its metadata (no checkpoint is read).
    let source_config = match &source {
        Some(s) => {
            let metadata = registry.get(&ModelRef::number(&s.name, s.version))?;
            let config = TrainConfig::from_version(&metadata)?;
            if config.run.env != EnvKind::Trading || config.data.is_universe() {
                bail!(
                    "{} was not trained on one instrument's market data; retrain continues \
                     versions trained on one data file",
                    source_uri.as_deref().unwrap_or_default()
                );
            }
            let recorded = &metadata.training.data;
            // The newest bar it was judged on: its test range's last, or its validation
            // range's when it held back none.
            let judged = recorded.test.as_ref().or(recorded.validation.as_ref());
            let (Some(train), Some(judged)) = (&recorded.train, judged) else {
                bail!("{} recorded no training or validation range", metadata.name);
            };
            Some((config, train.end.clone(), judged.end.clone()))
        }
        None => None,
    };
    let trained = source_config.as_ref().map_or(&requested, |(c, _, _)| c);
    let load_options = trained.data.load_options();
    let deadline = args
        .wait_for_data
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut waiting = false;
    let (bars, key) = loop {
        let bars = load_bars(&args.data, &load_options)?;
        let last_bar = bars.bars.timestamps.last().copied().unwrap_or(i64::MIN);
        let outside = outside_digests(&trained.features, last_bar)?;
        let key = retrain_key(source_uri.as_deref(), &bars.sha256, &outside, &config_hash);
        if let Some(version) = registry.find_by_tag(&reference.name, KEY_TAG, &key)? {
            return done_before(
                &registry,
                &reference.name,
                version,
                &settings,
                &key,
                args.json,
            );
        }
        let Some((_, _, last)) = &source_config else {
            break (bars, key);
        };
        let last_ms = parse_date(last, true).map_err(anyhow::Error::msg)?;
        let newest = bars.bars.timestamps.last().copied().unwrap_or(i64::MIN);
        if newest > last_ms {
            break (bars, key);
        }
        match deadline {
            Some(at) if Instant::now() < at => {
                if !waiting {
                    eprintln!(
                        "waiting up to {} s for {} to hold bars after {last}",
                        args.wait_for_data.unwrap_or_default(),
                        args.data.display()
                    );
                    waiting = true;
                }
                std::thread::sleep(POLL.min(at - Instant::now()));
            }
            _ => {
                let out = output(
                    "nothing_new",
                    EXIT_NOTHING_NEW,
                    format!(
                        "{} holds no bar after {last}, the last bar of {}",
                        args.data.display(),
                        source_uri.as_deref().unwrap_or_default()
                    ),
                    &key,
                );
                return report(&out, args.json);
            }
        }
    };
    let source_train_end = source_config.as_ref().map(|(_, end, _)| end.as_str());
    let split = new_split(&settings, &bars, source_uri.as_deref(), source_train_end)?;

    // The claim: one retrain of this model works at a time; the other finds its version.
    store.create_registered_model(&reference.name)?;
    let _claim = store.lock_model_work(&reference.name, LOCK_WORK)?;
    if let Some(version) = registry.find_by_tag(&reference.name, KEY_TAG, &key)? {
        return done_before(
            &registry,
            &reference.name,
            version,
            &settings,
            &key,
            args.json,
        );
    }
    let experiment = source_config
        .as_ref()
        .map_or(&requested, |(c, _, _)| c)
        .run
        .experiment
        .clone();
    let data = args.data.display().to_string();
    let inputs = started.elapsed().as_secs_f64();
    let mut job = match unfinished_run(store.as_ref(), &experiment, &key)? {
        Some(run_id) => {
            eprintln!("retrain {key}: finishing the interrupted run {run_id}");
            train::resume(store.clone(), &run_id, &TrainArgs::default())?
        }
        None => {
            let adjust = |config: &mut TrainConfig| {
                config.data.split = split.clone();
                config.retrain = settings.clone();
                config.run_tags.push((KEY_TAG.to_string(), key.clone()));
                Ok(())
            };
            match &source_uri {
                Some(uri) => {
                    let from = TrainArgs {
                        data: Some(data.clone()),
                        steps: args.steps,
                        // Only a file that changes more than [retrain] is `--from`'s config.
                        config: args
                            .config
                            .clone()
                            .filter(|path| sets_more_than_retrain(path)),
                        ..TrainArgs::default()
                    };
                    train::continue_from(store.clone(), uri, &from, adjust)?
                }
                None => {
                    let mut config = requested.clone();
                    let flags = TrainArgs {
                        data: Some(data.clone()),
                        steps: args.steps,
                        model_name: Some(reference.name.clone()),
                        ..TrainArgs::default()
                    };
                    crate::config::apply_flags(&mut config, &flags);
                    adjust(&mut config)?;
                    config.validate()?;
                    config.check_learns()?;
                    Job::new(store.clone(), config, None)?
                }
            }
        }
    };

    let preparation = started.elapsed().as_secs_f64() - inputs;
    // The champion: the alias's holder now, on the challenger's validation bars.
    let champion = match &source {
        Some(_) => {
            let holder = registry.resolve(&reference)?;
            let uri = format!("models:/{}/{}", holder.name, holder.version);
            Some(judge_champion(&registry, &uri, &job)?)
        }
        None => None,
    };
    let champion_evaluation = started.elapsed().as_secs_f64() - inputs - preparation;
    let market = instrument(&job)?;
    let name = job.config.model_name();
    let verdict = Arc::new(Verdict {
        settings: settings.clone(),
        champion: champion.clone(),
        key: key.clone(),
        source: source_uri.clone(),
        validation: market.splits.validation.clone(),
        bars_sha256: market.digest(&market.splits.validation),
    });
    let tagging = verdict.clone();
    job.version_tags = Some(Box::new(move |evaluation| {
        let (challenger, decision) = tagging.judge(evaluation);
        tagging.tags(&challenger, &decision)
    }));
    let finishing = Instant::now();
    let trained = job.finish()?;
    let (mut challenger, decision) = verdict.judge(&trained.evaluation);
    challenger.model_uri = trained.model_uri.clone();
    if let Some(champion) = &champion {
        log_champion(store.as_ref(), &trained.run_id, champion)?;
    }
    let reference = ModelRef::number(&name, trained.version);
    let (outcome, exit_code, reason) = match decision {
        Decision::Passed => {
            make_candidate(&registry, &reference, &settings.candidate_alias)?;
            ("candidate", EXIT_CANDIDATE, None)
        }
        Decision::Rejected(reason) => ("rejected", EXIT_REJECTED, Some(reason)),
    };
    let seconds = Timings {
        inputs,
        preparation,
        champion_evaluation,
        training_and_evaluation: trained.wall_time_s,
        registration: finishing.elapsed().as_secs_f64() - trained.wall_time_s,
        total: started.elapsed().as_secs_f64(),
    };
    let out = RetrainOutput {
        outcome,
        exit_code,
        reason,
        source: source_uri,
        key,
        version: Some(trained.model_uri.clone()),
        run_id: Some(trained.run_id.clone()),
        challenger: Some(challenger),
        champion,
        candidate_alias: settings.candidate_alias.clone(),
        seconds: Some(seconds),
    };
    report(&out, args.json)
}

/// The gates over the challenger's evaluation, and the version tags that record them.
struct Verdict {
    settings: RetrainConfig,
    champion: Option<Judged>,
    key: String,
    source: Option<String>,
    validation: Segment,
    bars_sha256: String,
}

impl Verdict {
    /// The challenger's figures (its `model_uri` left empty: the version is not created
    /// yet) and the gates' decision.
    fn judge(&self, evaluation: &Evaluation) -> (Judged, Decision) {
        let challenger = Judged::new(
            String::new(),
            &self.validation,
            self.bars_sha256.clone(),
            &evaluation.metrics,
            evaluation.returns.as_deref().unwrap_or_default(),
        );
        let champion = self.champion.as_ref().map(Judged::figures);
        let decision = self
            .settings
            .decide(&challenger.figures(), champion.as_ref());
        (challenger, decision)
    }

    /// The tags the version is created with: the key, the source, both evaluations, the
    /// decision and its reason.
    fn tags(&self, challenger: &Judged, decision: &Decision) -> Result<Vec<(String, String)>> {
        let mut tags = vec![
            (KEY_TAG, self.key.clone()),
            (
                SOURCE_TAG,
                self.source.clone().unwrap_or_else(|| "none".into()),
            ),
            (CHALLENGER_VAL_TAG, serde_json::to_string(challenger)?),
        ];
        if let Some(champion) = &self.champion {
            tags.push((CHAMPION_TAG, champion.model_uri.clone()));
            tags.push((CHAMPION_VAL_TAG, serde_json::to_string(champion)?));
        }
        match decision {
            Decision::Passed => tags.push((DECISION_TAG, "passed".into())),
            Decision::Rejected(reason) => {
                tags.push((DECISION_TAG, "rejected".into()));
                tags.push((REASON_TAG, reason.clone()));
            }
        }
        Ok(tags.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

/// The sha256 of what the retrain was asked to do besides its source and data: the
/// `--config` file's configuration, the `[retrain]` settings after the flags, and `--steps`.
fn resolved_hash(
    config: &TrainConfig,
    settings: &RetrainConfig,
    steps: Option<u64>,
) -> Result<String> {
    let resolved = serde_json::json!({
        "config": config,
        "retrain": settings,
        "steps": steps,
    });
    Ok(hex::encode(Sha256::digest(serde_json::to_vec(&resolved)?)))
}

/// The key of a retrain: its source version, the data file's sha256, the digest of each
/// outside source's rows known by the data's last bar (`outside`; rows stamped later change
/// no feature), and the resolved config.
fn retrain_key(
    source: Option<&str>,
    data_sha256: &str,
    outside: &[String],
    config_hash: &str,
) -> String {
    let mut text = format!("{}\n{data_sha256}\n", source.unwrap_or("none"));
    // Nothing added without outside sources: keys made before they existed still match.
    for digest in outside {
        text.push_str(digest);
        text.push('\n');
    }
    text.push_str(config_hash);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Per outside source of `features`, the digest of its rows known by `last_bar`.
fn outside_digests(features: &ratchet_data::FeatureConfig, last_bar: i64) -> Result<Vec<String>> {
    if features.external.is_empty() {
        return Ok(Vec::new());
    }
    let outside = ratchet_data::OutsideSources::load(features)?;
    Ok(outside
        .sources()
        .iter()
        .map(|s| s.digest_until(last_bar))
        .collect())
}

/// Whether a `--config` file sets anything outside `[retrain]` (hyperparameters that
/// `train --from --config` takes).
fn sets_more_than_retrain(path: &Path) -> bool {
    ratchet_config::bundled::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.keys().any(|k| k != "retrain"))
}

/// The split of the next version over `bars` per `[retrain]`, as the dates it ends at; its
/// validation range must start after the source's training range (which ends at
/// `source_train_end`), so that the champion is judged on bars it never trained on.
fn new_split(
    settings: &RetrainConfig,
    bars: &LoadedBars,
    source: Option<&str>,
    source_train_end: Option<&str>,
) -> Result<SplitSpec> {
    let timestamps = &bars.bars.timestamps;
    let Some(cut) = settings.cut(timestamps.len()) else {
        bail!(
            "{} holds {} bars, too few for [retrain] validation_bars {} and test_bars {} after \
             a training range",
            bars.path.display(),
            timestamps.len(),
            settings.validation_bars,
            settings.test_bars
        );
    };
    if let (Some(source), Some(end)) = (source, source_train_end) {
        let train_end = parse_date(end, true).map_err(anyhow::Error::msg)?;
        if timestamps[cut.validation.start] <= train_end {
            bail!(
                "the new validation range would start at {}, inside the training range of \
                 {source} (up to {end}): the champion would be judged on bars it trained on; \
                 lower [retrain] validation_bars or test_bars, or wait for more data",
                format_timestamp(timestamps[cut.validation.start]),
            );
        }
    }
    Ok(SplitSpec::Dates {
        // A rolling window starts later than the first bar.
        train_start: (cut.train.start > 0).then(|| format_timestamp(timestamps[cut.train.start])),
        train_end: format_timestamp(timestamps[cut.train.end - 1]),
        validation_end: cut
            .test
            .is_some()
            .then(|| format_timestamp(timestamps[cut.validation.end - 1])),
    })
}

/// A run of `experiment` tagged with `key` that did not finish and has a checkpoint to
/// resume from (its process is gone: the caller holds the retrain lock). One left RUNNING
/// without a checkpoint (killed before its first) is marked FAILED, saying so.
fn unfinished_run(
    store: &dyn TrackingStore,
    experiment: &str,
    key: &str,
) -> Result<Option<String>> {
    let experiment = store.get_or_create_experiment(experiment)?;
    for info in store.list_runs(&experiment.experiment_id)? {
        if info.status == RunStatus::Finished || info.lifecycle_stage != "active" {
            continue;
        }
        let run = store.get_run(&info.run_id)?;
        if run.tags.get(KEY_TAG).map(String::as_str) != Some(key) {
            continue;
        }
        if store
            .current_artifact_dir(&info.run_id, checkpoint::RUN_CHECKPOINT)?
            .is_some()
        {
            return Ok(Some(info.run_id));
        }
        if info.status == RunStatus::Running {
            let why =
                "a retrain killed before its first checkpoint; the next retrain starts afresh";
            store.set_run_tags(&info.run_id, &[(train::ERROR_TAG.into(), why.into())])?;
            store.set_run_status(
                &info.run_id,
                RunStatus::Failed,
                Some(ratchet_mlflow::now_ms()),
            )?;
        }
    }
    Ok(None)
}

/// The market of a retrain's job (retrains read one instrument).
fn instrument(job: &Job) -> Result<&Market> {
    match &job.market {
        Some(TrainingData::Instrument(market)) => Ok(market),
        _ => bail!("retrain reads one instrument's market data"),
    }
}

/// The champion's greedy backtest on the job's validation range (with its own features
/// when they differ from the job's: the same bars, its own feature rows).
fn judge_champion(registry: &Registry, uri: &str, job: &Job) -> Result<Judged> {
    let (champion, weights) = checkpoint::load_weights(registry, uri)?;
    let mut config = champion.config.clone();
    config.trading.window = config.features.window;
    let own;
    let market = if config.features == job.config.features {
        instrument(job)?
    } else {
        config.data.file = job.config.data.file.clone();
        config.data.split = job.config.data.split.clone();
        own = Market::prepare(&config)?;
        &own
    };
    let policy = config
        .trading_policy(&weights)
        .with_context(|| format!("loading the weights of {uri}"))?;
    let validation = &market.splits.validation;
    let (_, backtest) =
        judge::policy_backtest(market, &config.trading, policy, validation.range())?;
    Ok(Judged::new(
        champion.uri,
        validation,
        market.digest(validation),
        &judge::headline(&backtest),
        &backtest.strategy.returns[1..],
    ))
}

/// The champion's figures on the challenger's run, as `champion_val/*`.
fn log_champion(store: &dyn TrackingStore, run_id: &str, champion: &Judged) -> Result<()> {
    let figures = [
        ("sharpe", champion.sharpe),
        ("psr", champion.psr),
        ("max_drawdown", Some(champion.max_drawdown)),
        ("total_return", Some(champion.total_return)),
    ];
    let metrics: Vec<_> = figures
        .into_iter()
        .filter_map(|(k, v)| {
            Some(ratchet_mlflow::Metric::now(
                format!("champion_val/{k}"),
                v?,
                0,
            ))
        })
        .collect();
    Ok(store.log_metrics(run_id, &metrics)?)
}

/// The candidate alias and stage `validated`, in this order: a version still `registered`
/// with a `passed` decision was not made the candidate yet. (A candidate alias
/// `production` makes it `production`, as `models promote` does.)
fn make_candidate(registry: &Registry, reference: &ModelRef, alias: &str) -> Result<()> {
    registry.promote(reference, alias)?;
    if alias != ratchet_registry::PRODUCTION {
        registry.set_status(reference, VersionStatus::Validated)?;
    }
    Ok(())
}

/// These inputs were retrained before into `version`: nothing new. A version whose gates
/// passed but whose process died before it became the candidate (still `registered`) is
/// made the candidate now.
fn done_before(
    registry: &Registry,
    name: &str,
    version: u64,
    settings: &RetrainConfig,
    key: &str,
    json: bool,
) -> Result<i32> {
    let stored = registry.store().get_model_version(name, version)?;
    let uri = format!("models:/{name}/{version}");
    let record = record_of(&uri, &stored.tags)
        .with_context(|| format!("{uri} carries the retrain key {key} but no decision"))?;
    let reference = ModelRef::number(name, version);
    if record.decision == "passed"
        && stored
            .tags
            .get(ratchet_registry::tags::STATUS)
            .map(String::as_str)
            == Some(VersionStatus::Registered.as_str())
    {
        make_candidate(registry, &reference, &settings.candidate_alias)?;
    }
    let out = RetrainOutput {
        outcome: "nothing_new",
        exit_code: EXIT_NOTHING_NEW,
        reason: Some(format!(
            "{uri} was retrained from these inputs already (source, data sha256 and config)"
        )),
        source: record.source,
        key: key.to_string(),
        version: Some(uri),
        run_id: stored.run_id.clone(),
        challenger: record.challenger,
        champion: record.champion,
        candidate_alias: settings.candidate_alias.clone(),
        seconds: None,
    };
    report(&out, json)
}

/// Prints the outcome and returns its exit code.
fn report(out: &RetrainOutput, json: bool) -> Result<i32> {
    if json {
        crate::output::print_json(out)?;
    } else {
        match (&out.version, out.outcome) {
            (Some(v), "candidate") => {
                println!("retrained {v}: candidate (@{})", out.candidate_alias)
            }
            (Some(v), "rejected") => println!("retrained {v}: rejected by a gate"),
            (version, _) => println!(
                "nothing new{}",
                version
                    .as_ref()
                    .map_or(String::new(), |v| format!(" ({v})"))
            ),
        }
        if let Some(source) = &out.source {
            println!("  source     {source}");
        }
        if let Some(reason) = &out.reason {
            println!("  reason     {reason}");
        }
        if let Some(c) = &out.challenger {
            println!(
                "  validation {} .. {} (bars sha256 {})",
                c.range.0,
                c.range.1,
                c.bars_sha256.get(..12).unwrap_or_default()
            );
            let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
            let champion = out.champion.as_ref();
            println!("               challenger  champion");
            for (label, mine, theirs) in [
                ("sharpe", c.sharpe, champion.and_then(|c| c.sharpe)),
                ("psr", c.psr, champion.and_then(|c| c.psr)),
                (
                    "max drawdown",
                    Some(c.max_drawdown),
                    champion.map(|c| c.max_drawdown),
                ),
                (
                    "total return",
                    Some(c.total_return),
                    champion.map(|c| c.total_return),
                ),
            ] {
                println!("  {label:<12} {:>10}  {:>8}", show(mine), show(theirs));
            }
        }
    }
    std::io::stdout().flush()?;
    Ok(out.exit_code)
}
