//! `loadgen`: simulated workers on loopback leasing and completing no-op jobs against a
//! real coordinator for a while, then one summary of throughput, RPC latencies, errors
//! and duplicates.
//!
//! By default it spawns `coordinator serve` (the binary next to its own) on a fresh
//! temporary database; `--addr` targets a running coordinator instead. Each simulated
//! worker has its own gRPC channel (its own TCP connection).

mod pool;
mod sim;
mod stats;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ecobench_proto::auth::BearerToken;
use ecobench_shared::process::read_token_file;
use tokio::sync::{Barrier, watch};
use tokio::time::Instant;

use crate::pool::{Backlog, Pool};
use crate::sim::SimConfig;
use crate::stats::{Stats, Tracker};
use crate::target::Spawned;

/// Load generator: N simulated workers lease and complete no-op jobs against a real
/// coordinator; prints jobs/s, RPC latencies, errors and duplicates.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Simulated workers, each with its own gRPC channel.
    #[arg(long, default_value_t = 200)]
    workers: u32,
    /// Seconds of load, after every worker has joined.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// A running coordinator (host:port) to load instead of spawning one; it needs a
    /// `--max-jobs` of at least `--chunk` (and `--backlog` + 1).
    #[arg(long)]
    addr: Option<String>,
    /// File holding the token to present (with --addr).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The coordinator binary to spawn; default: `coordinator` next to this executable.
    #[arg(long)]
    coordinator_bin: Option<PathBuf>,
    /// Where the spawned coordinator's log (stderr) goes; default: a file in its
    /// temporary folder, deleted at the end.
    #[arg(long)]
    coordinator_log: Option<PathBuf>,
    /// `--lease-s` of the spawned coordinator (default: its own); a long lease keeps the
    /// backlog's held pretrain lease alive when heartbeats queue for seconds.
    #[arg(long)]
    lease_s: Option<u64>,
    /// Pending jobs stored before the load that the workers never get: fine-tune jobs
    /// waiting for a pretrain job whose lease a holder keeps alive.
    #[arg(long, default_value_t = 0)]
    backlog: u32,
    /// Jobs per submitted campaign; another is submitted whenever fewer than this many
    /// remain not completed (at least 4 per worker).
    #[arg(long, default_value_t = 2000)]
    chunk: u32,
    /// Longest wait of one LeaseJob, in milliseconds.
    #[arg(long, default_value_t = 200)]
    lease_wait_ms: u32,
    /// Send one Heartbeat per job between its lease and its completion.
    #[arg(long)]
    heartbeat: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.workers == 0 || cli.seconds == 0 {
        bail!("--workers and --seconds must be at least 1");
    }
    let (addr, spawned, token) = match &cli.addr {
        Some(addr) => {
            let token = cli.token_file.as_deref().map(read_token_file).transpose()?;
            (addr.clone(), None, token)
        }
        None => {
            let bin = match &cli.coordinator_bin {
                Some(bin) => bin.clone(),
                None => target::default_binary()?,
            };
            let spawned = Spawned::start(&bin, cli.coordinator_log.as_deref(), cli.lease_s).await?;
            eprintln!(
                "loadgen: coordinator {} (pid {}) on {}, log {}",
                bin.display(),
                spawned.pid,
                spawned.addr,
                spawned.log.display()
            );
            (spawned.addr.clone(), Some(spawned), None)
        }
    };
    let token = BearerToken::new(token.as_deref())?;
    let outcome = load(&cli, &addr, &token).await;
    let peak_rss = spawned.as_ref().and_then(|s| stats::peak_rss_bytes(s.pid));
    let coordinator_cpu_s = spawned
        .as_ref()
        .and_then(|s| stats::cpu_seconds(&s.pid.to_string()));
    if let (Some(coordinator), Some(me)) = (coordinator_cpu_s, stats::cpu_seconds("self")) {
        eprintln!(
            "loadgen: CPU used: coordinator {coordinator:.1} s, loadgen {me:.1} s (from their start)"
        );
    }
    if let Some(spawned) = spawned {
        spawned.stop().await;
    }
    let outcome = outcome?;
    outcome.print(&cli, peak_rss);
    Ok(())
}

/// What a run measured.
#[derive(Debug)]
struct Outcome {
    stats: Stats,
    completed: u64,
    duplicates: u64,
    elapsed: Duration,
    campaigns: u32,
    backlog_jobs: u32,
}

/// Runs the load against `addr`.
async fn load(cli: &Cli, addr: &str, token: &BearerToken) -> Result<Outcome> {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let channel = target::channel(addr).await?;
    let mut campaigns = target::campaign_client(channel.clone(), token);
    let mut stats = Stats::default();
    let backlog = if cli.backlog > 0 {
        let holder = target::worker_client(target::channel(addr).await?, token);
        let backlog = Backlog::hold(&mut campaigns, holder, nonce, cli.backlog, &mut stats).await?;
        eprintln!(
            "loadgen: backlog campaign {} holds {} stored jobs, pending behind a held pretrain lease",
            backlog.campaign_id, backlog.n_jobs
        );
        Some(backlog)
    } else {
        None
    };
    let chunk = cli.chunk.max(cli.workers * 4);
    let mut pool = Pool::new(campaigns, nonce, chunk);
    pool.add_campaign(&mut stats)
        .await
        .context("cannot submit the first campaign")?;
    pool.add_campaign(&mut stats).await?;

    let config = Arc::new(SimConfig {
        lease_wait_ms: cli.lease_wait_ms,
        heartbeat: cli.heartbeat,
        id_prefix: format!("loadgen-{nonce}"),
    });
    let tracker = Arc::new(Tracker::default());
    let joined = Arc::new(Barrier::new(cli.workers as usize + 1));
    let (start, deadline_rx) = watch::channel(None);
    let mut workers = Vec::with_capacity(cli.workers as usize);
    for idx in 0..cli.workers {
        let client = target::worker_client(target::channel(addr).await?, token);
        workers.push(tokio::spawn(sim::run(
            config.clone(),
            idx,
            client,
            tracker.clone(),
            joined.clone(),
            deadline_rx.clone(),
        )));
    }
    joined.wait().await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(cli.seconds);
    start.send_replace(Some(deadline));
    let refill = tokio::spawn(pool.refill_until(tracker.clone(), deadline));
    let progress = tokio::spawn(report_progress(tracker.clone(), started, deadline));
    for worker in workers {
        stats.merge(worker.await.context("a simulated worker panicked")?);
    }
    let elapsed = started.elapsed();
    progress.abort();
    let (pool_stats, n_campaigns) = refill.await.context("the pool task panicked")?;
    stats.merge(pool_stats);
    let backlog_jobs = match backlog {
        Some(backlog) => {
            let n_jobs = backlog.n_jobs;
            stats.merge(backlog.release().await);
            n_jobs
        }
        None => 0,
    };
    Ok(Outcome {
        stats,
        completed: tracker.completed(),
        duplicates: tracker.duplicates(),
        elapsed,
        campaigns: n_campaigns,
        backlog_jobs,
    })
}

/// Prints the completions of each twelfth of the run to stderr: whether the rate holds
/// as the store grows.
async fn report_progress(tracker: Arc<Tracker>, started: Instant, deadline: Instant) {
    let step = ((deadline - started) / 12).max(Duration::from_secs(1));
    let mut ticks = tokio::time::interval_at(started + step, step);
    let mut last = 0;
    loop {
        let now = ticks.tick().await;
        let done = tracker.completed();
        eprintln!(
            "loadgen: {:5.1} s, {done} jobs, {:.1} jobs/s in the last {:.1} s",
            (now - started).as_secs_f64(),
            (done - last) as f64 / step.as_secs_f64(),
            step.as_secs_f64()
        );
        last = done;
    }
}

impl Outcome {
    /// The details, then the one summary line.
    fn print(&self, cli: &Cli, peak_rss: Option<u64>) {
        let s = &self.stats;
        println!("RPC latencies:");
        print!("{}", s.table());
        println!(
            "campaigns submitted: {}, empty leases: {}, join throttled: {}",
            self.campaigns, s.empty_leases, s.join_throttled
        );
        for (key, count) in &s.errors {
            println!("error {key}: {count}");
        }
        let rate = self.completed as f64 / self.elapsed.as_secs_f64();
        let rss = peak_rss.map_or(String::new(), |bytes| {
            format!(", coordinator peak RSS {:.1} MiB", bytes as f64 / 1048576.0)
        });
        println!(
            "load: {} workers, {:.1} s, {} jobs, {rate:.1} jobs/s, lease {}, complete {}, errors {}, duplicates {}, backlog {}{rss}",
            cli.workers,
            self.elapsed.as_secs_f64(),
            self.completed,
            s.percentiles("lease"),
            s.percentiles("complete"),
            s.n_errors(),
            self.duplicates,
            self.backlog_jobs,
        );
    }
}
