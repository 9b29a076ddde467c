//! Tokens: which token each service accepts, checked in constant time.
//!
//! The shared token (`--token-file`) opens every service; the worker token
//! (`--worker-token-file`) opens the worker and artifact services; the client token
//! (`--client-token-file`) the campaign and artifact services.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// The tokens a coordinator accepts; a side with none set is open.
#[derive(Clone, Default)]
pub struct Tokens {
    /// Accepted from workers and clients alike (`--token-file`).
    pub shared: Option<String>,
    /// Accepted from workers only (`--worker-token-file`).
    pub worker: Option<String>,
    /// Accepted from clients only (`--client-token-file`).
    pub client: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |token: &Option<String>| token.as_ref().map(|_| "<set>");
        f.debug_struct("Tokens")
            .field("shared", &set(&self.shared))
            .field("worker", &set(&self.worker))
            .field("client", &set(&self.client))
            .finish()
    }
}

impl Tokens {
    /// True when workers must present a token.
    pub fn guards_workers(&self) -> bool {
        self.shared.is_some() || self.worker.is_some()
    }

    /// True when clients must present a token.
    pub fn guards_clients(&self) -> bool {
        self.shared.is_some() || self.client.is_some()
    }

    /// The interceptor of `WorkerService`.
    pub fn for_workers(&self) -> Auth {
        Auth::new(Side::Worker, [&self.shared, &self.worker])
    }

    /// The interceptor of `CampaignService`.
    pub fn for_clients(&self) -> Auth {
        Auth::new(Side::Client, [&self.shared, &self.client])
    }

    /// The interceptor of `ArtifactService`: any token, but open only when either side is.
    pub fn for_artifacts(&self) -> Auth {
        if self.guards_workers() && self.guards_clients() {
            Auth::new(Side::Either, [&self.shared, &self.worker, &self.client])
        } else {
            Auth::new(Side::Either, [])
        }
    }
}

/// Who a service serves, for the refusal's message.
#[derive(Debug, Clone, Copy)]
enum Side {
    Worker,
    Client,
    Either,
}

/// Checks `authorization: Bearer <token>` in constant time against the tokens a
/// service accepts; accepts every call when it accepts none.
#[derive(Clone)]
pub struct Auth {
    side: Side,
    accepted: Arc<[Box<[u8]>]>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("side", &self.side)
            .field("tokens", &self.accepted.len())
            .finish()
    }
}

impl Auth {
    fn new<'a>(side: Side, tokens: impl IntoIterator<Item = &'a Option<String>>) -> Auth {
        let accepted = tokens
            .into_iter()
            .flatten()
            .map(|token| Box::from(token.as_bytes()))
            .collect();
        Auth { side, accepted }
    }

    /// True when `given` is one of the accepted tokens; every one is compared, in
    /// constant time, whatever the outcome.
    fn accepts(&self, given: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for token in self.accepted.iter() {
            found |= given.ct_eq(token);
        }
        bool::from(found)
    }

    fn refusal(&self) -> Status {
        let which = match self.side {
            Side::Worker => "the worker service wants the worker token (or the shared one)",
            Side::Client => "the campaign service wants the client token (or the shared one)",
            Side::Either => "the artifact service wants a worker or client token",
        };
        Status::unauthenticated(format!(
            "missing or wrong token: {which}; pass it with --token-file"
        ))
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.accepted.is_empty() {
            return Ok(request);
        }
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if self.accepts(given.as_bytes()) {
            Ok(request)
        } else {
            Err(self.refusal())
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    fn call(auth: &mut Auth, token: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(token) = token {
            let value = format!("Bearer {token}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
        }
        auth.call(request).map(drop).map_err(|status| status.code())
    }

    #[test]
    fn each_side_takes_its_own_token_or_the_shared_one() {
        let tokens = Tokens {
            shared: Some("both".into()),
            worker: Some("w".into()),
            client: Some("c".into()),
        };
        let (mut workers, mut clients, mut artifacts) = (
            tokens.for_workers(),
            tokens.for_clients(),
            tokens.for_artifacts(),
        );
        let refused = Err(tonic::Code::Unauthenticated);
        assert_eq!(call(&mut workers, Some("w")), Ok(()));
        assert_eq!(call(&mut workers, Some("both")), Ok(()));
        assert_eq!(call(&mut workers, Some("c")), refused);
        assert_eq!(call(&mut workers, None), refused);
        assert_eq!(call(&mut clients, Some("c")), Ok(()));
        assert_eq!(call(&mut clients, Some("w")), refused);
        assert_eq!(call(&mut clients, Some("")), refused);
        for token in ["w", "c", "both"] {
            assert_eq!(call(&mut artifacts, Some(token)), Ok(()));
        }
        assert_eq!(call(&mut artifacts, Some("x")), refused);
    }

    #[test]
    fn a_side_without_a_token_is_open_and_so_are_artifacts() {
        let tokens = Tokens {
            worker: Some("w".into()),
            ..Tokens::default()
        };
        assert!(tokens.guards_workers() && !tokens.guards_clients());
        assert_eq!(call(&mut tokens.for_clients(), None), Ok(()));
        assert_eq!(call(&mut tokens.for_artifacts(), None), Ok(()));
        assert_eq!(
            call(&mut tokens.for_workers(), Some("x")),
            Err(tonic::Code::Unauthenticated)
        );
    }
}
