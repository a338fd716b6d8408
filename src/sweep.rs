//! `ratchet sweep FILE` and `ratchet sweep show SWEEP`: the CLI over `ratchet-sweep`, which
//! gets this binary's training-config parser to check every trial before anything starts.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use ratchet_sweep::{
    Launcher, Leaderboard, LocalLauncher, Options, Plan, RayLauncher, RunState, Summary, SweepFile,
    SweepRecord, SweepStore,
};

use crate::cli::{EnvKind, SweepArgs, SweepCommand, TrainArgs};
use crate::config::TrainConfig;
use crate::output::{Table, number, print_json};

/// Set by the Ctrl-C handler: the sweep stops its trials and marks itself KILLED.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(tracking_uri: &str, args: SweepArgs) -> Result<()> {
    if let Some(SweepCommand::Show { sweep, json }) = args.command {
        let store = SweepStore::open(tracking_uri)?;
        let record = store.find_sweep(&sweep)?;
        return print_board(&leaderboard(&store, &record)?, json);
    }
    let file = args.file.expect("clap requires FILE without a subcommand");
    let plan = Plan::new(SweepFile::read(&file)?, &resolve)?;
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
    let summary = match ray {
        Some(mut launcher) => execute(&mut launcher, &plan, &store, &sweep, &options)?,
        None => execute(
            &mut LocalLauncher::new(ratchet)?,
            &plan,
            &store,
            &sweep,
            &options,
        )?,
    };
    let board = leaderboard(&store, &store.refresh(&sweep)?)?;
    let state = if summary.interrupted > 0 {
        RunState::Killed
    } else if summary.failed.is_empty() {
        RunState::Finished
    } else {
        RunState::Failed
    };
    store.finish(&sweep, state)?;
    if args.json {
        #[derive(Serialize)]
        struct Output<'a> {
            summary: &'a Summary,
            leaderboard: &'a Leaderboard,
        }
        print_json(&Output {
            summary: &summary,
            leaderboard: &board,
        })?;
    } else {
        print_board(&board, false)?;
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

fn execute<L: Launcher>(
    launcher: &mut L,
    plan: &Plan,
    store: &SweepStore,
    sweep: &SweepRecord,
    options: &Options,
) -> Result<Summary> {
    ratchet_sweep::run(launcher, plan, store, sweep, options, &INTERRUPTED)
}

/// A trial's config file as `ratchet train --config` would take it: parsed (unknown keys
/// refused), flags' defaults applied, validated, its data file present; as JSON.
fn resolve(text: &str) -> Result<serde_json::Value, String> {
    let mut config = TrainConfig::parse(text).map_err(|e| e.message().to_string())?;
    config.apply_flags(&TrainArgs::default());
    config.validate().map_err(|e| format!("{e:#}"))?;
    if config.run.env == EnvKind::Trading && !config.data.file.is_file() {
        return Err(format!(
            "data.file {} does not exist",
            config.data.file.display()
        ));
    }
    serde_json::to_value(&config).map_err(|e| e.to_string())
}

fn leaderboard(store: &SweepStore, sweep: &SweepRecord) -> Result<Leaderboard> {
    Leaderboard::build(sweep, &store.trial_runs(sweep)?, &|run_id| {
        store.validation_returns(run_id)
    })
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
    fn resolve_refuses_what_train_refuses() {
        assert_eq!(
            resolve("[ppo]\ngama = 0.9\n")
                .unwrap_err()
                .split(',')
                .next(),
            Some("unknown field `gama`")
        );
        assert_eq!(
            resolve("[run]\nsteps = 0\n").unwrap_err(),
            "run.steps must be at least 1"
        );
        assert_eq!(
            resolve("[data]\nfile = \"nope.csv\"\n").unwrap_err(),
            "data.file nope.csv does not exist"
        );
        let dqn = resolve("[run]\nalgo = \"dqn\"\nenv = \"cartpole\"\nsteps = 500\n").unwrap();
        assert_eq!(
            dqn.pointer("/dqn/total_timesteps"),
            Some(&serde_json::json!(500))
        );
    }

    #[test]
    fn every_example_sweep_plans() {
        let mut planned = Vec::new();
        for entry in std::fs::read_dir("configs").unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("sweep-") {
                let plan = Plan::new(SweepFile::read(&path).unwrap(), &resolve)
                    .unwrap_or_else(|e| panic!("{e:#}"));
                planned.push((name, plan.trials.len()));
            }
        }
        planned.sort();
        assert_eq!(
            planned,
            [
                ("sweep-cartpole.toml".to_string(), 8),
                ("sweep-googl.toml".to_string(), 12)
            ]
        );
    }
}
