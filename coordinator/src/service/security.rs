//! How the server guards its door: tokens, TLS, the join rate, and the refusal to
//! serve unguarded beyond loopback.

use ecobench_proto::tls::ServerTls;

use super::{JoinLimit, Tokens};

/// How the server guards its door.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// The tokens each side must present.
    pub tokens: Tokens,
    /// TLS, and client certificates when it has a client CA; plain without.
    pub tls: Option<ServerTls>,
    /// Joins per peer address.
    pub join_limit: JoinLimit,
    /// Allow a non-loopback address with a side nobody authenticates (`--insecure`).
    pub insecure: bool,
}

impl Security {
    /// Everything [`serve`](super::serve) would refuse, before binding: an exposure without
    /// authentication ([`Security::check_exposure`]), a certificate that is not its key's.
    pub fn check(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        self.check_exposure(addr)?;
        if let Some(tls) = &self.tls {
            tonic::transport::Server::builder()
                .tls_config(tls.config())
                .map_err(|err| {
                    format!(
                        "--tls-cert and --tls-key are not a usable certificate and key pair: {}",
                        ecobench_proto::tls::error_chain(&err)
                    )
                })?;
        }
        Ok(())
    }

    /// Refuses to serve on `addr` beyond loopback when workers or clients could call
    /// without a token or a client certificate, unless `insecure`.
    pub fn check_exposure(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if addr.ip().is_loopback() || self.insecure {
            return Ok(());
        }
        let certified = self.tls.as_ref().is_some_and(ServerTls::verifies_clients);
        if certified || (self.tokens.guards_workers() && self.tokens.guards_clients()) {
            return Ok(());
        }
        let open = match (self.tokens.guards_workers(), self.tokens.guards_clients()) {
            (false, false) => "without a token",
            (true, false) => "with no token for clients",
            _ => "with no token for workers",
        };
        Err(format!(
            "refusing to listen on {addr} {open}: pass --token-file FILE (or --worker-token-file and \
             --client-token-file, or --client-ca with TLS), or --insecure on a trusted network"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_both_sides_need_a_token_unless_insecure() {
        let public: std::net::SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let loopback: std::net::SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let token = || Some("t".to_string());
        let with = |tokens: Tokens| Security {
            tokens,
            ..Security::default()
        };
        assert!(Security::default().check_exposure(loopback).is_ok());
        let err = Security::default().check_exposure(public).unwrap_err();
        assert!(err.contains("0.0.0.0:50051 without a token"), "{err}");
        let workers_only = with(Tokens {
            worker: token(),
            ..Tokens::default()
        });
        let err = workers_only.check_exposure(public).unwrap_err();
        assert!(err.contains("with no token for clients"), "{err}");
        let clients_only = with(Tokens {
            client: token(),
            ..Tokens::default()
        });
        let err = clients_only.check_exposure(public).unwrap_err();
        assert!(err.contains("with no token for workers"), "{err}");
        let both = with(Tokens {
            worker: token(),
            client: token(),
            ..Tokens::default()
        });
        assert!(both.check_exposure(public).is_ok());
        let shared = with(Tokens {
            shared: token(),
            ..Tokens::default()
        });
        assert!(shared.check_exposure(public).is_ok());
        let insecure = Security {
            insecure: true,
            ..Security::default()
        };
        assert!(insecure.check_exposure(public).is_ok());
    }
}
