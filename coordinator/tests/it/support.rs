//! The test cluster: coordinator and worker processes, tiny IDX datasets, a gRPC client.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use ecobench_proto::auth::BearerToken;
use ecobench_proto::pb;
use ecobench_proto::pb::campaign_service_client::CampaignServiceClient;
use ecobench_worker::data::{Dataset, write_split};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The longest a test waits for a campaign to end.
const CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(180);

/// Starts `coordinator serve` with exactly `args`; returns once it listens: the child, the
/// address its first line printed, and its stdout's further lines.
pub fn spawn_serve(args: &[&str]) -> (Child, String, Lines<BufReader<ChildStdout>>) {
    spawn_serve_to(args, Stdio::null())
}

/// [`spawn_serve`] with its log (stderr) going to `stderr`.
pub fn spawn_serve_to(
    args: &[&str],
    stderr: Stdio,
) -> (Child, String, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("serve")
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("coordinator starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("a first line").expect("text");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr, lines)
}

/// A `coordinator serve` process.
pub struct CoordinatorProcess {
    child: Child,
    /// Its `host:port`.
    pub addr: String,
}

impl CoordinatorProcess {
    /// Starts `coordinator serve` on 127.0.0.1:0 over `db`; returns once it listens.
    pub fn start(db: &Path, extra_args: &[&str]) -> CoordinatorProcess {
        CoordinatorProcess::start_at("127.0.0.1:0", db, extra_args)
    }

    /// Starts `coordinator serve` on `listen` over `db`; returns once it listens.
    pub fn start_at(listen: &str, db: &Path, extra_args: &[&str]) -> CoordinatorProcess {
        let db = db.display().to_string();
        let mut args = vec!["--listen", listen, "--db", &db];
        args.extend_from_slice(extra_args);
        let (child, addr, _) = spawn_serve(&args);
        CoordinatorProcess { addr, child }
    }

    /// Starts `coordinator serve` on 127.0.0.1:0 over `db`, logging to the file `log`.
    pub fn start_logged(db: &Path, log: &Path) -> CoordinatorProcess {
        let db = db.display().to_string();
        let args = ["--listen", "127.0.0.1:0", "--db", &db];
        let (child, addr, _) = spawn_serve_to(&args, std::fs::File::create(log).unwrap().into());
        CoordinatorProcess { addr, child }
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as systemd's stop does.
    pub fn terminate(&self) {
        terminate(self.child.id());
    }

    /// Waits for it to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `worker --join` process, logging to a file.
pub struct WorkerProcess {
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl WorkerProcess {
    /// Starts a worker joining `addr`, with its own state folder `<dir>/state-<name>`.
    pub fn start(addr: &str, dir: &Path, name: &str, extra_args: &[&str]) -> WorkerProcess {
        let state = dir.join(format!("state-{name}"));
        WorkerProcess::start_with_state(addr, dir, name, &state, extra_args)
    }

    /// Starts a worker joining `addr` with the state folder `state` (a restarted worker
    /// finds there the outcomes its predecessor kept).
    pub fn start_with_state(
        addr: &str,
        dir: &Path,
        name: &str,
        state: &Path,
        extra_args: &[&str],
    ) -> WorkerProcess {
        let binary =
            ecobench_coordinator::local::worker_binary().expect("the worker binary is built");
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(binary)
            .args([
                "--join",
                addr,
                "--worker-id",
                name,
                "--threads",
                "1",
                "--state-dir",
            ])
            .arg(state)
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("worker starts");
        WorkerProcess { child, log }
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for it to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Freezes it (SIGSTOP): it holds what it holds and asks for nothing.
    pub fn pause(&self) {
        // SAFETY: kill(2) on our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGSTOP) };
    }

    /// Lets it run again (SIGCONT).
    pub fn resume(&self) {
        // SAFETY: as in `pause`.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deterministic pseudo-random stream (xorshift), enough for test images.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` 8×8 images of 10 easy classes: each class lights its own random quarter
/// of the pixels, under noise.
fn synthetic(n: usize, seed: u64) -> Dataset {
    let side = 8;
    let patterns: Vec<Vec<bool>> = (0..10u64)
        .map(|class| {
            let mut noise = Noise(1000 + class * 7919);
            (0..side * side)
                .map(|_| noise.next().is_multiple_of(4))
                .collect()
        })
        .collect();
    let mut noise = Noise(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let labels: Vec<u8> = (0..n).map(|idx| (idx % 10) as u8).collect();
    let mut images = Vec::with_capacity(n * side * side);
    for &label in &labels {
        for &lit in &patterns[usize::from(label)] {
            let base: u64 = if lit { 170 } else { 0 };
            images.push((base + noise.next() % 80) as u8);
        }
    }
    Dataset {
        channels: 1,
        rows: side,
        cols: side,
        images,
        labels,
    }
}

/// The processes whose parent is `pid`, with the CPU ticks each has used (from
/// `/proc/<pid>/stat`): a worker's training child while a job runs.
pub fn children_of(pid: u32) -> Vec<(u32, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state, ppid, … utime (14th
        // field of the line), stime (15th).
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = fields[1].parse().unwrap_or(0);
        if ppid == pid {
            let ticks =
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
            found.push((child, ticks));
        }
    }
    found
}

/// Writes a tiny dataset folder (gzipped IDX) and returns it.
pub fn tiny_dataset(dir: &Path) -> PathBuf {
    tiny_dataset_copy(dir, 0).0
}

/// Writes copy `variant` of the tiny dataset as `<dir>/tiny-idx` (copies of different
/// variants differ in their noise); returns the folder and its fingerprint.
pub fn tiny_dataset_copy(dir: &Path, variant: u64) -> (PathBuf, String) {
    let path = dir.join("tiny-idx");
    std::fs::create_dir_all(&path).unwrap();
    let (train, test) = (
        synthetic(400, 1 + 2 * variant),
        synthetic(100, 2 + 2 * variant),
    );
    write_split(&path, &train, &test, true).unwrap();
    (path, ecobench_worker::data::digest(&train, &test))
}

/// A campaign over `dataset` with the given model tables.
pub fn campaign(name: &str, dataset: &Path, seeds: &str, models: &str) -> String {
    format!(
        "name = \"{name}\"\ndataset = \"{}\"\ntrain_samples = 300\ntest_samples = 100\nseeds = {seeds}\n\n[defaults]\nepochs = 2\nbatch_size = 16\nlearning_rate = 0.003\n\n{models}",
        dataset.display()
    )
}

/// A raw campaign client, to check gRPC codes.
pub type RawClient = CampaignServiceClient<InterceptedService<Channel, BearerToken>>;

/// Connects a campaign client with an optional token.
pub async fn client(addr: &str, token: Option<&str>) -> RawClient {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    CampaignServiceClient::with_interceptor(channel, BearerToken::new(token).unwrap())
}

/// Submits a campaign text; returns the answer.
pub async fn submit(
    client: &mut RawClient,
    name: &str,
    toml: &str,
) -> Result<pb::SubmitCampaignResponse, tonic::Status> {
    let request = pb::SubmitCampaignRequest {
        file_name: name.to_string(),
        toml: toml.to_string(),
        uploads: Default::default(),
    };
    client
        .submit_campaign(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Polls until every job of the campaign has ended; panics with the worker logs on timeout.
pub async fn wait_done(
    client: &mut RawClient,
    campaign: &str,
    workers: &[&WorkerProcess],
) -> pb::CampaignStatus {
    let start = Instant::now();
    loop {
        let request = pb::GetCampaignRequest {
            campaign: campaign.to_string(),
        };
        let status = client.get_campaign(request).await.unwrap().into_inner();
        if status.pending + status.leased == 0 {
            return status;
        }
        if start.elapsed() > CAMPAIGN_TIMEOUT {
            let logs: Vec<String> = workers.iter().map(|w| w.log_text()).collect();
            panic!(
                "campaign not done in time: {status:?}\nworker logs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The report's rows (`report.json`'s `jobs`).
pub async fn job_rows(client: &mut RawClient, campaign: &str) -> Vec<serde_json::Value> {
    let json = report_file(&report(client, campaign).await, "report.json");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    report["jobs"].as_array().unwrap().clone()
}

/// Fetches a campaign's report (id or name).
pub async fn report(client: &mut RawClient, campaign: &str) -> pb::GetReportResponse {
    let request = pb::GetReportRequest {
        campaign: campaign.to_string(),
        ..Default::default()
    };
    client.get_report(request).await.unwrap().into_inner()
}

/// Polls until one of the campaign's jobs is leased.
pub async fn wait_leased(client: &mut RawClient, campaign: &str) {
    let request = pb::GetCampaignRequest {
        campaign: campaign.to_string(),
    };
    while client
        .get_campaign(request.clone())
        .await
        .unwrap()
        .into_inner()
        .leased
        == 0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The report's file of that name, as text.
pub fn report_file(report: &pb::GetReportResponse, name: &str) -> String {
    let file = report
        .files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no {name} in the report"));
    String::from_utf8(file.content.clone()).unwrap()
}

/// Parses a CSV into header → values rows.
pub fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|record| {
            header
                .iter()
                .cloned()
                .zip(record.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}
