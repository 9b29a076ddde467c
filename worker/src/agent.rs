//! The worker's loop: connect, join, lease, run, report; reconnect with
//! exponential backoff and jitter when the coordinator goes away, keeping a
//! finished result until the coordinator has taken it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ecobench_shared::artifact::ArtifactError;
use ecobench_shared::{HardwareFingerprint, Stage};
use rand::Rng;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::artifacts::ArtifactCache;
use crate::client::{Client, ClientError, LeasedJob};
use crate::energy::{Meter, MeterConfig};
use crate::exec::{self, ExecConfig, Outcome};
use crate::fingerprint;
use crate::outbox::Outbox;
use crate::train::JobWeights;

/// How long one `LeaseJob` call may wait on the coordinator for work.
const LEASE_WAIT: Duration = Duration::from_secs(10);

/// What the worker needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinator's `host:port`.
    pub coordinator: String,
    /// The shared token, if the coordinator wants one.
    pub token: Option<String>,
    /// TLS (the coordinator's CA, a client certificate), or `None` for plain HTTP/2.
    pub tls: Option<ecobench_proto::tls::ClientTls>,
    /// This worker's id, stable across reconnects.
    pub worker_id: String,
    /// How jobs run.
    pub exec: ExecConfig,
    /// How energy is measured.
    pub meter: MeterConfig,
    /// The worker's state folder: finished outcomes wait in `outbox/` until the
    /// coordinator has taken them, fetched weights are cached in `artifacts/`.
    pub state_dir: PathBuf,
}

/// Exponential backoff from 0.5 s to 10 s with ±50 % jitter: after an outage a worker is
/// back within 15 s, inside the coordinator's restart grace.
#[derive(Debug)]
struct Backoff {
    next_s: f64,
}

impl Backoff {
    const FIRST_S: f64 = 0.5;
    const MAX_S: f64 = 10.0;

    fn new() -> Backoff {
        Backoff {
            next_s: Backoff::FIRST_S,
        }
    }

    fn reset(&mut self) {
        self.next_s = Backoff::FIRST_S;
    }

    fn next(&mut self) -> Duration {
        let jittered = self.next_s * rand::rng().random_range(0.5..1.5);
        self.next_s = (self.next_s * 2.0).min(Backoff::MAX_S);
        Duration::from_secs_f64(jittered)
    }
}

/// Runs the worker until `shutdown` turns true.
pub async fn run(config: WorkerConfig, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let meter = Meter::new(config.meter.clone())?;
    let fingerprint = fingerprint::collect(&meter);
    info!(worker = %config.worker_id, cpu = %fingerprint.cpu_model, energy = %fingerprint.energy_source, country = %fingerprint.country, calibration_gflops = fingerprint.calibration_gflops, "worker starting");
    let outbox_dir = config.state_dir.join("outbox");
    let outbox = Outbox::open(&outbox_dir).with_context(|| {
        format!(
            "cannot use the outbox folder {}: pass a writable --state-dir",
            outbox_dir.display()
        )
    })?;
    let cache = ArtifactCache::new(&config.state_dir);
    let mut backoff = Backoff::new();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let err = match session(
            &config,
            &meter,
            &fingerprint,
            &outbox,
            &cache,
            &mut backoff,
            &mut shutdown,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        if err.is_unauthenticated() {
            bail!(
                "the coordinator at {} refused this worker: {err}",
                config.coordinator
            );
        }
        let delay = backoff.next();
        warn!(error = %err, retry_in_s = delay.as_secs_f64(), "lost the coordinator; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One connection's life: join, then lease and run jobs until an error or shutdown.
async fn session(
    config: &WorkerConfig,
    meter: &Meter,
    fingerprint: &HardwareFingerprint,
    outbox: &Outbox,
    cache: &ArtifactCache,
    backoff: &mut Backoff,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let mut client = Client::connect_with(
        &config.coordinator,
        config.token.as_deref(),
        config.tls.as_ref(),
        &config.worker_id,
    )
    .await?;
    let heartbeat_every = client.join(fingerprint.clone()).await?;
    info!(coordinator = %config.coordinator, "joined");
    backoff.reset();
    for stored in outbox.stored() {
        info!(job = %stored.job.spec.job_id(), "delivering a stored outcome");
        deliver(&mut client, &stored.job, stored.outcome, outbox).await?;
        outbox.remove(&stored.path);
    }
    if *shutdown.borrow() {
        return Ok(());
    }
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let lease = tokio::select! {
            lease = client.lease(LEASE_WAIT) => lease?,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(job) = lease else { continue };
        info!(job = %job.spec.job_id(), model = job.spec.model.kind(), attempt = job.attempt, "job leased");
        let outcome = match job_weights(&job, &mut client, cache, outbox).await {
            Ok(weights) => {
                let outcome = exec::run_job(
                    &job,
                    &config.exec,
                    &weights,
                    meter,
                    &mut client,
                    heartbeat_every,
                    shutdown,
                )
                .await;
                published(&job, outcome, &weights).await
            }
            Err(err) if err.is_unreachable() => return Err(err),
            Err(err) => Outcome::Failed {
                reason: format!("cannot fetch the pretrained weights: {err}"),
                retryable: !err.is_permanent(),
                energy: None,
            },
        };
        if matches!(outcome, Outcome::Cancelled) {
            continue;
        }
        let stored = outbox.put(&job, &outcome);
        match &stored {
            Ok(_) if matches!(outcome, Outcome::Succeeded(_)) => {
                info!(job = %job.spec.job_id(), "training finished; outcome kept in the outbox")
            }
            Ok(_) => {}
            Err(err) => {
                warn!(error = %err, dir = %outbox.dir().display(), "cannot store the outcome on disk: it is lost if it cannot be delivered now")
            }
        }
        deliver(&mut client, &job, outcome, outbox).await?;
        if let Ok(path) = stored {
            outbox.remove(&path);
        }
    }
}

/// The weights files of a job: a fine-tune's pretrained weights, fetched (or taken from
/// the cache) and verified; where a pretrain job saves its own, beside the outbox so that
/// they survive until delivered.
async fn job_weights(
    job: &LeasedJob,
    client: &mut Client,
    cache: &ArtifactCache,
    outbox: &Outbox,
) -> Result<JobWeights, ClientError> {
    let mut weights = JobWeights::default();
    match &job.spec.stage {
        Stage::Scratch => {}
        Stage::Pretrain { .. } => weights.save = Some(outbox.weights_path(&job.spec)),
        Stage::FineTune {
            artifact_sha256, ..
        } => {
            let sha = artifact_sha256.as_deref().ok_or_else(|| {
                ClientError::Artifact(ArtifactError::BadSha {
                    name: "pretrained weights (the lease names no artifact)".into(),
                    sha256: String::new(),
                })
            })?;
            weights.init = Some(cache.fetch(client, sha).await?);
        }
    }
    Ok(weights)
}

/// A pretrain job's outcome names the SHA-256 of the weights it saved (uploaded when
/// the outcome is delivered).
async fn published(job: &LeasedJob, outcome: Outcome, weights: &JobWeights) -> Outcome {
    let (Outcome::Succeeded(mut result), Some(path)) = (outcome.clone(), weights.save.clone())
    else {
        return outcome;
    };
    match tokio::task::spawn_blocking(move || ecobench_shared::artifact::sha256_file(&path)).await {
        Ok(Ok((sha, _))) => {
            result.artifact_sha256 = Some(sha);
            Outcome::Succeeded(result)
        }
        Ok(Err(err)) => Outcome::Failed {
            reason: format!(
                "pretrain job {} trained but its weights cannot be read: {err}",
                job.spec.job_id()
            ),
            retryable: true,
            energy: Some(Box::new(result.energy)),
        },
        Err(err) => Outcome::Failed {
            reason: format!("hashing the weights failed: {err}"),
            retryable: true,
            energy: Some(Box::new(result.energy)),
        },
    }
}

/// Sends an outcome. A final refusal (the lease does not hold the job, the report is
/// invalid: [`ClientError::is_final`]) is logged and the outcome dropped; any other error
/// is returned, so that the caller keeps the outcome in the outbox and sends it again
/// after reconnecting.
async fn deliver(
    client: &mut Client,
    job: &LeasedJob,
    outcome: Outcome,
    outbox: &Outbox,
) -> Result<(), ClientError> {
    let sent = match outcome {
        Outcome::Succeeded(result) => {
            let (accuracy, energy_kwh) = (result.train.accuracy, result.energy.energy_kwh);
            let weights = outbox.weights_path(&job.spec);
            if result.artifact_sha256.is_some() {
                // The weights go first: the coordinator refuses a pretrain result whose
                // weights it does not hold.
                let name = format!("pretrain {}", job.spec.job_id());
                if let Err(err) = client.put_artifact(&weights, &name).await {
                    if !err.is_final() {
                        return Err(err);
                    }
                    warn!(job = %job.spec.job_id(), error = %err, "the coordinator did not take the weights");
                }
            }
            let sent = client.complete(job, *result).await;
            if sent.is_ok() {
                let _ = std::fs::remove_file(&weights);
            }
            if sent.is_ok() {
                info!(job = %job.spec.job_id(), accuracy, energy_kwh, "job succeeded");
            }
            sent
        }
        Outcome::Failed {
            reason,
            retryable,
            energy,
        } => {
            let energy_kwh = energy.as_ref().map(|e| e.energy_kwh);
            warn!(job = %job.spec.job_id(), %reason, retryable, energy_kwh, "job failed");
            client
                .fail(job, &reason, retryable, energy.map(|e| *e))
                .await
        }
        Outcome::Declined { reason, energy } => {
            warn!(job = %job.spec.job_id(), %reason, "job declined");
            client.decline(job, &reason, energy.map(|e| *e)).await
        }
        Outcome::HandedBack { energy } => {
            info!(job = %job.spec.job_id(), "worker stopping: handing the job back");
            client
                .hand_back(
                    job,
                    "handed back: its worker was stopped",
                    energy.map(|e| *e),
                )
                .await
        }
        Outcome::Cancelled => Ok(()),
    };
    match sent {
        Err(err) if err.is_final() => {
            warn!(job = %job.spec.job_id(), error = %err, "the coordinator refused the outcome for good; dropping it");
            Ok(())
        }
        other => other,
    }
}
