//! The tonic adapter of `ArtifactService`: a put feeds the stream's chunks to an
//! [`Upload`](crate::artifacts::Upload); a fetch streams a stored file from a
//! blocking reader thread.

use ecobench_proto::pb::{self, artifact_service_server::ArtifactService};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::error;

use super::Service;

#[tonic::async_trait]
impl ArtifactService for Service {
    async fn put_artifact(
        &self,
        request: Request<Streaming<pb::ArtifactChunk>>,
    ) -> Result<Response<pb::PutArtifactResponse>, Status> {
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            Status::invalid_argument(
                "empty PutArtifact stream: the first chunk must carry the header",
            )
        })?;
        let header = first.header.ok_or_else(|| {
            Status::invalid_argument(
                "the first PutArtifact chunk has no header: send sha256, size and name first",
            )
        })?;
        let mut upload = self.coordinator.artifacts().begin_put(header.into())?;
        upload.write(first.data).await?;
        while let Some(chunk) = stream.message().await? {
            if chunk.header.is_some() {
                return Err(Status::invalid_argument(
                    "a PutArtifact chunk after the first carries a header: send one artifact per stream",
                ));
            }
            upload.write(chunk.data).await?;
        }
        let outcome = upload.finish().await?;
        Ok(Response::new(pb::PutArtifactResponse {
            sha256: outcome.record.sha256,
            size_bytes: outcome.record.size,
            already_present: outcome.already_present,
        }))
    }

    type FetchArtifactStream = ReceiverStream<Result<pb::ArtifactChunk, Status>>;

    async fn fetch_artifact(
        &self,
        request: Request<pb::FetchArtifactRequest>,
    ) -> Result<Response<Self::FetchArtifactStream>, Status> {
        let sha256 = request.into_inner().sha256;
        let (record, chunks) = self.coordinator.artifacts().read(&sha256)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        tokio::task::spawn_blocking(move || {
            let mut header = Some(pb::ArtifactHeader {
                sha256: record.sha256,
                size_bytes: record.size,
                name: record.name,
            });
            let mut chunks = chunks.peekable();
            if chunks.peek().is_none() {
                let chunk = pb::ArtifactChunk {
                    header,
                    data: Vec::new(),
                };
                let _ = sender.blocking_send(Ok(chunk));
                return;
            }
            for chunk in chunks {
                let message = chunk
                    .map(|data| pb::ArtifactChunk {
                        header: header.take(),
                        data,
                    })
                    .map_err(|err| {
                        error!(sha256 = %sha256, error = %err, "cannot read an artifact");
                        Status::internal("the coordinator cannot read the artifact; see its log")
                    });
                if sender.blocking_send(message).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
