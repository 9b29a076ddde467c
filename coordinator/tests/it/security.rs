//! No one uninvited: TLS, client certificates, separate worker and client tokens, the
//! join rate, bounded campaign files, and refusing to serve unguarded beyond loopback.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ecobench_coordinator::client::Client;
use ecobench_proto::tls::ClientTls;
use ecobench_shared::HardwareFingerprint;
use ecobench_worker::client::Client as WorkerClient;

use crate::certs::TestPki;
use crate::support::*;

/// Runs the `coordinator` binary with `args`.
fn coordinator_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(args)
        .output()
        .expect("the coordinator binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn args(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

/// The TLS settings of a client: the test CA, with a certificate or not.
fn client_tls(ca: &Path, identity: Option<(&Path, &Path)>) -> ClientTls {
    let (cert, key) = identity.unzip();
    ClientTls::from_flags(Some(ca), cert, key)
        .unwrap()
        .expect("--ca given")
}

/// Connects a campaign client and lists campaigns: the error of either step.
async fn list_over(addr: &str, tls: Option<&ClientTls>) -> Result<usize, String> {
    let mut client = Client::connect_with(addr, None, tls)
        .await
        .map_err(|err| format!("{err:#}"))?;
    let campaigns = client.campaigns().await.map_err(|err| format!("{err:#}"))?;
    Ok(campaigns.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_submit_and_status_work_with_the_ca_and_a_mismatched_client_is_told_what_to_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"));
    let coordinator =
        CoordinatorProcess::start(&tmp.path().join("db"), &args(&pki.serve_args(false)));
    let dataset = tiny_dataset(tmp.path());
    let file = tmp.path().join("tls.toml");
    let campaign_text = campaign("tls", &dataset, "[1]", "[[model]]\nkind = \"svm-linear\"\n");
    std::fs::write(&file, campaign_text).unwrap();
    let ca = shown(&pki.ca);
    let addr = coordinator.addr.as_str();

    let submitted = coordinator_cli(&["submit", &shown(&file), "--addr", addr, "--ca", &ca]);
    assert!(submitted.status.success(), "{}", text(&submitted.stderr));
    let campaign_id = text(&submitted.stdout).lines().last().unwrap().to_string();
    let status = coordinator_cli(&["status", &campaign_id, "--addr", addr, "--ca", &ca]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains("tls"),
        "{}",
        text(&status.stdout)
    );

    // A plain client to the TLS coordinator is told to pass --ca.
    let plain = coordinator_cli(&["status", "--addr", addr]);
    assert!(!plain.status.success());
    assert!(
        text(&plain.stderr).contains("--ca"),
        "{}",
        text(&plain.stderr)
    );
    let err = list_over(addr, None).await.unwrap_err();
    assert!(err.contains("--ca"), "{err}");

    // A TLS client to a plain coordinator is told it does not speak TLS.
    let plain_coordinator = CoordinatorProcess::start(&tmp.path().join("plain-db"), &[]);
    let tls = client_tls(&pki.ca, None);
    let err = list_over(&plain_coordinator.addr, Some(&tls))
        .await
        .unwrap_err();
    assert!(err.contains("does not speak TLS"), "{err}");

    // A CA that did not sign the server's certificate is refused by the client.
    let stranger = client_tls(&pki.other_ca, None);
    let err = list_over(addr, Some(&stranger)).await.unwrap_err();
    assert!(err.contains("does not check out against --ca"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mtls_admits_only_client_certificates_from_the_client_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"));
    let coordinator =
        CoordinatorProcess::start(&tmp.path().join("db"), &args(&pki.serve_args(true)));
    let addr = coordinator.addr.as_str();

    let err = list_over(addr, Some(&client_tls(&pki.ca, None)))
        .await
        .unwrap_err();
    // The coordinator's alert, or only a closed connection if it is lost: either way
    // the client is told to pass a certificate.
    assert!(err.contains("--cert FILE --key FILE"), "{err}");
    let intruder = client_tls(
        &pki.ca,
        Some((&pki.other_client_cert, &pki.other_client_key)),
    );
    let err = list_over(addr, Some(&intruder)).await.unwrap_err();
    assert!(err.contains("signed by its --client-ca"), "{err}");
    let member = client_tls(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    assert_eq!(list_over(addr, Some(&member)).await, Ok(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_over_mtls_runs_a_job_to_success() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"));
    let coordinator =
        CoordinatorProcess::start(&tmp.path().join("db"), &args(&pki.serve_args(true)));
    let worker = WorkerProcess::start(
        &coordinator.addr,
        tmp.path(),
        "tls-worker",
        &args(&pki.client_args(true)),
    );
    let tls = client_tls(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let mut client = Client::connect_with(&coordinator.addr, None, Some(&tls))
        .await
        .unwrap();
    let dataset = tiny_dataset(tmp.path());
    let text = campaign(
        "mtls",
        &dataset,
        "[1]",
        "[[model]]\nkind = \"svm-linear\"\n",
    );
    let submitted = client
        .submit("mtls.toml", text, Default::default())
        .await
        .unwrap();
    let start = Instant::now();
    let status = loop {
        let status = client.status(&submitted.campaign_id).await.unwrap();
        if status.pending + status.leased == 0 {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "not done in time: {status:?}\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((status.succeeded, status.failed), (1, 0), "{status:?}");
    let workers = client.workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].worker_id, "tls-worker");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_token_cannot_submit_and_the_client_token_cannot_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let (worker_file, client_file) = (tmp.path().join("w"), tmp.path().join("c"));
    std::fs::write(&worker_file, "worker-secret\n").unwrap();
    std::fs::write(&client_file, "client-secret\n").unwrap();
    let coordinator = CoordinatorProcess::start(
        &tmp.path().join("db"),
        &[
            "--worker-token-file",
            &shown(&worker_file),
            "--client-token-file",
            &shown(&client_file),
        ],
    );
    let addr = coordinator.addr.as_str();
    let text = campaign("tokens", tmp.path(), "[1]", "[[model]]\nkind = \"cnn\"\n");

    let mut as_worker = client(addr, Some("worker-secret")).await;
    let err = submit(&mut as_worker, "t.toml", &text).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("client token"), "{}", err.message());
    let mut as_client = client(addr, Some("client-secret")).await;
    assert!(
        submit(&mut as_client, "t.toml", &text)
            .await
            .unwrap()
            .created
    );

    let mut intruder = WorkerClient::connect(addr, Some("client-secret"), "w")
        .await
        .unwrap();
    let err = intruder.lease(Duration::from_millis(10)).await.unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    let err = intruder
        .join(HardwareFingerprint::default())
        .await
        .unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    let mut member = WorkerClient::connect(addr, Some("worker-secret"), "w")
        .await
        .unwrap();
    member.join(HardwareFingerprint::default()).await.unwrap();
    assert!(
        member
            .lease(Duration::from_secs(5))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn joins_beyond_the_rate_are_resource_exhausted() {
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(
        &tmp.path().join("db"),
        &["--join-rate", "0.01", "--join-burst", "2"],
    );
    let mut worker = WorkerClient::connect(&coordinator.addr, None, "eager")
        .await
        .unwrap();
    for _ in 0..2 {
        worker.join(HardwareFingerprint::default()).await.unwrap();
    }
    let err = worker
        .join(HardwareFingerprint::default())
        .await
        .unwrap_err();
    let ecobench_worker::client::ClientError::Refused { code, message } = err else {
        panic!("refused, not {err:?}");
    };
    assert_eq!(code, tonic::Code::ResourceExhausted);
    assert!(message.contains("slow down"), "{message}");
    assert!(message.contains("--join-rate"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_file_over_the_limit_is_refused_with_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let mut client = client(&coordinator.addr, None).await;
    let mut text = campaign("big", tmp.path(), "[1]", "[[model]]\nkind = \"cnn\"\n");
    text.push_str(&format!("# {}\n", "x".repeat(1024 * 1024)));
    let err = submit(&mut client, "big.toml", &text).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .starts_with(&format!("campaign file big.toml is {} bytes", text.len())),
        "{}",
        err.message()
    );
}

/// Runs `serve` on 0.0.0.0:0 with `extra`: `Err(stderr)` if it refused to start.
fn serve_beyond_loopback(db: &Path, extra: &[&str]) -> Result<(), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--listen", "0.0.0.0:0", "--db"])
        .arg(db)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    if line.starts_with("listening on ") {
        let _ = child.kill();
        let _ = child.wait();
        return Ok(());
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    Err(text(&output.stderr))
}

#[test]
fn serving_beyond_loopback_needs_tokens_for_both_sides_or_client_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"));
    let db = tmp.path().join("db");
    let token = tmp.path().join("token");
    std::fs::write(&token, "t\n").unwrap();

    let err = serve_beyond_loopback(&db, &[]).unwrap_err();
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );
    assert!(
        err.contains("--token-file") && err.contains("--insecure"),
        "{err}"
    );
    // TLS alone authenticates no one.
    let err = serve_beyond_loopback(&db, &args(&pki.serve_args(false))).unwrap_err();
    assert!(err.contains("without a token"), "{err}");
    let err = serve_beyond_loopback(&db, &["--worker-token-file", &shown(&token)]).unwrap_err();
    assert!(err.contains("with no token for clients"), "{err}");

    assert_eq!(
        serve_beyond_loopback(&db, &args(&pki.serve_args(true))),
        Ok(())
    );
    assert_eq!(
        serve_beyond_loopback(&db, &["--token-file", &shown(&token)]),
        Ok(())
    );
    assert_eq!(serve_beyond_loopback(&db, &["--insecure"]), Ok(()));
}

#[test]
fn unusable_tls_files_are_named_with_their_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"));
    let db = shown(&tmp.path().join("db"));
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    let serve = |cert: &Path, key: &Path| {
        coordinator_cli(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
            "--tls-cert",
            &shown(cert),
            "--tls-key",
            &shown(key),
        ])
    };
    let refused = serve(&junk, &pki.server_key);
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(
        err.contains("--tls-cert") && err.contains("junk.pem"),
        "{err}"
    );
    assert!(err.contains("PEM"), "{err}");
    let refused = serve(&pki.server_cert, &tmp.path().join("absent.key"));
    let err = text(&refused.stderr);
    assert!(
        err.contains("cannot read --tls-key") && err.contains("absent.key"),
        "{err}"
    );
    // A key that is not the certificate's.
    let refused = serve(&pki.server_cert, &pki.client_key);
    let err = text(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("not a usable certificate and key pair"),
        "{err}"
    );

    let client = coordinator_cli(&["status", "--ca", &shown(&junk)]);
    let err = text(&client.stderr);
    assert!(err.contains("--ca") && err.contains("junk.pem"), "{err}");
}
