//! `ratchet sweep FILE` and `ratchet sweep show SWEEP`: the CLI over `ratchet-sweep`, which
//! gets this binary's training-config parser to check every trial before anything starts.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use ratchet_sweep::{
    Launcher, Leaderboard, LocalLauncher, Options, Plan, RayLauncher, RunState, Summary, SweepFile,
    SweepRecord, SweepStore,
};

use ratchet_config::TrainConfig;

use crate::cli::{BacktestArgs, SweepArgs, SweepCommand};
use crate::output::{Table, number, print_json};

/// Set by the Ctrl-C handler: the sweep stops its trials and marks itself KILLED.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(tracking_uri: &str, args: SweepArgs) -> Result<()> {
    if let Some(SweepCommand::Show { sweep, json, html }) = args.command {
        let store = SweepStore::open(tracking_uri)?;
        let record = store.find_sweep(&sweep)?;
        let board = leaderboard(&store, &record)?;
        write_html(&board, html.as_deref())?;
        return print_board(&board, json);
    }
    let file = args
        .file
        .clone()
        .expect("clap requires FILE without a subcommand");
    let mut sweep_file = SweepFile::read(&file)?;
    name_the_model(&mut sweep_file)?;
    let plan = Plan::new(sweep_file)?;
    check_metric(&plan)?;
    let ratchet = std::env::current_exe().context("finding the ratchet binary for the trials")?;
    // Everything that can refuse the sweep does so before the parent run exists.
    let ray = match &args.ray {
        Some(url) => Some(RayLauncher::connect(
            url,
            ratchet.clone(),
            std::env::current_dir()?,
        )?),
        None => None,
    };
    let store = SweepStore::open(tracking_uri)?;
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let workers = args.workers.unwrap_or(match ray {
        Some(_) => plan.trials.len(),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    });
    let options = Options {
        workers,
        retries: args.retries,
        resume: args.resume,
    };
    let _running = hold_sweep_lock(&plan)?;
    let sweep = store.parent_run(&plan)?;
    eprintln!(
        "sweep {} ({}): {} trials, {} at a time on {}; parent run {}",
        plan.file.name,
        plan.id,
        plan.trials.len(),
        workers.min(plan.trials.len()),
        match &ray {
            Some(r) => format!(
                "Ray {} at {}",
                r.ray_version,
                args.ray.as_deref().unwrap_or_default()
            ),
            None => "this machine".into(),
        },
        sweep.run_id
    );
    let mut local = None;
    let executed = match ray {
        Some(mut launcher) => execute(&mut launcher, &plan, &store, &sweep, &options),
        None => execute(
            local.insert(LocalLauncher::new(ratchet)?),
            &plan,
            &store,
            &sweep,
            &options,
        ),
    };
    let summary = match executed {
        Ok(summary) => summary,
        Err(e) => {
            // Best effort: the store may be what failed.
            let _ = store.finish(&sweep, RunState::Failed);
            return Err(match local {
                Some(launcher) => e.context(format!(
                    "the sweep stopped its running trials; their logs are in {}",
                    launcher.keep_logs().display()
                )),
                None => e.context("the sweep stopped its running trials"),
            });
        }
    };
    let record = store.refresh(&sweep)?;
    let mut board = leaderboard(&store, &record)?;
    let state = if summary.interrupted > 0 {
        RunState::Killed
    } else if summary.failed.is_empty() {
        RunState::Finished
    } else {
        RunState::Failed
    };
    let mut selected = None;
    if args.register_best.is_some() || args.final_test {
        if state == RunState::Finished {
            selected = select(tracking_uri, &store, &board, &args)?;
            if args.final_test {
                // The final test's test/sharpe joins the leaderboard (and its scatter).
                board = leaderboard(&store, &record)?;
            }
        } else {
            eprintln!(
                "note: --register-best and --final-test wait until every trial has finished \
                 (a selection among part of the trials is not the sweep's); run the sweep again"
            );
        }
    }
    store.finish(&sweep, state)?;
    write_html(&board, args.html.as_deref())?;
    if args.json {
        #[derive(Serialize)]
        struct Output<'a> {
            summary: &'a Summary,
            leaderboard: &'a Leaderboard,
            selected: &'a Option<Selected>,
        }
        print_json(&Output {
            summary: &summary,
            leaderboard: &board,
            selected: &selected,
        })?;
    } else {
        print_board(&board, false)?;
        if let Some(s) = &selected {
            print_selected(s);
        }
    }
    if summary.interrupted > 0 {
        bail!(
            "interrupted: {} trials did not finish; run `ratchet sweep {} --resume` to finish them",
            summary.interrupted,
            file.display()
        );
    }
    if !summary.failed.is_empty() {
        bail!(
            "{} of {} trials failed after {} attempts each; run the sweep again to retry them",
            summary.failed.len(),
            plan.trials.len(),
            args.retries + 1
        );
    }
    Ok(())
}

/// The lock that one `ratchet sweep` of a plan holds on this machine while it runs, so that a
/// second identical command waits for the first and then finds its trials finished instead
/// of training them again. The OS releases it when the process ends, however it ends.
fn sweep_lock_path(sweep_id: &str) -> PathBuf {
    crate::market::cache_dir()
        .join("sweeps")
        .join(format!("{sweep_id}.lock"))
}

fn hold_sweep_lock(plan: &Plan) -> Result<std::fs::File> {
    let path = sweep_lock_path(&plan.id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for the sweep's lock", dir.display()))?;
    }
    let file = std::fs::File::create(&path)
        .with_context(|| format!("creating the sweep's lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    eprintln!(
        "waiting: another `ratchet sweep` of this plan ({}) is running on this machine; its \
         finished trials will not be trained again",
        plan.id
    );
    file.lock()
        .with_context(|| format!("waiting for the lock {}", path.display()))?;
    Ok(file)
}

/// What `--register-best` and `--final-test` did with the selected trial.
#[derive(Serialize)]
struct Selected {
    trial_id: String,
    run_id: String,
    model_uri: String,
    /// `--register-best`: the alias now pointing at the version.
    alias: Option<String>,
    /// `--final-test`: the version's test-range backtest.
    final_test: Option<crate::commands::backtest::BacktestOutput>,
}

/// Version tags `--register-best` writes (what the sweep knew when it selected).
const SWEEP_TAG_PREFIX: &str = "ratchet.sweep.";

/// `--register-best` / `--final-test` on the leaderboard's selected trial.
fn select(
    tracking_uri: &str,
    store: &SweepStore,
    board: &Leaderboard,
    args: &SweepArgs,
) -> Result<Option<Selected>> {
    let Some(best) = board
        .trials
        .iter()
        .find(|t| Some(&t.trial_id) == board.best_trial.as_ref())
    else {
        eprintln!(
            "note: no trial is selected (none logged {}): nothing to register or test",
            board.metric
        );
        return Ok(None);
    };
    let Some((name, version)) = store.trial_version(&best.run_id)? else {
        bail!(
            "the selected trial {} (run {}) registered no model version",
            best.trial_id,
            best.run_id
        );
    };
    let registry = ratchet_registry::Registry::open(tracking_uri)?;
    let reference = ratchet_registry::ModelRef::number(&name, version);
    let model_uri = format!("models:/{name}/{version}");
    let mut selected = Selected {
        trial_id: best.trial_id.clone(),
        run_id: best.run_id.clone(),
        model_uri: model_uri.clone(),
        alias: None,
        final_test: None,
    };
    if let Some(alias) = &args.register_best {
        let mut tags = vec![
            ("id", board.sweep_id.clone()),
            ("name", board.sweep.clone()),
            ("parent_run", board.parent_run_id.clone()),
            ("trial", best.trial_id.clone()),
            ("metric", board.metric.clone()),
            (
                "value",
                best.value.map_or_else(String::new, |v| format!("{v}")),
            ),
            ("finished_trials", board.trials.len().to_string()),
        ];
        if let Some(d) = &board.deflated_sharpe {
            tags.push(("trials", d.trials.to_string()));
            tags.push(("sharpe_variance", format!("{}", d.sharpe_variance)));
            if let Some(v) = d.deflated_sharpe {
                tags.push(("deflated_sharpe", format!("{v}")));
            }
        }
        if let Some(o) = &board.overfitting {
            tags.push(("pbo", format!("{}", o.probability)));
        }
        for (key, value) in tags {
            registry.store().set_model_version_tag(
                &name,
                version,
                &format!("{SWEEP_TAG_PREFIX}{key}"),
                &value,
            )?;
        }
        registry
            .promote(&reference, alias)
            .with_context(|| format!("pointing @{alias} at {model_uri}"))?;
        selected.alias = Some(alias.clone());
    }
    if args.final_test {
        let out = args.out.clone().unwrap_or_else(|| {
            PathBuf::from("reports").join(format!("sweep-{}-final-test", board.sweep))
        });
        let (output, _) = crate::commands::backtest::backtest(
            &registry,
            &BacktestArgs {
                model: model_uri.clone(),
                data: None,
                from: None,
                to: None,
                out: Some(out),
                json: false,
            },
        )
        .with_context(|| format!("the final test of {model_uri}"))?;
        selected.final_test = Some(output);
    }
    Ok(Some(selected))
}

fn print_selected(s: &Selected) {
    println!();
    if let Some(alias) = &s.alias {
        let name = s.model_uri.trim_start_matches("models:/");
        let name = name.rsplit_once('/').map_or(name, |(n, _)| n);
        println!(
            "registered the selected trial {}: {} is now models:/{name}@{alias} (the sweep's \
             statistics are its ratchet.sweep.* tags)",
            s.trial_id, s.model_uri
        );
    }
    if let Some(t) = &s.final_test {
        println!(
            "final test of trial {} ({}) over {} .. {}: sharpe {}, total return {}, test looks {}",
            s.trial_id,
            s.model_uri,
            t.range.0,
            t.range.1,
            number(t.metrics.get("sharpe").copied()),
            number(t.metrics.get("total_return").copied()),
            t.test_looks
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
        );
        if let Some(p) = t.reports.first().and_then(|p| p.parent()) {
            println!("  reports: {}", p.display());
        }
    }
}

fn write_html(board: &Leaderboard, path: Option<&std::path::Path>) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for the HTML leaderboard", dir.display()))?;
    }
    std::fs::write(path, ratchet_sweep::html::render(board))
        .with_context(|| format!("writing the HTML leaderboard {}", path.display()))?;
    eprintln!("leaderboard page: {}", path.display());
    Ok(())
}

fn execute<L: Launcher>(
    launcher: &mut L,
    plan: &Plan,
    store: &SweepStore,
    sweep: &SweepRecord,
    options: &Options,
) -> Result<Summary> {
    Ok(ratchet_sweep::run(
        launcher,
        plan,
        store,
        sweep,
        options,
        &INTERRUPTED,
    )?)
}

/// The key of the registered model a run's version goes to.
const MODEL_NAME_KEY: &str = "run.model_name";

/// Trials register under a model named after the sweep, not the default a base config's
/// data would give (the quickstart's model), unless the sweep names one itself.
fn name_the_model(file: &mut SweepFile) -> Result<()> {
    let named = file
        .base
        .get("run")
        .and_then(|run| run.get("model_name"))
        .is_some()
        || file.grid.iter().any(|(key, _)| key == MODEL_NAME_KEY)
        || file
            .list
            .iter()
            .flatten()
            .any(|(key, _)| key == MODEL_NAME_KEY)
        || file
            .random
            .iter()
            .flat_map(|r| &r.axes)
            .any(|(key, _)| key == MODEL_NAME_KEY);
    if !named {
        ratchet_sweep::spec::set_key(
            &mut file.base,
            MODEL_NAME_KEY,
            toml::Value::String(file.name.clone()),
        )?;
    }
    Ok(())
}

/// Refuses a sweep whose `metric` is not a figure every trial logs (it would rank nothing).
fn check_metric(plan: &Plan) -> Result<()> {
    let mut known = std::collections::BTreeSet::new();
    for trial in &plan.trials {
        let env = TrainConfig::parse(&trial.config_toml)
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?
            .run
            .env;
        known.extend(crate::judge::validation_metrics(env));
    }
    let metric = &plan.file.metric;
    if known.contains(metric) {
        return Ok(());
    }
    let known: Vec<String> = known.into_iter().collect();
    bail!(
        "{}: metric `{metric}` is not a figure the trials log{}; the sweep ranks by one of {}",
        plan.file.path.display(),
        crate::output::did_you_mean(metric, &known),
        known.join(", ")
    )
}

fn leaderboard(store: &SweepStore, sweep: &SweepRecord) -> Result<Leaderboard> {
    Ok(Leaderboard::build(
        sweep,
        &store.trial_runs(sweep)?,
        &|run_id| store.validation_returns(run_id),
    )?)
}

fn print_board(board: &Leaderboard, json: bool) -> Result<()> {
    if json {
        return print_json(board);
    }
    println!(
        "sweep {} ({}, parent run {}): {} of {} trials finished, {} failed",
        board.sweep,
        board.sweep_id,
        board.parent_run_id,
        board.trials.len(),
        board.planned_trials,
        board.failed.len()
    );
    let direction = match board.goal {
        ratchet_sweep::Goal::Max => "higher is better",
        ratchet_sweep::Goal::Min => "lower is better",
    };
    let mut table = Table::new(&["RANK", "CONFIGURATION", "SEEDS", "MEAN", "± SE", "VALUES"]);
    for row in &board.configurations {
        table.row(vec![
            row.rank.map_or_else(|| "-".into(), |r| r.to_string()),
            row.overrides.clone(),
            row.seeds.len().to_string(),
            number(row.mean),
            number(row.standard_error),
            row.values
                .iter()
                .map(|v| number(Some(*v)))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    println!(
        "\nby {} ({direction}; mean ± standard error across seeds)",
        board.metric
    );
    print!("{}", table.render());
    if let Some(best) = board
        .trials
        .iter()
        .find(|t| Some(&t.trial_id) == board.best_trial.as_ref())
    {
        println!(
            "\nbest trial {} ({} seed {}): {} {}, run {}",
            best.trial_id,
            best.overrides,
            best.seed,
            board.metric,
            number(best.value),
            best.run_id
        );
    }
    if let Some(why) = &board.selection {
        println!("{why}");
    }
    if let Some(d) = &board.deflated_sharpe {
        println!(
            "deflated Sharpe of trial {}: {} (Sharpe {} per period over {} returns; the best of {} \
             skill-less trials would show {})",
            d.trial_id,
            number(d.deflated_sharpe),
            number(Some(d.sharpe)),
            d.observations,
            d.trials,
            number(Some(d.expected_max_sharpe))
        );
    }
    if let Some(o) = &board.overfitting {
        println!(
            "probability of backtest overfitting: {} ({} trials, {} blocks, {} splits)",
            number(Some(o.probability)),
            o.trials,
            o.partitions,
            o.splits
        );
    }
    for (trial, error) in &board.failed {
        println!("failed trial {trial}: {error}");
    }
    for note in &board.notes {
        println!("note: {note}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_sweep_plans_and_names_its_own_model() {
        let (mut planned, mut models) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir("configs").unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("sweep-") {
                let mut file = SweepFile::read(&path).unwrap();
                name_the_model(&mut file).unwrap();
                let plan = Plan::new(file).unwrap_or_else(|e| panic!("{e:#}"));
                let model = TrainConfig::parse(&plan.trials[0].config_toml)
                    .unwrap()
                    .model_name();
                models.push((name.clone(), model));
                planned.push((name, plan.trials.len()));
            }
        }
        planned.sort();
        models.sort();
        assert_eq!(
            planned,
            [
                ("sweep-cartpole.toml".to_string(), 8),
                ("sweep-googl.toml".to_string(), 12)
            ]
        );
        assert_eq!(
            models,
            [
                (
                    "sweep-cartpole.toml".to_string(),
                    "sweep-cartpole-ppo".to_string()
                ),
                ("sweep-googl.toml".to_string(), "sweep-googl".to_string())
            ]
        );
    }
}
