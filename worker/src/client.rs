//! The worker's gRPC client: the only worker module that imports tonic.

use std::path::Path;
use std::time::Duration;

use ecobench_proto::artifact::{self, ArtifactClient, TransferError};
use ecobench_proto::auth::BearerToken;
use ecobench_proto::pb::{self, worker_service_client::WorkerServiceClient};
use ecobench_proto::tls::{self, ClientTls, Transport};
use ecobench_shared::{HardwareFingerprint, JobResult, JobSpec, Progress};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Failures talking to the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator cannot be reached (down, restarting, network cut): retry later.
    #[error("coordinator unreachable: {0}")]
    Unreachable(String),
    /// The coordinator answered with an error.
    #[error("coordinator refused: {message} ({code:?})")]
    Refused {
        /// The gRPC code.
        code: tonic::Code,
        /// The coordinator's explanation.
        message: String,
    },
    /// The coordinator sent something this worker cannot understand.
    #[error(transparent)]
    Wire(#[from] ecobench_proto::WireError),
    /// The token cannot be sent.
    #[error(transparent)]
    Token(#[from] ecobench_proto::auth::BadToken),
    /// An artifact file cannot be read or written, or does not match its header.
    #[error(transparent)]
    Artifact(#[from] ecobench_shared::artifact::ArtifactError),
}

impl ClientError {
    /// True when the connection is gone and the agent should reconnect.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable(_))
    }

    /// True when running the job again cannot get the artifact it asked for: the hash
    /// is malformed, or the coordinator has no such artifact or calls the request
    /// invalid. A broken or short transfer is not permanent: another attempt may work.
    pub fn is_permanent(&self) -> bool {
        use ecobench_shared::artifact::ArtifactError;
        matches!(
            self,
            ClientError::Artifact(ArtifactError::BadSha { .. })
                | ClientError::Refused {
                    code: tonic::Code::NotFound | tonic::Code::InvalidArgument,
                    ..
                }
        )
    }

    /// True when the coordinator's refusal is final by contract, so that an undelivered
    /// outcome may be dropped: the lease does not hold the job (FailedPrecondition), the
    /// report is malformed or out of range (InvalidArgument), or the job does not exist
    /// (NotFound). Every other answer (Internal: a failed flush; Unauthenticated: a
    /// rotated token; ResourceExhausted, Aborted, a lost connection) may change: the
    /// outcome stays in the outbox and is sent again.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ClientError::Refused {
                code: tonic::Code::FailedPrecondition
                    | tonic::Code::InvalidArgument
                    | tonic::Code::NotFound,
                ..
            }
        )
    }

    /// True when the coordinator refused the token.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            ClientError::Refused {
                code: tonic::Code::Unauthenticated,
                ..
            }
        )
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded => {
                ClientError::Unreachable(status.message().to_string())
            }
            code => ClientError::Refused {
                code,
                message: status.message().to_string(),
            },
        }
    }
}

/// `status` as an error, its message completed with its causes and a TLS hint when
/// the connection itself failed.
fn with_hint(status: tonic::Status, transport: Transport) -> ClientError {
    let Some(cause) = std::error::Error::source(&status) else {
        return status.into();
    };
    let text = tls::message_with_causes(status.message(), cause);
    let text = tls::with_tls_hint(text, transport);
    tonic::Status::new(status.code(), text).into()
}

impl From<TransferError> for ClientError {
    fn from(err: TransferError) -> Self {
        match err {
            TransferError::Artifact(err) => ClientError::Artifact(err),
            TransferError::Status(status) => status.into(),
            TransferError::Malformed(message) => ClientError::Refused {
                code: tonic::Code::Internal,
                message,
            },
        }
    }
}

/// A leased job as the agent sees it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LeasedJob {
    /// The job.
    pub spec: JobSpec,
    /// The lease to quote.
    pub lease_id: u64,
    /// 1-based attempt.
    pub attempt: u32,
    /// The worker the lease was granted to: outcomes are delivered under its id, also by
    /// a restarted worker process that found them in its outbox (empty in outcomes
    /// stored by older workers: the delivering worker's id is used).
    #[serde(default)]
    pub worker_id: String,
}

impl LeasedJob {
    /// The id to act on this lease under: its holder's, else `fallback`.
    fn holder<'a>(&'a self, fallback: &'a str) -> &'a str {
        if self.worker_id.is_empty() {
            fallback
        } else {
            &self.worker_id
        }
    }
}

/// A connection to the coordinator's worker service.
#[derive(Debug, Clone)]
pub struct Client {
    inner: WorkerServiceClient<InterceptedService<Channel, BearerToken>>,
    artifacts: ArtifactClient,
    worker_id: String,
    /// Plain or TLS, for the hints on a failed join.
    transport: Transport,
}

impl Client {
    /// Connects to `addr` (`host:port`) over plain HTTP/2.
    pub async fn connect(
        addr: &str,
        token: Option<&str>,
        worker_id: &str,
    ) -> Result<Client, ClientError> {
        Client::connect_with(addr, token, None, worker_id).await
    }

    /// Connects to `addr` (`host:port`), over TLS when `tls` is given.
    pub async fn connect_with(
        addr: &str,
        token: Option<&str>,
        tls: Option<&ClientTls>,
        worker_id: &str,
    ) -> Result<Client, ClientError> {
        let endpoint = tls::endpoint(addr, tls)
            .map_err(ClientError::Unreachable)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10));
        let channel = endpoint.connect().await.map_err(|err| {
            let why = tls::with_tls_hint(tls::error_chain(&err), Transport::of(tls));
            ClientError::Unreachable(format!("{addr}: {why}"))
        })?;
        let token = BearerToken::new(token)?;
        let artifacts = artifact::artifact_client(channel.clone(), token.clone());
        let inner = WorkerServiceClient::with_interceptor(channel, token);
        Ok(Client {
            inner,
            artifacts,
            worker_id: worker_id.to_string(),
            transport: Transport::of(tls),
        })
    }

    /// Uploads the file at `path` as an artifact named `name`; returns its SHA-256 (hex).
    pub async fn put_artifact(&mut self, path: &Path, name: &str) -> Result<String, ClientError> {
        Ok(artifact::put_file(&mut self.artifacts, path, name)
            .await?
            .sha256)
    }

    /// Receives the artifact `sha256` into `<dir>/<sha256>`, checked against
    /// the size and hash the coordinator declares; returns the file's path.
    pub async fn fetch_artifact(
        &mut self,
        sha256: &str,
        dir: &Path,
    ) -> Result<std::path::PathBuf, ClientError> {
        let download = artifact::fetch(&mut self.artifacts, sha256).await?;
        Ok(download.save_into(dir).await?)
    }

    /// Registers this worker; returns the heartbeat interval.
    pub async fn join(
        &mut self,
        fingerprint: HardwareFingerprint,
    ) -> Result<Duration, ClientError> {
        let request = pb::JoinRequest {
            worker_id: self.worker_id.clone(),
            fingerprint: Some(fingerprint.into()),
        };
        // The first call of a connection: where a TLS mistake shows, so say what to do.
        let answer = self
            .inner
            .join(request)
            .await
            .map_err(|status| with_hint(status, self.transport))?
            .into_inner();
        Ok(Duration::from_millis(
            answer.heartbeat_interval_ms.max(100).into(),
        ))
    }

    /// Asks for a job, waiting up to `wait` on the coordinator's side.
    pub async fn lease(&mut self, wait: Duration) -> Result<Option<LeasedJob>, ClientError> {
        let mut request = tonic::Request::new(pb::LeaseJobRequest {
            worker_id: self.worker_id.clone(),
            wait_ms: wait.as_millis() as u32,
        });
        request.set_timeout(wait + Duration::from_secs(15));
        let Some(lease) = self.inner.lease_job(request).await?.into_inner().lease else {
            return Ok(None);
        };
        let spec = lease.job.ok_or(ecobench_proto::WireError {
            message: "Lease",
            problem: "no job",
        })?;
        Ok(Some(LeasedJob {
            spec: spec.try_into()?,
            lease_id: lease.lease_id,
            attempt: lease.attempt,
            worker_id: self.worker_id.clone(),
        }))
    }

    /// Extends the lease; returns true when the job must be cancelled.
    pub async fn heartbeat(
        &mut self,
        job: &LeasedJob,
        progress: Progress,
    ) -> Result<bool, ClientError> {
        let mut request = tonic::Request::new(pb::HeartbeatRequest {
            worker_id: job.holder(&self.worker_id).to_string(),
            job_id: job.spec.job_id(),
            lease_id: job.lease_id,
            progress: Some(progress.into()),
        });
        request.set_timeout(Duration::from_secs(10));
        Ok(self.inner.heartbeat(request).await?.into_inner().cancel)
    }

    /// Sends a result.
    pub async fn complete(
        &mut self,
        job: &LeasedJob,
        result: JobResult,
    ) -> Result<(), ClientError> {
        let request = pb::CompleteJobRequest {
            worker_id: job.holder(&self.worker_id).to_string(),
            job_id: job.spec.job_id(),
            lease_id: job.lease_id,
            result: Some(result.into()),
        };
        self.inner.complete_job(request).await?;
        Ok(())
    }

    /// Reports a failure, with what the meter measured if the attempt ran.
    pub async fn fail(
        &mut self,
        job: &LeasedJob,
        reason: &str,
        retryable: bool,
        energy: Option<ecobench_shared::EnergyReport>,
    ) -> Result<(), ClientError> {
        self.end_attempt(job, reason, AttemptEnd::Failed { retryable }, energy)
            .await
    }

    /// Hands a job back because this worker is stopping: it goes back to pending without
    /// counting as a failed attempt. `energy` is what the meter measured until then.
    pub async fn hand_back(
        &mut self,
        job: &LeasedJob,
        reason: &str,
        energy: Option<ecobench_shared::EnergyReport>,
    ) -> Result<(), ClientError> {
        self.end_attempt(job, reason, AttemptEnd::HandedBack, energy)
            .await
    }

    /// Declines a job this worker cannot run as its campaign requires (another copy of
    /// the dataset): it goes to another worker without spending an attempt.
    /// `energy` is what the meter measured until then.
    pub async fn decline(
        &mut self,
        job: &LeasedJob,
        reason: &str,
        energy: Option<ecobench_shared::EnergyReport>,
    ) -> Result<(), ClientError> {
        self.end_attempt(job, reason, AttemptEnd::Declined, energy)
            .await
    }

    /// Ends an attempt without a result (`FailJob`), as `how` says.
    async fn end_attempt(
        &mut self,
        job: &LeasedJob,
        reason: &str,
        how: AttemptEnd,
        energy: Option<ecobench_shared::EnergyReport>,
    ) -> Result<(), ClientError> {
        let request = pb::FailJobRequest {
            worker_id: job.holder(&self.worker_id).to_string(),
            job_id: job.spec.job_id(),
            lease_id: job.lease_id,
            reason: reason.to_string(),
            retryable: !matches!(how, AttemptEnd::Failed { retryable: false }),
            declined: how == AttemptEnd::Declined,
            energy: energy.map(Into::into),
            handed_back: how == AttemptEnd::HandedBack,
        };
        self.inner.fail_job(request).await?;
        Ok(())
    }
}

/// How an attempt ended without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptEnd {
    /// It failed; another attempt may succeed if `retryable`.
    Failed { retryable: bool },
    /// This worker cannot run it as the campaign requires.
    Declined,
    /// This worker is stopping.
    HandedBack,
}

#[cfg(test)]
mod tests {
    use ecobench_shared::artifact::ArtifactError;

    use super::ClientError;

    /// A fine-tune whose artifact can never be fetched fails for good; a transfer that
    /// broke or a coordinator that is away leaves the job to another attempt.
    #[test]
    fn only_requests_that_cannot_succeed_are_permanent() {
        let refused = |code| ClientError::Refused {
            code,
            message: "x".into(),
        };
        let bad_sha = ClientError::Artifact(ArtifactError::BadSha {
            name: "pretrained weights".into(),
            sha256: String::new(),
        });
        assert!(bad_sha.is_permanent());
        assert!(refused(tonic::Code::NotFound).is_permanent());
        assert!(refused(tonic::Code::InvalidArgument).is_permanent());
        assert!(!refused(tonic::Code::Internal).is_permanent());
        assert!(!refused(tonic::Code::Unavailable).is_permanent());
        assert!(!ClientError::Unreachable("reset".into()).is_permanent());
        assert!(refused(tonic::Code::FailedPrecondition).is_final());
        assert!(refused(tonic::Code::InvalidArgument).is_final());
        assert!(!refused(tonic::Code::Internal).is_final(), "a failed flush");
        assert!(
            !refused(tonic::Code::Unauthenticated).is_final(),
            "a rotated token"
        );
        assert!(!refused(tonic::Code::Aborted).is_final());
        assert!(!ClientError::Unreachable("reset".into()).is_final());
        let short = ClientError::Artifact(ArtifactError::TooLarge {
            name: "w".into(),
            sha256: "0".repeat(64),
            size_bytes: 10,
            limit_bytes: 5,
        });
        assert!(!short.is_permanent());
    }
}
