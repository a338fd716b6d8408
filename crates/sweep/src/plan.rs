//! From a sweep file to its trials: every configuration once per seed, each checked against
//! the real training config and named by a stable id.

use sha2::{Digest, Sha256};
use toml::Value;

use rand::{Rng as _, RngExt as _, SeedableRng as _};
use rand_xoshiro::Xoshiro256PlusPlus;
use ratchet_config::TrainConfig;

use crate::error::{SweepError, invalid};
use crate::spec::{Distribution, SEED_KEY, SweepFile, format_override, set_key};

/// Turns a trial's config file text into the complete configuration training would use
/// (defaults filled in, validated), as JSON; or the reason it is not a valid config.
/// [`Plan::new`] uses the run configuration's own checks ([`resolve_trial`]); the tests of
/// this module pass a small stand-in.
type Resolve<'a> = &'a dyn Fn(&str) -> Result<serde_json::Value, String>;

/// A trial's config as `ratchet train --config` takes it, so unknown keys and bad values are
/// caught exactly as training would catch them.
fn resolve_trial(text: &str) -> Result<serde_json::Value, String> {
    let config = TrainConfig::load_trial(text).map_err(|e| e.to_string())?;
    serde_json::to_value(&config).map_err(|e| e.to_string())
}

/// One training run of the sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// 12 hex digits of the sha256 of the resolved configuration, seed included: the same
    /// configuration and seed always get the same id, whatever file or order produced them.
    pub id: String,
    /// The same hash without the seed: trials that differ only by seed share it.
    pub config_id: String,
    pub seed: u64,
    /// What this trial changes relative to the base, as dotted keys (the seed apart).
    pub overrides: Vec<(String, Value)>,
    /// The config file `ratchet train --config` reads.
    pub config_toml: String,
}

impl Trial {
    /// The overrides as `key=value key=value`, or `(base)`.
    pub fn describe(&self) -> String {
        describe(&self.overrides)
    }
}

/// Overrides as `key=value key=value`, or `(base)` when there are none.
pub fn describe(overrides: &[(String, Value)]) -> String {
    if overrides.is_empty() {
        return "(base)".into();
    }
    overrides
        .iter()
        .map(|(k, v)| format_override(k, v))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A checked sweep: its trials in order, and the sweep's own id.
#[derive(Clone, Debug)]
pub struct Plan {
    pub file: SweepFile,
    /// 12 hex digits of the sha256 of the sorted trial ids: re-running the same sweep finds
    /// its earlier parent run by it.
    pub id: String,
    pub trials: Vec<Trial>,
    /// The experiment every trial logs to (the base's `run.experiment`).
    pub experiment: String,
}

impl Plan {
    /// Expands `file` into trials, checking each axis value and each trial with `resolve`.
    /// Errors (one line, naming the file and the axis or trial): a key the training config
    /// does not have or a value it refuses, two trials that resolve to the same
    /// configuration, a sweep that would train a single configuration once, and axes that
    /// move trials out of the sweep's experiment.
    pub fn new(file: SweepFile) -> Result<Self, SweepError> {
        Self::with_resolve(file, &resolve_trial)
    }

    fn with_resolve(file: SweepFile, resolve: Resolve) -> Result<Self, SweepError> {
        Self::expand(&file, resolve)
            .map_err(|e| SweepError::Invalid(format!("{}: {e}", file.path.display())))
            .map(|(trials, experiment)| Self {
                id: short_hash(
                    trials
                        .iter()
                        .map(|t| t.id.as_str())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join("\n")
                        .as_bytes(),
                ),
                file,
                trials,
                experiment,
            })
    }

    fn expand(file: &SweepFile, resolve: Resolve) -> Result<(Vec<Trial>, String), SweepError> {
        let base = resolve(&to_toml(&file.base)?)
            .map_err(|e| SweepError::Invalid(format!("the base config: {e}")))?;
        let experiment = base
            .pointer("/run/experiment")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        check_axes(file, resolve)?;

        let seeds: Vec<Option<u64>> = if file.seeds.is_empty() {
            vec![None]
        } else {
            file.seeds.iter().copied().map(Some).collect()
        };
        let mut trials: Vec<Trial> = Vec::new();
        for overrides in configurations(file) {
            for &seed in &seeds {
                let mut table = file.base.clone();
                for (key, value) in &overrides {
                    set_key(&mut table, key, value.clone())?;
                }
                if let Some(seed) = seed {
                    set_key(&mut table, SEED_KEY, Value::Integer(seed as i64))?;
                }
                let config_toml = to_toml(&table)?;
                let what = describe(&overrides);
                let mut resolved = resolve(&config_toml)
                    .map_err(|e| SweepError::Invalid(format!("configuration {what}: {e}")))?;
                if resolved.pointer("/run/experiment") != base.pointer("/run/experiment") {
                    invalid!(
                        "configuration {what} changes run.experiment; every trial logs to the \
                         sweep's experiment ({experiment})"
                    );
                }
                let id = short_hash(resolved.to_string().as_bytes());
                let seed = resolved
                    .pointer("/run/seed")
                    .and_then(|s| s.as_u64())
                    .unwrap_or_default();
                if let Some(run) = resolved.get_mut("run").and_then(|r| r.as_object_mut()) {
                    run.remove("seed");
                }
                let config_id = short_hash(resolved.to_string().as_bytes());
                if let Some(twin) = trials.iter().find(|t| t.id == id) {
                    invalid!(
                        "configurations {} and {what} (seed {seed}) resolve to the same training \
                         config (trial {id}); drop one",
                        twin.describe()
                    );
                }
                trials.push(Trial {
                    id,
                    config_id,
                    seed,
                    overrides: overrides.clone(),
                    config_toml,
                });
            }
        }
        if trials.len() < 2 {
            invalid!(
                "the sweep changes nothing: it trains one configuration once; add an axis \
                 ([grid], [random] or [[list]]) or more `seeds`, or use `ratchet train`"
            );
        }
        Ok((trials, experiment))
    }
}

/// Each axis value on its own over the base must be a valid config: the first place a
/// misspelt key or a wrong type shows, named by its axis.
fn check_axes(file: &SweepFile, resolve: Resolve) -> Result<(), SweepError> {
    let mut single: Vec<(String, String, Value)> = Vec::new();
    for (key, values) in &file.grid {
        for value in values {
            single.push((format!("grid axis `{key}`"), key.clone(), value.clone()));
        }
    }
    for (key, distribution) in file.random.iter().flat_map(|r| &r.axes) {
        for value in distribution_corners(distribution) {
            single.push((format!("random axis `{key}`"), key.clone(), value));
        }
    }
    for (i, entry) in file.list.iter().enumerate() {
        for (key, value) in entry {
            single.push((
                format!("[[list]] entry {} key `{key}`", i + 1),
                key.clone(),
                value.clone(),
            ));
        }
    }
    for (what, key, value) in single {
        let mut table = file.base.clone();
        set_key(&mut table, &key, value.clone())
            .map_err(|e| SweepError::Invalid(format!("{what}: {e}")))?;
        resolve(&to_toml(&table)?)
            .map_err(|e| SweepError::Invalid(format!("{what} = {value}: {e}")))?;
    }
    Ok(())
}

/// A configuration table as the TOML text a trial's config file holds.
fn to_toml(table: &toml::Table) -> Result<String, SweepError> {
    toml::to_string(table).map_err(|e| SweepError::Invalid(e.to_string()))
}

/// The values a distribution can reach at its ends (what the axis check tries).
fn distribution_corners(distribution: &Distribution) -> Vec<Value> {
    match distribution {
        Distribution::Uniform([low, high]) | Distribution::LogUniform([low, high]) => {
            vec![Value::Float(*low), Value::Float(*high)]
        }
        Distribution::Int([low, high]) => vec![Value::Integer(*low), Value::Integer(*high)],
        Distribution::Choice(values) => values.clone(),
    }
}

/// The product of the grid points, the random draws and the list entries, in that order.
fn configurations(file: &SweepFile) -> Vec<Vec<(String, Value)>> {
    let mut grid: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in &file.grid {
        grid = grid
            .iter()
            .flat_map(|point| {
                values.iter().map(move |v| {
                    let mut point = point.clone();
                    point.push((key.clone(), v.clone()));
                    point
                })
            })
            .collect();
    }
    let draws: Vec<Vec<(String, Value)>> = match &file.random {
        None => vec![Vec::new()],
        Some(random) => {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(random.seed);
            (0..random.count)
                .map(|_| {
                    random
                        .axes
                        .iter()
                        .map(|(key, d)| (key.clone(), draw(d, &mut rng)))
                        .collect()
                })
                .collect()
        }
    };
    let list: Vec<Vec<(String, Value)>> = if file.list.is_empty() {
        vec![Vec::new()]
    } else {
        file.list.clone()
    };
    let mut out = Vec::new();
    for g in &grid {
        for d in &draws {
            for l in &list {
                out.push([g.as_slice(), d.as_slice(), l.as_slice()].concat());
            }
        }
    }
    out
}

/// One value of a distribution. Floats are rounded to 6 significant digits, so that they
/// read well in params and tables (and the draw is still reproducible from the seed).
fn draw(distribution: &Distribution, rng: &mut Xoshiro256PlusPlus) -> Value {
    // `low + (high - low) * u` rather than `random_range`, whose floats are drawn another
    // way: a spec's seed keeps naming the trials it named before.
    let mut uniform = |low: f64, high: f64| low + (high - low) * rng.random::<f64>();
    match distribution {
        Distribution::Uniform([low, high]) => Value::Float(round6(uniform(*low, *high))),
        Distribution::LogUniform([low, high]) => {
            Value::Float(round6(uniform(low.ln(), high.ln()).exp()))
        }
        Distribution::Int([low, high]) => {
            let span = (high - low) as u64 + 1;
            Value::Integer(low + (rng.next_u64() % span) as i64)
        }
        Distribution::Choice(values) => {
            values[(rng.next_u64() % values.len() as u64) as usize].clone()
        }
    }
}

fn round6(x: f64) -> f64 {
    format!("{x:.5e}")
        .parse()
        .expect("a formatted float parses")
}

/// The first 12 hex digits of a sha256.
fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use toml::Table;

    /// A stand-in for the training config: knows `run.{seed,steps,experiment}` and
    /// `ppo.{gamma,n_steps}`, fills defaults, refuses anything else.
    fn resolve(text: &str) -> Result<serde_json::Value, String> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        let mut run = serde_json::json!({"seed": 0, "steps": 100, "experiment": "x"});
        let mut ppo = serde_json::json!({"gamma": 0.99, "n_steps": 64});
        for (section, values) in &table {
            let target = match section.as_str() {
                "run" => &mut run,
                "ppo" => &mut ppo,
                other => return Err(format!("unknown field `{other}`")),
            };
            for (k, v) in values.as_table().ok_or("not a table")? {
                if target.get(k).is_none() {
                    return Err(format!("unknown field `{k}`"));
                }
                target[k] = serde_json::to_value(v).unwrap();
            }
        }
        Ok(serde_json::json!({"run": run, "ppo": ppo}))
    }

    fn plan(text: &str) -> Result<Plan, SweepError> {
        let file = SweepFile::parse(Path::new("s.toml"), text, &|p| std::fs::read_to_string(p))?;
        Plan::with_resolve(file, &resolve)
    }

    #[test]
    fn grid_times_seeds_with_stable_ids() {
        let p = plan("seeds = [1, 2]\n[grid]\nppo.gamma = [0.9, 0.99]\nppo.n_steps = [32, 64]\n")
            .unwrap();
        let described: Vec<String> = p
            .trials
            .iter()
            .map(|t| format!("{} s{}", t.describe(), t.seed))
            .collect();
        assert_eq!(
            described,
            [
                "ppo.gamma=0.9 ppo.n_steps=32 s1",
                "ppo.gamma=0.9 ppo.n_steps=32 s2",
                "ppo.gamma=0.9 ppo.n_steps=64 s1",
                "ppo.gamma=0.9 ppo.n_steps=64 s2",
                "ppo.gamma=0.99 ppo.n_steps=32 s1",
                "ppo.gamma=0.99 ppo.n_steps=32 s2",
                "ppo.gamma=0.99 ppo.n_steps=64 s1",
                "ppo.gamma=0.99 ppo.n_steps=64 s2",
            ]
        );
        assert_eq!(p.trials[0].config_id, p.trials[1].config_id);
        assert_ne!(p.trials[0].id, p.trials[1].id);
        assert_eq!(
            p.trials[0].config_toml,
            "[ppo]\ngamma = 0.9\nn_steps = 32\n\n[run]\nseed = 1\n"
        );
        // The id is the resolved config's: the default written out changes nothing.
        let q = plan("seeds = [1, 2]\n[base]\nppo = { n_steps = 64 }\n[grid]\nppo.gamma = [0.9, 0.99]\nppo.n_steps = [32, 64]\n").unwrap();
        let ids = |p: &Plan| p.trials.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&p), ids(&q));
        assert_eq!(p.id, q.id);
        assert_eq!(p.experiment, "x");
    }

    #[test]
    fn random_draws_are_reproducible_and_in_range() {
        let text = "[random]\ncount = 20\nseed = 3\nppo.gamma = { log_uniform = [0.5, 0.9] }\nppo.n_steps = { int = [1, 3] }\n";
        let a = plan(text).unwrap();
        let b = plan(text).unwrap();
        assert_eq!(a.trials, b.trials);
        assert_eq!(a.trials.len(), 20);
        for t in &a.trials {
            let g = t.overrides[0].1.as_float().unwrap();
            let n = t.overrides[1].1.as_integer().unwrap();
            assert!(
                (0.5..0.9).contains(&g) && (1..=3).contains(&n),
                "{}",
                t.describe()
            );
        }
        let other = plan(&text.replace("seed = 3", "seed = 4")).unwrap();
        assert_ne!(a.trials[0].overrides, other.trials[0].overrides);
    }

    #[test]
    fn blocks_multiply() {
        let p = plan(
            "[grid]\nppo.gamma = [0.9, 0.99]\n[random]\ncount = 2\nppo.n_steps = { int = [1, 1000] }\n\
             [[list]]\nrun.steps = 5\n[[list]]\nrun.steps = 6\n",
        )
        .unwrap();
        assert_eq!(p.trials.len(), 2 * 2 * 2);
        assert_eq!(p.trials[0].overrides.len(), 3);
    }

    #[test]
    fn bad_sweeps_give_one_clear_error() {
        let cases = [
            (
                "[grid]\nppo.gama = [0.9, 0.99]\n",
                "s.toml: grid axis `ppo.gama` = 0.9: unknown field `gama`",
            ),
            (
                "[grid]\npo.gamma = [0.9]\nppo.gamma = [0.9, 0.99]\n",
                "s.toml: grid axis `po.gamma` = 0.9: unknown field `po`",
            ),
            (
                "[random]\ncount = 2\nppo.gama = { uniform = [0.1, 0.2] }\n",
                "s.toml: random axis `ppo.gama` = 0.1: unknown field `gama`",
            ),
            (
                "[[list]]\nppo.gama = 1\n[[list]]\nppo.gamma = 1\n",
                "s.toml: [[list]] entry 1 key `ppo.gama` = 1: unknown field `gama`",
            ),
            (
                "[base]\nrun = { stepz = 1 }\n[grid]\nppo.gamma = [0.9, 0.99]\n",
                "s.toml: the base config: unknown field `stepz`",
            ),
            (
                "[grid]\nppo.gamma = [0.99]\n",
                "s.toml: the sweep changes nothing: it trains one configuration once; add an axis ([grid], [random] or [[list]]) or more `seeds`, or use `ratchet train`",
            ),
            (
                "[grid]\nppo.gamma = [0.99, 0.990]\n",
                "grid axis `ppo.gamma` lists 0.99 twice",
            ),
            (
                "[grid]\nppo.n_steps = [64]\n[[list]]\nrun.steps = 100\n[[list]]\nppo.gamma = 0.99\n",
                "s.toml: configurations ppo.n_steps=64 run.steps=100 and ppo.n_steps=64 ppo.gamma=0.99 (seed 0) resolve to the same training config (trial f6b65e57bdfd); drop one",
            ),
            (
                "[grid]\nrun.experiment = [\"a\", \"b\"]\n",
                "s.toml: configuration run.experiment=\"a\" changes run.experiment; every trial logs to the sweep's experiment (x)",
            ),
        ];
        for (text, expected) in cases {
            let e = plan(text).unwrap_err().to_string();
            assert_eq!(e, expected, "{text}");
        }
    }
}
