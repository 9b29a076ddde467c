//! Faults on the wire, sent with the generated clients: missing and wrong tokens, a
//! replayed completion, a completion from a worker that does not hold the lease, and
//! (once TLS lands) a client certificate from another CA.

use ecobench_proto::auth::BearerToken;
use ecobench_proto::pb;
use ecobench_proto::pb::worker_service_client::WorkerServiceClient;
use ecobench_shared::{EnergyMethod, EnergyReport, JobResult, TrainReport};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use ecobench_coordinator::client::Client;
use ecobench_proto::tls::ClientTls;

use super::tally::Checks;
use crate::certs::TestPki;
use crate::support::CoordinatorProcess;
use crate::support::{RawClient, client, csv_rows, report, report_file, submit};

/// A raw worker client.
pub type RawWorker = WorkerServiceClient<InterceptedService<Channel, BearerToken>>;

/// Connects a worker client with an optional token.
pub async fn worker_client(addr: &str, token: Option<&str>) -> RawWorker {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    WorkerServiceClient::with_interceptor(channel, BearerToken::new(token).unwrap())
}

/// What is stored, as far as callers can see: campaigns and the report's rows, then
/// workers.
async fn stored(campaigns: &mut RawClient, campaign: &str) -> (String, String) {
    let listed = campaigns
        .list_campaigns(pb::ListCampaignsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut workers = campaigns
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    for worker in &mut workers {
        worker.last_seen_unix_ms = 0; // moves with every call; not a stored change
    }
    let rows = report_file(&report(campaigns, campaign).await, "jobs.csv");
    (format!("{listed:?}\n{rows}"), format!("{workers:?}"))
}

/// A plausible result for the replay campaign's job, which no worker trains.
fn result() -> pb::JobResult {
    JobResult {
        train: TrainReport {
            accuracy: 0.5,
            train_s: 0.1,
            eval_s: 0.01,
            samples_per_s: 3000.0,
            n_train: 300,
            n_test: 100,
            solver: "dcd".into(),
            dataset_sha256: String::new(),
            epochs: Vec::new(),
        },
        energy: EnergyReport {
            method: EnergyMethod::Model,
            duration_s: 0.2,
            cpu_time_s: 0.2,
            cpu_energy_kwh: 1e-6,
            ram_energy_kwh: 1e-7,
            energy_kwh: 1.1e-6,
            machine_energy_kwh: None,
            avg_power_w: 20.0,
            carbon_intensity_g_per_kwh: 475.0,
            carbon_region: "WORLD".into(),
            pue: 1.0,
            co2_kg: 1.1e-6 * 475.0 / 1000.0,
            tdp_w: Some(65.0),
            uncertainty: 0.3,
            sample_interval_s: 0.1,
            n_samples: 2,
            peak_rss_bytes: 1 << 20,
            ..Default::default()
        },
        artifact_sha256: None,
    }
    .into()
}

/// A fingerprint for raw workers.
pub fn fingerprint() -> pb::HardwareFingerprint {
    ecobench_shared::HardwareFingerprint {
        hostname: "raw".into(),
        cpu_model: "test".into(),
        physical_cores: 1,
        logical_cores: 1,
        ram_bytes: 1 << 30,
        os: "linux".into(),
        kernel: "test".into(),
        energy_source: "model".into(),
        country: "WORLD".into(),
        version: "test".into(),
        ..Default::default()
    }
    .into()
}

/// Runs the wire faults against a coordinator that no worker has joined yet; `toml` is
/// a one-job campaign that this function leases and completes itself.
pub async fn wire_faults(addr: &str, token: &str, toml: &str, checks: &mut Checks) {
    let mut campaigns = client(addr, Some(token)).await;
    let replay = submit(&mut campaigns, "replay.toml", toml).await.unwrap();
    let mut holder = worker_client(addr, Some(token)).await;
    join(&mut holder, "replayer").await;
    let lease = holder
        .lease_job(pb::LeaseJobRequest {
            worker_id: "replayer".into(),
            wait_ms: 5_000,
        })
        .await
        .unwrap()
        .into_inner()
        .lease
        .expect("the replay campaign's job is leased to the raw worker");
    let job = lease.job.as_ref().expect("a lease names its job");
    let job_id = format!("{}-{}", job.campaign_id, job.job_idx);
    let complete = |worker_id: &str| pb::CompleteJobRequest {
        worker_id: worker_id.into(),
        job_id: job_id.clone(),
        lease_id: lease.lease_id,
        result: Some(result()),
    };

    let before = stored(&mut campaigns, &replay.campaign_id).await;
    for (what, bad) in [("missing token", None), ("wrong token", Some("wrong"))] {
        checks.injected(what);
        refused_unauthenticated(addr, bad, complete("replayer"), what, checks).await;
        let after = stored(&mut campaigns, &replay.campaign_id).await;
        checks.check(
            after == before,
            format!("{what}: stored state changed\nbefore: {before:?}\nafter: {after:?}"),
        );
    }

    let campaign = replay.campaign_id.as_str();
    let holder = &mut holder;
    replays(
        addr,
        token,
        holder,
        &mut campaigns,
        campaign,
        complete,
        checks,
    )
    .await;
    foreign_client_certificate(addr, checks).await;
}

/// The raw worker completes its job, replays the completion, and an impostor replays it
/// too: one result, the holder's.
async fn replays(
    addr: &str,
    token: &str,
    holder: &mut RawWorker,
    campaigns: &mut RawClient,
    campaign: &str,
    complete: impl Fn(&str) -> pb::CompleteJobRequest,
    checks: &mut Checks,
) {
    let first = holder.complete_job(complete("replayer")).await;
    checks.check(
        first.as_ref().is_ok_and(|a| !a.get_ref().duplicate),
        format!("the raw worker's first completion is stored: {first:?}"),
    );
    let (stored_once, _) = stored(campaigns, campaign).await;

    checks.injected("replayed completion (same worker, same lease)");
    let again = holder.complete_job(complete("replayer")).await;
    checks.check(
        again.as_ref().is_ok_and(|a| a.get_ref().duplicate),
        format!("a replayed completion is acknowledged as a duplicate: {again:?}"),
    );

    checks.injected("replayed completion from another worker");
    let mut impostor = worker_client(addr, Some(token)).await;
    join(&mut impostor, "impostor").await;
    let stolen = impostor.complete_job(complete("impostor")).await;
    checks.check(
        stolen.is_err(),
        format!("a completion from a worker that does not hold the lease is refused: {stolen:?}"),
    );
    let (after, _) = stored(campaigns, campaign).await;
    let rows = csv_rows(&report_file(&report(campaigns, campaign).await, "jobs.csv"));
    checks.check(
        rows.len() == 1 && rows[0]["worker"] == "replayer" && rows[0]["attempts"] == "1",
        format!("the replayed job has one result, the raw worker's: {rows:?}"),
    );
    checks.check(
        after == stored_once,
        format!("replays change nothing stored\nbefore: {stored_once}\nafter: {after}"),
    );
}

/// Joins a raw worker.
async fn join(worker: &mut RawWorker, worker_id: &str) {
    worker
        .join(pb::JoinRequest {
            worker_id: worker_id.into(),
            fingerprint: Some(fingerprint()),
        })
        .await
        .unwrap();
}

/// Every kind of call with `token` is refused as unauthenticated.
async fn refused_unauthenticated(
    addr: &str,
    token: Option<&str>,
    completion: pb::CompleteJobRequest,
    what: &str,
    checks: &mut Checks,
) {
    let mut worker = worker_client(addr, token).await;
    let mut campaigns = client(addr, token).await;
    let joined = worker
        .join(pb::JoinRequest {
            worker_id: "intruder".into(),
            fingerprint: Some(fingerprint()),
        })
        .await
        .map(drop);
    let leased = worker
        .lease_job(pb::LeaseJobRequest {
            worker_id: "intruder".into(),
            wait_ms: 100,
        })
        .await
        .map(drop);
    let completed = worker.complete_job(completion).await.map(drop);
    let submitted = submit(
        &mut campaigns,
        "intruder.toml",
        "name = \"intruder\"\ndataset = \"x\"\nseeds = [1]\n\n[[model]]\nkind = \"svm-linear\"\n",
    )
    .await
    .map(drop);
    let listed = campaigns
        .list_campaigns(pb::ListCampaignsRequest {})
        .await
        .map(drop);
    for (call, answer) in [
        ("Join", joined),
        ("LeaseJob", leased),
        ("CompleteJob", completed),
        ("SubmitCampaign", submitted),
        ("ListCampaigns", listed),
    ] {
        checks.check(
            answer
                .as_ref()
                .is_err_and(|status| status.code() == tonic::Code::Unauthenticated),
            format!("{what}: {call} is refused as unauthenticated: {answer:?}"),
        );
    }
}

/// A client certificate from another CA: an mTLS coordinator beside the cluster (its own
/// database, the test PKI) refuses it, stores nothing, and keeps serving its own
/// clients. The cluster's coordinator runs with tokens and plain TCP, so that its
/// workers and proxy stay simple; the TLS paths are covered in `security.rs`.
async fn foreign_client_certificate(_addr: &str, checks: &mut Checks) {
    checks.injected("a client certificate from another CA (mTLS coordinator)");
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"));
    let serve = pki.serve_args(true);
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &serve);
    let tls = |identity: (&std::path::Path, &std::path::Path)| {
        ClientTls::from_flags(Some(&pki.ca), Some(identity.0), Some(identity.1))
            .unwrap()
            .expect("--ca given")
    };
    let intruder = tls((&pki.other_client_cert, &pki.other_client_key));
    let refused = match Client::connect_with(&coordinator.addr, None, Some(&intruder)).await {
        Err(_) => true,
        Ok(mut client) => client.campaigns().await.is_err(),
    };
    checks.check(refused, "a client certificate from another CA is refused");
    let member = tls((&pki.client_cert, &pki.client_key));
    let served = match Client::connect_with(&coordinator.addr, None, Some(&member)).await {
        Ok(mut client) => client.campaigns().await.map(|c| c.len()).ok(),
        Err(_) => None,
    };
    checks.check(
        served == Some(0),
        format!("the mTLS coordinator still serves its own clients, nothing stored: {served:?}"),
    );
}
