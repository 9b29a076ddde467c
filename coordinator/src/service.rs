//! The gRPC adapter: converts requests, calls the domain [`Coordinator`],
//! converts answers and errors. The only coordinator module that imports tonic.

use std::sync::Arc;

use ecobench_proto::pb::{
    self, campaign_service_server::CampaignService, worker_service_server::WorkerService,
};
use tonic::{Request, Response, Status};
use tracing::error;

use crate::coordinator::{CampaignStatus, Coordinator, CoordinatorError, Ending};
use crate::metrics::{Metrics, ResultOutcome};
use crate::store::StoreError;

/// Largest message accepted or sent (results and reports are small; campaign files too).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest campaign file accepted by `SubmitCampaign`.
pub const MAX_CAMPAIGN_TOML_BYTES: usize = 1024 * 1024;
/// Largest message of the health service either way (a service name, a status).
const MAX_HEALTH_MESSAGE_BYTES: usize = 4 * 1024;
/// Largest block of request headers (the token, gRPC's own headers).
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

mod artifact;
mod auth;
mod limit;
mod rpc_metrics;
mod security;

pub use auth::{Auth, Tokens};
pub use limit::{DEFAULT_JOIN_BURST, DEFAULT_JOIN_RATE, JoinLimit, JoinLimiter};
pub use rpc_metrics::{RpcMetrics, RpcMetricsLayer};
pub use security::Security;

impl From<CoordinatorError> for Status {
    fn from(err: CoordinatorError) -> Status {
        match err {
            CoordinatorError::NotFound(msg) => Status::not_found(msg),
            CoordinatorError::InvalidArgument(msg) => Status::invalid_argument(msg),
            CoordinatorError::FailedPrecondition(msg) => Status::failed_precondition(msg),
            // A store that cannot write (a full disk, an injected fault) has stopped, and
            // the coordinator with it, to be started again on the reopened database:
            // Unavailable, which workers answer by keeping their outcome and retrying
            // with backoff.
            CoordinatorError::Store(
                err @ (StoreError::Injected(_) | StoreError::Sled(_) | StoreError::Stopped(_)),
            ) => {
                error!(error = %err, "store failure");
                Status::unavailable(format!(
                    "the coordinator's database cannot be written ({err}); the coordinator \
                     stops to reopen it: retry once it is back"
                ))
            }
            CoordinatorError::Store(err) => {
                error!(error = %err, "store failure");
                Status::internal("the coordinator's database failed; see its log")
            }
            CoordinatorError::Conflict(msg) => Status::aborted(msg),
            CoordinatorError::Io(err) => {
                error!(error = %err, "file failure");
                Status::internal("the coordinator cannot read or write its files; see its log")
            }
        }
    }
}

/// The tonic services over one shared coordinator.
#[derive(Debug, Clone)]
pub struct Service {
    coordinator: Arc<Coordinator>,
    joins: Arc<JoinLimiter>,
    metrics: Arc<Metrics>,
}

impl Service {
    /// Services backed by `coordinator`, with the default join limit.
    pub fn new(coordinator: Arc<Coordinator>) -> Service {
        Service::with_join_limit(coordinator, JoinLimit::default())
    }

    /// Services backed by `coordinator`, admitting joins as `limit` allows.
    pub fn with_join_limit(coordinator: Arc<Coordinator>, limit: JoinLimit) -> Service {
        Service {
            coordinator,
            joins: Arc::new(JoinLimiter::new(limit)),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// These services, counting results into `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Service {
        Service { metrics, ..self }
    }

    /// Takes one join for the caller's address, or says to slow down.
    fn admit_join<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(ip) = request.remote_addr().map(|addr| addr.ip()) else {
            return Ok(());
        };
        self.joins
            .admit(ip, std::time::Instant::now())
            .map_err(|wait| {
                Status::resource_exhausted(format!(
                    "too many joins from {ip}: slow down and join again in {:.1} s (the coordinator's --join-rate and --join-burst)",
                    wait.as_secs_f64()
                ))
            })
    }
}

fn wire_status(s: CampaignStatus) -> pb::CampaignStatus {
    pb::CampaignStatus {
        campaign_id: s.campaign_id,
        name: s.name,
        n_jobs: s.n_jobs,
        pending: s.pending,
        leased: s.leased,
        succeeded: s.succeeded,
        failed: s.failed,
    }
}

fn invalid(err: ecobench_proto::WireError) -> Status {
    Status::invalid_argument(err.to_string())
}

#[tonic::async_trait]
impl WorkerService for Service {
    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        self.admit_join(&request)?;
        let req = request.into_inner();
        let fingerprint = req.fingerprint.unwrap_or_default().into();
        let heartbeat_interval_ms = self.coordinator.join(&req.worker_id, fingerprint).await?;
        Ok(Response::new(pb::JoinResponse {
            worker_id: req.worker_id,
            heartbeat_interval_ms,
        }))
    }

    async fn lease_job(
        &self,
        request: Request<pb::LeaseJobRequest>,
    ) -> Result<Response<pb::LeaseJobResponse>, Status> {
        let req = request.into_inner();
        let lease = self
            .coordinator
            .lease_job(&req.worker_id, req.wait_ms)
            .await?;
        Ok(Response::new(pb::LeaseJobResponse {
            lease: lease.map(|lease| pb::Lease {
                job: Some(lease.job.into()),
                lease_id: lease.lease_id,
                attempt: lease.attempt,
                lease_ms: lease.lease_ms as u32,
            }),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let req = request.into_inner();
        let progress = req.progress.unwrap_or_default().into();
        let cancel = self
            .coordinator
            .heartbeat(&req.worker_id, &req.job_id, req.lease_id, progress)
            .await?;
        Ok(Response::new(pb::HeartbeatResponse { cancel }))
    }

    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> Result<Response<pb::CompleteJobResponse>, Status> {
        let req = request.into_inner();
        let result = req
            .result
            .ok_or_else(|| Status::invalid_argument("CompleteJob without a result"))?;
        let result = result.try_into().map_err(invalid)?;
        let duplicate = self
            .coordinator
            .complete(&req.worker_id, &req.job_id, req.lease_id, result)
            .await?;
        if !duplicate {
            self.metrics.result(ResultOutcome::Succeeded);
        }
        Ok(Response::new(pb::CompleteJobResponse { duplicate }))
    }

    async fn fail_job(
        &self,
        request: Request<pb::FailJobRequest>,
    ) -> Result<Response<pb::FailJobResponse>, Status> {
        let req = request.into_inner();
        let coordinator = &self.coordinator;
        let energy = req
            .energy
            .map(ecobench_shared::EnergyReport::try_from)
            .transpose()
            .map_err(invalid)?;
        let outcome = match (req.declined, req.handed_back) {
            (true, _) => ResultOutcome::Declined,
            (false, true) => ResultOutcome::HandedBack,
            (false, false) => ResultOutcome::Failed,
        };
        let will_retry = if req.declined {
            coordinator
                .decline(
                    &req.worker_id,
                    &req.job_id,
                    req.lease_id,
                    &req.reason,
                    energy,
                )
                .await?
        } else {
            let ending = if req.handed_back {
                Ending::HandedBack
            } else {
                Ending::Failed {
                    retryable: req.retryable,
                }
            };
            coordinator
                .fail(
                    &req.worker_id,
                    &req.job_id,
                    req.lease_id,
                    &req.reason,
                    ending,
                    energy,
                )
                .await?
        };
        self.metrics.result(outcome);
        Ok(Response::new(pb::FailJobResponse { will_retry }))
    }
}

/// A stream of campaign events on the wire.
pub type EventStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::CampaignEvent, Status>> + Send>>;

/// Forwards the coordinator's events about `campaign_id` to `out`: first `snapshot`,
/// then live events, a fresh snapshot whenever the watcher fell behind; ends with the
/// campaign's end or when the watcher leaves.
async fn forward_events(
    coordinator: Arc<Coordinator>,
    mut events: tokio::sync::broadcast::Receiver<ecobench_shared::events::CampaignEvent>,
    snapshot: ecobench_shared::events::Snapshot,
    out: tokio::sync::mpsc::Sender<Result<pb::CampaignEvent, Status>>,
) {
    use ecobench_shared::events::CampaignEvent;
    use tokio::sync::broadcast::error::RecvError;

    let campaign_id = snapshot.campaign_id.clone();
    let mut snapshot = Some(snapshot);
    loop {
        if let Some(snapshot) = snapshot.take() {
            let end = snapshot.finished().then(|| snapshot.finished_event());
            if out
                .send(Ok(CampaignEvent::Snapshot(snapshot).into()))
                .await
                .is_err()
            {
                return;
            }
            if let Some(end) = end {
                let _ = out.send(Ok(end.into())).await;
                return;
            }
        }
        let received = tokio::select! {
            received = events.recv() => received,
            () = out.closed() => return,
        };
        match received {
            Ok(event) if event.concerns(&campaign_id) => {
                let end = matches!(event, CampaignEvent::CampaignFinished { .. });
                if out.send(Ok(event.into())).await.is_err() || end {
                    return;
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, campaign = %campaign_id, "a watcher fell behind: fresh snapshot");
                match coordinator.snapshot(&campaign_id) {
                    Ok(fresh) => snapshot = Some(fresh),
                    Err(err) => {
                        let _ = out.send(Err(err.into())).await;
                        return;
                    }
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[tonic::async_trait]
impl CampaignService for Service {
    type WatchCampaignStream = EventStream;

    async fn watch_campaign(
        &self,
        request: Request<pb::WatchCampaignRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let campaign = request.into_inner().campaign;
        // Subscribe before the snapshot, so that nothing falls between them.
        let events = self.coordinator.subscribe();
        let snapshot = self.coordinator.snapshot(&campaign)?;
        let (out, stream) = tokio::sync::mpsc::channel(64);
        tokio::spawn(forward_events(
            self.coordinator.clone(),
            events,
            snapshot,
            out,
        ));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(stream),
        )))
    }

    async fn submit_campaign(
        &self,
        request: Request<pb::SubmitCampaignRequest>,
    ) -> Result<Response<pb::SubmitCampaignResponse>, Status> {
        let req = request.into_inner();
        if req.toml.len() > MAX_CAMPAIGN_TOML_BYTES {
            return Err(Status::invalid_argument(format!(
                "campaign file {} is {} bytes, over the limit of {MAX_CAMPAIGN_TOML_BYTES}: \
                 describe the matrix with lists of values instead of one table per job",
                req.file_name,
                req.toml.len()
            )));
        }
        let uploads = req.uploads.into_iter().collect();
        let submitted = self
            .coordinator
            .submit_with_uploads(&req.file_name, &req.toml, &uploads)
            .await?;
        Ok(Response::new(pb::SubmitCampaignResponse {
            campaign_id: submitted.campaign_id,
            name: submitted.name,
            n_jobs: submitted.n_jobs,
            created: submitted.created,
        }))
    }

    async fn get_campaign(
        &self,
        request: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::CampaignStatus>, Status> {
        let status = self.coordinator.status(&request.into_inner().campaign)?;
        Ok(Response::new(wire_status(status)))
    }

    async fn list_campaigns(
        &self,
        _request: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let campaigns = self
            .coordinator
            .list_campaigns()?
            .into_iter()
            .map(wire_status)
            .collect();
        Ok(Response::new(pb::ListCampaignsResponse { campaigns }))
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let workers = self
            .coordinator
            .list_workers()?
            .into_iter()
            .map(|w| pb::WorkerInfo {
                worker_id: w.worker_id,
                fingerprint: Some(w.fingerprint.into()),
                last_seen_unix_ms: w.last_seen_unix_ms,
                jobs_done: w.jobs_done,
            })
            .collect();
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let request = request.into_inner();
        let formats = if request.formats.is_empty() {
            vec![crate::report::Format::Csv, crate::report::Format::Json]
        } else {
            crate::report::Format::parse_list(&request.formats).map_err(Status::invalid_argument)?
        };
        let report = self.coordinator.report(&request.campaign)?;
        Ok(Response::new(pb::GetReportResponse {
            table: report.table(),
            files: report
                .files(&formats)
                .into_iter()
                .map(|(name, content)| pb::ReportFile { name, content })
                .collect(),
            status: Some(wire_status(report.status)),
        }))
    }
}

/// Serves the worker, campaign and artifact services, plus `grpc.health.v1` and server
/// reflection (`grpc.reflection.v1` and `v1alpha`), on an already bound listener until
/// `shutdown` completes: over TLS when `security` has it, each ecobench service behind
/// the tokens it accepts; health and reflection without a token (they tell only whether
/// the server is up and the public `.proto` schema). Every call is timed into `metrics`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    coordinator: Arc<Coordinator>,
    security: Security,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    use ecobench_proto::artifact::MAX_ARTIFACT_MESSAGE_BYTES;
    use ecobench_proto::pb::artifact_service_server::ArtifactServiceServer;
    use ecobench_proto::pb::campaign_service_server::CampaignServiceServer;
    use ecobench_proto::pb::worker_service_server::WorkerServiceServer;
    use tonic::service::interceptor::InterceptedService;
    use tonic_health::ServingStatus;

    let service =
        Service::with_join_limit(coordinator, security.join_limit).with_metrics(metrics.clone());
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in [
        "ecobench.v1.WorkerService",
        "ecobench.v1.CampaignService",
        "ecobench.v1.ArtifactService",
    ] {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let health_service = health_service
        .max_decoding_message_size(MAX_HEALTH_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_HEALTH_MESSAGE_BYTES);
    let workers = WorkerServiceServer::new(service.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let campaigns = CampaignServiceServer::new(service.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let artifacts = ArtifactServiceServer::new(service)
        .max_decoding_message_size(MAX_ARTIFACT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_ARTIFACT_MESSAGE_BYTES);
    let (reflection_v1, reflection_v1alpha) = reflection();
    let mut server =
        tonic::transport::Server::builder().http2_max_header_list_size(MAX_HEADER_LIST_BYTES);
    if let Some(tls) = &security.tls {
        server = server.tls_config(tls.config())?;
    }
    let tokens = &security.tokens;
    server
        .layer(RpcMetricsLayer::new(metrics))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(workers, tokens.for_workers()))
        .add_service(InterceptedService::new(campaigns, tokens.for_clients()))
        .add_service(InterceptedService::new(artifacts, tokens.for_artifacts()))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}

/// The reflection services (v1 and v1alpha, which older tools ask) over the compiled-in
/// descriptors of `ecobench.v1` and `grpc.health.v1`.
fn reflection() -> (
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
) {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ecobench_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let invalid = "the compiled-in descriptor sets are valid";
    (
        builder().build_v1().expect(invalid),
        builder().build_v1alpha().expect(invalid),
    )
}

#[cfg(test)]
mod tests;
