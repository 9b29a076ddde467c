//! The work under load: campaigns of no-op jobs, submitted as the pool runs low, and the
//! backlog, pending jobs kept stored but never leasable while the load runs.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ecobench_proto::pb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::sim;
use crate::stats::{Stats, Tracker};
use crate::target::{CampaignClient, WorkerClient};

/// How often the pool looks whether it runs low.
const REFILL_POLL: Duration = Duration::from_millis(20);

/// Campaigns of `chunk` linear-SVM jobs (one per seed), named after the run's `nonce`.
#[derive(Debug)]
pub struct Pool {
    client: CampaignClient,
    /// Unique per run, so that campaigns differ from those of earlier runs.
    nonce: u64,
    /// Jobs per campaign.
    chunk: u32,
    /// Campaigns submitted so far.
    campaigns: u32,
    /// Jobs submitted so far.
    pub submitted: u64,
}

/// The campaign file of `n_seeds` seeds from `first_seed`, one linear-SVM configuration.
fn campaign_toml(name: &str, first_seed: u64, n_seeds: u32, model: &str) -> String {
    let mut seeds = String::with_capacity(n_seeds as usize * 8);
    for seed in first_seed..first_seed + u64::from(n_seeds) {
        if !seeds.is_empty() {
            seeds.push_str(", ");
        }
        let _ = write!(seeds, "{seed}");
    }
    format!(
        "name = \"{name}\"\ndataset = \"fashion-mnist\"\ntrain_samples = 1000\ntest_samples = 100\nseeds = [{seeds}]\n\n[[model]]\n{model}\n"
    )
}

/// Submits a campaign; returns its id and job count, recording the call in `stats`.
async fn submit(
    client: &mut CampaignClient,
    name: &str,
    toml: String,
    stats: &mut Stats,
) -> Result<pb::SubmitCampaignResponse> {
    let request = pb::SubmitCampaignRequest {
        file_name: format!("{name}.toml"),
        toml,
        uploads: Default::default(),
    };
    let started = Instant::now();
    match client.submit_campaign(request).await {
        Ok(answer) => {
            stats.record("submit", started.elapsed());
            Ok(answer.into_inner())
        }
        Err(status) => {
            stats.error("submit", &status);
            bail!(
                "cannot submit campaign {name}: {} ({:?}); against --addr, the coordinator may need a larger --max-jobs",
                status.message(),
                status.code()
            )
        }
    }
}

impl Pool {
    /// A pool submitting campaigns of `chunk` jobs.
    pub fn new(client: CampaignClient, nonce: u64, chunk: u32) -> Pool {
        Pool {
            client,
            nonce,
            chunk,
            campaigns: 0,
            submitted: 0,
        }
    }

    /// Submits one more campaign.
    pub async fn add_campaign(&mut self, stats: &mut Stats) -> Result<()> {
        let name = format!("loadgen-{}-{}", self.nonce, self.campaigns);
        let first_seed = u64::from(self.campaigns) * u64::from(self.chunk) + 1;
        let toml = campaign_toml(
            &name,
            first_seed,
            self.chunk,
            "kind = \"svm-linear\"\nc = 1.0",
        );
        let answer = submit(&mut self.client, &name, toml, stats).await?;
        self.campaigns += 1;
        self.submitted += u64::from(answer.n_jobs);
        Ok(())
    }

    /// Keeps at least one campaign's worth of jobs not yet completed until `deadline`.
    pub async fn refill_until(mut self, tracker: Arc<Tracker>, deadline: Instant) -> (Stats, u32) {
        let mut stats = Stats::default();
        while Instant::now() < deadline {
            let outstanding = self.submitted.saturating_sub(tracker.completed());
            if outstanding < u64::from(self.chunk) {
                if let Err(err) = self.add_campaign(&mut stats).await {
                    eprintln!("loadgen: {err:#}");
                    tokio::time::sleep(REFILL_POLL).await;
                }
                continue;
            }
            tokio::time::sleep(REFILL_POLL).await;
        }
        (stats, self.campaigns)
    }
}

/// `n` pending fine-tune jobs that wait for their campaign's pretrain job, whose lease a
/// holder worker keeps alive with heartbeats: stored and pending, never leasable.
#[derive(Debug)]
pub struct Backlog {
    /// The backlog campaign.
    pub campaign_id: String,
    /// Its stored jobs (the pretrain job and the waiting fine-tunes).
    pub n_jobs: u32,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Stats>,
}

impl Backlog {
    /// Submits the backlog campaign and leases its pretrain job as worker `holder_id`.
    pub async fn hold(
        campaigns: &mut CampaignClient,
        mut worker: WorkerClient,
        nonce: u64,
        n: u32,
        stats: &mut Stats,
    ) -> Result<Backlog> {
        let name = format!("loadgen-backlog-{nonce}");
        let toml = campaign_toml(
            &name,
            1,
            n,
            "kind = \"cnn\"\npretrained = \"fashion-mnist:classes0-4\"",
        );
        let answer = submit(campaigns, &name, toml, stats).await?;
        let holder_id = format!("loadgen-{nonce}-backlog-holder");
        let joined = sim::join(&mut worker, &holder_id, u32::MAX, stats)
            .await
            .context("the backlog holder cannot join")?;
        let lease = lease_pretrain(&mut worker, &holder_id, &answer.campaign_id, stats).await?;
        let interval = Duration::from_millis(joined.heartbeat_interval_ms.max(100).into());
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut stats = Stats::default();
            let job = lease.job.unwrap_or_default();
            loop {
                tokio::select! {
                    _ = &mut stopped => return stats,
                    () = tokio::time::sleep(interval) => {}
                }
                let request = pb::HeartbeatRequest {
                    worker_id: holder_id.clone(),
                    job_id: format!("{}-{}", job.campaign_id, job.job_idx),
                    lease_id: lease.lease_id,
                    progress: None,
                };
                let started = Instant::now();
                match worker.heartbeat(request).await {
                    Ok(_) => stats.record("heartbeat", started.elapsed()),
                    Err(status) => stats.error("heartbeat", &status),
                }
            }
        });
        Ok(Backlog {
            campaign_id: answer.campaign_id,
            n_jobs: answer.n_jobs,
            stop,
            task,
        })
    }

    /// Stops heartbeating; returns the holder's figures.
    pub async fn release(self) -> Stats {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// Leases until the lease is the backlog campaign's pretrain job; a job of another
/// campaign (an earlier run's, on a shared coordinator) is completed on the way.
async fn lease_pretrain(
    worker: &mut WorkerClient,
    holder_id: &str,
    campaign_id: &str,
    stats: &mut Stats,
) -> Result<pb::Lease> {
    for _ in 0..100 {
        let request = pb::LeaseJobRequest {
            worker_id: holder_id.to_string(),
            wait_ms: 1000,
        };
        let started = Instant::now();
        let answer = worker.lease_job(request).await.map_err(|status| {
            stats.error("lease", &status);
            anyhow::anyhow!("the backlog holder cannot lease: {status}")
        })?;
        stats.record("lease", started.elapsed());
        let Some(lease) = answer.into_inner().lease else {
            continue;
        };
        let job = lease.job.clone().unwrap_or_default();
        if job.campaign_id == campaign_id {
            return Ok(lease);
        }
        let request = pb::CompleteJobRequest {
            worker_id: holder_id.to_string(),
            job_id: format!("{}-{}", job.campaign_id, job.job_idx),
            lease_id: lease.lease_id,
            result: Some(sim::result(&job, sim::DATASET_SHA256.to_string())),
        };
        if let Err(status) = worker.complete_job(request).await {
            stats.error("complete", &status);
        }
    }
    bail!("the backlog holder never got the backlog campaign's pretrain job")
}
