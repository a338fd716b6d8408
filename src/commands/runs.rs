//! `ratchet runs …` and `ratchet experiments …`: the tracking side of the store.

use anyhow::Result;
use serde::Serialize;

use crate::cli::{ExperimentsCommand, RunsCommand};
use crate::output::{Table, print_json, time_ms};

pub fn experiments(tracking_uri: &str, cmd: ExperimentsCommand) -> Result<()> {
    let ExperimentsCommand::List { json } = cmd;
    let store = ratchet_mlflow::open_existing_store(tracking_uri)?;
    let experiments = store.list_experiments()?;
    if json {
        return print_json(&experiments);
    }
    let mut table = Table::new(&["ID", "NAME", "CREATED", "ARTIFACTS"]);
    for e in &experiments {
        table.row(vec![
            e.experiment_id.clone(),
            e.name.clone(),
            e.creation_time.map(time_ms).unwrap_or_default(),
            e.artifact_location.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

#[derive(Serialize)]
struct RunRow {
    run_id: String,
    run_name: String,
    experiment: String,
    experiment_id: String,
    /// MLflow's name for the status (`RUNNING`, `FINISHED`, `KILLED`, …).
    status: &'static str,
    start_time: i64,
    end_time: Option<i64>,
    artifact_uri: String,
}

pub fn runs(tracking_uri: &str, cmd: RunsCommand) -> Result<()> {
    let RunsCommand::List {
        experiment,
        status,
        limit,
        json,
    } = cmd;
    let store = ratchet_mlflow::open_existing_store(tracking_uri)?;
    let experiments = match &experiment {
        Some(name) => {
            let all = store.list_experiments()?;
            let found: Vec<_> = all.into_iter().filter(|e| &e.name == name).collect();
            if found.is_empty() {
                anyhow::bail!(
                    "no experiment named '{name}' in {tracking_uri}; `ratchet experiments list` shows them"
                );
            }
            found
        }
        None => store.list_experiments()?,
    };
    let mut rows = Vec::new();
    for e in &experiments {
        let runs = store.list_runs(&e.experiment_id)?;
        for info in runs
            .into_iter()
            .filter(|info| status.is_none_or(|s| info.status == s))
        {
            rows.push(RunRow {
                run_id: info.run_id,
                run_name: info.run_name,
                experiment: e.name.clone(),
                experiment_id: info.experiment_id,
                status: info.status.as_str(),
                start_time: info.start_time,
                end_time: info.end_time,
                artifact_uri: info.artifact_uri,
            });
        }
    }
    // Newest first across experiments; ties (same millisecond) by id, so the order is
    // stable.
    rows.sort_by(|a, b| (b.start_time, &b.run_id).cmp(&(a.start_time, &a.run_id)));
    if let Some(limit) = limit {
        rows.truncate(limit);
    }
    if json {
        return print_json(&rows);
    }
    let mut table = Table::new(&["RUN ID", "NAME", "EXPERIMENT", "STATUS", "STARTED", "ENDED"]);
    for r in &rows {
        table.row(vec![
            r.run_id.clone(),
            r.run_name.clone(),
            r.experiment.clone(),
            r.status.to_string(),
            time_ms(r.start_time),
            r.end_time.map(time_ms).unwrap_or_else(|| "-".into()),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}
