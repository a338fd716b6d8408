//! Trials as processes on this machine: `ratchet train` children, their config files and
//! output in a temporary directory that lives as long as the launcher.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::SweepError;
use crate::executor::{Attempt, CONFIG_PLACEHOLDER, Launcher, TrainOutput};

/// Starts each attempt as `RATCHET ARGS…` in the current directory.
pub struct LocalLauncher {
    ratchet: PathBuf,
    dir: tempfile::TempDir,
}

pub struct LocalJob {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl LocalLauncher {
    /// `ratchet` is the binary to run (the running one, normally).
    pub fn new(ratchet: PathBuf) -> Result<Self, SweepError> {
        Ok(Self {
            ratchet,
            dir: tempfile::Builder::new()
                .prefix("ratchet-sweep-")
                .tempdir()
                .map_err(|error| SweepError::Launch {
                    doing: "creating a directory for the trials' config files".into(),
                    error,
                })?,
        })
    }
}

impl LocalLauncher {
    /// Keeps the directory of the trials' config files and output (it is deleted with the
    /// launcher otherwise), for a sweep that failed; returns where it is.
    pub fn keep_logs(self) -> PathBuf {
        self.dir.keep()
    }
}

impl Launcher for LocalLauncher {
    type Job = LocalJob;
    const POLL_INTERVAL: Duration = Duration::from_millis(10);

    fn start(&mut self, attempt: &Attempt) -> Result<LocalJob, SweepError> {
        let name = format!("{}-{}", attempt.trial.id, attempt.number);
        let config = self.dir.path().join(format!("{}.toml", attempt.trial.id));
        std::fs::write(&config, &attempt.trial.config_toml).map_err(|error| {
            SweepError::Launch {
                doing: format!("writing {}", config.display()),
                error,
            }
        })?;
        let stdout = self.dir.path().join(format!("{name}.out"));
        let stderr = self.dir.path().join(format!("{name}.err"));
        let args = attempt.args.iter().map(|a| {
            if a == CONFIG_PLACEHOLDER {
                config.display().to_string()
            } else {
                a.clone()
            }
        });
        let child = Command::new(&self.ratchet)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?)
            .spawn()
            .map_err(|error| SweepError::Launch {
                doing: format!("starting {}", self.ratchet.display()),
                error,
            })?;
        Ok(LocalJob {
            child,
            stdout,
            stderr,
        })
    }

    fn poll(&mut self, job: &mut LocalJob) -> Option<Result<TrainOutput, String>> {
        let status = match job.child.try_wait() {
            Ok(None) => return None,
            Ok(Some(status)) => status,
            Err(e) => return Some(Err(format!("waiting for the trial's process: {e}"))),
        };
        let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        Some(if status.success() {
            TrainOutput::parse(&read(&job.stdout))
        } else {
            Err(last_error(&read(&job.stderr))
                .unwrap_or_else(|| format!("ratchet train ended with {status}")))
        })
    }

    fn stop(&mut self, job: &mut LocalJob) {
        // SIGINT: `ratchet train` stops at its next update, keeps its checkpoint and marks
        // the run KILLED (so `--resume` can finish it).
        // The child was spawned by this launcher and is not reaped yet, so its pid is its own;
        // an error means it has already exited, which is what stopping wants.
        let pid = nix::unistd::Pid::from_raw(job.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    }
}

/// The `error: …` line `ratchet` ends with on failure (the last one, if several).
pub fn last_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
}
