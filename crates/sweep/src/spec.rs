//! The sweep file: a base training config and the axes that vary it.
//!
//! ```toml
//! name = "cartpole-lr"                 # default: the file's stem
//! base = "cartpole-ppo.toml"           # a config file (relative to this file), or a [base] table
//! metric = "val/mean_return"          # what the leaderboard ranks by (default val/sharpe)
//! goal = "max"                         # max | min
//! seeds = [0, 1]                       # every configuration once per seed (sets run.seed)
//!
//! [grid]                               # every combination of these values
//! ppo.learning_rate = [0.0003, 0.001]
//! ppo.n_steps = [128, 256]
//!
//! [random]                             # `count` draws, reproducible from `seed`
//! count = 4
//! seed = 7
//! ppo.gamma = { uniform = [0.9, 0.999] }
//! ppo.ent_coef = { log_uniform = [1e-5, 1e-2] }
//! ppo.n_epochs = { int = [3, 10] }     # inclusive
//! trading.reward = { choice = ["log_return", "pnl"] }
//!
//! [[list]]                             # explicit configurations, merged over the base
//! ppo = { hidden = [128, 128] }
//! ```
//!
//! The configurations are the product of the blocks: grid points x random draws x list
//! entries (a missing block counts as one empty override), each trained once per seed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::error::{SweepError, invalid};

/// The config key the `seeds` list sets.
pub const SEED_KEY: &str = "run.seed";

/// Which way the leaderboard's metric is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    #[default]
    Max,
    Min,
}

impl Goal {
    /// `true` when `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Max => a > b,
            Goal::Min => a < b,
        }
    }
}

/// Reads a file's text: the sweep file and its `base` config.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// A distribution of a random axis.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Uniform over `[low, high)`.
    Uniform([f64; 2]),
    /// `exp` of a uniform over `[ln low, ln high)`: learning rates, coefficients.
    LogUniform([f64; 2]),
    /// An integer from `low` to `high`, both included.
    Int([i64; 2]),
    /// One of the values, each as likely.
    Choice(Vec<Value>),
}

/// The `[random]` block.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomAxes {
    pub count: usize,
    pub seed: u64,
    pub axes: Vec<(String, Distribution)>,
}

/// A parsed, checked sweep file.
#[derive(Clone, Debug)]
pub struct SweepFile {
    pub path: PathBuf,
    pub name: String,
    /// The base configuration, as a TOML table.
    pub base: Table,
    pub metric: String,
    pub goal: Goal,
    /// Empty: the base's own seed, once.
    pub seeds: Vec<u64>,
    /// Dotted config key and its values.
    pub grid: Vec<(String, Vec<Value>)>,
    pub random: Option<RandomAxes>,
    /// Each entry's overrides as dotted keys.
    pub list: Vec<Vec<(String, Value)>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    name: Option<String>,
    base: Option<RawBase>,
    metric: Option<String>,
    goal: Option<Goal>,
    seeds: Option<Vec<u64>>,
    #[serde(default)]
    grid: Table,
    random: Option<Table>,
    #[serde(default)]
    list: Vec<Table>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawBase {
    File(PathBuf),
    Inline(Table),
}

impl SweepFile {
    /// Reads and checks the shape of a sweep file (the config keys are checked when the
    /// sweep is planned, against the real training config). `read` reads it and its `base`
    /// file: the `ratchet` binary passes one that falls back to its built-in configs.
    pub fn read(path: &Path) -> Result<Self, SweepError> {
        let read = &ratchet_config::bundled::read_to_string;
        let text = read(path).map_err(|error| SweepError::Read {
            what: "sweep file",
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text, read).map_err(|error| SweepError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })
    }

    /// Parses `text` as the sweep file at `path` (relative `base` files are found beside it,
    /// and read with `read`).
    pub fn parse(path: &Path, text: &str, read: ReadFile) -> Result<Self, SweepError> {
        let raw: RawSweep =
            toml::from_str(text).map_err(|e| SweepError::Invalid(e.message().to_string()))?;
        let base = match raw.base {
            None => Table::new(),
            Some(RawBase::Inline(table)) => table,
            Some(RawBase::File(file)) => {
                let file = path.parent().unwrap_or(Path::new("")).join(file);
                let text = read(&file).map_err(|error| SweepError::Read {
                    what: "the base config",
                    path: file.clone(),
                    error,
                })?;
                text.parse::<Table>().map_err(|e| {
                    SweepError::Invalid(format!("base config {}: {}", file.display(), e.message()))
                })?
            }
        };
        let seeds = match raw.seeds {
            Some(seeds) if seeds.is_empty() => {
                invalid!("`seeds` is empty; list at least one seed, or leave it out")
            }
            Some(seeds) => {
                if let Some(s) = seeds
                    .iter()
                    .enumerate()
                    .find_map(|(i, s)| seeds[..i].contains(s).then_some(s))
                {
                    invalid!("`seeds` lists {s} twice");
                }
                seeds
            }
            None => Vec::new(),
        };
        let mut grid = Vec::new();
        for (key, value) in leaves(&raw.grid, &|v| !v.is_table()) {
            let Value::Array(values) = value else {
                invalid!("grid axis `{key}` must be a list of values, like `{key} = [1, 2]`");
            };
            if values.is_empty() {
                invalid!("grid axis `{key}` is empty; give it at least one value");
            }
            if let Some(v) = values
                .iter()
                .enumerate()
                .find_map(|(i, v)| values[..i].contains(v).then_some(v))
            {
                invalid!("grid axis `{key}` lists {v} twice");
            }
            grid.push((key, values.clone()));
        }
        let random = raw.random.map(parse_random).transpose()?;
        let list = raw
            .list
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                if entry.is_empty() {
                    invalid!(
                        "[[list]] entry {} is empty; give it the keys it changes",
                        i + 1
                    );
                }
                Ok(leaves(entry, &|v| !v.is_table())
                    .into_iter()
                    .map(|(k, v)| (k, v.clone()))
                    .collect())
            })
            .collect::<Result<Vec<_>, SweepError>>()?;
        let seed_is_an_axis = grid.iter().any(|(k, _)| k == SEED_KEY)
            || random
                .iter()
                .flat_map(|r| &r.axes)
                .any(|(k, _)| k == SEED_KEY)
            || list
                .iter()
                .flatten()
                .any(|entry: &(String, Value)| entry.0 == SEED_KEY);
        if seed_is_an_axis && !seeds.is_empty() {
            invalid!("`{SEED_KEY}` is an axis and `seeds` is given; use one of them");
        }
        let name = match raw.name {
            Some(name) => name,
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into()),
        };
        Ok(Self {
            path: path.to_path_buf(),
            name,
            base,
            metric: raw.metric.unwrap_or_else(|| "val/sharpe".into()),
            goal: raw.goal.unwrap_or_default(),
            seeds,
            grid,
            random,
            list,
        })
    }
}

fn parse_random(table: Table) -> Result<RandomAxes, SweepError> {
    let count = match table.get("count") {
        Some(Value::Integer(n)) if *n > 0 => *n as usize,
        Some(other) => {
            invalid!("[random] count is {other}; it must be a whole number of draws, at least 1")
        }
        None => invalid!("[random] needs `count`, the number of draws"),
    };
    let seed = match table.get("seed") {
        Some(Value::Integer(n)) if *n >= 0 => *n as u64,
        Some(other) => invalid!("[random] seed is {other}; it must be a whole number, 0 or more"),
        None => 0,
    };
    let mut axes = Vec::new();
    // `{ name = [..] }`: one key holding a list (a misspelt name too, to be named in the
    // error); anything else is a table of further keys.
    let is_distribution = |v: &Value| {
        v.as_table()
            .is_none_or(|t| t.len() == 1 && t.values().all(Value::is_array))
    };
    for (key, value) in leaves(&table, &is_distribution) {
        if key == "count" || key == "seed" {
            continue;
        }
        let distribution: Distribution = value.clone().try_into().map_err(|e| {
            SweepError::Invalid(format!(
                "random axis `{key}`: {}; write one of {{ uniform = [low, high] }}, \
                 {{ log_uniform = [low, high] }}, {{ int = [low, high] }}, {{ choice = [..] }}",
                e.message()
            ))
        })?;
        check_distribution(&key, &distribution)?;
        axes.push((key, distribution));
    }
    if axes.is_empty() {
        invalid!("[random] has no axes; add one, like `ppo.gamma = {{ uniform = [0.9, 0.999] }}`");
    }
    Ok(RandomAxes { count, seed, axes })
}

fn check_distribution(key: &str, distribution: &Distribution) -> Result<(), SweepError> {
    match distribution {
        Distribution::Uniform([low, high])
            if !(low.is_finite() && high.is_finite() && low < high) =>
        {
            invalid!("random axis `{key}`: uniform needs finite low < high, got [{low}, {high}]")
        }
        Distribution::LogUniform([low, high])
            if !(low.is_finite() && high.is_finite() && *low > 0.0 && low < high) =>
        {
            invalid!("random axis `{key}`: log_uniform needs 0 < low < high, got [{low}, {high}]")
        }
        Distribution::Int([low, high]) if low > high => {
            invalid!("random axis `{key}`: int needs low <= high, got [{low}, {high}]")
        }
        Distribution::Choice(values) if values.is_empty() => {
            invalid!("random axis `{key}` is empty; give `choice` at least one value")
        }
        _ => Ok(()),
    }
}

/// The values of `table` at dotted keys, descending into sub-tables until `is_leaf` holds
/// (TOML writes `ppo.gamma = …` as a table `ppo` holding `gamma`).
fn leaves<'a>(table: &'a Table, is_leaf: &dyn Fn(&Value) -> bool) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    for (key, value) in table {
        match value {
            Value::Table(inner) if !is_leaf(value) => {
                for (sub, v) in leaves(inner, is_leaf) {
                    out.push((format!("{key}.{sub}"), v));
                }
            }
            _ => out.push((key.clone(), value)),
        }
    }
    out
}

/// Sets the dotted `key` of `table` to `value`, creating tables on the way; errors when the
/// path runs through a value that is not a table.
pub fn set_key(table: &mut Table, key: &str, value: Value) -> Result<(), SweepError> {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    let mut walked = String::new();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        walked = if walked.is_empty() {
            part.to_string()
        } else {
            format!("{walked}.{part}")
        };
        let next = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        current = next.as_table_mut().ok_or_else(|| {
            SweepError::Invalid(format!(
                "`{walked}` is a value, not a table, so `{key}` cannot be set"
            ))
        })?;
    }
    unreachable!("split yields at least one part")
}

/// One override as `key=value`, for params, tags and tables.
pub fn format_override(key: &str, value: &Value) -> String {
    format!("{key}={value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SweepFile, SweepError> {
        SweepFile::parse(Path::new("dir/s.toml"), text, &|p| {
            std::fs::read_to_string(p)
        })
    }

    #[test]
    fn dotted_and_quoted_keys_name_the_same_axis() {
        let a = parse("[grid]\nppo.gamma = [0.9, 0.99]\n").unwrap();
        let b = parse("[grid]\n\"ppo.gamma\" = [0.9, 0.99]\n").unwrap();
        assert_eq!(a.grid, b.grid);
        assert_eq!(a.grid[0].0, "ppo.gamma");
        assert_eq!(
            (a.name.as_str(), a.metric.as_str(), a.goal),
            ("s", "val/sharpe", Goal::Max)
        );
    }

    #[test]
    fn random_axes_and_list_entries_parse() {
        let s = parse(
            "[random]\ncount = 3\nseed = 5\nppo.gamma = { uniform = [0.9, 0.99] }\n\
             trading.reward = { choice = [\"pnl\"] }\n[[list]]\nppo = { hidden = [8] }\n",
        )
        .unwrap();
        let r = s.random.unwrap();
        assert_eq!((r.count, r.seed, r.axes.len()), (3, 5, 2));
        assert_eq!(
            r.axes[0],
            ("ppo.gamma".into(), Distribution::Uniform([0.9, 0.99]))
        );
        assert_eq!(
            s.list,
            vec![vec![(
                "ppo.hidden".to_string(),
                Value::Array(vec![Value::Integer(8)])
            )]]
        );
    }

    #[test]
    fn bad_files_give_one_clear_error() {
        let cases = [
            (
                "[grid]\nppo.gamma = []\n",
                "grid axis `ppo.gamma` is empty; give it at least one value",
            ),
            (
                "seeds = []\n",
                "`seeds` is empty; list at least one seed, or leave it out",
            ),
            ("seeds = [1, 1]\n", "`seeds` lists 1 twice"),
            (
                "[grid]\nppo.gamma = 0.9\n",
                "grid axis `ppo.gamma` must be a list of values, like `ppo.gamma = [1, 2]`",
            ),
            (
                "[grid]\nppo.gamma = [0.9, 0.9]\n",
                "grid axis `ppo.gamma` lists 0.9 twice",
            ),
            (
                "[random]\nppo.gamma = { uniform = [0.9, 0.99] }\n",
                "[random] needs `count`, the number of draws",
            ),
            (
                "[random]\ncount = 2\nppo.gamma = { uniform = [0.99, 0.9] }\n",
                "random axis `ppo.gamma`: uniform needs finite low < high, got [0.99, 0.9]",
            ),
            (
                "[random]\ncount = 2\nppo.gamma = { choice = [] }\n",
                "random axis `ppo.gamma` is empty; give `choice` at least one value",
            ),
            (
                "seeds = [1]\n[grid]\nrun.seed = [1, 2]\n",
                "`run.seed` is an axis and `seeds` is given; use one of them",
            ),
            (
                "[[list]]\n",
                "[[list]] entry 1 is empty; give it the keys it changes",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), expected, "{text}");
        }
        let e = parse("metrc = \"x\"\n").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown field `metrc`, expected one of"),
            "{e}"
        );
        let e = parse("[random]\ncount = 2\nppo.gamma = { unifrm = [1, 2] }\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("random axis `ppo.gamma`: unknown variant `unifrm`"),
            "{e}"
        );
    }

    /// What `ratchet sweep` prints for a file it cannot use: the sweep file, then why.
    #[test]
    fn read_errors_name_the_sweep_file_and_the_base_config() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = dir.path().join("s.toml");
        let e = SweepFile::read(&sweep).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "cannot read sweep file {}: No such file or directory (os error 2)",
                sweep.display()
            )
        );
        std::fs::write(&sweep, "base = \"missing.toml\"\n").unwrap();
        let e = SweepFile::read(&sweep).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: cannot read the base config {}: No such file or directory (os error 2)",
                sweep.display(),
                dir.path().join("missing.toml").display()
            )
        );
        std::fs::write(&sweep, "seeds = []\n").unwrap();
        let e = SweepFile::read(&sweep).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: `seeds` is empty; list at least one seed, or leave it out",
                sweep.display()
            )
        );
    }

    #[test]
    fn set_key_creates_tables_and_refuses_to_go_through_values() {
        let mut t: Table = "[run]\nsteps = 5\n".parse().unwrap();
        set_key(&mut t, "ppo.gamma", Value::Float(0.5)).unwrap();
        set_key(&mut t, "run.steps", Value::Integer(7)).unwrap();
        assert_eq!(t.to_string(), "[ppo]\ngamma = 0.5\n\n[run]\nsteps = 7\n");
        let e = set_key(&mut t, "run.steps.x", Value::Integer(1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`run.steps` is a value, not a table, so `run.steps.x` cannot be set"
        );
    }
}
