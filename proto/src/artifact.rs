//! The client side of `ArtifactService`, shared by the CLI and the worker:
//! putting a file (hashed first, then streamed in chunks) and receiving a
//! fetched artifact into a folder, checked against its header.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ecobench_shared::artifact::{
    ARTIFACT_CHUNK_BYTES, ArtifactError, ArtifactHeader, ArtifactWriter, FileChunks, sha256_file,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::auth::BearerToken;
use crate::pb::{self, artifact_service_client::ArtifactServiceClient};

/// Largest artifact message either way: one chunk and its header.
pub const MAX_ARTIFACT_MESSAGE_BYTES: usize = ARTIFACT_CHUNK_BYTES + 64 * 1024;

/// An artifact client over a connected channel, with the token.
pub type ArtifactClient = ArtifactServiceClient<InterceptedService<Channel, BearerToken>>;

/// An artifact client on `channel`, with message sizes bounded to one chunk.
pub fn artifact_client(channel: Channel, token: BearerToken) -> ArtifactClient {
    ArtifactServiceClient::with_interceptor(channel, token)
        .max_decoding_message_size(MAX_ARTIFACT_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_ARTIFACT_MESSAGE_BYTES)
}

/// Failures of a transfer.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A local file cannot be read or written, or the content does not match its header.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The coordinator refused, or the connection failed.
    #[error("{}", .0.message())]
    Status(#[from] tonic::Status),
    /// The coordinator's stream does not follow the protocol.
    #[error("malformed artifact stream from the coordinator: {0}")]
    Malformed(String),
}

/// Hashes the file at `path`, then streams it to the coordinator as `name`.
pub async fn put_file(
    client: &mut ArtifactClient,
    path: &Path,
    name: &str,
) -> Result<pb::PutArtifactResponse, TransferError> {
    let owned = path.to_path_buf();
    let (sha256, size_bytes) = blocking(move || sha256_file(&owned)).await?;
    let file = std::fs::File::open(path).map_err(|source| ArtifactError::Io {
        action: "cannot open",
        path: path.display().to_string(),
        source,
    })?;
    let header = ArtifactHeader {
        sha256,
        size_bytes,
        name: name.to_string(),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    let read_error = Arc::new(Mutex::new(None));
    let slot = read_error.clone();
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut header = Some(header.into());
        for chunk in FileChunks::new(file) {
            let data = match chunk {
                Ok(data) => data,
                Err(source) => {
                    let action = "cannot read";
                    *slot.lock().unwrap() = Some(ArtifactError::Io {
                        action,
                        path: shown,
                        source,
                    });
                    return;
                }
            };
            let header = header.take();
            if sender
                .blocking_send(pb::ArtifactChunk { header, data })
                .is_err()
            {
                return;
            }
        }
        if let Some(header) = header {
            let header = Some(header);
            let _ = sender.blocking_send(pb::ArtifactChunk {
                header,
                data: Vec::new(),
            });
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let answer = client.put_artifact(stream).await;
    if let Some(err) = read_error.lock().unwrap().take() {
        return Err(err.into());
    }
    Ok(answer?.into_inner())
}

/// A fetched artifact, its header read, its chunks still to come.
#[derive(Debug)]
pub struct Download {
    header: ArtifactHeader,
    first: Option<Vec<u8>>,
    stream: tonic::Streaming<pb::ArtifactChunk>,
}

/// Asks the coordinator for the artifact `sha256` and reads its header.
pub async fn fetch(client: &mut ArtifactClient, sha256: &str) -> Result<Download, TransferError> {
    let request = pb::FetchArtifactRequest {
        sha256: sha256.to_string(),
    };
    let mut stream = client.fetch_artifact(request).await?.into_inner();
    let malformed =
        |problem: &str| TransferError::Malformed(format!("artifact {sha256}: {problem}"));
    let first = stream
        .message()
        .await?
        .ok_or_else(|| malformed("the stream is empty"))?;
    let header: ArtifactHeader = first
        .header
        .ok_or_else(|| malformed("the first chunk has no header"))?
        .into();
    if header.sha256 != sha256 {
        return Err(malformed(&format!("the header names {}", header.sha256)));
    }
    Ok(Download {
        header,
        first: Some(first.data),
        stream,
    })
}

impl Download {
    /// What the coordinator declared.
    pub fn header(&self) -> &ArtifactHeader {
        &self.header
    }

    /// The next chunk's data; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransferError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        match self.stream.message().await? {
            Some(chunk) if chunk.header.is_some() => Err(TransferError::Malformed(format!(
                "artifact {}: a header after the first chunk",
                self.header.sha256
            ))),
            Some(chunk) => Ok(Some(chunk.data)),
            None => Ok(None),
        }
    }

    /// Receives the whole artifact into `<dir>/<sha256>` through a temporary
    /// file, refusing content whose size or hash differs from the header.
    pub async fn save_into(mut self, dir: &Path) -> Result<PathBuf, TransferError> {
        let mut writer = ArtifactWriter::create(dir, self.header.clone(), u64::MAX)?;
        while let Some(data) = self.next_chunk().await? {
            writer = blocking(move || writer.write(&data).map(|()| writer)).await?;
        }
        Ok(blocking(move || writer.commit()).await?)
    }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("artifact file work does not panic")
}
