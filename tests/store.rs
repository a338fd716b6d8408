//! What the store-facing commands say when there is nothing (or not enough) to work on:
//! reading commands create no store, a bad alias lists the aliases that exist, `runs list`
//! orders and filters, a resume without a checkpoint says so, an I/O error names its
//! cause once, and a promotion's rollback hint names the alias it moved.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod sandbox;

use std::path::Path;
use std::process::{Command, Output};

use ratchet_mlflow::{FileStore, RunStatus, TrackingStore};
use sandbox::Sandbox;

/// The error line of `ratchet ARGS` in `sb`, which must fail.
fn error(sb: &Sandbox, args: &[&str]) -> String {
    error_of(sb.run(args))
}

/// The one `error:` line of a command that must fail (progress lines may come before it).
fn error_of(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "should fail:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    errors[0].to_string()
}

#[test]
fn reading_commands_report_a_missing_store_and_create_nothing() {
    let sb = Sandbox::new();
    let store = sb.store();
    let expected = format!(
        "error: there is no MLflow store at {} (no such directory); `ratchet train` creates one, \
         or point --tracking-uri or MLFLOW_TRACKING_URI at an existing store",
        store.display()
    );
    for args in [
        &["models", "list"][..],
        &["models", "show", "models:/m/1"],
        &["runs", "list"],
        &["experiments", "list"],
    ] {
        assert_eq!(error(&sb, args), expected, "{args:?}");
        assert!(!store.exists(), "{args:?} created {}", store.display());
    }
}

#[test]
fn runs_list_is_newest_first_and_filters_by_status_and_count() {
    let sb = Sandbox::new();
    let store = FileStore::open(sb.store()).unwrap();
    let experiment = store.get_or_create_experiment("e").unwrap();
    let mut ids = Vec::new();
    for (name, status) in [
        ("a", RunStatus::Finished),
        ("b", RunStatus::Failed),
        ("c", RunStatus::Finished),
        ("d", RunStatus::Running),
    ] {
        let run = store
            .create_run(&experiment.experiment_id, name, &[])
            .unwrap();
        if status != RunStatus::Running {
            store
                .set_run_status(&run.run_id, status, Some(ratchet_mlflow::now_ms()))
                .unwrap();
        }
        ids.push(run.run_id);
        // Distinct start times (milliseconds).
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let names = |args: &[&str]| -> Vec<String> {
        sb.json(args)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&["runs", "list", "--json"]), ["d", "c", "b", "a"]);
    assert_eq!(
        names(&["runs", "list", "--status", "finished", "--json"]),
        ["c", "a"]
    );
    assert_eq!(
        names(&[
            "runs", "list", "--status", "FINISHED", "--limit", "1", "--json"
        ]),
        ["c"]
    );
    assert_eq!(
        names(&["runs", "list", "--limit", "0", "--json"]),
        Vec::<String>::new()
    );
    let refused = sb.run(&["runs", "list", "--status", "done"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "unknown run status \"done\"; use running, scheduled, finished, failed or killed"
        ),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn aliases_name_what_exists_and_how_to_undo_a_move() {
    let sb = Sandbox::new();
    for _ in 0..2 {
        sb.json(&[
            "train",
            "--env",
            "cartpole",
            "--steps",
            "2048",
            "--model-name",
            "al",
            "--json",
        ]);
    }
    let promote = |version: &str, alias: &str| -> String {
        let out = sb.run(&[
            "models",
            "promote",
            &format!("models:/al/{version}"),
            "--alias",
            alias,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        promote("1", "staging"),
        "@staging of al now points at version 1\n"
    );
    assert_eq!(
        promote("2", "staging"),
        "@staging of al now points at version 2 (was 1; `ratchet models rollback al --alias staging` undoes this)\n"
    );
    promote("1", "production");
    assert_eq!(
        promote("2", "production"),
        "@production of al now points at version 2 (was 1; `ratchet models rollback al` undoes this)\n"
    );
    assert_eq!(
        error(&sb, &["models", "show", "models:/al@stagin"]),
        "error: alias @stagin of model \"al\" (its aliases: @production = version 2, @staging = version 2) not found"
    );
}

/// `--resume` of a run that has no checkpoint yet, and of one whose best state is missing,
/// say so instead of failing on a download.
#[test]
fn resuming_without_a_checkpoint_says_what_is_missing() {
    let sb = Sandbox::new();
    let store = FileStore::open(sb.store()).unwrap();
    let experiment = store.get_or_create_experiment("e").unwrap();
    let bare = store
        .create_run(&experiment.experiment_id, "bare", &[])
        .unwrap();
    assert_eq!(
        error(&sb, &["train", "--resume", &bare.run_id]),
        format!(
            "error: run {} has no checkpoint yet (it stopped before the first one); start it again",
            bare.run_id
        )
    );

    // A best_val_sharpe run that failed at registration, with its checkpoint-best gone.
    let config = sb.dir.path().join("best.toml");
    std::fs::write(
        &config,
        "[run]\nsteps = 2048\nseed = 4\neval_every = 512\nselect = \"best_val_sharpe\"\n\
         [ppo]\nn_steps = 256\nbatch_size = 64\n",
    )
    .unwrap();
    std::fs::create_dir_all(sb.store().join("models")).unwrap();
    std::fs::write(sb.store().join("models/blocked"), "").unwrap();
    let out = sb.run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--model-name",
        "blocked",
    ]);
    assert!(!out.status.success());
    std::fs::remove_file(sb.store().join("models/blocked")).unwrap();
    let failed = store
        .list_experiments()
        .unwrap()
        .iter()
        .flat_map(|e| store.list_runs(&e.experiment_id).unwrap())
        .find(|r| r.status == RunStatus::Failed)
        .expect("the blocked run failed");
    store
        .delete_artifacts(&failed.run_id, "checkpoint-best")
        .unwrap();
    assert_eq!(
        error(&sb, &["train", "--resume", &failed.run_id]),
        format!(
            "error: run {} has no checkpoint-best artifact",
            failed.run_id
        )
    );
}

/// The command as a user without the root's rights to every file: tests run as root get
/// their permission errors from an unprivileged user.
fn unprivileged(sb: &Sandbox, args: &[&str]) -> Command {
    let own = sb.command(args);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return own;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(own.get_program())
        .args(own.get_args())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("MLFLOW_TRACKING_URI")
        .env("RATCHET_CACHE_DIR", sb.dir.path().join("cache"))
        .env("HOME", sb.dir.path());
    cmd
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_permission_error_names_its_cause_once() {
    let sb = Sandbox::new();
    let store = FileStore::open(sb.store()).unwrap();
    store.get_or_create_experiment("e").unwrap();
    chmod(sb.dir.path(), 0o755);
    chmod(&sb.store(), 0o000);
    let message = error_of(unprivileged(&sb, &["runs", "list"]).output().unwrap());
    chmod(&sb.store(), 0o755);
    assert_eq!(
        message,
        format!(
            "error: {}: Permission denied (os error 13)",
            sb.store().join(".trash").display()
        )
    );
}
