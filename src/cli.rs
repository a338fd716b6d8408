//! Command-line interface: every subcommand, flag and help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ratchet_agents::Arithmetic;
use ratchet_config::{Algo, Device, EnvKind};

const ABOUT: &str =
    "Train DQN/PPO trading agents, version every model in an MLflow store, and backtest them.";

const AFTER_HELP: &str = "\
Examples:
  ratchet train                                   PPO on the bundled GOOGL data, default config
  ratchet train --config configs/dqn-eurusd.toml  a config file (flags override it)
  ratchet train --env cartpole --algo dqn         the CartPole sanity check
  ratchet train --from models:/googl-ppo@production --steps 20000
  ratchet retrain models:/googl-ppo@production --data bars.csv   continue on new bars, gated
  ratchet backtest models:/googl-ppo/1 --out reports/googl-v1
  ratchet evaluate models:/googl-ppo/1 --walk-forward --folds 4
  ratchet models list googl-ppo
  ratchet models promote models:/googl-ppo/3 --alias production
  ratchet sweep configs/sweep-cartpole.toml       many configurations x seeds, ranked
  ratchet serve models:/googl-ppo@production      live decisions over HTTP, following the alias
  ratchet features export models:/googl-ppo/1 --feast feature_repo   its features for Feast

The store is MLflow's own format: ./mlruns unless --tracking-uri or MLFLOW_TRACKING_URI
says otherwise (a directory, a file: URI, or an http(s):// MLflow server). View it with
  MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ./mlruns";

#[derive(Parser, Debug)]
#[command(name = "ratchet", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where runs and models live: a directory, a file: URI or an http(s):// MLflow server.
    #[arg(long, global = true, env = "MLFLOW_TRACKING_URI", value_name = "URI")]
    pub tracking_uri: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an agent (or continue training a registered version) and register the result.
    #[command(after_help = TRAIN_HELP)]
    Train(TrainArgs),
    /// Continue a registered version on data that grew, judge it against the current holder
    /// of its alias on the same new bars, and register it (idempotent; for schedulers).
    #[command(after_help = RETRAIN_HELP)]
    Retrain(RetrainArgs),
    /// Run a registered model over a date range and write JSON, Markdown and HTML reports.
    #[command(after_help = BACKTEST_HELP)]
    Backtest(BacktestArgs),
    /// Judge a registered version on its validation range, or walk it forward over the bars
    /// after its training range (--walk-forward).
    #[command(after_help = EVALUATE_HELP)]
    Evaluate(EvaluateArgs),
    /// Inspect and manage registered model versions.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Train the configurations of a sweep file (on a local pool or a Ray cluster) and rank
    /// them.
    #[command(
        after_help = SWEEP_HELP,
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Sweep(SweepArgs),
    /// Serve live decisions from a registered version over HTTP, following its alias (hot
    /// swap), with an optional canary and shadow, Prometheus metrics and SLO rollback.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Feature data for other tools: a version's (or a config's) features as a Feast
    /// repository.
    #[command(subcommand)]
    Features(FeaturesCommand),
    /// Tracked runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Tracked experiments.
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
}

const TRAIN_HELP: &str = "\
Every flag can also be set in the TOML file given by --config; flags win. The file also
holds the data split, the [features] list, the [trading] environment and the [ppo]/[dqn]
hyperparameters (and [retrain], read by `ratchet retrain`): see configs/ for complete,
commented examples.

Examples:
  ratchet train
  ratchet train --algo dqn --steps 30000 --seed 7 --model-name googl-dqn
  ratchet train --data my_bars.parquet --config configs/ppo-googl.toml
  ratchet train --config configs/universe-ppo.toml    (one policy over many instruments)
  ratchet train --data \"prices/*.parquet\"             (a universe of your own files)
  ratchet train --env cartpole --algo ppo --steps 100000
  ratchet train --from models:/googl-ppo@production --steps 20000
  ratchet train --resume 3f1c2a9e0b5d4c7e8f6a1b2c3d4e5f60";

#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// TOML configuration file; flags override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Algorithm.
    #[arg(long, value_enum)]
    pub algo: Option<Algo>,
    /// Environment: the trading environment over --data, or the CartPole sanity check.
    #[arg(long, value_enum)]
    pub env: Option<EnvKind>,
    /// Market data, CSV or Parquet (default: the bundled GOOGL daily bars); a universe as a
    /// glob pattern or comma-separated files ("prices/*.parquet", "a.csv,b.csv").
    #[arg(long, value_name = "FILES")]
    pub data: Option<String>,
    /// Environment steps to train for (added to the source's when continuing).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Seed of every random draw (initialisation, exploration, shuffling, episode starts).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Compute device for the network: the CPU (flex backend) or a GPU through wgpu.
    #[arg(long, value_enum)]
    pub device: Option<Device>,
    /// How the CPU kernels add up matrix products: `exact` (each product rounded, the default)
    /// or `fma` (fused multiply-adds: faster on Intel cores, different bits). Recorded with the
    /// version; `--from` keeps the version's own unless this is given.
    #[arg(long, value_name = "exact|fma", value_parser = str::parse::<Arithmetic>, conflicts_with = "resume")]
    pub arithmetic: Option<Arithmetic>,
    /// Registered model name the new version goes to.
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Experiment the run is logged under.
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Continue training a registered version (models:/NAME/VERSION, models:/NAME@ALIAS).
    #[arg(long, value_name = "MODEL_URI", conflicts_with_all = ["resume", "algo", "env"])]
    pub from: Option<String>,
    /// Restart an interrupted run from its last checkpoint.
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["from", "config", "algo", "env", "data"])]
    pub resume: Option<String>,
    /// Write a checkpoint every N environment steps.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Tag a new run KEY=VALUE (repeatable); `ratchet sweep` nests its trials this way.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag, conflicts_with_all = ["resume", "from"])]
    pub tags: Vec<(String, String)>,
    /// Print the result as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

const RETRAIN_HELP: &str = "\
The bars of --data after the last bar MODEL_URI's version was trained and judged on are new.
The next version's ranges are cut from the newest bars by the [retrain] section of --config:
  window = \"anchored\"       train from the first bar, or \"rolling\" with train_bars = N:
                            the N bars before the validation range (in new episodes)
  validation_bars = 252     the new validation range, just before the test range
  test_bars = 63            the newest bars, held back (never trained on or judged);
                            0 holds back none: the newest bars validate
  min_val_sharpe, max_drawdown, beat_champion_by = 0.0,
  compare_on = \"sharpe\" (or \"psr\", or \"none\": no comparison with the champion)
  candidate_alias = \"candidate\"
Training continues the version exactly as `train --from` does; the new version (challenger)
and the alias's current holder (champion) are judged greedily on the same validation bars.
The new version is registered with its parent and both evaluations; passing every gate makes
it `validated` with the candidate alias, failing one leaves it `registered` with the reason.
With no version behind the alias yet, the config trains the first one.

The same source version, data file (sha256) and resolved config again do nothing; two runs at
once make one version; a run killed part-way is finished by the next one.

Exit codes:
  0  a candidate was registered (it passed the gates)
  3  nothing new: no bar past the source's last one, or these inputs were retrained already
  4  a version was registered and rejected by a gate (aliases untouched)
  1  error (2: bad command line)

Examples:
  ratchet retrain models:/googl-ppo@production --data data/googl-latest.parquet
  ratchet retrain models:/googl-ppo@production --data bars.csv --config retrain.toml --json
  ratchet retrain models:/googl-ppo@production --data bars.csv --wait-for-data 3600";

#[derive(Args, Debug)]
pub struct RetrainArgs {
    /// The version to continue, normally an alias (models:/NAME@production); its current
    /// holder is the champion.
    #[arg(value_name = "MODEL_URI")]
    pub model: String,
    /// The market data, grown past the source version's (CSV or Parquet).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// TOML file with the [retrain] section (and, to change them, [ppo]/[dqn] and
    /// checkpoint_every as `train --from --config` takes them).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Environment steps to train (default: the source version's own run.steps).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// The alias a challenger that passes the gates gets (default: [retrain]
    /// candidate_alias, `candidate`).
    #[arg(long, value_name = "ALIAS")]
    pub candidate_alias: Option<String>,
    /// Wait up to SECONDS for --data to hold bars past the source version's last one
    /// (checking every 2 s), then exit 3 (nothing new).
    #[arg(long, value_name = "SECONDS")]
    pub wait_for_data: Option<u64>,
    /// Print the result as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("'{text}' is not a whole number: {e}")),
    }
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

const SERVE_HELP: &str = "\
The server keeps one session per symbol (its online features and position) and answers each
POST /v1/bars with the position for the next bar. It follows the aliases: when one moves
(`ratchet models promote`), the new version is loaded, verified and warmed in the background
and swapped in without a failed request. Only `validated` or `production` versions are served
unless --allow-unvalidated. Set RATCHET_SERVE_TOKEN to require `Authorization: Bearer TOKEN`
on /v1/bars, /v1/deployment and /v1/reload (/healthz, /readyz and /metrics stay open);
--tls-cert and --tls-key serve HTTPS. Ctrl-C or SIGTERM drains requests in flight and exits 0; SIGHUP checks
the aliases now.

Endpoints:
  POST /v1/bars        {\"symbol\": \"GOOGL\", \"bars\": [{\"timestamp\": ..., \"open\": ..., \"high\": ...,
                       \"low\": ..., \"close\": ..., \"volume\": ...}]} (or a list of such objects)
                       and, for a version with outside features, \"external\": {\"vix\": 13.2}
  GET  /v1/deployment  what is live, and the history of swaps and rollbacks
  POST /v1/reload      check the aliases now
  GET  /healthz, /readyz, /metrics (Prometheus)

An SLO file (TOML) sets limits on the production and canary versions over a rolling window.
configs/slo.toml holds (a limit left out is not checked; the window and the least number of
decisions judged default to these values):
  window_seconds = 60, min_decisions = 20, max_error_rate = 0.05,
  max_p99_latency_ms = 5.0, max_drawdown = 0.10
A version that breaks one (or fails to load) has its alias rolled back. With --auto-promote
AFTER, a canary that has served for AFTER and answered --auto-promote-decisions decisions
without breaking one becomes production: the production alias moves to it (in the alias
history, as `ratchet models promote` moves it) and production swaps to it.

With --feast-online URL, a bar that does not carry a Feast source's values (the version's
[[features.feast]]) gets the row Feast's feature server holds for its symbol, in the same
point-in-time join: a row stamped after the bar is not used for it, a row already joined is
not joined again, and a failed, late (--feast-timeout) or empty answer adds nothing, so the
version's max_staleness and missing rule decide. Each bar Feast gave nothing usable is counted
in ratchet_feast_online_missing_total{source, reason}; a 503 answers only where the version's
rule makes the missing value an error.

Examples:
  ratchet serve models:/googl-ppo@production
  ratchet serve models:/googl-feast@production --feast-online http://localhost:6566
  ratchet serve models:/googl-ppo@production --canary models:/googl-ppo@candidate \\
      --canary-percent 10 --shadow models:/googl-ppo@challenger --slo configs/slo.toml
  ratchet serve models:/googl-ppo@production --canary models:/googl-ppo@candidate \\
      --slo configs/slo.toml --auto-promote 2h --auto-promote-decisions 500
  curl -s localhost:8080/v1/bars -d @bars.json";

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The production version to serve, normally an alias: models:/NAME@production.
    #[arg(value_name = "MODEL_URI")]
    pub model: String,
    /// A canary version answering a stable share of the symbols (models:/NAME@ALIAS).
    #[arg(long, value_name = "MODEL_URI")]
    pub canary: Option<String>,
    /// Share of symbols the canary answers, in percent (chosen by a hash of the symbol).
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 10.0,
        requires = "canary"
    )]
    pub canary_percent: f64,
    /// A shadow version deciding on the same bars without answering (its decisions and paper
    /// PnL show in /metrics).
    #[arg(long, value_name = "MODEL_URI")]
    pub shadow: Option<String>,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Seconds between checks of the aliases.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub poll_seconds: f64,
    /// SLO file (TOML); a version that breaks it has its alias rolled back.
    #[arg(long, value_name = "FILE")]
    pub slo: Option<PathBuf>,
    /// Promote the canary to production once it has served this long ("30m", "2h") and
    /// answered --auto-promote-decisions decisions within the SLO (needs --canary, --slo and
    /// a production alias).
    #[arg(long, value_name = "AFTER", value_parser = humantime::parse_duration, requires_all = ["canary", "slo"])]
    pub auto_promote: Option<std::time::Duration>,
    /// Decisions the canary must have answered before --auto-promote promotes it.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        requires = "auto_promote"
    )]
    pub auto_promote_decisions: u64,
    /// Serve versions whose status is not `validated` or `production`.
    #[arg(long)]
    pub allow_unvalidated: bool,
    /// Let a universe version decide for symbols outside its universe (refused with a 400
    /// naming the universe otherwise).
    #[arg(long)]
    pub any_symbol: bool,
    /// Most symbols with a session; a request that would open more is answered 429 (see
    /// crates/serve/README.md for the memory a session takes).
    #[arg(long, value_name = "N", default_value_t = ratchet_serve::DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key), for a server that is not
    /// on loopback.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A Feast feature server (`feast serve`, e.g. http://localhost:6566) to read the values
    /// of the version's Feast sources ([[features.feast]]) from, for bars that do not carry
    /// them in "external".
    #[arg(long, value_name = "URL")]
    pub feast_online: Option<String>,
    /// How long each call to --feast-online may take ("200ms", "2s"; one call per request
    /// and join key); past it, the request's bars get no new Feast values.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration, requires = "feast_online")]
    pub feast_timeout: std::time::Duration,
}

const SWEEP_HELP: &str = "\
A sweep file names a base config and the axes that vary it ([grid] values, [random] draws
from a seeded sampler, explicit [[list]] entries) and the seeds; every configuration is
trained once per seed by an ordinary `ratchet train` run, nested under one parent run.
Trials already finished in the store are not run again. See configs/sweep-*.toml.

Examples:
  ratchet sweep configs/sweep-cartpole.toml
  ratchet sweep configs/sweep-cartpole.toml --workers 4 --retries 2 --json
  ratchet sweep configs/sweep-googl.toml --ray http://head:8265 --tracking-uri http://mlflow:5000
  ratchet sweep configs/sweep-googl.toml --register-best --final-test --html reports/sweep.html
  ratchet sweep show cartpole-lr --html reports/cartpole-lr.html

Trials are ranked on the validation range only. --register-best and --final-test act on the
selected trial once every trial has finished; the final test is the one look at its test
range the selection needs, and is counted on the version (`ratchet models show`).";

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// The sweep file (TOML).
    #[arg(value_name = "FILE", required = true)]
    pub file: Option<PathBuf>,
    /// Trials running at once, at least 1 (default: the number of cores; with --ray, all of
    /// them, and Ray queues what its cluster cannot run yet).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub workers: Option<usize>,
    /// Run the trials as jobs on a Ray cluster: its dashboard address (Jobs API).
    #[arg(long, value_name = "URL")]
    pub ray: Option<String>,
    /// Attempts after the first for a trial that fails.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub retries: u32,
    /// Continue interrupted trials from their last checkpoint instead of starting them over.
    #[arg(long)]
    pub resume: bool,
    /// Print the leaderboard as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Once every trial has finished, point ALIAS (default: best) at the selected trial's
    /// version (the best by the sweep's validation metric) and tag it with the sweep's
    /// statistics (`ratchet.sweep.*`: trials, deflated Sharpe, PBO).
    #[arg(long, value_name = "ALIAS", num_args = 0..=1, require_equals = true, default_missing_value = "best")]
    pub register_best: Option<String>,
    /// Once every trial has finished, backtest the selected trial's version once on its test
    /// range (reports under --out; counted as a test look) and add
    /// its test Sharpe ratio to the leaderboard.
    #[arg(long)]
    pub final_test: bool,
    /// Directory for the final test's reports (default: reports/sweep-NAME-final-test).
    #[arg(long, value_name = "DIR", requires = "final_test")]
    pub out: Option<PathBuf>,
    /// Also write the leaderboard as a self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// The leaderboard of a sweep in the store: by name, sweep id or parent run id.
    Show {
        sweep: String,
        #[arg(long)]
        json: bool,
        /// Also write the leaderboard as a self-contained HTML page.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
}

const BACKTEST_HELP: &str = "\
The policy acts greedily at each bar's close and fills at the next bar's open, with the
costs and slippage it was trained with. A range that overlaps the version's training data
is flagged in the report and on stderr.

Examples:
  ratchet backtest models:/googl-ppo/1
  ratchet backtest models:/googl-ppo@production --from 2017-01-01 --to 2018-08-29
  ratchet backtest models:/eurusd-dqn/2 --data data/FOREX_EURUSD_1H_ASK.csv --out reports/eurusd";

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// The version to test: models:/NAME/VERSION, models:/NAME/HUMAN_ID or models:/NAME@ALIAS.
    pub model: String,
    /// Market data (default: the file the version was trained on).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// First date (inclusive, YYYY-MM-DD or an ISO datetime); default: the version's test range.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last date (inclusive).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Output directory for report.json, report.md and report.html.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the report's metrics as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

const EVALUATE_HELP: &str = "\
Without --walk-forward: the version's greedy policy on its validation range, the figures
training logged as val/* (the test range is not read).

--walk-forward cuts the bars after the version's training range (its validation and test
ranges) into --folds consecutive folds. For each fold, training continues from the version
for --steps steps on the bars before the fold, then the policy is judged on the fold:
  --anchored (default)  train on every bar from the start of the data up to the fold; the
                        version's full training state continues (the `train --from` path;
                        a universe's in new episodes, its instruments laid out anew)
  --rolling             train on a window as long as the version's training range, ending at
                        the fold; the version's weights with a fresh optimizer and fresh
                        environments (a saved episode position lies outside a moved window)
Every fold starts from the version. Training is deterministic: the same command gives the
same numbers. Nothing is registered; the folds reach into the test range, so a walk-forward
counts as one look at it (`ratchet models show`).

Examples:
  ratchet evaluate models:/googl-ppo/3
  ratchet evaluate models:/googl-ppo/3 --walk-forward --folds 4
  ratchet evaluate models:/googl-ppo@production --walk-forward --folds 6 --rolling --steps 20000 --json";

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The version: models:/NAME/VERSION, models:/NAME/HUMAN_ID or models:/NAME@ALIAS.
    pub model: String,
    /// Walk forward over the bars after the training range instead.
    #[arg(long)]
    pub walk_forward: bool,
    /// Folds of the walk-forward.
    #[arg(long, value_name = "K", default_value_t = 4, requires = "walk_forward")]
    pub folds: usize,
    /// Each fold trains on every bar before it (the default).
    #[arg(long, conflicts_with = "rolling", requires = "walk_forward")]
    pub anchored: bool,
    /// Each fold trains on a window as long as the version's training range.
    #[arg(long, requires = "walk_forward")]
    pub rolling: bool,
    /// Environment steps each fold trains before it is judged.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        requires = "walk_forward"
    )]
    pub steps: u64,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Registered models, or the versions of one model.
    List(ListArgs),
    /// Everything recorded about one version.
    Show(VersionArgs),
    /// Point an alias (default: production) at a version; the previous holder is remembered.
    Promote(PromoteArgs),
    /// Move an alias back to its previous holder.
    Rollback(RollbackArgs),
    /// Metrics of two or more versions side by side, the better one marked.
    Compare(CompareArgs),
    /// Ancestors and descendants of a version.
    Lineage(VersionArgs),
    /// Check a version's files, checksums, metadata and tensors.
    Validate(VersionArgs),
    /// The feature configuration a version was trained with (TOML; --json for JSON).
    Features(VersionArgs),
    /// Delete old versions, never the production version or its ancestors.
    Cleanup(CleanupArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Model name; without it, all registered models.
    pub name: Option<String>,
    /// Only versions with this status (registered, validated, production, archived).
    #[arg(long)]
    pub status: Option<String>,
    /// Only versions whose metric passes, e.g. `val/sharpe>=1.0` or `sharpe>=1.0`
    /// (repeatable; an unknown metric is an error listing the known ones).
    #[arg(long = "metric", value_name = "NAME>=X")]
    pub metrics: Vec<String>,
    /// Only versions created on or after this date.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Only versions created on or before this date.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Only versions trained with this feature hash (a prefix is enough).
    #[arg(long, value_name = "HASH")]
    pub feature_hash: Option<String>,
    /// Only universe versions whose instruments include this symbol.
    #[arg(long, value_name = "SYMBOL")]
    pub symbol: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// models:/NAME/VERSION, models:/NAME/HUMAN_ID or models:/NAME@ALIAS.
    pub model: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PromoteArgs {
    pub model: String,
    /// Alias to set.
    #[arg(long, default_value = "production")]
    pub alias: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Model name.
    pub name: String,
    #[arg(long, default_value = "production")]
    pub alias: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Two or more model URIs.
    #[arg(num_args = 2.., required = true)]
    pub models: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// Model name.
    pub name: String,
    /// Keep the N newest versions.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Delete only versions older than DAYS.
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<u64>,
    /// Show what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum FeaturesCommand {
    /// Write the features of a version's (or a training config's) bars as a Feast repository:
    /// a Parquet offline source (entity `symbol`, `event_timestamp`, `created`, the features
    /// as float32), feature_store.yaml (local provider, file offline store, SQLite online
    /// store, Feast's MLflow integration on for this store, so that its resolve_features
    /// finds the versions) and the definitions (entity, file source, feature view, feature
    /// service named by the feature hash). Then `feast apply` in DIR.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// models:/NAME/VERSION (or @ALIAS), or a training config file (its [data] and
    /// [features]).
    pub source: String,
    /// The repository directory to write; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub feast: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Runs, newest first (by start time), of every experiment or of one.
    List {
        /// Only the runs of the experiment with this name.
        #[arg(long, value_name = "NAME")]
        experiment: Option<String>,
        /// Only runs in this state: running, scheduled, finished, failed or killed.
        #[arg(long, value_name = "STATUS", value_parser = parse_run_status)]
        status: Option<ratchet_mlflow::RunStatus>,
        /// At most this many runs (the newest).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_run_status(text: &str) -> Result<ratchet_mlflow::RunStatus, String> {
    ratchet_mlflow::RunStatus::parse(text).ok_or_else(|| {
        format!("unknown run status {text:?}; use running, scheduled, finished, failed or killed")
    })
}

#[derive(Subcommand, Debug)]
pub enum ExperimentsCommand {
    /// All experiments.
    List {
        #[arg(long)]
        json: bool,
    },
}
