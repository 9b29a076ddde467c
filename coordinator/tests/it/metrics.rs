//! `--metrics` of both binaries scraped over real HTTP during a tiny real campaign, and
//! gRPC server reflection listing the services without a token.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use ecobench_shared::metrics::{COORDINATOR_METRICS, HISTOGRAMS, WORKER_METRICS};

use crate::support::*;

/// One sample line of the metrics text: name, labels (`{…}` or empty) and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: String,
    value: f64,
}

/// A `coordinator serve --metrics 127.0.0.1:0` process and its two addresses.
struct Served {
    child: Child,
    addr: String,
    metrics: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the coordinator with extra flags; reads both printed addresses.
fn serve(db: &std::path::Path, extra_args: &[&str]) -> Served {
    let db = db.display().to_string();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--db",
        &db,
    ];
    args.extend_from_slice(extra_args);
    let (child, addr, mut lines) = spawn_serve(&args);
    let second = lines.next().expect("a second line").expect("text");
    let metrics = second
        .strip_prefix("metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .to_string();
    Served {
        child,
        addr,
        metrics,
    }
}

/// One scrape: the families declared and the samples.
#[derive(Debug)]
struct Scraped {
    types: Vec<String>,
    samples: Vec<Sample>,
}

/// `GET /metrics` over HTTP/1.0; panics unless the answer is 200 with OpenMetrics text.
fn scrape(addr: &str) -> Scraped {
    let mut stream = TcpStream::connect(addr).expect("the metrics port answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("headers and a body");
    let status_line = head.lines().next().unwrap_or_default();
    assert!(
        status_line.starts_with("HTTP/1.") && status_line.contains(" 200"),
        "{head}"
    );
    assert!(
        head.to_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let types = body
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(String::from)
        .collect();
    let samples = body
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            let (name, labels) = match series.find('{') {
                Some(i) => (&series[..i], &series[i..]),
                None => (series, ""),
            };
            Sample {
                name: name.to_string(),
                labels: labels.to_string(),
                value: value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line}")),
            }
        })
        .collect();
    Scraped { types, samples }
}

/// The sum of the samples named `name` whose labels contain every one of `labels`.
fn sum(scraped: &Scraped, name: &str, labels: &[&str]) -> f64 {
    scraped
        .samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|l| s.labels.contains(l)))
        .map(|s| s.value)
        .sum()
}

/// Panics unless every listed family is declared (`# TYPE`) with a sample, but for the
/// running job's info (no series between jobs) and histograms before any call.
fn assert_families(text: &Scraped, names: &[&str]) {
    let present: BTreeSet<&str> = text.samples.iter().map(|s| s.name.as_str()).collect();
    for name in names {
        let declared = text
            .types
            .iter()
            .any(|t| t == name || name.strip_suffix("_total") == Some(t.as_str()));
        let sampled = present.contains(name) || present.contains(format!("{name}_count").as_str());
        assert_eq!(
            declared, sampled,
            "{name}: declared without samples or the reverse"
        );
        let may_lack = *name == "ecobench_worker_job_info" || HISTOGRAMS.contains(name);
        assert!(sampled || may_lack, "no sample of {name} in {present:?}");
    }
}

/// The worker's metrics address, from its log line `url=http://ADDR/metrics`.
fn worker_metrics_addr(worker: &WorkerProcess) -> String {
    let start = Instant::now();
    loop {
        let log = worker.log_text();
        if let Some(at) = log.find("http://127.0.0.1:") {
            let rest = &log[at + "http://".len()..];
            if let Some(end) = rest.find("/metrics") {
                return rest[..end].to_string();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker never logged its metrics address:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the campaign still has pending or leased jobs.
async fn client_status_open(client: &mut RawClient, campaign: &str) -> bool {
    let request = ecobench_proto::pb::GetCampaignRequest {
        campaign: campaign.to_string(),
    };
    let status = client.get_campaign(request).await.unwrap().into_inner();
    status.pending + status.leased > 0
}

#[tokio::test(flavor = "multi_thread")]
async fn both_binaries_export_their_metrics_during_a_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let served = serve(&tmp.path().join("db"), &[]);
    let before = scrape(&served.metrics);
    assert_families(&before, COORDINATOR_METRICS);
    assert_eq!(sum(&before, "ecobench_coordinator_results_total", &[]), 0.0);

    let worker = WorkerProcess::start(
        &served.addr,
        tmp.path(),
        "w1",
        &["--metrics", "127.0.0.1:0"],
    );
    let worker_addr = worker_metrics_addr(&worker);
    assert_families(&scrape(&worker_addr), WORKER_METRICS);

    let mut client = client(&served.addr, None).await;
    // Nets report epochs (progress, samples/s); two jobs of two epochs.
    let text = campaign("metrics", &dataset, "[1, 2]", "[[model]]\nkind = \"cnn\"\n");
    let submitted = submit(&mut client, "metrics.toml", &text).await.unwrap();
    // While a job runs, its info series names it (looked for until the campaign ends).
    let mut running_seen = false;
    while !running_seen && client_status_open(&mut client, &submitted.campaign_id).await {
        let now = scrape(&worker_addr);
        if let Some(info) = now
            .samples
            .iter()
            .find(|s| s.name == "ecobench_worker_job_info")
        {
            assert!(info.labels.contains("model=\"cnn\""), "{info:?}");
            assert!(info.labels.contains(&submitted.campaign_id), "{info:?}");
            assert_eq!(info.value, 1.0);
            let ratio = sum(&now, "ecobench_worker_job_progress_ratio", &[]);
            assert!((0.0..=1.0).contains(&ratio), "{ratio}");
            running_seen = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = wait_done(&mut client, &submitted.campaign_id, &[&worker]).await;
    assert_eq!((status.succeeded, status.failed), (2, 0), "{status:?}");

    let after = scrape(&served.metrics);
    assert_families(&after, COORDINATOR_METRICS);
    assert!(
        sum(
            &after,
            "ecobench_coordinator_rpc_duration_seconds_count",
            &[]
        ) > 0.0
    );
    let jobs = |state: &str| {
        sum(
            &after,
            "ecobench_coordinator_jobs",
            &[&format!("state=\"{state}\"")],
        )
    };
    assert_eq!(
        (jobs("succeeded"), jobs("pending"), jobs("leased")),
        (2.0, 0.0, 0.0)
    );
    assert_eq!(
        sum(
            &after,
            "ecobench_coordinator_results_total",
            &["outcome=\"succeeded\""]
        ),
        2.0
    );
    assert_eq!(sum(&after, "ecobench_coordinator_workers_alive", &[]), 1.0);
    assert_eq!(
        sum(&after, "ecobench_coordinator_oldest_lease_age_seconds", &[]),
        0.0,
        "no lease is live once the campaign is done"
    );
    for method in ["WorkerService/LeaseJob", "WorkerService/CompleteJob"] {
        let calls = sum(
            &after,
            "ecobench_coordinator_rpc_duration_seconds_count",
            &[method, "code=\"Ok\""],
        );
        assert!(calls >= 1.0, "{method}: {calls} calls timed");
    }
    let complete_s = sum(
        &after,
        "ecobench_coordinator_rpc_duration_seconds_sum",
        &["WorkerService/CompleteJob"],
    );
    assert!(complete_s > 0.0 && complete_s < 60.0, "{complete_s} s");

    let worker_after = scrape(&worker_addr);
    assert_families(&worker_after, WORKER_METRICS);
    let energy_j = sum(&worker_after, "ecobench_worker_energy_joules_total", &[]);
    assert!(energy_j > 0.0, "{energy_j} J after two jobs");
    let cpu_j = sum(
        &worker_after,
        "ecobench_worker_energy_joules_total",
        &["part=\"cpu\""],
    );
    assert!(cpu_j > 0.0 && cpu_j <= energy_j, "{cpu_j} of {energy_j} J");
    assert_eq!(
        sum(
            &worker_after,
            "ecobench_worker_jobs_total",
            &["outcome=\"succeeded\""]
        ),
        2.0
    );
    assert_eq!(
        sum(&worker_after, "ecobench_worker_power_watts", &[]),
        0.0,
        "no job runs: no power"
    );
    assert_eq!(
        sum(&worker_after, "ecobench_worker_job_progress_ratio", &[]),
        1.0
    );
    assert!(sum(&worker_after, "ecobench_worker_samples_per_second", &[]) > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn reflection_lists_the_services_without_a_token() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret-token-for-reflection\n").unwrap();
    let served = serve(
        &tmp.path().join("db"),
        &["--token-file", token.to_str().unwrap()],
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", served.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let ask = |message: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let requests = tokio_stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "ecobench.v1.WorkerService".into(),
        )),
    ]);
    let mut answers = reflection
        .server_reflection_info(requests)
        .await
        .expect("reflection needs no token")
        .into_inner();
    let first: ServerReflectionResponse = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("not a list: {first:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "ecobench.v1.WorkerService",
        "ecobench.v1.CampaignService",
        "ecobench.v1.ArtifactService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    let second = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("not a descriptor: {second:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // Health stays token-free; the ecobench services still want the token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ecobench.v1.WorkerService".into(),
        })
        .await
        .expect("health needs no token")
        .into_inner();
    assert_eq!(serving.status, 1, "SERVING");
    let mut campaigns =
        ecobench_proto::pb::campaign_service_client::CampaignServiceClient::new(channel);
    let refused = campaigns
        .list_campaigns(ecobench_proto::pb::ListCampaignsRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // The refused call is timed under its code.
    let samples = scrape(&served.metrics);
    let refused_calls = sum(
        &samples,
        "ecobench_coordinator_rpc_duration_seconds_count",
        &["CampaignService/ListCampaigns", "code=\"Unauthenticated\""],
    );
    assert_eq!(refused_calls, 1.0);

    // SIGTERM stops it promptly even with a scraper's idle connection open.
    let _idle = TcpStream::connect(&served.metrics).unwrap();
    let mut served = served;
    terminate(served.child.id());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
