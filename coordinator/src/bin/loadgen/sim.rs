//! A simulated worker: joins with a plausible fingerprint, then leases jobs and completes
//! them at once with a synthetic, valid result, until the deadline.

use std::sync::Arc;
use std::time::Duration;

use ecobench_proto::pb;
use tokio::sync::{Barrier, watch};
use tokio::time::Instant;

use crate::stats::{Stats, Tracker};
use crate::target::WorkerClient;

/// The dataset fingerprint every simulated result claims when the lease names none.
pub const DATASET_SHA256: &str = "10ad6e0010ad6e0010ad6e0010ad6e0010ad6e0010ad6e0010ad6e0010ad6e00";

/// Pause after a failed call, so that a failing coordinator is not hammered in a loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What every simulated worker shares.
#[derive(Debug)]
pub struct SimConfig {
    /// Longest wait of one LeaseJob.
    pub lease_wait_ms: u32,
    /// Send one Heartbeat per job.
    pub heartbeat: bool,
    /// Prefix of the worker ids (unique per run).
    pub id_prefix: String,
}

/// A plausible fingerprint for simulated worker `idx`.
pub fn fingerprint(idx: u32) -> pb::HardwareFingerprint {
    pb::HardwareFingerprint {
        hostname: format!("loadgen-{idx}"),
        cpu_model: "Simulated CPU @ 2.0GHz".to_string(),
        physical_cores: 2,
        logical_cores: 4,
        ram_bytes: 8 << 30,
        os: "linux".to_string(),
        kernel: "6.1.0".to_string(),
        energy_source: "model".to_string(),
        tdp_w: Some(15.0),
        country: "FRA".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        calibration_gflops: Some(40.0),
    }
}

/// Joins as `worker_id`, retrying while a Join rate limit refuses it.
pub async fn join(
    client: &mut WorkerClient,
    worker_id: &str,
    idx: u32,
    stats: &mut Stats,
) -> Result<pb::JoinResponse, tonic::Status> {
    loop {
        let request = pb::JoinRequest {
            worker_id: worker_id.to_string(),
            fingerprint: Some(fingerprint(idx)),
        };
        let started = Instant::now();
        match client.join(request).await {
            Ok(answer) => {
                stats.record("join", started.elapsed());
                return Ok(answer.into_inner());
            }
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                stats.join_throttled += 1;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
            Err(status) => {
                stats.error("join", &status);
                return Err(status);
            }
        }
    }
}

/// Simulated worker `idx`: joins, waits at `joined` for every other worker, then for the
/// deadline on `deadline`, then leases and completes jobs until the deadline (a job
/// leased before it is still completed).
pub async fn run(
    config: Arc<SimConfig>,
    idx: u32,
    mut client: WorkerClient,
    tracker: Arc<Tracker>,
    joined: Arc<Barrier>,
    mut deadline: watch::Receiver<Option<Instant>>,
) -> Stats {
    let mut stats = Stats::default();
    let worker_id = format!("{}-{idx}", config.id_prefix);
    let join = join(&mut client, &worker_id, idx, &mut stats).await;
    joined.wait().await;
    let Ok(Some(deadline)) = deadline.wait_for(Option::is_some).await.map(|d| *d) else {
        return stats;
    };
    if join.is_err() {
        return stats;
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            return stats;
        }
        let wait_ms = config
            .lease_wait_ms
            .min(u32::try_from((deadline - now).as_millis()).unwrap_or(u32::MAX));
        let request = pb::LeaseJobRequest {
            worker_id: worker_id.clone(),
            wait_ms,
        };
        let started = Instant::now();
        let lease = match client.lease_job(request).await {
            Ok(answer) => answer.into_inner().lease,
            Err(status) => {
                stats.error("lease", &status);
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(lease) = lease else {
            stats.empty_leases += 1;
            continue;
        };
        stats.record("lease", started.elapsed());
        finish(
            &config,
            &worker_id,
            idx,
            &mut client,
            &tracker,
            &mut stats,
            lease,
        )
        .await;
    }
}

/// Heartbeats (when asked) and completes one leased job.
async fn finish(
    config: &SimConfig,
    worker_id: &str,
    idx: u32,
    client: &mut WorkerClient,
    tracker: &Tracker,
    stats: &mut Stats,
    lease: pb::Lease,
) {
    let job = lease.job.unwrap_or_default();
    let job_id = format!("{}-{}", job.campaign_id, job.job_idx);
    tracker.leased(&job_id, idx);
    if config.heartbeat {
        let request = pb::HeartbeatRequest {
            worker_id: worker_id.to_string(),
            job_id: job_id.clone(),
            lease_id: lease.lease_id,
            progress: Some(pb::Progress {
                epoch: 1,
                n_epochs: 1,
                loss: 0.5,
                accuracy: 0.8,
                samples_per_s: 10_000.0,
            }),
        };
        let started = Instant::now();
        match client.heartbeat(request).await {
            Ok(_) => stats.record("heartbeat", started.elapsed()),
            Err(status) => stats.error("heartbeat", &status),
        }
    }
    let dataset_sha256 = job
        .expected_dataset_sha256
        .clone()
        .unwrap_or_else(|| DATASET_SHA256.to_string());
    let request = pb::CompleteJobRequest {
        worker_id: worker_id.to_string(),
        job_id: job_id.clone(),
        lease_id: lease.lease_id,
        result: Some(result(&job, dataset_sha256)),
    };
    let started = Instant::now();
    match client.complete_job(request).await {
        Ok(answer) => {
            stats.record("complete", started.elapsed());
            tracker.acknowledged(&job_id, answer.into_inner().duplicate);
        }
        Err(status) => {
            stats.error("complete", &status);
            tracker.released(&job_id);
        }
    }
}

/// A synthetic result the coordinator accepts: finite figures, accuracy in [0, 1],
/// positive durations and energies, the campaign's dataset fingerprint.
pub fn result(job: &pb::JobSpec, dataset_sha256: String) -> pb::JobResult {
    let n_train = job.train_samples.unwrap_or(1000);
    let n_test = job.test_samples.unwrap_or(100);
    pb::JobResult {
        train: Some(pb::TrainReport {
            accuracy: 0.5 + (job.seed % 40) as f64 / 100.0,
            train_s: 0.01,
            eval_s: 0.001,
            samples_per_s: f64::from(n_train) / 0.01,
            n_train,
            n_test,
            solver: "dcd".to_string(),
            epochs: Vec::new(),
            dataset_sha256,
        }),
        energy: Some(pb::EnergyReport {
            method: pb::EnergyMethod::Model as i32,
            duration_s: 0.011,
            cpu_time_s: 0.011,
            cpu_energy_kwh: 4.0e-8,
            ram_energy_kwh: 4.0e-9,
            energy_kwh: 4.4e-8,
            machine_energy_kwh: None,
            avg_power_w: 14.4,
            carbon_intensity_g_per_kwh: 56.0,
            carbon_region: "FRA".to_string(),
            pue: 1.0,
            co2_kg: 4.4e-8 * 0.056,
            tdp_w: Some(15.0),
            uncertainty: 0.3,
            sample_interval_s: 0.011,
            n_samples: 1,
            peak_rss_bytes: 50 << 20,
            ..Default::default()
        }),
        artifact_sha256: String::new(),
    }
}
