//! The run configuration: everything that determines a training run, as one TOML file holds
//! it (the `configs/` examples) and as every version's `metadata.json` records it. Its schema,
//! defaults and validation live here, so that every command that reads a version (training,
//! backtests, evaluation, serving, sweeps) decodes it the same way; and so does the one
//! function from a version's weights to the [`TradingPolicy`] that decides
//! ([`TrainConfig::trading_policy`]).
//!
//! ```
//! use ratchet_config::{Algo, TrainConfig};
//!
//! let config = TrainConfig::parse("[run]\nalgo = \"dqn\"\nsteps = 50000\n").unwrap();
//! config.validate().unwrap();
//! assert_eq!(config.run.algo, Algo::Dqn);
//! assert_eq!(config.model_name(), "stocks-googl-dqn");
//! ```

pub mod bundled;
mod retrain;

pub use retrain::{CompareOn, Cut, Decision, Figures, RetrainConfig, Window};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ratchet_agents::{AgentError, Arithmetic, Dqn, DqnConfig, Ppo, PpoConfig, TradingPolicy};
use ratchet_data::{FeatureConfig, LoadOptions, SplitSpec};
use ratchet_env::{TradingConfig, TradingEnv};
use ratchet_registry::{ModelVersion, NamedTensor};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not TOML, or keys and values the schema does not have; with TOML's own layout (the
    /// line, a caret under the key, the message).
    #[error("{0}")]
    Syntax(String),
    /// A file whose values do not go together.
    #[error("in config file {}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<ConfigError>,
    },
    /// A value out of range, or values that do not go together.
    #[error("{0}")]
    Invalid(String),
    /// A version's metadata holds no configuration this code can read.
    #[error("the version's configuration was not written by this version of ratchet: {0}")]
    Unreadable(serde_json::Error),
    /// The weights do not make the network the configuration describes.
    #[error(transparent)]
    Weights(#[from] AgentError),
}

macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(ConfigError::Invalid(format!($($arg)*)))
    };
}

/// The bundled market data used when neither the config nor `--data` names a file.
pub const DEFAULT_DATA: &str = "data/STOCKS_GOOGL.csv";

/// Everything that determines a training run. Recorded whole with every model version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub run: RunConfig,
    pub data: DataConfig,
    pub features: FeatureConfig,
    pub trading: TradingConfig,
    pub ppo: PpoConfig,
    pub dqn: DqnConfig,
    /// `ratchet retrain`: how the next version's ranges are cut and the gates it must pass.
    /// Left out of the recorded config at its defaults, so configs (and hashes) that do not
    /// set it are unchanged.
    #[serde(skip_serializing_if = "RetrainConfig::is_default")]
    pub retrain: RetrainConfig,
    /// Whether `[dqn] total_timesteps` was given; otherwise a fresh run lays DQN's exploration
    /// schedule over its own `run.steps`, as Stable-Baselines3's `learn(total_timesteps)` does.
    #[serde(skip)]
    pub dqn_schedule_given: bool,
    /// Extra tags of the run (`--tag`), not part of the configuration.
    #[serde(skip)]
    pub run_tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub algo: Algo,
    pub env: EnvKind,
    /// Environment steps to train for.
    pub steps: u64,
    pub seed: u64,
    /// Copies of the environment stepped together (PPO's vectorised rollouts).
    pub n_envs: usize,
    pub device: Device,
    /// Registered model name; default `<data file stem>-<algo>` (or `cartpole-<algo>`).
    pub model_name: Option<String>,
    pub experiment: String,
    /// Checkpoint interval in environment steps.
    pub checkpoint_every: u64,
    /// Which weights the run registers: the last ones, or those with the best Sharpe ratio
    /// on the validation range among the evaluations every `eval_every` steps. Left out of
    /// the recorded config at its default, so configs (and sweep trial ids) from before it
    /// existed are unchanged.
    #[serde(skip_serializing_if = "Select::is_last")]
    pub select: Select,
    /// Evaluate the greedy policy on the validation range every N environment steps (the
    /// `val_curve/*` metrics; the candidates of `select = "best_val_sharpe"`). Unset: only
    /// once, at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<u64>,
}

/// `[run] select`: which of a run's evaluated states becomes the registered version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The state at the end of training.
    #[default]
    Last,
    /// The evaluated state (every `eval_every` steps, and the last) with the highest Sharpe
    /// ratio on the validation range; the earliest on ties.
    BestValSharpe,
}

impl Select {
    pub fn is_last(&self) -> bool {
        *self == Select::Last
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Select::Last => "last",
            Select::BestValSharpe => "best_val_sharpe",
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            algo: Algo::Ppo,
            env: EnvKind::Trading,
            steps: 300_000,
            seed: 0,
            n_envs: 1,
            device: Device::Cpu,
            model_name: None,
            experiment: "ratchet".into(),
            checkpoint_every: 10_000,
            select: Select::Last,
            eval_every: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// CSV or Parquet file of OHLCV bars.
    pub file: PathBuf,
    /// A universe instead of `file`: CSV or Parquet files (paths or glob patterns, `*`
    /// `?` `[…]`), each one instrument named by the file, or many in long format with a
    /// `symbol`/`ticker` column. Left out of the recorded config when empty, so the configs
    /// (and hashes) of single-instrument runs are unchanged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// A universe's instrument with too few bars in one of the ranges (the window plus one
    /// bar in training, two decisions in validation and test): skipped with a warning, or
    /// an error.
    #[serde(skip_serializing_if = "ShortHistory::is_skip")]
    pub short_history: ShortHistory,
    /// Timestamp layout (strftime, or `epoch_s`/`epoch_ms`); detected when absent.
    pub timestamp_format: Option<String>,
    /// Use `Adj Close` as the close, scaling open/high/low alike.
    pub use_adj_close: bool,
    /// Sort and de-duplicate timestamps instead of failing on them.
    pub repair: bool,
    /// Train/validation/test split.
    pub split: SplitSpec,
}

/// `[data] short_history`: what a universe does with an instrument too short for a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortHistory {
    #[default]
    Skip,
    Error,
}

impl ShortHistory {
    pub fn is_skip(&self) -> bool {
        *self == ShortHistory::Skip
    }
}

impl DataConfig {
    /// Whether the run trades a universe (`files`) rather than one instrument (`file`).
    pub fn is_universe(&self) -> bool {
        !self.files.is_empty()
    }

    /// Takes what `--data` names: a universe when it is a glob pattern or a comma-separated
    /// list of files (or when this config already is one), else the one file.
    ///
    /// ```
    /// let mut data = ratchet_config::DataConfig::default();
    /// data.set_from_flag("prices/*.parquet, extra.csv");
    /// assert_eq!(data.files, ["prices/*.parquet", "extra.csv"]);
    /// ```
    pub fn set_from_flag(&mut self, value: &str) {
        if self.is_universe() || value.contains(['*', '?', '[', ',']) {
            self.files = value
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
        } else {
            self.file = PathBuf::from(value);
        }
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            timestamp_format: self.timestamp_format.clone(),
            use_adj_close: self.use_adj_close,
            repair: self.repair,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            file: PathBuf::from(DEFAULT_DATA),
            files: Vec::new(),
            short_history: ShortHistory::Skip,
            timestamp_format: None,
            use_adj_close: false,
            repair: false,
            split: SplitSpec::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML config file (a built-in one by its `configs/` path from any directory:
    /// [`bundled`]) and validates it; unknown keys are errors (a typo must not silently fall
    /// back to a default).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = bundled::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let mut config = Self::parse(&text).map_err(|e| {
            ConfigError::Syntax(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        config
            .features
            .resolve_feast()
            .map_err(|e| ConfigError::InFile {
                path: path.to_path_buf(),
                error: Box::new(ConfigError::Invalid(e.to_string())),
            })?;
        config.validate().map_err(|error| ConfigError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
        Ok(config)
    }

    /// A trial's config text as `ratchet train --config` takes it: parsed (unknown keys
    /// refused), the schedule laid over the run, validated, long enough to learn, and its
    /// data file present. What a sweep checks before it starts anything.
    pub fn load_trial(text: &str) -> Result<Self, ConfigError> {
        let mut config =
            Self::parse(text).map_err(|e| ConfigError::Syntax(e.message().to_string()))?;
        config
            .features
            .resolve_feast()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.settle_schedule();
        config.validate()?;
        config.check_learns()?;
        if config.run.env == EnvKind::Trading && !bundled::is_available(&config.data.file) {
            bail!("data.file {} does not exist", config.data.file.display());
        }
        Ok(config)
    }

    /// Lays DQN's exploration schedule over `run.steps` unless `[dqn] total_timesteps` was
    /// given, as Stable-Baselines3's `learn(total_timesteps)` does. Called once the steps are
    /// final (after the flags).
    pub fn settle_schedule(&mut self) {
        if !self.dqn_schedule_given {
            self.dqn.total_timesteps = self.run.steps;
        }
    }

    /// Parses a config file's text (not validated); unknown keys are errors.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let mut config: TrainConfig = toml::from_str(text)?;
        config.dqn_schedule_given = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("dqn")?.get("total_timesteps").cloned())
            .is_some();
        Ok(config)
    }

    /// The arithmetic of the run's algorithm ([`Arithmetic`]).
    pub fn arithmetic(&self) -> Arithmetic {
        match self.run.algo {
            Algo::Ppo => self.ppo.arithmetic,
            Algo::Dqn => self.dqn.arithmetic,
        }
    }

    /// Sets the arithmetic of the run's algorithm (the other's is not recorded).
    pub fn set_arithmetic(&mut self, arithmetic: Arithmetic) {
        match self.run.algo {
            Algo::Ppo => self.ppo.arithmetic = arithmetic,
            Algo::Dqn => self.dqn.arithmetic = arithmetic,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.run.steps == 0 {
            bail!("run.steps must be at least 1");
        }
        if self.run.n_envs == 0 {
            bail!("run.n_envs must be at least 1");
        }
        if self.run.algo == Algo::Dqn && self.run.n_envs != 1 {
            bail!("run.n_envs must be 1 for DQN (its replay buffer takes one transition per step)");
        }
        if self.run.checkpoint_every == 0 {
            bail!("run.checkpoint_every must be at least 1");
        }
        if self.arithmetic() == Arithmetic::Fma && self.run.device == Device::Wgpu {
            bail!(
                "arithmetic \"fma\" chooses how the CPU kernels compute; --device wgpu trains on \
                 the GPU in its own arithmetic: drop one of the two"
            );
        }
        if self.run.eval_every == Some(0) {
            bail!("run.eval_every must be at least 1 (leave it out to evaluate once, at the end)");
        }
        if self.run.select == Select::BestValSharpe {
            if self.run.env == EnvKind::Cartpole {
                bail!(
                    "run.select = \"best_val_sharpe\" needs the trading environment: CartPole has \
                     no validation range to take a Sharpe ratio on"
                );
            }
            if self.run.eval_every.is_none() {
                bail!(
                    "run.select = \"best_val_sharpe\" needs run.eval_every (the steps between \
                     validation evaluations, the candidates it picks from)"
                );
            }
        }
        self.features
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("[features]: {e}")))?;
        self.retrain.validate()
    }

    /// Refuses a fresh run too short to update its network once (it would register an
    /// untrained policy): PPO learns after each full rollout, DQN at the first multiple of
    /// `train_freq` past `learning_starts`.
    pub fn check_learns(&self) -> Result<(), ConfigError> {
        let steps = self.run.steps;
        match self.run.algo {
            Algo::Ppo => {
                let rollout = self.ppo.n_steps as u64 * self.run.n_envs as u64;
                if steps < rollout {
                    bail!(
                        "run.steps {steps} is less than one PPO rollout (ppo.n_steps {} x \
                         run.n_envs {} = {rollout} steps), so the network would never be \
                         updated; train at least {rollout} steps, or lower ppo.n_steps",
                        self.ppo.n_steps,
                        self.run.n_envs
                    );
                }
            }
            Algo::Dqn => {
                let (starts, every) = (self.dqn.learning_starts, self.dqn.train_freq.max(1));
                let first = (starts / every + 1) * every;
                if steps < first {
                    bail!(
                        "run.steps {steps} ends before DQN's first update at step {first} \
                         (after dqn.learning_starts {starts}, every dqn.train_freq {every} \
                         steps), so the network would never be updated; train at least {first} \
                         steps, or lower dqn.learning_starts"
                    );
                }
            }
        }
        Ok(())
    }

    /// The registered model name this run's version goes to.
    pub fn model_name(&self) -> String {
        if let Some(n) = &self.run.model_name {
            return n.clone();
        }
        let algo = match self.run.algo {
            Algo::Ppo => "ppo",
            Algo::Dqn => "dqn",
        };
        let file = match self.data.files.as_slice() {
            [] => Some(self.data.file.as_path()),
            [one] if !one.contains(['*', '?', '[']) => Some(Path::new(one)),
            _ => None,
        };
        let base = match (self.run.env, file) {
            (EnvKind::Cartpole, _) => "cartpole".to_string(),
            (EnvKind::Trading, None) => "universe".to_string(),
            (EnvKind::Trading, Some(file)) => file
                .file_stem()
                .map(|s| {
                    s.to_string_lossy()
                        .to_lowercase()
                        .replace(['_', ' ', '.'], "-")
                })
                .unwrap_or_else(|| "model".into()),
        };
        format!("{base}-{algo}")
    }
}

impl TrainConfig {
    /// The configuration a version was trained with, from its metadata.
    pub fn from_version(metadata: &ModelVersion) -> Result<Self, ConfigError> {
        let mut config: TrainConfig =
            serde_json::from_value(metadata.training.hyperparameters.clone())
                .map_err(ConfigError::Unreadable)?;
        // The recorded schedule length is explicit from now on.
        config.dqn_schedule_given = true;
        Ok(config)
    }

    /// The greedy network of a trading version's saved weights (action logits or Q-values),
    /// without building an agent: the network an agent restored from the same weights acts
    /// with.
    pub fn policy_network(
        &self,
        weights: &[NamedTensor],
    ) -> Result<ratchet_agents::InferenceMlp, ConfigError> {
        Ok(match self.run.algo {
            Algo::Ppo => Ppo::<TradingEnv>::policy_from_weights(&self.ppo, weights)?,
            Algo::Dqn => Dqn::<TradingEnv>::policy_from_weights(&self.dqn, weights)?,
        })
    }

    /// The decision rule of a trading version: its network and the position rule of its
    /// `[trading]` section. Backtests, walk-forward evaluation and `ratchet serve` all decide
    /// through it.
    pub fn trading_policy(&self, weights: &[NamedTensor]) -> Result<TradingPolicy, ConfigError> {
        self.trading_policy_of(self.policy_network(weights)?)
    }

    /// [`trading_policy`](Self::trading_policy) around a network already at hand (an agent's,
    /// during training).
    pub fn trading_policy_of(
        &self,
        network: ratchet_agents::InferenceMlp,
    ) -> Result<TradingPolicy, ConfigError> {
        if self.run.env != EnvKind::Trading {
            bail!("it was trained on CartPole; only trading models decide on market data");
        }
        Ok(TradingPolicy::new(network, self.trading.allow_short)?)
    }
}

/// `[run] algo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Ppo,
    Dqn,
}

/// `[run] env`: the trading environment over the data, or the CartPole sanity check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum EnvKind {
    Trading,
    Cartpole,
}

/// `[run] device`: where the networks train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Cpu,
    Wgpu,
}
