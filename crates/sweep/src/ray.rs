//! Trials as Ray jobs, through the Jobs REST API of a Ray head's dashboard
//! (`http://HEAD:8265`): `POST /api/jobs/` submits, `GET /api/jobs/{id}` polls the status,
//! `GET /api/jobs/{id}/logs` fetches the output, `POST /api/jobs/{id}/stop` stops. No Python
//! here: the cluster runs the entrypoint, a shell command that starts `ratchet train`.
//!
//! How the binary reaches the workers: the entrypoint runs the `ratchet` binary at the path
//! given to [`RayLauncher::connect`] (by default the running binary's own path) in the
//! sweep's working directory, so both must exist at the same paths on the Ray workers (a
//! shared filesystem, or an image built with them). The trial's config travels in the job's
//! `runtime_env.env_vars`, and the trials track to the sweep's `--tracking-uri`, which the
//! workers must reach (an MLflow server, or a file store on the shared filesystem).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::error::SweepError;
use crate::executor::{Attempt, CONFIG_PLACEHOLDER, Launcher, TrainOutput};
use crate::local::last_error;

/// The environment variable that carries a trial's config file into its job.
const CONFIG_VAR: &str = "RATCHET_TRIAL_CONFIG";

/// Submits each attempt as a Ray job.
pub struct RayLauncher {
    address: String,
    agent: ureq::Agent,
    ratchet: PathBuf,
    workdir: PathBuf,
    /// Ray's version, as its dashboard reports it.
    pub ray_version: String,
}

pub struct RayJob {
    submission_id: String,
    last_poll: Option<Instant>,
}

#[derive(Deserialize)]
struct Version {
    ray_version: String,
}

#[derive(Deserialize)]
struct Submitted {
    submission_id: String,
}

#[derive(Deserialize)]
struct JobDetails {
    status: String,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Logs {
    logs: String,
}

impl RayLauncher {
    /// Checks that `address` answers as a Ray dashboard (`GET /api/version`): an error names
    /// the address and what to do, before anything is started.
    pub fn connect(address: &str, ratchet: PathBuf, workdir: PathBuf) -> Result<Self, SweepError> {
        let address = address.trim_end_matches('/').to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .build()
            .into();
        let version: Version = agent
            .get(format!("{address}/api/version"))
            .call()
            .and_then(|mut r| r.body_mut().read_json())
            .map_err(|e| {
                SweepError::Ray(format!(
                    "cannot reach a Ray dashboard at {address} ({e}); start a head with \
                     `ray start --head --include-dashboard=true` and give its dashboard address \
                     (port 8265 by default) to --ray"
                ))
            })?;
        Ok(Self {
            address,
            agent,
            ratchet,
            workdir,
            ray_version: version.ray_version,
        })
    }

    fn job_url(&self, id: &str, rest: &str) -> String {
        format!("{}/api/jobs/{id}{rest}", self.address)
    }

    /// The shell command a job runs: write the config from the environment to a temporary
    /// file, then `ratchet train` in the sweep's directory.
    fn entrypoint(&self, attempt: &Attempt) -> Result<String, SweepError> {
        let quote = |s: &str| {
            shlex::try_quote(s)
                .map(|q| q.into_owned())
                .map_err(|_| SweepError::Ray(format!("cannot quote {s:?} for the Ray entrypoint")))
        };
        let mut command = format!(
            "cd {} && config=$(mktemp) && printf '%s' \"${CONFIG_VAR}\" > \"$config\" && exec {}",
            quote(&path_text(&self.workdir))?,
            quote(&path_text(&self.ratchet))?
        );
        for arg in &attempt.args {
            command.push(' ');
            if arg == CONFIG_PLACEHOLDER {
                command.push_str("\"$config\"");
            } else {
                command.push_str(&quote(arg)?);
            }
        }
        Ok(command)
    }

    fn failure(&self, job: &RayJob, details: &JobDetails) -> String {
        let logs = self
            .agent
            .get(self.job_url(&job.submission_id, "/logs"))
            .call()
            .and_then(|mut r| r.body_mut().read_json::<Logs>())
            .map(|l| l.logs)
            .unwrap_or_default();
        let why = last_error(&logs)
            .or_else(|| details.message.clone())
            .unwrap_or_else(|| "no message".into());
        format!("Ray job {} {}: {why}", job.submission_id, details.status)
    }
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

impl Launcher for RayLauncher {
    type Job = RayJob;
    const POLL_INTERVAL: Duration = Duration::from_millis(250);

    fn start(&mut self, attempt: &Attempt) -> Result<RayJob, SweepError> {
        let body = json!({
            "entrypoint": self.entrypoint(attempt)?,
            "entrypoint_num_cpus": 1,
            "runtime_env": { "env_vars": { (CONFIG_VAR): attempt.trial.config_toml } },
            "metadata": {
                "ratchet.sweep.trial": attempt.trial.id,
                "attempt": attempt.number.to_string(),
            },
        });
        let submitted: Submitted = self
            .agent
            .post(format!("{}/api/jobs/", self.address))
            .send_json(&body)
            .and_then(|mut r| r.body_mut().read_json())
            .map_err(|e| {
                SweepError::Ray(format!(
                    "submitting trial {} to Ray at {}: {e}",
                    attempt.trial.id, self.address
                ))
            })?;
        Ok(RayJob {
            submission_id: submitted.submission_id,
            last_poll: None,
        })
    }

    fn poll(&mut self, job: &mut RayJob) -> Option<Result<TrainOutput, String>> {
        // A status request a second per job is plenty for runs of minutes.
        if job
            .last_poll
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return None;
        }
        job.last_poll = Some(Instant::now());
        let details: JobDetails = match self
            .agent
            .get(self.job_url(&job.submission_id, ""))
            .call()
            .and_then(|mut r| r.body_mut().read_json())
        {
            Ok(d) => d,
            // The head may be briefly busy; the next poll asks again.
            Err(_) => return None,
        };
        match details.status.as_str() {
            "PENDING" | "RUNNING" => None,
            "SUCCEEDED" => Some(
                self.agent
                    .get(self.job_url(&job.submission_id, "/logs"))
                    .call()
                    .and_then(|mut r| r.body_mut().read_json::<Logs>())
                    .map_err(|e| format!("fetching the logs of Ray job {}: {e}", job.submission_id))
                    .and_then(|l| TrainOutput::parse(&l.logs)),
            ),
            _ => Some(Err(self.failure(job, &details))),
        }
    }

    fn stop(&mut self, job: &mut RayJob) {
        // Best effort: a job that already ended cannot be stopped, and polling tells the end.
        let _ = self
            .agent
            .post(self.job_url(&job.submission_id, "/stop"))
            .send_empty();
    }
}
