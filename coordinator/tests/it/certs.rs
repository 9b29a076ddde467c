//! A test PKI made at test time with rcgen: a CA, a server certificate for
//! 127.0.0.1 and localhost, a client certificate from that CA, and one from another CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// Paths of the PEM files of a test PKI, all in one folder.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA that signed the server and the good client certificate (`--ca`, `--client-ca`).
    pub ca: PathBuf,
    /// The server's certificate (`--tls-cert`), for 127.0.0.1 and localhost.
    pub server_cert: PathBuf,
    /// Its key (`--tls-key`).
    pub server_key: PathBuf,
    /// A client certificate signed by [`TestPki::ca`] (`--cert`).
    pub client_cert: PathBuf,
    /// Its key (`--key`).
    pub client_key: PathBuf,
    /// Another CA, unknown to the server.
    pub other_ca: PathBuf,
    /// A client certificate signed by the other CA.
    pub other_client_cert: PathBuf,
    /// Its key.
    pub other_client_key: PathBuf,
}

impl TestPki {
    /// Generates the PKI into `dir` (created if needed).
    pub fn new(dir: &Path) -> TestPki {
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (ca_pem, ca) = certificate_authority("ecobench test CA");
        let (other_ca_pem, other_ca) = certificate_authority("another CA");
        let (server_cert, server_key) = leaf(
            &ca,
            "ecobench coordinator",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            leaf(&ca, "worker-1", &[], ExtendedKeyUsagePurpose::ClientAuth);
        let (other_cert, other_key) = leaf(
            &other_ca,
            "intruder",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        TestPki {
            ca: write("ca.pem", ca_pem),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            other_ca: write("other-ca.pem", other_ca_pem),
            other_client_cert: write("other-client.pem", other_cert),
            other_client_key: write("other-client.key", other_key),
        }
    }

    /// `serve` flags for TLS, and for client certificates when `mtls`.
    pub fn serve_args(&self, mtls: bool) -> Vec<String> {
        let mut args = vec![
            "--tls-cert".to_string(),
            shown(&self.server_cert),
            "--tls-key".to_string(),
            shown(&self.server_key),
        ];
        if mtls {
            args.extend(["--client-ca".to_string(), shown(&self.ca)]);
        }
        args
    }

    /// Client flags: `--ca`, with the good client certificate when `with_cert`.
    pub fn client_args(&self, with_cert: bool) -> Vec<String> {
        let mut args = vec!["--ca".to_string(), shown(&self.ca)];
        if with_cert {
            args.extend([
                "--cert".to_string(),
                shown(&self.client_cert),
                "--key".to_string(),
                shown(&self.client_key),
            ]);
        }
        args
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// A self-signed CA: its PEM and the issuer that signs with it.
fn certificate_authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(params, key))
}

/// A certificate signed by `issuer` for `names`: its PEM and its key's PEM.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}
