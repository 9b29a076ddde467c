//! The processes of the fault suite: a coordinator that is killed and restarted on the
//! same port and database, and workers that are killed and restarted on the same state
//! folder and id. Every process logs to a file of its own, kept to the end, so that the
//! tally can read what each one did, killed or not.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a coordinator may take to bind its port again after a kill.
const REBIND_TIMEOUT: Duration = Duration::from_secs(20);

/// What every coordinator incarnation is started with.
pub struct CoordinatorSpec {
    /// `127.0.0.1:<port>`, the same for every incarnation.
    pub listen: String,
    /// The sled database folder.
    pub db: PathBuf,
    /// Extra `serve` flags (token, lease).
    pub args: Vec<String>,
    /// Extra environment (the store fault switch).
    pub env: Vec<(String, PathBuf)>,
    /// Where the logs go: `coordinator-<n>.log`.
    pub log_dir: PathBuf,
}

/// A `coordinator serve` process and the log of each incarnation.
pub struct Coordinator {
    spec: CoordinatorSpec,
    child: Option<Child>,
    /// Incarnations started so far.
    pub incarnations: usize,
}

impl Coordinator {
    /// Starts the first incarnation.
    pub fn start(spec: CoordinatorSpec) -> Coordinator {
        let mut coordinator = Coordinator {
            spec,
            child: None,
            incarnations: 0,
        };
        coordinator.restart();
        coordinator
    }

    /// The address clients and workers use.
    pub fn addr(&self) -> &str {
        &self.spec.listen
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the running incarnation to exit on its own; its exit
    /// status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Starts a new incarnation on the same port and database, retrying while the port
    /// is not free again; returns once it listens.
    pub fn restart(&mut self) {
        self.kill();
        let start = Instant::now();
        loop {
            match self.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(why) if start.elapsed() < REBIND_TIMEOUT => {
                    eprintln!("faults: coordinator did not start ({why}); retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(why) => panic!("the coordinator does not start again: {why}"),
            }
        }
    }

    /// Every log written by every incarnation, oldest first.
    pub fn logs(&self) -> Vec<PathBuf> {
        (0..self.incarnations)
            .map(|n| self.spec.log_dir.join(format!("coordinator-{n}.log")))
            .collect()
    }

    fn spawn(&mut self) -> Result<Child, String> {
        let log_path = self
            .spec
            .log_dir
            .join(format!("coordinator-{}.log", self.incarnations));
        self.incarnations += 1;
        let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
        command
            .args(["serve", "--listen", &self.spec.listen, "--db"])
            .arg(&self.spec.db)
            .args(&self.spec.args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap());
        for (name, value) in &self.spec.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the coordinator binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.starts_with("listening on ") {
            return Ok(child);
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(format!("first line {line:?}, log: {}", log.trim()))
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `worker --join` process that can be killed and started again as the same worker.
pub struct Worker {
    /// Its id (`--worker-id`).
    pub id: String,
    join: String,
    state_dir: PathBuf,
    log_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// Processes started so far (one log file each: `<id>-<n>.log`).
    pub incarnations: usize,
}

impl Worker {
    /// Starts worker `id` joining `join`, with its own state folder under `dir`.
    pub fn start(id: &str, join: &str, dir: &Path, args: &[String]) -> Worker {
        let mut worker = Worker {
            id: id.to_string(),
            join: join.to_string(),
            state_dir: dir.join(format!("{id}-state")),
            log_dir: dir.to_path_buf(),
            args: args.to_vec(),
            child: None,
            incarnations: 0,
        };
        worker.restart();
        worker
    }

    /// kill -9; its training child dies with it (PR_SET_PDEATHSIG).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new process with the same id and state folder.
    pub fn restart(&mut self) {
        self.kill();
        let binary =
            ecobench_coordinator::local::worker_binary().expect("the worker binary is built");
        let log = self
            .log_dir
            .join(format!("{}-{}.log", self.id, self.incarnations));
        self.incarnations += 1;
        let child = Command::new(binary)
            .args([
                "--join",
                &self.join,
                "--worker-id",
                &self.id,
                "--threads",
                "1",
            ])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("the worker binary runs");
        self.child = Some(child);
    }

    /// True while its training child runs: it holds a lease and is mid-job.
    pub fn mid_job(&self) -> bool {
        self.child
            .as_ref()
            .is_some_and(|child| !crate::support::children_of(child.id()).is_empty())
    }

    /// Every log its processes wrote, oldest first.
    pub fn logs(&self) -> Vec<PathBuf> {
        (0..self.incarnations)
            .map(|n| self.log_dir.join(format!("{}-{n}.log", self.id)))
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}
