//! Client-side authentication: a tonic interceptor adding the shared token.

use tonic::metadata::{Ascii, MetadataValue};

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

/// The token holds characters that cannot travel in a header.
#[derive(Debug, thiserror::Error)]
#[error("the token must be printable ASCII without spaces at its ends: check the token file")]
pub struct BadToken;

impl BearerToken {
    /// A token interceptor; `None` sends no header.
    pub fn new(token: Option<&str>) -> Result<BearerToken, BadToken> {
        let value = token
            .map(|t| format!("Bearer {t}").parse().map_err(|_| BadToken))
            .transpose()?;
        Ok(BearerToken(value))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The `http://` URI for a `host:port` address (a URI passes unchanged).
pub fn endpoint_uri(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}
