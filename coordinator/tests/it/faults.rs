//! The fault-injection suite: a real coordinator and real workers run a 40-job campaign
//! while workers are killed mid-job, the coordinator is killed (once for longer than the
//! lease), a worker's line is cut, the store fails, and bad callers knock; then it counts
//! what was lost, trained twice or duplicated, and prints one summary line.

mod cluster;
mod proxy;
mod raw;
mod tally;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecobench_proto::pb;

use self::cluster::{Coordinator, CoordinatorSpec, Worker};
use self::proxy::{Line, Proxy};
use self::tally::{Checks, Summary};
use crate::support::{RawClient, campaign, csv_rows, report, report_file, submit, tiny_dataset};

/// The token every caller but the intruders presents.
const TOKEN: &str = "fault-suite-token";
/// Jobs of the main campaign: 20 seeds × 2 configurations.
const N_JOBS: usize = 40;
/// The main campaign's models: small nets that train for about 1–3 s each in a debug
/// build, long enough to be killed mid-job.
const MODELS: &str = "[[model]]\nkind = \"cnn\"\nepochs = 8\nbatch_size = 1\n\n[[model]]\nkind = \"cnn\"\nepochs = 16\nbatch_size = 2\nlearning_rate = 0.01\n";
/// The coordinator's lease: short, so that killed workers' jobs come back soon.
const LEASE_S: u64 = 6;
/// The long coordinator outage: longer than the lease.
const LONG_OUTAGE: Duration = Duration::from_secs(10);
/// How long a worker's line stays cut: less than a third of the lease, so that its
/// lease survives (a heartbeat gets through before the deadline) and no one else trains
/// its job.
const CUT: Duration = Duration::from_secs(1);
/// How long the store fails.
const STORE_OUTAGE: Duration = Duration::from_secs(3);
/// The longest one step waits for its condition.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest the campaign may take to end once every fault was injected.
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn fault_suite() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let dataset = tiny_dataset(dir);
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_arg = token_file.display().to_string();
    let store_fault = dir.join("store-fault");
    let mut coordinator = Coordinator::start(CoordinatorSpec {
        listen: format!("127.0.0.1:{}", free_port()),
        db: dir.join("db"),
        args: [
            "--token-file",
            &token_arg,
            "--lease-s",
            &LEASE_S.to_string(),
        ]
        .map(String::from)
        .to_vec(),
        env: vec![("ECOBENCH_INJECT_STORE_FAULT".into(), store_fault.clone())],
        log_dir: dir.to_path_buf(),
    });
    let addr = coordinator.addr().to_string();
    let mut checks = Checks::default();
    let progress =
        |what: &str| eprintln!("faults: [{:5.1} s] {what}", started.elapsed().as_secs_f64());
    progress(&format!("coordinator on {addr}, logs in {}", dir.display()));

    // Bad callers, before any worker joins so that the raw worker gets the replay job.
    let replay_toml = campaign(
        "replay",
        &dataset,
        "[1]",
        "[[model]]\nkind = \"svm-linear\"\n",
    );
    raw::wire_faults(&addr, TOKEN, &replay_toml, &mut checks).await;
    progress("wire faults done");

    let mut client = lazy_client(&addr);
    let seeds = format!(
        "[{}]",
        (1..=N_JOBS / 2)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let main = submit(
        &mut client,
        "faults.toml",
        &campaign("faults", &dataset, &seeds, MODELS),
    )
    .await
    .unwrap();
    assert_eq!(main.n_jobs as usize, N_JOBS);
    let wild_models = "[[model]]\nkind = \"cnn\"\nlearning_rate = 1e6\n";
    let wild = submit(
        &mut client,
        "wild.toml",
        &campaign("wild", &dataset, "[1]", wild_models),
    )
    .await
    .unwrap();
    checks.injected("diverging job (learning_rate = 1e6)");

    let proxy = Proxy::start(addr.parse().unwrap()).await;
    let worker_args = vec!["--token-file".to_string(), token_arg.clone()];
    let mut w1 = Worker::start("w1", &addr, dir, &worker_args);
    let mut w2 = Worker::start("w2", &addr, dir, &worker_args);
    let mut w3 = Worker::start("w3", &proxy.addr.to_string(), dir, &worker_args);
    progress("3 workers started (w3 through the proxy)");

    let id = main.campaign_id.clone();

    // 1. A worker killed mid-job, started again as itself.
    if wait_for(&mut checks, "w1 mid-job", || w1.mid_job()).await {
        w1.kill();
        checks.injected("kill -9 of w1 mid-job");
        w1.restart();
    }
    // 2. The coordinator killed at an arbitrary moment, back at once.
    wait_succeeded(&mut client, &id, 4, &mut checks).await;
    kill_coordinator(
        &mut coordinator,
        &mut checks,
        Duration::ZERO,
        "at an arbitrary moment",
    )
    .await;
    progress(&format!(
        "{} jobs succeeded",
        succeeded(&mut client, &id).await
    ));
    // 3. Another worker killed mid-job.
    if wait_for(&mut checks, "w2 mid-job", || w2.mid_job()).await {
        w2.kill();
        checks.injected("kill -9 of w2 mid-job");
        w2.restart();
    }
    // 4. The proxied worker's line dropped mid-job, then back.
    if wait_for(&mut checks, "w3 mid-job", || w3.mid_job()).await {
        cut_line(&proxy, Line::Dropped, &mut checks).await;
    }
    // 5. The store fails for a while.
    wait_succeeded(&mut client, &id, 12, &mut checks).await;
    store_outage(&addr, &store_fault, &mut client, &id, &mut checks).await;
    progress(&format!(
        "{} jobs succeeded",
        succeeded(&mut client, &id).await
    ));
    // 6. The coordinator down for longer than the lease while workers train.
    let two_busy = || [&w1, &w2, &w3].iter().filter(|w| w.mid_job()).count() >= 2;
    wait_for(&mut checks, "two workers mid-job", two_busy).await;
    kill_coordinator(
        &mut coordinator,
        &mut checks,
        LONG_OUTAGE,
        "while two workers train, for longer than the lease",
    )
    .await;
    progress(&format!(
        "{} jobs succeeded",
        succeeded(&mut client, &id).await
    ));
    // 7. The proxied worker killed mid-job.
    if wait_for(&mut checks, "w3 mid-job", || w3.mid_job()).await {
        w3.kill();
        checks.injected("kill -9 of w3 mid-job");
        w3.restart();
    }
    // 8. Its line black-holed mid-job, then back.
    if wait_for(&mut checks, "w3 mid-job", || w3.mid_job()).await {
        cut_line(&proxy, Line::BlackHoled, &mut checks).await;
    }
    // 9. The coordinator killed a third time.
    wait_succeeded(&mut client, &id, 28, &mut checks).await;
    kill_coordinator(
        &mut coordinator,
        &mut checks,
        Duration::ZERO,
        "at an arbitrary moment",
    )
    .await;
    // 10. The first worker killed mid-job again.
    if wait_for(&mut checks, "w1 mid-job", || w1.mid_job()).await {
        w1.kill();
        checks.injected("kill -9 of w1 mid-job, again");
        w1.restart();
    }
    progress(&format!(
        "{} faults injected; waiting for the campaign to end",
        checks.injected
    ));

    let finished = Instant::now();
    let mut ended = false;
    while finished.elapsed() < FINISH_TIMEOUT {
        let status = campaign_status(&mut client, &id).await;
        if status.is_some_and(|s| s.pending + s.leased == 0) {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    checks.check(
        ended,
        format!("the campaign ends within {FINISH_TIMEOUT:?} of the last fault"),
    );
    // A training still running (a cancelled lease's) would end later and count twice.
    let idle = Instant::now();
    while [w1.mid_job(), w2.mid_job(), w3.mid_job()].contains(&true)
        && idle.elapsed() < STEP_TIMEOUT
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress("campaign ended, workers idle");

    check_diverged(&mut client, &wild.campaign_id, &mut checks).await;
    let rows = csv_rows(&report_file(&report(&mut client, &id).await, "jobs.csv"));
    let summary = tally(&rows, &id, &coordinator, &[&w1, &w2, &w3], &mut checks);
    let durations: Vec<f64> = rows
        .iter()
        .filter_map(|r| r["duration_s"].parse().ok())
        .collect();
    let mean_s = durations.iter().sum::<f64>() / durations.len().max(1) as f64;
    progress(&format!(
        "jobs lasted {mean_s:.2} s on average (metered duration)"
    ));
    let mut attempts: Vec<&str> = rows.iter().map(|r| r["attempts"].as_str()).collect();
    attempts.sort();
    attempts.dedup();
    progress(&format!(
        "attempts seen: {attempts:?}; {} coordinator incarnations",
        coordinator.incarnations
    ));

    drop((w1, w2, w3));
    println!("{summary}");
    eprintln!("{summary}");
    assert!(
        checks.failed().is_empty()
            && summary.lost == 0
            && summary.trained_twice == 0
            && summary.duplicated == 0
            && summary.succeeded == N_JOBS,
        "{summary}\nfailed checks:\n- {}\nlogs in {}",
        checks.failed().join("\n- "),
        tmp.keep().display()
    );
}

/// A free loopback port: bound once, released, then reused by every coordinator.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A campaign client that reconnects by itself after a coordinator restart.
fn lazy_client(addr: &str) -> RawClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let token = ecobench_proto::auth::BearerToken::new(Some(TOKEN)).unwrap();
    pb::campaign_service_client::CampaignServiceClient::with_interceptor(channel, token)
}

/// The campaign's counts; `None` while the coordinator is away.
async fn campaign_status(client: &mut RawClient, campaign: &str) -> Option<pb::CampaignStatus> {
    let request = pb::GetCampaignRequest {
        campaign: campaign.to_string(),
    };
    client
        .get_campaign(request)
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// Jobs of the campaign that succeeded so far (0 while the coordinator is away).
async fn succeeded(client: &mut RawClient, campaign: &str) -> u32 {
    campaign_status(client, campaign)
        .await
        .map_or(0, |s| s.succeeded)
}

/// Polls until `n` jobs of the campaign succeeded, or it has nothing left to run; false
/// (and a failed check) after [`STEP_TIMEOUT`].
async fn wait_succeeded(
    client: &mut RawClient,
    campaign: &str,
    n: u32,
    checks: &mut Checks,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < STEP_TIMEOUT {
        let status = campaign_status(client, campaign).await;
        if status.is_some_and(|s| s.succeeded >= n || s.pending + s.leased == 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    checks.check(
        false,
        format!("{n} jobs succeeded: not within {STEP_TIMEOUT:?}"),
    );
    false
}

/// Polls `condition` until it holds; false (and a failed check: the fault it cues is
/// not injected) after [`STEP_TIMEOUT`].
async fn wait_for(checks: &mut Checks, what: &str, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < STEP_TIMEOUT {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    checks.check(
        false,
        format!("{what}: not reached within {STEP_TIMEOUT:?}; the fault was not injected"),
    );
    false
}

/// kill -9 of the coordinator after a pseudo-random delay under a second, down for
/// `outage`, then started again on the same port and database.
async fn kill_coordinator(
    coordinator: &mut Coordinator,
    checks: &mut Checks,
    outage: Duration,
    what: &str,
) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let delay = Duration::from_millis(u64::from(nanos % 1000));
    tokio::time::sleep(delay).await;
    tokio::task::block_in_place(|| coordinator.kill());
    checks.injected(&format!(
        "kill -9 of the coordinator {what} ({} ms after the cue, down {outage:?})",
        delay.as_millis()
    ));
    let down = Instant::now();
    // The outage itself is the fault: its length is measured, not waited on a condition.
    tokio::time::sleep(outage.saturating_sub(down.elapsed())).await;
    tokio::task::block_in_place(|| coordinator.restart());
    eprintln!(
        "faults: coordinator back after {:.1} s",
        down.elapsed().as_secs_f64()
    );
}

/// Cuts the proxied worker's line for [`CUT`], then brings it back.
async fn cut_line(proxy: &Proxy, how: Line, checks: &mut Checks) {
    let (accepted, cut) = (proxy.accepted(), proxy.cut());
    proxy.set(how);
    checks.injected(&format!("w3's line {how:?} mid-job for {CUT:?}"));
    tokio::time::sleep(CUT).await;
    proxy.set(Line::Up);
    if how == Line::Dropped {
        checks.check(
            proxy.cut() > cut,
            "dropping the line closed w3's live connection",
        );
    }
    eprintln!(
        "faults: line up again ({} connections accepted, {} cut so far; {accepted} and {cut} before)",
        proxy.accepted(),
        proxy.cut()
    );
}

/// Makes every store write fail for [`STORE_OUTAGE`]: writes are refused as
/// Unavailable while reads go on, and writes work again once healed.
async fn store_outage(
    addr: &str,
    switch: &std::path::Path,
    client: &mut RawClient,
    campaign: &str,
    checks: &mut Checks,
) {
    let mut probe = raw::worker_client(addr, Some(TOKEN)).await;
    let join = |n: u32| pb::JoinRequest {
        worker_id: format!("store-probe-{n}"),
        fingerprint: Some(raw::fingerprint()),
    };
    std::fs::write(switch, "fail every store write\n").unwrap();
    checks.injected(&format!("store writes fail for {STORE_OUTAGE:?}"));
    let start = Instant::now();
    let refused = probe.join(join(1)).await;
    checks.check(
        refused
            .as_ref()
            .is_err_and(|s| s.code() == tonic::Code::Unavailable),
        format!("a write while the store fails is refused as Unavailable: {refused:?}"),
    );
    let read = campaign_status(client, campaign).await;
    checks.check(
        read.is_some(),
        "the coordinator keeps serving reads while the store fails",
    );
    tokio::time::sleep(STORE_OUTAGE.saturating_sub(start.elapsed())).await;
    std::fs::remove_file(switch).unwrap();
    let healed = probe.join(join(2)).await;
    checks.check(
        healed.is_ok(),
        format!("writes work again once the store heals: {healed:?}"),
    );
}

/// The diverging job failed at once, naming the divergence, and was not retried.
async fn check_diverged(client: &mut RawClient, campaign: &str, checks: &mut Checks) {
    let rows = csv_rows(&report_file(&report(client, campaign).await, "jobs.csv"));
    checks.check(
        rows.len() == 1
            && rows[0]["status"] == "failed"
            && rows[0]["attempts"] == "1"
            && rows[0]["error"].contains("diverged"),
        format!("the diverging job fails once, for good, naming the divergence: {rows:?}"),
    );
}

/// Counts the main campaign's outcome from its report rows and the processes' logs.
fn tally(
    rows: &[std::collections::HashMap<String, String>],
    campaign: &str,
    coordinator: &Coordinator,
    workers: &[&Worker],
    checks: &mut Checks,
) -> Summary {
    let ours = |job: &String| job.starts_with(&format!("{campaign}-"));
    let mut per_job = std::collections::BTreeMap::<&str, usize>::new();
    for row in rows {
        *per_job.entry(row["job_id"].as_str()).or_default() += 1;
    }
    let succeeded = rows.iter().filter(|r| r["status"] == "succeeded").count();
    let failed: Vec<_> = rows.iter().filter(|r| r["status"] != "succeeded").collect();
    checks.check(
        failed.is_empty(),
        format!("every job succeeded; these did not: {failed:?}"),
    );
    let events = tally::lines_per_job(&coordinator.logs(), tally::DELIVERED_MARKER);
    let worker_logs: Vec<_> = workers.iter().flat_map(|w| w.logs()).collect();
    let (trainings, marker) = tally::trainings_per_job(&worker_logs);
    eprintln!("faults: trainings counted by worker log lines {marker:?}");
    let mut duplicated = std::collections::BTreeSet::new();
    duplicated.extend(
        per_job
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(job, _)| job.to_string()),
    );
    duplicated.extend(
        events
            .iter()
            .filter(|(job, n)| ours(job) && **n > 1)
            .map(|(job, _)| job.clone()),
    );
    let twice: Vec<_> = trainings
        .iter()
        .filter(|(job, n)| ours(job) && **n > 1)
        .collect();
    checks.check(
        twice.is_empty(),
        format!("trained more than once: {twice:?}"),
    );
    checks.check(
        duplicated.is_empty(),
        format!("more than one result or success: {duplicated:?}"),
    );
    Summary {
        injected: checks.injected,
        n_jobs: N_JOBS,
        succeeded,
        lost: N_JOBS - succeeded.min(N_JOBS),
        trained_twice: twice.len(),
        duplicated: duplicated.len(),
    }
}
