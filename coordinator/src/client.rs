//! The gRPC client used by the CLI (`submit`, `status`, `report`, `run`).
//! With `service.rs`, the only coordinator module that imports tonic.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use ecobench_proto::artifact::{self, ArtifactClient};
use ecobench_proto::auth::BearerToken;
use ecobench_proto::pb::{self, campaign_service_client::CampaignServiceClient};
use ecobench_proto::tls::{self, ClientTls, Transport};
use ecobench_shared::events::CampaignEvent;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::service::MAX_MESSAGE_BYTES;

/// A connected campaign and artifact client.
#[derive(Debug, Clone)]
pub struct Client {
    inner: CampaignServiceClient<InterceptedService<Channel, BearerToken>>,
    artifacts: ArtifactClient,
    /// Plain or TLS, for the hints of [`explain`].
    transport: Transport,
}

/// A gRPC status as an error a user can act on; a broken connection says whether TLS
/// (`--ca`, `--cert`) is the likely cause.
fn explain(status: tonic::Status, transport: Transport) -> anyhow::Error {
    let text = match std::error::Error::source(&status) {
        Some(cause) => tls::message_with_causes(status.message(), cause),
        None => status.message().to_string(),
    };
    match tls::tls_hint(&text, transport) {
        Some(hint) => anyhow::anyhow!("{text} ({:?}): {hint}", status.code()),
        None => anyhow::anyhow!("{text} ({:?})", status.code()),
    }
}

impl Client {
    /// Connects to the coordinator at `addr` (`host:port`) over plain HTTP/2.
    pub async fn connect(addr: &str, token: Option<&str>) -> Result<Client> {
        Client::connect_with(addr, token, None).await
    }

    /// Connects to the coordinator at `addr` (`host:port`), over TLS when `tls` is given.
    pub async fn connect_with(
        addr: &str,
        token: Option<&str>,
        tls: Option<&ClientTls>,
    ) -> Result<Client> {
        let endpoint = tls::endpoint(addr, tls)
            .map_err(anyhow::Error::msg)?
            .connect_timeout(Duration::from_secs(10));
        let channel = endpoint.connect().await.map_err(|err| {
            let why = tls::error_chain(&err);
            match tls::tls_hint(&why, Transport::of(tls)) {
                Some(hint) => anyhow::anyhow!("cannot reach the coordinator at {addr} ({why}): {hint}"),
                None => anyhow::anyhow!(
                    "cannot reach the coordinator at {addr} ({why}): is `coordinator serve` running there?"
                ),
            }
        })?;
        let token = BearerToken::new(token)?;
        let artifacts = artifact::artifact_client(channel.clone(), token.clone());
        let inner = CampaignServiceClient::with_interceptor(channel, token)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Client {
            inner,
            artifacts,
            transport: Transport::of(tls),
        })
    }

    /// Uploads the file at `path` as an artifact named `name`; returns its SHA-256 (hex).
    pub async fn put_artifact(&mut self, path: &Path, name: &str) -> Result<String> {
        let answer = artifact::put_file(&mut self.artifacts, path, name)
            .await
            .with_context(|| format!("cannot upload {} as an artifact", path.display()))?;
        Ok(answer.sha256)
    }

    /// Submits a campaign file's text; `uploads` maps the `file:` weights it names to the
    /// SHA-256 of the content already uploaded.
    pub async fn submit(
        &mut self,
        file_name: &str,
        toml: String,
        uploads: std::collections::HashMap<String, String>,
    ) -> Result<pb::SubmitCampaignResponse> {
        let request = pb::SubmitCampaignRequest {
            file_name: file_name.to_string(),
            toml,
            uploads,
        };
        Ok(self
            .inner
            .submit_campaign(request)
            .await
            .map_err(|status| explain(status, self.transport))?
            .into_inner())
    }

    /// Job counts of one campaign (id or name).
    pub async fn status(&mut self, campaign: &str) -> Result<pb::CampaignStatus> {
        let request = pb::GetCampaignRequest {
            campaign: campaign.to_string(),
        };
        Ok(self
            .inner
            .get_campaign(request)
            .await
            .map_err(|status| explain(status, self.transport))?
            .into_inner())
    }

    /// Every campaign's counts.
    pub async fn campaigns(&mut self) -> Result<Vec<pb::CampaignStatus>> {
        Ok(self
            .inner
            .list_campaigns(pb::ListCampaignsRequest {})
            .await
            .map_err(|status| explain(status, self.transport))?
            .into_inner()
            .campaigns)
    }

    /// Every worker that joined.
    pub async fn workers(&mut self) -> Result<Vec<pb::WorkerInfo>> {
        Ok(self
            .inner
            .list_workers(pb::ListWorkersRequest {})
            .await
            .map_err(|status| explain(status, self.transport))?
            .into_inner()
            .workers)
    }

    /// The events of a campaign (id or name): a snapshot, then live events until its end.
    pub async fn watch(
        &mut self,
        campaign: &str,
    ) -> Result<impl tokio_stream::Stream<Item = Result<CampaignEvent>> + use<>> {
        use tokio_stream::StreamExt;
        let request = pb::WatchCampaignRequest {
            campaign: campaign.to_string(),
        };
        let transport = self.transport;
        let stream = self
            .inner
            .watch_campaign(request)
            .await
            .map_err(|status| explain(status, transport))?
            .into_inner();
        Ok(stream.map(move |event| {
            let event = event.map_err(|status| explain(status, transport))?;
            CampaignEvent::try_from(event)
                .context("the coordinator sent an event this client cannot read")
        }))
    }

    /// The rendered report of a campaign (id or name), with the files of `formats`
    /// (names as [`crate::report::Format::parse_list`] reads them; none = csv and json).
    pub async fn report(
        &mut self,
        campaign: &str,
        formats: &[String],
    ) -> Result<pb::GetReportResponse> {
        let request = pb::GetReportRequest {
            campaign: campaign.to_string(),
            formats: formats.to_vec(),
        };
        Ok(self
            .inner
            .get_report(request)
            .await
            .map_err(|status| explain(status, self.transport))?
            .into_inner())
    }
}
