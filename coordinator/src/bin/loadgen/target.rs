//! The coordinator under load: a `coordinator serve` process spawned on a fresh temporary
//! database, or one already running; and the gRPC clients to reach it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ecobench_proto::auth::{BearerToken, endpoint_uri};
use ecobench_proto::pb::campaign_service_client::CampaignServiceClient;
use ecobench_proto::pb::worker_service_client::WorkerServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A worker-side client with the token interceptor.
pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, BearerToken>>;
/// A campaign client with the token interceptor.
pub type CampaignClient = CampaignServiceClient<InterceptedService<Channel, BearerToken>>;

/// The longest the spawned coordinator may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest campaign the spawned coordinator accepts (`--max-jobs`).
const MAX_JOBS: u32 = 10_000_000;

/// A `coordinator serve` process on a temporary database, killed on drop.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// Holds the database (and the default log); deleted on drop.
    _dir: tempfile::TempDir,
    /// Its `host:port`.
    pub addr: String,
    /// Its process id.
    pub pid: u32,
    /// Where its log goes.
    pub log: PathBuf,
}

/// The `coordinator` binary next to this executable.
pub fn default_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the loadgen executable's path")?;
    Ok(me.with_file_name(format!("coordinator{}", std::env::consts::EXE_SUFFIX)))
}

impl Spawned {
    /// Starts `bin serve --listen 127.0.0.1:0` on a fresh database; its stderr goes to
    /// `log` (default: a file in the temporary folder), with `--lease-s lease_s` when
    /// given. Returns once it listens.
    pub async fn start(bin: &Path, log: Option<&Path>, lease_s: Option<u64>) -> Result<Spawned> {
        if !bin.is_file() {
            bail!(
                "no coordinator binary at {}: build it (cargo build [--release] -p ecobench-coordinator) or pass --coordinator-bin",
                bin.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("ecobench-loadgen-")
            .tempdir()
            .context("cannot create a temporary folder for the coordinator's database")?;
        let log = log.map_or_else(|| dir.path().join("coordinator.log"), Path::to_path_buf);
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create the coordinator log {}", log.display()))?;
        let mut command = Command::new(bin);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--max-jobs"])
            .arg(MAX_JOBS.to_string())
            .arg("--db")
            .arg(dir.path().join("db"));
        if let Some(lease_s) = lease_s {
            command.arg("--lease-s").arg(lease_s.to_string());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the coordinator exited at once")?;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let first = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .with_context(|| {
                format!(
                    "the coordinator printed no address within {START_TIMEOUT:?}: see {}",
                    log.display()
                )
            })?
            .context("cannot read the coordinator's output")?;
        let Some(addr) = first
            .as_deref()
            .and_then(|line| line.trim().strip_prefix("listening on "))
        else {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "the coordinator did not start (first line {first:?}); its log {}:\n{}",
                log.display(),
                tail.lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        };
        let addr = addr.to_string();
        // Keep draining its stdout so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Spawned {
            child,
            _dir: dir,
            addr,
            pid,
            log,
        })
    }

    /// Kills the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A new channel to `addr`.
pub async fn channel(addr: &str) -> Result<Channel> {
    Endpoint::from_shared(endpoint_uri(addr))
        .with_context(|| format!("{addr:?} is not a valid address: use host:port"))?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {addr}"))
}

/// A worker client over `channel`.
pub fn worker_client(channel: Channel, token: &BearerToken) -> WorkerClient {
    WorkerServiceClient::with_interceptor(channel, token.clone())
}

/// A campaign client over `channel`.
pub fn campaign_client(channel: Channel, token: &BearerToken) -> CampaignClient {
    CampaignServiceClient::with_interceptor(channel, token.clone())
}
