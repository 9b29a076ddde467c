//! The ecobench coordinator.
//!
//! - [`store`]: the sled database (the only module that touches sled).
//! - [`artifacts`]: content-addressed files (weights) beside the database.
//! - [`scheduler`]: the job state machine, pure functions.
//! - [`coordinator`]: the domain: campaigns, leases, results, reports.
//! - [`report`]: aggregation (pure) and rendering (table, CSV, JSON).
//! - [`service`]: the tonic adapter and the server; [`client`]: the CLI's gRPC client.
//! - [`metrics`]: the Prometheus metrics of `serve --metrics`.
//! - [`commands`]: what the CLI's subcommands do; [`local`]: local worker processes for `run`;
//!   [`live`]: the live progress display of `status --watch` and `run`.
//!
//! Entry point: [`run`] serves a coordinator on a bound listener until shutdown.

pub mod artifacts;
pub mod client;
pub mod commands;
pub mod coordinator;
pub mod live;
pub mod local;
pub mod metrics;
pub mod report;
pub mod scheduler;
pub mod service;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::artifacts::ArtifactStore;
pub use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::store::Store;

/// The longest a stopping coordinator waits for scrapes in flight.
const METRICS_SHUTDOWN: Duration = Duration::from_secs(5);

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the sled database lives.
    pub db: PathBuf,
    /// Tokens, TLS, the join rate, and whether to serve unguarded beyond loopback.
    pub security: service::Security,
    /// Leases, attempts, limits.
    pub coordinator: CoordinatorConfig,
    /// Largest artifact accepted, in bytes.
    pub max_artifact_bytes: u64,
    /// Where to serve Prometheus metrics (`/metrics`); none when `None`.
    pub metrics: Option<ecobench_shared::metrics::MetricsListener>,
}

impl ServeConfig {
    /// A loopback configuration over `db`: no token, no TLS, default limits.
    pub fn new(db: PathBuf) -> ServeConfig {
        ServeConfig {
            db,
            security: service::Security::default(),
            coordinator: CoordinatorConfig::default(),
            max_artifact_bytes: artifacts::DEFAULT_MAX_ARTIFACT_BYTES,
            metrics: None,
        }
    }
}

/// Serves the coordinator on `listener` until `shutdown` completes.
///
/// The caller binds the listener (so tests can bind `127.0.0.1:0`) and decides
/// what shutdown means. Refuses a listener beyond loopback that would let callers in
/// unauthenticated, or a TLS key that is not its certificate's (see
/// [`service::Security::check`]).
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    config.security.check(addr).map_err(anyhow::Error::msg)?;
    let store = Store::open(&config.db)
        .with_context(|| format!("cannot open the database {}", config.db.display()))?;
    let artifacts_dir = artifacts::artifacts_dir(&config.db);
    let artifacts = ArtifactStore::open(artifacts_dir, store.clone(), config.max_artifact_bytes)
        .context("cannot open the artifacts folder")?;
    let mut failed = store.failed();
    let coordinator = Arc::new(Coordinator::new(store, artifacts, config.coordinator));
    let reaper = tokio::spawn(reap_forever(coordinator.clone()));
    let tls = config.security.tls.as_ref();
    info!(%addr, db = %config.db.display(), tls = tls.is_some(), client_certificates = tls.is_some_and(|t| t.verifies_clients()), "coordinator serving");
    // On shutdown: stop accepting calls, end long polls at once, let calls in flight
    // finish (tonic's graceful shutdown), then flush the database before exiting. A
    // store that stopped (a write failed: see `store`) shuts the server down the same way.
    let closing = {
        let coordinator = coordinator.clone();
        let mut failed = failed.clone();
        async move {
            tokio::select! {
                _ = shutdown => {
                    info!("shutting down: no new calls, long polls end, calls in flight finish");
                }
                _ = failed.wait_for(Option::is_some) => {
                    error!("the database takes no more writes: stopping, so that the coordinator starts again on it reopened");
                }
            }
            coordinator.close();
        }
    };
    let metrics = Arc::new(metrics::Metrics::new());
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_server = config
        .metrics
        .as_ref()
        .map(|listener| {
            serve_metrics(
                listener,
                metrics.clone(),
                coordinator.clone(),
                metrics_stopped,
            )
        })
        .transpose()?;
    let served = service::serve(
        listener,
        coordinator.clone(),
        config.security,
        metrics,
        closing,
    )
    .await;
    reaper.abort();
    drop(metrics_stop);
    if let Some(server) = metrics_server {
        // Idle scrapers' connections close at once; a stuck one is not waited for long.
        let _ = tokio::time::timeout(METRICS_SHUTDOWN, server).await;
    }
    let failure = failed.borrow_and_update().clone();
    if let Some(cause) = failure {
        anyhow::bail!(
            "the database {} failed a write ({cause}); sled takes no write after an I/O \
             error until the database is reopened, so the coordinator stopped. Give the \
             disk room (or fix it) and start the coordinator again: systemd \
             (deploy/systemd) and Kubernetes restart it by themselves. Every call it \
             answered is on disk, and workers keep their outcomes until it is back.",
            config.db.display()
        );
    }
    let flushed = coordinator.flush().await;
    served.context("the gRPC server failed")?;
    flushed.context("cannot flush the database on shutdown")?;
    info!("coordinator stopped; database flushed");
    Ok(())
}

/// Starts serving `metrics` on `listener` until `stop` fires or is dropped.
fn serve_metrics(
    listener: &ecobench_shared::metrics::MetricsListener,
    metrics: Arc<metrics::Metrics>,
    coordinator: Arc<Coordinator>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let addr = listener.local_addr()?;
    info!(url = %format!("http://{addr}/metrics"), "serving metrics");
    let render: ecobench_shared::metrics::Render = Arc::new(move || metrics.render(&coordinator));
    let listener = listener.clone();
    Ok(tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.await;
        };
        if let Err(err) = ecobench_shared::metrics::serve(&listener, render, stopped).await {
            error!(error = %err, "the metrics server failed");
        }
    }))
}

/// Voids expired leases once a second.
async fn reap_forever(coordinator: Arc<Coordinator>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(err) = coordinator.reap_expired().await {
            error!(error = %err, "cannot reap expired leases");
        }
    }
}
