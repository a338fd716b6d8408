//! A real `mlflow server` for tests: on a port it picks itself (`--port 0`, read back from
//! its log), its own temporary database and artifact directory, in its own process group,
//! killed group and all on drop.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::python;

/// Where the server keeps runs and models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:///…/mlflow.db`, what a deployment uses.
    Sqlite,
    /// A `file://` `mlruns/` tree (needs `MLFLOW_ALLOW_FILE_STORE=true` since MLflow 3).
    FileStore,
}

pub struct MlflowServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    stopped: bool,
    /// Database and artifacts; removed after the server is stopped.
    _dir: tempfile::TempDir,
}

/// The line uvicorn logs once it listens.
const LISTENING: &str = "Uvicorn running on http://127.0.0.1:";

impl MlflowServer {
    pub fn start(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let log_file = fs::File::create(&log).unwrap();
        let backend_uri = match backend {
            Backend::Sqlite => format!("sqlite:///{}", dir.path().join("mlflow.db").display()),
            Backend::FileStore => format!("file://{}", dir.path().join("mlruns").display()),
        };
        let child = mlflow_command()
            .arg("server")
            .args(["--host", "127.0.0.1", "--port", "0", "--workers", "1"])
            .args(["--backend-store-uri", &backend_uri])
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .arg("--serve-artifacts")
            .env("MLFLOW_ALLOW_FILE_STORE", "true")
            // No background job runner (a dozen huey processes): nothing here needs it.
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("cannot start `mlflow server`");
        let mut server = MlflowServer {
            child,
            url: String::new(),
            log,
            stopped: false,
            _dir: dir,
        };
        server.url = server.wait_until_ready(Duration::from_secs(180));
        server
    }

    /// Waits for the port in the log, then for `/health` to answer; returns the URL.
    fn wait_until_ready(&mut self, deadline: Duration) -> String {
        let started = Instant::now();
        let probe: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        loop {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let port = log.split(LISTENING).nth(1).and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u16>()
                    .ok()
            });
            if let Some(port) = port {
                let url = format!("http://127.0.0.1:{port}");
                if probe.get(format!("{url}/health")).call().is_ok() {
                    eprintln!(
                        "mlflow server ready at {url} after {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    return url;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "mlflow server exited ({status}) before answering:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                started.elapsed() < deadline,
                "mlflow server did not answer within {deadline:?}:\n{}",
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// The server's artifact directory (what `--artifacts-destination` names).
    pub fn artifacts(&self) -> PathBuf {
        self._dir.path().join("artifacts")
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGTERM to the whole group (server, uvicorn worker), then SIGKILL.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        if self.child.try_wait().ok().flatten().is_none() {
            signal("-TERM");
            let started = Instant::now();
            while self.child.try_wait().ok().flatten().is_none()
                && started.elapsed() < Duration::from_secs(5)
            {
                thread::sleep(Duration::from_millis(100));
            }
        }
        // Workers may outlive the leader; the group id stays valid while any member lives.
        signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `mlflow` next to the venv's python, else `python -m mlflow`.
fn mlflow_command() -> Command {
    let python = python();
    let script = python.with_file_name("mlflow");
    let mut command = if script.exists() {
        Command::new(script)
    } else {
        let mut c = Command::new(&python);
        c.args(["-m", "mlflow"]);
        c
    };
    // Nothing may leave the machine.
    command
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true");
    command
}
