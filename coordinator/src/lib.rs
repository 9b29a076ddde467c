//! The ecobench coordinator.
//!
//! - [`store`]: the sled database (the only module that touches sled).
//! - [`artifacts`]: content-addressed files (weights) beside the database.
//! - [`scheduler`]: the job state machine, pure functions.
//! - [`coordinator`]: the domain: campaigns, leases, results, reports.
//! - [`report`]: aggregation (pure) and rendering (table, CSV, JSON).
//! - [`service`]: the tonic adapter and the server; [`client`]: the CLI's gRPC client.
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

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the sled database lives.
    pub db: PathBuf,
    /// Shared token callers must present; `None` accepts every caller.
    pub token: Option<String>,
    /// Leases, attempts, limits.
    pub coordinator: CoordinatorConfig,
    /// Largest artifact accepted, in bytes.
    pub max_artifact_bytes: u64,
}

/// Serves the coordinator on `listener` until `shutdown` completes.
///
/// The caller binds the listener (so tests can bind `127.0.0.1:0`) and decides
/// what shutdown means.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let store = Store::open(&config.db)
        .with_context(|| format!("cannot open the database {}", config.db.display()))?;
    let artifacts_dir = artifacts::artifacts_dir(&config.db);
    let artifacts = ArtifactStore::open(artifacts_dir, store.clone(), config.max_artifact_bytes)
        .context("cannot open the artifacts folder")?;
    let coordinator = Arc::new(Coordinator::new(store, artifacts, config.coordinator));
    let reaper = tokio::spawn(reap_forever(coordinator.clone()));
    info!(addr = %listener.local_addr()?, db = %config.db.display(), "coordinator serving");
    // On shutdown: stop accepting calls, end long polls at once, let calls in flight
    // finish (tonic's graceful shutdown), then flush the database before exiting.
    let closing = {
        let coordinator = coordinator.clone();
        async move {
            shutdown.await;
            info!("shutting down: no new calls, long polls end, calls in flight finish");
            coordinator.close();
        }
    };
    let served = service::serve(listener, coordinator.clone(), config.token, closing).await;
    reaper.abort();
    let flushed = coordinator.flush().await;
    served.context("the gRPC server failed")?;
    flushed.context("cannot flush the database on shutdown")?;
    info!("coordinator stopped; database flushed");
    Ok(())
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
