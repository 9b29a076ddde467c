//! The worker's loop: connect, join, lease, run, report; reconnect with
//! exponential backoff and jitter when the coordinator goes away, keeping a
//! finished result until the coordinator has taken it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ecobench_shared::HardwareFingerprint;
use rand::Rng;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::client::{Client, ClientError, LeasedJob};
use crate::energy::{Meter, MeterConfig};
use crate::exec::{self, ExecConfig, Outcome};
use crate::fingerprint;
use crate::outbox::Outbox;

/// How long one `LeaseJob` call may wait on the coordinator for work.
const LEASE_WAIT: Duration = Duration::from_secs(10);

/// What the worker needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinator's `host:port`.
    pub coordinator: String,
    /// The shared token, if the coordinator wants one.
    pub token: Option<String>,
    /// This worker's id, stable across reconnects.
    pub worker_id: String,
    /// How jobs run.
    pub exec: ExecConfig,
    /// How energy is measured.
    pub meter: MeterConfig,
    /// Where finished outcomes wait until the coordinator has taken them.
    pub outbox_dir: PathBuf,
}

/// Exponential backoff from 0.5 s to 30 s with ±50 % jitter.
#[derive(Debug)]
struct Backoff {
    next_s: f64,
}

impl Backoff {
    const FIRST_S: f64 = 0.5;
    const MAX_S: f64 = 30.0;

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
    info!(worker = %config.worker_id, cpu = %fingerprint.cpu_model, energy = %fingerprint.energy_source, country = %fingerprint.country, "worker starting");
    let outbox = Outbox::open(&config.outbox_dir).with_context(|| {
        format!(
            "cannot use the outbox folder {}: pass a writable --state-dir",
            config.outbox_dir.display()
        )
    })?;
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
    backoff: &mut Backoff,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let mut client = Client::connect(
        &config.coordinator,
        config.token.as_deref(),
        &config.worker_id,
    )
    .await?;
    let heartbeat_every = client.join(fingerprint.clone()).await?;
    info!(coordinator = %config.coordinator, "joined");
    backoff.reset();
    for stored in outbox.stored() {
        info!(job = %stored.job.spec.job_id(), "delivering a stored outcome");
        deliver(&mut client, &stored.job, stored.outcome).await?;
        outbox.remove(&stored.path);
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
        let outcome = exec::run_job(
            &job,
            &config.exec,
            &crate::train::JobWeights::default(),
            meter,
            &mut client,
            heartbeat_every,
            shutdown,
        )
        .await;
        if matches!(outcome, Outcome::Cancelled) {
            continue;
        }
        let stored = outbox.put(&job, &outcome);
        if let Err(err) = &stored {
            warn!(error = %err, dir = %outbox.dir().display(), "cannot store the outcome on disk: it is lost if it cannot be delivered now");
        }
        deliver(&mut client, &job, outcome).await?;
        if let Ok(path) = stored {
            outbox.remove(&path);
        }
    }
}

/// Sends an outcome; a refusal (stale lease) is logged and dropped, a lost
/// connection is returned so that the caller keeps the outcome.
async fn deliver(
    client: &mut Client,
    job: &LeasedJob,
    outcome: Outcome,
) -> Result<(), ClientError> {
    let sent = match outcome {
        Outcome::Succeeded(result) => {
            let (accuracy, energy_kwh) = (result.train.accuracy, result.energy.energy_kwh);
            let sent = client.complete(job, *result).await;
            if sent.is_ok() {
                info!(job = %job.spec.job_id(), accuracy, energy_kwh, "job succeeded");
            }
            sent
        }
        Outcome::Failed { reason, retryable } => {
            warn!(job = %job.spec.job_id(), %reason, retryable, "job failed");
            client.fail(job, &reason, retryable).await
        }
        Outcome::Declined { reason } => {
            warn!(job = %job.spec.job_id(), %reason, "job declined");
            client.decline(job, &reason).await
        }
        Outcome::Cancelled => Ok(()),
    };
    match sent {
        Err(err) if !err.is_unreachable() => {
            warn!(job = %job.spec.job_id(), error = %err, "the coordinator did not take the outcome; dropping it");
            Ok(())
        }
        other => other,
    }
}
