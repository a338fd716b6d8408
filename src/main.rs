//! `ratchet`: train DQN/PPO trading agents, version them in an MLflow store, backtest them.
//!
//! The binary is a thin layer over the workspace crates: it parses flags, wires data,
//! environments, agents, the registry and backtests together, and prints results.

mod agent;
mod checkpoint;
mod cli;
mod commands;
mod config;
mod judge;
mod market;
mod output;
mod progress;
mod universe;

use clap::Parser;

use cli::{Cli, Command};
use commands::{backtest, evaluate, features, models, runs, serve, sweep, train};

fn main() {
    // Like other Unix tools, end quietly when the reader of stdout goes away
    // (`ratchet models list | head`) instead of failing to print.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let cli = Cli::parse();
    let tracking_uri = ratchet_mlflow::resolve_tracking_uri(cli.tracking_uri.as_deref());
    record_unrecorded_run_ends(&tracking_uri);
    let result = match cli.command {
        Command::Train(args) => train::run(&tracking_uri, args),
        // A scheduler tells its outcomes apart by the exit code.
        Command::Retrain(args) => commands::retrain::run(&tracking_uri, args).map(|code| {
            if code != 0 {
                std::process::exit(code)
            }
        }),
        Command::Backtest(args) => backtest::run(&tracking_uri, args),
        Command::Evaluate(args) => evaluate::run(&tracking_uri, args),
        Command::Models(cmd) => models::run(&tracking_uri, cmd),
        Command::Sweep(args) => sweep::run(&tracking_uri, args),
        Command::Serve(args) => serve::run(&tracking_uri, args),
        Command::Features(cmd) => features::run(&tracking_uri, cmd),
        Command::Runs(cmd) => runs::runs(&tracking_uri, cmd),
        Command::Experiments(cmd) => runs::experiments(&tracking_uri, cmd),
    };
    if let Err(err) = result {
        // One line: the outermost context first, then its causes.
        let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}

/// Records the ends of runs that an earlier ratchet could not record in this store (its
/// server was unreachable), so those runs stop showing as RUNNING.
fn record_unrecorded_run_ends(tracking_uri: &str) {
    let journal = market::run_end_journal();
    if !journal.has_pending() {
        return;
    }
    // A store that does not exist has no runs to end; opening it must not create it.
    if let Ok(store) = ratchet_mlflow::open_existing_store(tracking_uri) {
        let replayed = journal.replay(store.as_ref());
        for run_id in replayed.recorded {
            eprintln!(
                "recorded the end of run {run_id}, which an earlier ratchet could not reach the store to record"
            );
        }
        for (path, why) in replayed.set_aside {
            eprintln!(
                "warning: a saved run ending cannot be read ({why}); it is set aside at {}",
                path.display()
            );
        }
    }
}
