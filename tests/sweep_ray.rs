//! `ratchet sweep --ray` against a real Ray head: four trials submitted through the Jobs
//! REST API, one job stopped mid-run (`POST /api/jobs/{id}/stop`), and the sweep must retry
//! it and end with every trial finished.
//!
//! Ignored by a plain `cargo test`: it needs a head, which `scripts/test.sh` starts from the
//! Ray venv (`scripts/ray_venv.sh`) and names in `RATCHET_RAY_ADDRESS`, then runs
//! `cargo test --release --test sweep_ray -- --ignored`.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn get(url: &str) -> Option<Value> {
    ureq::get(url).call().ok()?.body_mut().read_json().ok()
}

/// Ray's jobs of this sweep (by the metadata the sweep submits them with).
fn sweep_jobs(address: &str, trials: &[String]) -> Vec<Value> {
    get(&format!("{address}/api/jobs/"))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|j| {
            j["metadata"]["ratchet.sweep.trial"]
                .as_str()
                .is_some_and(|t| trials.iter().any(|x| x == t))
        })
        .collect()
}

#[test]
#[ignore = "needs a Ray head: scripts/test.sh starts one and runs this with --ignored"]
fn a_ray_sweep_retries_a_stopped_job_and_finishes_every_trial() {
    let address = std::env::var("RATCHET_RAY_ADDRESS")
        .expect("RATCHET_RAY_ADDRESS must name a Ray dashboard (scripts/test.sh starts one)");
    let started = Instant::now();
    while get(&format!("{address}/api/version")).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no Ray dashboard at {address}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let sweep = dir.path().join("ray.toml");
    // Long enough (tens of seconds a trial) for a job to be caught running.
    std::fs::write(
        &sweep,
        "seeds = [0, 1]\nmetric = \"val/mean_return\"\n\
         [base]\nrun = { algo = \"ppo\", env = \"cartpole\", steps = 1000000, checkpoint_every = 50000, experiment = \"ray\" }\n\
         ppo = { n_steps = 512 }\n\
         [grid]\nppo.learning_rate = [0.0003, 0.001]\n",
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let child = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .current_dir(root)
        .arg("--tracking-uri")
        .arg(&store)
        .args([
            "sweep",
            sweep.to_str().unwrap(),
            "--ray",
            &address,
            "--retries",
            "1",
            "--json",
        ])
        .env_remove("MLFLOW_TRACKING_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Stop the first job of the sweep seen running (each carries its trial id).
    let mut stopped = None;
    let started = Instant::now();
    while stopped.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no job of the sweep ever ran"
        );
        let jobs = get(&format!("{address}/api/jobs/"))
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if let Some(job) = jobs
            .iter()
            .find(|j| j["status"] == "RUNNING" && j["metadata"]["ratchet.sweep.trial"].is_string())
        {
            // Let it train a little, so that its run exists and is RUNNING when stopped.
            std::thread::sleep(Duration::from_secs(1));
            let id = job["submission_id"].as_str().unwrap().to_string();
            let answer: Value = ureq::post(format!("{address}/api/jobs/{id}/stop"))
                .send_empty()
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap();
            assert_eq!(answer["stopped"], true, "{answer}");
            stopped = Some((
                id,
                job["metadata"]["ratchet.sweep.trial"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (stopped_job, stopped_trial) = stopped.unwrap();

    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the sweep failed:\n{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let finished = result["summary"]["finished"].as_array().unwrap();
    assert_eq!(finished.len(), 4, "{result}");
    assert_eq!(result["summary"]["failed"], serde_json::json!([]));
    let retried: Vec<&Value> = finished.iter().filter(|t| t["attempts"] == 2).collect();
    assert_eq!(retried.len(), 1, "{result}");
    assert_eq!(retried[0]["trial_id"], stopped_trial.as_str());
    assert!(
        stderr.contains(&format!(
            "trial {stopped_trial} failed (attempt 1), retrying"
        )),
        "{stderr}"
    );
    let board = &result["leaderboard"];
    assert_eq!(board["trials"].as_array().unwrap().len(), 4);
    assert_eq!(board["configurations"].as_array().unwrap().len(), 2);

    // Ray saw five jobs: the stopped one and four that succeeded.
    let trials: Vec<String> = finished
        .iter()
        .map(|t| t["trial_id"].as_str().unwrap().to_string())
        .collect();
    let mut statuses: Vec<String> = sweep_jobs(&address, &trials)
        .iter()
        .map(|j| j["status"].as_str().unwrap().to_string())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            "STOPPED",
            "SUCCEEDED",
            "SUCCEEDED",
            "SUCCEEDED",
            "SUCCEEDED"
        ]
    );
    let job = get(&format!("{address}/api/jobs/{stopped_job}")).unwrap();
    assert_eq!(job["status"], "STOPPED");
}
