//! The training configuration: one TOML file (see `configs/`), overridden by flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use ratchet_agents::{Arithmetic, DqnConfig, PpoConfig};
use ratchet_data::{FeatureConfig, LoadOptions, SplitSpec};
use ratchet_env::TradingConfig;

use crate::cli::{Algo, Device, EnvKind, TrainArgs};

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
    /// Timestamp layout (strftime, or `epoch_s`/`epoch_ms`); detected when absent.
    pub timestamp_format: Option<String>,
    /// Use `Adj Close` as the close, scaling open/high/low alike.
    pub use_adj_close: bool,
    /// Sort and de-duplicate timestamps instead of failing on them.
    pub repair: bool,
    /// Train/validation/test split.
    pub split: SplitSpec,
}

impl DataConfig {
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
            timestamp_format: None,
            use_adj_close: false,
            repair: false,
            split: SplitSpec::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML config file; unknown keys are errors (a typo must not silently fall
    /// back to a default).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::bundled::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        // TOML's own layout: the line, a caret under the key, then the message.
        let config = Self::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        config
            .validate()
            .with_context(|| format!("in config file {}", path.display()))?;
        Ok(config)
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

    /// Applies the command-line flags over the file's values.
    pub fn apply_flags(&mut self, args: &TrainArgs) {
        let run = &mut self.run;
        if let Some(a) = args.algo {
            run.algo = a;
        }
        if let Some(e) = args.env {
            run.env = e;
        }
        if let Some(s) = args.steps {
            run.steps = s;
        }
        if let Some(s) = args.seed {
            run.seed = s;
        }
        if let Some(d) = args.device {
            run.device = d;
        }
        if let Some(a) = args.arithmetic {
            self.set_arithmetic(a);
        }
        let run = &mut self.run;
        if let Some(n) = &args.model_name {
            run.model_name = Some(n.clone());
        }
        if let Some(x) = &args.experiment {
            run.experiment = x.clone();
        }
        if let Some(c) = args.checkpoint_every {
            run.checkpoint_every = c;
        }
        if let Some(d) = &args.data {
            self.data.file = d.clone();
        }
        self.run_tags.extend(args.tags.iter().cloned());
        if !self.dqn_schedule_given {
            self.dqn.total_timesteps = self.run.steps;
        }
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

    pub fn validate(&self) -> Result<()> {
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
            .map_err(|e| anyhow::anyhow!("[features]: {e}"))?;
        Ok(())
    }

    /// Refuses a fresh run too short to update its network once (it would register an
    /// untrained policy): PPO learns after each full rollout, DQN at the first multiple of
    /// `train_freq` past `learning_starts`.
    pub fn check_learns(&self) -> Result<()> {
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

    #[cfg(test)]
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a TrainConfig serialises")
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
        let base = match self.run.env {
            EnvKind::Cartpole => "cartpole".to_string(),
            EnvKind::Trading => self
                .data
                .file
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

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> TrainConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(name);
        TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"))
    }

    #[test]
    fn the_ppo_example_spells_out_the_default_config() {
        let mut config = example("ppo-googl.toml");
        config.dqn_schedule_given = false;
        let default = TrainConfig::default();
        assert_eq!(config.to_json(), default.to_json());
    }

    #[test]
    fn every_example_config_parses_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".toml") || name.starts_with("sweep-") {
                continue; // sweep files: src/sweep.rs tests them
            }
            if name == "slo.toml" {
                let slo = ratchet_serve::Slo::from_file(&path).unwrap();
                assert_eq!(slo.max_error_rate, Some(0.05));
                continue;
            }
            TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
        assert!(n >= 3);
        assert_eq!(example("cartpole-dqn.toml").dqn.hidden, vec![256, 256]);
        assert!(!example("dqn-eurusd.toml").dqn_schedule_given);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let p = dir.path().join("c.toml");
            std::fs::write(&p, text).unwrap();
            TrainConfig::from_file(&p)
        };
        let e = write("[run]\nsteeps = 5\n").unwrap_err().to_string();
        assert!(e.contains("steeps"), "{e}");
        let e = write("[run]\nsteps = 0\n").unwrap_err();
        assert!(format!("{e:#}").contains("run.steps"), "{e:#}");
        let e = write("[run]\nalgo = \"dqn\"\nn_envs = 4\n").unwrap_err();
        assert!(format!("{e:#}").contains("n_envs"), "{e:#}");
        let c = write("[dqn]\ntotal_timesteps = 7\n").unwrap();
        assert!(c.dqn_schedule_given);
        let e = write("[run]\nselect = \"best_val_sharpe\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("needs run.eval_every"), "{e:#}");
        let e = write("[run]\nselect = \"best\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown variant `best`"), "{e}");
        let e = write("[run]\neval_every = 0\n").unwrap_err();
        assert!(
            format!("{e:#}").contains("run.eval_every must be at least 1"),
            "{e:#}"
        );
        let c = write("[run]\nselect = \"best_val_sharpe\"\neval_every = 500\n").unwrap();
        assert_eq!(
            (c.run.select, c.run.eval_every),
            (Select::BestValSharpe, Some(500))
        );
        // Defaults are left out of the recorded config: older configs hash the same.
        let recorded = TrainConfig::default().to_json();
        assert!(
            recorded["run"].get("select").is_none() && recorded["run"].get("eval_every").is_none()
        );
    }

    #[test]
    fn a_run_too_short_to_learn_is_refused_with_the_minimum() {
        let too_short = |text: &str| {
            let mut c = TrainConfig::parse(text).unwrap();
            c.apply_flags(&TrainArgs::default());
            c.check_learns().map_err(|e| e.to_string())
        };
        assert_eq!(
            too_short("[run]\nsteps = 100\n").unwrap_err(),
            "run.steps 100 is less than one PPO rollout (ppo.n_steps 2048 x run.n_envs 1 = \
             2048 steps), so the network would never be updated; train at least 2048 steps, or \
             lower ppo.n_steps"
        );
        assert!(too_short("[run]\nsteps = 2048\n").is_ok());
        assert!(too_short("[run]\nsteps = 511\nn_envs = 2\n[ppo]\nn_steps = 256\n").is_err());
        assert_eq!(
            too_short("[run]\nalgo = \"dqn\"\nsteps = 50\n").unwrap_err(),
            "run.steps 50 ends before DQN's first update at step 104 (after \
             dqn.learning_starts 100, every dqn.train_freq 4 steps), so the network would never \
             be updated; train at least 104 steps, or lower dqn.learning_starts"
        );
        assert!(too_short("[run]\nalgo = \"dqn\"\nsteps = 104\n").is_ok());
        assert!(too_short("[run]\nalgo = \"dqn\"\nsteps = 103\n").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let mut config = example("dqn-eurusd.toml");
        let args = TrainArgs {
            steps: Some(123),
            seed: Some(9),
            model_name: Some("x".into()),
            ..TrainArgs::default()
        };
        config.apply_flags(&args);
        assert_eq!((config.run.steps, config.run.seed), (123, 9));
        assert_eq!(config.model_name(), "x");
        assert_eq!(
            config.dqn.total_timesteps, 123,
            "the schedule follows the run"
        );
    }
}
