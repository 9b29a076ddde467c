//! SIGTERM: a worker stops leasing, hands its job back (no failed attempt) and exits; the
//! coordinator stops accepting, ends long polls, flushes and exits, and restarts on the
//! same database with everything it accepted.

use std::time::Duration;

use ecobench_proto::pb;

use crate::support::{
    CoordinatorProcess, WorkerProcess, campaign, client, csv_rows, report, report_file, submit,
    terminate, tiny_dataset, wait_done, wait_leased,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_worker_hands_its_job_back_and_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &["--max-attempts", "1"]);
    let mut leaving = WorkerProcess::start(&coordinator.addr, tmp.path(), "leaving", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let models = "[[model]]\nkind = \"cnn\"\nepochs = 40\n";
    let submitted = submit(
        &mut client,
        "l.toml",
        &campaign("l", &dataset, "[1]", models),
    )
    .await
    .unwrap();
    wait_leased(&mut client, &submitted.campaign_id).await;
    // The worker has the lease and trains (a stop during the lease call itself leaves the
    // lease to expire).
    while !leaving.log_text().contains("job started") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    terminate(leaving.pid());
    let status = leaving
        .wait_exit(Duration::from_secs(30))
        .expect("the worker exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", leaving.log_text());
    assert!(
        leaving.log_text().contains("handing the job back"),
        "{}",
        leaving.log_text()
    );
    let now = client
        .get_campaign(pb::GetCampaignRequest {
            campaign: submitted.campaign_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (now.pending, now.leased, now.failed),
        (1, 0, 0),
        "back to pending at once, not failed although max_attempts is 1"
    );

    let staying = WorkerProcess::start(&coordinator.addr, tmp.path(), "staying", &[]);
    let done = wait_done(&mut client, &submitted.campaign_id, &[&staying]).await;
    assert_eq!((done.succeeded, done.failed), (1, 0));
    let jobs = csv_rows(&report_file(&report(&mut client, "l").await, "jobs.csv"));
    assert_eq!(jobs[0]["worker"], "staying");
    assert!(
        jobs[0]["error"].contains("handed back: its worker was stopped"),
        "{:?}",
        jobs[0]
    );
    assert!(
        jobs[0]["spent_kwh"].parse::<f64>().unwrap() > 0.0,
        "the stopped attempt's energy is kept as waste: {:?}",
        jobs[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_coordinator_ends_long_polls_flushes_and_restarts_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let db = tmp.path().join("db");
    let mut first = CoordinatorProcess::start(&db, &[]);
    let addr = first.addr.clone();
    // An idle worker holds a long poll open (up to 10 s) while the coordinator stops.
    let idle = WorkerProcess::start(&addr, tmp.path(), "idle", &[]);
    let mut client = client(&addr, None).await;
    let models = "[[model]]\nkind = \"svm-linear\"\n";
    let submitted = submit(
        &mut client,
        "t.toml",
        &campaign("t", &dataset, "[1, 2]", models),
    )
    .await
    .unwrap();
    wait_done(&mut client, &submitted.campaign_id, &[&idle]).await;
    while !idle.log_text().contains("joined") {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = std::time::Instant::now();
    first.terminate();
    let status = first
        .wait_exit(Duration::from_secs(8))
        .expect("the coordinator exits without waiting for long polls");
    assert!(status.success(), "{status:?}");
    assert!(asked.elapsed() < Duration::from_secs(8));

    let second = CoordinatorProcess::start_at(&addr, &db, &[]);
    let mut client = crate::support::client(&second.addr, None).await;
    let jobs = csv_rows(&report_file(&report(&mut client, "t").await, "jobs.csv"));
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
}
