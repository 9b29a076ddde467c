//! TLS for both sides: PEM files read and checked once, each error naming the flag
//! and the path; the client endpoint (https with a CA, http without); and the
//! explanation of a failed connection when TLS is the likely cause.

use std::path::Path;
use std::time::Duration;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Longest a TLS handshake may take, on either side.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file cannot be read.
    #[error("cannot read {flag} {path}: {source}")]
    Unreadable {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file holds no PEM block of the kind the flag wants.
    #[error(
        "{flag} {path} holds no PEM {kind} ({problem}): pass a PEM file (-----BEGIN {marker}-----)"
    )]
    NotPem {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: String,
        /// What was wanted: "certificate" or "private key".
        kind: &'static str,
        /// The PEM marker expected.
        marker: &'static str,
        /// What the parser found wrong.
        problem: String,
    },
    /// One flag of a pair was given without the other.
    #[error("{given} needs {missing} too")]
    Incomplete {
        /// The flag given.
        given: &'static str,
        /// The flag missing, with why.
        missing: &'static str,
    },
}

/// Reads a PEM bundle of one or more certificates.
pub fn read_certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let bytes = read(flag, path)?;
    let parsed: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    match parsed {
        Ok(certs) if !certs.is_empty() => Ok(bytes),
        Ok(_) => Err(not_pem(flag, path, false, "no certificate found".into())),
        Err(err) => Err(not_pem(flag, path, false, describe_pem(err))),
    }
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let bytes = read(flag, path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(_) => Ok(bytes),
        Err(pem::Error::NoItemsFound) => {
            Err(not_pem(flag, path, true, "no private key found".into()))
        }
        Err(err) => Err(not_pem(flag, path, true, describe_pem(err))),
    }
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Unreadable {
        flag,
        path: path.display().to_string(),
        source,
    })
}

fn not_pem(flag: &'static str, path: &Path, key: bool, problem: String) -> TlsFileError {
    TlsFileError::NotPem {
        flag,
        path: path.display().to_string(),
        kind: if key { "private key" } else { "certificate" },
        marker: if key { "PRIVATE KEY" } else { "CERTIFICATE" },
        problem,
    }
}

fn describe_pem(err: pem::Error) -> String {
    match err {
        pem::Error::NoItemsFound => "nothing found".into(),
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        pem::Error::Base64Decode(err) => format!("bad base64: {err}"),
        other => other.to_string(),
    }
}

/// What a TLS client presents and trusts: the CA bundle that signed the coordinator's
/// certificate (`--ca`) and, for a coordinator that checks clients (`--client-ca`), this
/// client's certificate and key (`--cert`, `--key`).
#[derive(Clone)]
pub struct ClientTls {
    ca: Certificate,
    identity: Option<Identity>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Reads the client flags: `None` without `--ca` (plain connections); `--cert` and
    /// `--key` go together and need `--ca`.
    pub fn from_flags(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Option<ClientTls>, TlsFileError> {
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(Identity::from_pem(
                read_certificates("--cert", cert)?,
                read_private_key("--key", key)?,
            )),
            (Some(_), None) => return Err(incomplete("--cert", "--key (its private key)")),
            (None, Some(_)) => return Err(incomplete("--key", "--cert (its certificate)")),
            (None, None) => None,
        };
        let Some(ca) = ca else {
            return match identity {
                Some(_) => Err(incomplete(
                    "--cert",
                    "--ca (the CA that signed the coordinator's certificate)",
                )),
                None => Ok(None),
            };
        };
        let ca = Certificate::from_pem(read_certificates("--ca", ca)?);
        Ok(Some(ClientTls { ca, identity }))
    }

    /// True when a client certificate is presented.
    pub fn has_client_certificate(&self) -> bool {
        self.identity.is_some()
    }

    fn config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        match &self.identity {
            Some(identity) => config.identity(identity.clone()),
            None => config,
        }
    }
}

fn incomplete(given: &'static str, missing: &'static str) -> TlsFileError {
    TlsFileError::Incomplete { given, missing }
}

/// What a TLS server presents and whom it lets in: its certificate and key
/// (`--tls-cert`, `--tls-key`) and, for mTLS, the CA clients' certificates must be
/// signed by (`--client-ca`).
#[derive(Clone)]
pub struct ServerTls {
    identity: Identity,
    client_ca: Option<Certificate>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_ca", &self.client_ca.is_some())
            .finish()
    }
}

impl ServerTls {
    /// Reads the server flags: `None` without `--tls-cert`/`--tls-key`, which go
    /// together; `--client-ca` needs them.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Result<Option<ServerTls>, TlsFileError> {
        let (cert, key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => return Err(incomplete("--tls-cert", "--tls-key (its private key)")),
            (None, Some(_)) => return Err(incomplete("--tls-key", "--tls-cert (its certificate)")),
            (None, None) if client_ca.is_some() => {
                return Err(incomplete(
                    "--client-ca",
                    "--tls-cert and --tls-key (client certificates need TLS)",
                ));
            }
            (None, None) => return Ok(None),
        };
        let identity = Identity::from_pem(
            read_certificates("--tls-cert", cert)?,
            read_private_key("--tls-key", key)?,
        );
        let client_ca = client_ca
            .map(|path| read_certificates("--client-ca", path).map(Certificate::from_pem))
            .transpose()?;
        Ok(Some(ServerTls {
            identity,
            client_ca,
        }))
    }

    /// True when clients must present a certificate signed by `--client-ca`.
    pub fn verifies_clients(&self) -> bool {
        self.client_ca.is_some()
    }

    /// The tonic server configuration.
    pub fn config(&self) -> ServerTlsConfig {
        let config = ServerTlsConfig::new()
            .identity(self.identity.clone())
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        match &self.client_ca {
            Some(ca) => config.client_ca_root(ca.clone()),
            None => config,
        }
    }
}

/// The endpoint of the coordinator at `addr` (`host:port`, or a URI): https with
/// `tls`, http without.
pub fn endpoint(addr: &str, tls: Option<&ClientTls>) -> Result<Endpoint, String> {
    let uri = match (addr.contains("://"), tls) {
        (true, _) => addr.to_string(),
        (false, Some(_)) => format!("https://{addr}"),
        (false, None) => format!("http://{addr}"),
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|err| format!("{addr:?} is not a valid address ({err}): use host:port"))?;
    match tls {
        Some(tls) => endpoint
            .tls_config(tls.config())
            .map_err(|err| format!("cannot set up TLS: {}", error_chain(&err))),
        None => Ok(endpoint),
    }
}

/// `err` and its causes, joined with ": ".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A status `message` followed by the chain of its `cause`, without repeating what
/// the chain already says.
pub fn message_with_causes(message: &str, cause: &(dyn std::error::Error + 'static)) -> String {
    let chain = error_chain(cause);
    if chain.contains(message) {
        chain
    } else {
        format!("{message}: {chain}")
    }
}

/// How a client connects, for [`tls_hint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP/2.
    Plain,
    /// TLS without a client certificate.
    Tls,
    /// TLS with a client certificate.
    TlsWithCertificate,
}

impl Transport {
    /// How a client with `tls` connects.
    pub fn of(tls: Option<&ClientTls>) -> Transport {
        match tls {
            None => Transport::Plain,
            Some(tls) if tls.has_client_certificate() => Transport::TlsWithCertificate,
            Some(_) => Transport::Tls,
        }
    }
}

/// What to do about a failed connection or call whose error chain reads `text`, when
/// TLS is the likely cause.
pub fn tls_hint(text: &str, transport: Transport) -> Option<&'static str> {
    let has = |needle: &str| text.contains(needle);
    if has("CertificateRequired") {
        return Some(
            "the coordinator wants a client certificate (it serves with --client-ca): pass --cert FILE --key FILE",
        );
    }
    if has("received fatal alert: UnknownCA")
        || has("received fatal alert: BadCertificate")
        || has("received fatal alert: DecryptError")
    {
        return Some(
            "the coordinator refused this client certificate: pass --cert/--key signed by its --client-ca",
        );
    }
    if has("invalid peer certificate") {
        return Some(
            "the coordinator's certificate does not check out against --ca: pass the CA bundle that signed it, and an address its certificate names",
        );
    }
    let plain = transport == Transport::Plain;
    if !plain && (has("InvalidContentType") || has("corrupt message") || has("InvalidMessage")) {
        return Some(
            "the coordinator does not speak TLS: drop --ca, or serve with --tls-cert and --tls-key",
        );
    }
    // A refused client certificate may show only as a closed connection: the
    // coordinator's alert can be lost when it closes at once.
    let broken = has("h2 protocol error")
        || has("connection closed")
        || has("connection reset")
        || has("Connection reset")
        || has("frame with invalid size")
        || has("broken pipe")
        || has("unexpected end of file");
    match transport {
        _ if !broken => None,
        Transport::Plain => Some("if the coordinator serves TLS (--tls-cert), pass --ca FILE"),
        Transport::Tls => Some(
            "the coordinator closed the TLS connection: if it checks client certificates (--client-ca), pass --cert FILE --key FILE",
        ),
        Transport::TlsWithCertificate => Some(
            "the coordinator closed the TLS connection: if it checks client certificates, pass --cert/--key signed by its --client-ca",
        ),
    }
}

/// `message` with the TLS hint that fits it, if any.
pub fn with_tls_hint(message: String, transport: Transport) -> String {
    match tls_hint(&message, transport) {
        Some(hint) => format!("{message} ({hint})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_non_pem_file_names_the_flag_and_the_path() {
        let dir = std::env::temp_dir().join(format!("ecobench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("absent.pem");
        let err = read_certificates("--ca", &missing).unwrap_err().to_string();
        assert!(err.starts_with("cannot read --ca "), "{err}");
        assert!(err.contains("absent.pem"), "{err}");

        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = read_certificates("--tls-cert", &junk)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-cert"), "{err}");
        assert!(err.contains("junk.pem"), "{err}");
        assert!(err.contains("-----BEGIN CERTIFICATE-----"), "{err}");
        let err = read_private_key("--key", &junk).unwrap_err().to_string();
        assert!(
            err.contains("--key") && err.contains("PRIVATE KEY"),
            "{err}"
        );

        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let err = read_certificates("--ca", &broken).unwrap_err().to_string();
        assert!(err.contains("no END line"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_that_go_in_pairs_are_refused_alone() {
        let path = Path::new("/nonexistent");
        let err = ClientTls::from_flags(None, Some(path), None).unwrap_err();
        assert_eq!(err.to_string(), "--cert needs --key (its private key) too");
        let err = ServerTls::from_flags(None, None, Some(path)).unwrap_err();
        assert!(err.to_string().starts_with("--client-ca needs --tls-cert"));
        assert!(ClientTls::from_flags(None, None, None).unwrap().is_none());
        assert!(ServerTls::from_flags(None, None, None).unwrap().is_none());
    }

    #[test]
    fn hints_name_the_flag_to_fix() {
        use Transport::*;
        let plain = tls_hint(
            "transport error: h2 protocol error: frame with invalid size",
            Plain,
        );
        assert!(plain.unwrap().contains("--ca"));
        for transport in [Plain, Tls, TlsWithCertificate] {
            let refused = tls_hint("transport error: connection refused", transport);
            assert_eq!(refused, None, "{transport:?}");
        }
        let to_plain = tls_hint("received corrupt message of type InvalidContentType", Tls);
        assert!(to_plain.unwrap().contains("does not speak TLS"));
        let no_cert = tls_hint("received fatal alert: CertificateRequired", Tls);
        assert!(no_cert.unwrap().contains("--cert"));
        let closed = tls_hint("operation was canceled: connection closed", Tls);
        assert!(closed.unwrap().contains("--cert"));
        let closed = tls_hint("connection closed", TlsWithCertificate);
        assert!(closed.unwrap().contains("--client-ca"));
        let server = tls_hint("invalid peer certificate: UnknownIssuer", Tls);
        assert!(server.unwrap().contains("--ca"));
    }
}
