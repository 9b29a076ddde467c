//! The cluster end to end: campaigns run on real workers, results survive crashes.

use std::process::Command;

use ecobench_proto::pb;

use crate::support::*;

const BOTH_MODELS: &str =
    "[[model]]\nkind = \"cnn\"\n\n[[model]]\nkind = \"svm-linear\"\nc = 1.0\n";

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_run_a_campaign_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let w1 = WorkerProcess::start(&coordinator.addr, tmp.path(), "w1", &[]);
    let w2 = WorkerProcess::start(&coordinator.addr, tmp.path(), "w2", &[]);
    let mut client = client(&coordinator.addr, None).await;

    let text = campaign("e2e", &dataset, "[1, 2]", BOTH_MODELS);
    let first = submit(&mut client, "e2e.toml", &text).await.unwrap();
    let again = submit(&mut client, "e2e.toml", &text).await.unwrap();
    assert_eq!((first.n_jobs, first.created), (4, true));
    assert_eq!(
        (again.campaign_id.as_str(), again.created),
        (first.campaign_id.as_str(), false)
    );

    let status = wait_done(&mut client, &first.campaign_id, &[&w1, &w2]).await;
    assert_eq!(
        (status.succeeded, status.failed, status.n_jobs),
        (4, 0, 4),
        "{status:?}"
    );

    let report = report(&mut client, "e2e").await;
    let jobs = csv_rows(&report_file(&report, "jobs.csv"));
    assert_eq!(jobs.len(), 4);
    let mut ids: Vec<&str> = jobs.iter().map(|row| row["job_id"].as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every job once");
    for row in &jobs {
        assert_eq!(row["status"], "succeeded", "{row:?}");
        assert_eq!(row["attempts"], "1", "{row:?}");
        let accuracy: f64 = row["accuracy"].parse().unwrap();
        assert!(accuracy > 0.3, "above chance (0.1): {row:?}");
        assert!(row["energy_kwh"].parse::<f64>().unwrap() > 0.0, "{row:?}");
        assert!(row["co2_kg"].parse::<f64>().unwrap() > 0.0, "{row:?}");
        assert!(
            ["model", "rapl"].contains(&row["method"].as_str()),
            "{row:?}"
        );
        assert!(["w1", "w2"].contains(&row["worker"].as_str()), "{row:?}");
        assert_eq!(
            row["dataset_sha256"], jobs[0]["dataset_sha256"],
            "one copy of the data"
        );
    }
    assert_eq!(jobs[0]["dataset_sha256"].len(), 64);
    let summary = csv_rows(&report_file(&report, "summary.csv"));
    let groups: Vec<(&str, &str)> = summary
        .iter()
        .map(|r| (r["model"].as_str(), r["n_succeeded"].as_str()))
        .collect();
    assert_eq!(groups, vec![("cnn", "2"), ("svm-linear", "2")]);
    assert!(
        report.table.contains("svm-linear") && report.table.contains("cnn"),
        "{}",
        report.table
    );

    let workers = client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    let done: u32 = workers.iter().map(|w| w.jobs_done).sum();
    assert_eq!((workers.len(), done), (2, 4));

    // The CLI fetches the same report over gRPC and writes the files.
    let out = tmp.path().join("out");
    let cli = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["report", "e2e", "--addr", &coordinator.addr, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("svm-linear"));
    assert_eq!(
        std::fs::read_to_string(out.join("jobs.csv")).unwrap(),
        report_file(&report, "jobs.csv")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn results_survive_a_coordinator_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let db = tmp.path().join("db");
    let mut coordinator = CoordinatorProcess::start(&db, &[]);
    let worker = WorkerProcess::start(&coordinator.addr, tmp.path(), "w", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let text = campaign(
        "crash",
        &dataset,
        "[1, 2]",
        "[[model]]\nkind = \"svm-linear\"\n",
    );
    let submitted = submit(&mut client, "crash.toml", &text).await.unwrap();
    wait_done(&mut client, &submitted.campaign_id, &[&worker]).await;
    let before = report_file(
        &report(&mut client, &submitted.campaign_id).await,
        "jobs.csv",
    );
    drop(worker);

    coordinator.kill();
    let restarted = CoordinatorProcess::start(&db, &[]);
    let mut client = crate::support::client(&restarted.addr, None).await;
    let after = report_file(
        &report(&mut client, &submitted.campaign_id).await,
        "jobs.csv",
    );
    assert_eq!(before, after);
    assert_eq!(
        csv_rows(&after)
            .iter()
            .filter(|r| r["status"] == "succeeded")
            .count(),
        2
    );
    let again = submit(&mut client, "crash.toml", &text).await.unwrap();
    assert!(
        !again.created,
        "the restarted coordinator still knows the campaign"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_job_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &["--lease-s", "3"]);
    let doomed = WorkerProcess::start(&coordinator.addr, tmp.path(), "doomed", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let models = "[[model]]\nkind = \"cnn\"\nepochs = 40\n";
    let submitted = submit(
        &mut client,
        "long.toml",
        &campaign("long", &dataset, "[1]", models),
    )
    .await
    .unwrap();
    wait_leased(&mut client, &submitted.campaign_id).await;
    drop(doomed); // kill -9 mid-job; its training child dies with it (PR_SET_PDEATHSIG)

    let survivor = WorkerProcess::start(&coordinator.addr, tmp.path(), "survivor", &[]);
    let status = wait_done(&mut client, &submitted.campaign_id, &[&survivor]).await;
    assert_eq!((status.succeeded, status.failed), (1, 0));
    let report = report(&mut client, "long").await;
    let jobs = csv_rows(&report_file(&report, "jobs.csv"));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["worker"], "survivor");
    assert_eq!(jobs[0]["attempts"], "2");
    assert!(
        jobs[0]["error"].contains("expired on worker doomed (no heartbeat)"),
        "{:?}",
        jobs[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_reconnects_when_the_coordinator_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let db = tmp.path().join("db");
    let mut first = CoordinatorProcess::start(&db, &[]);
    let addr = first.addr.clone();
    let worker = WorkerProcess::start(&addr, tmp.path(), "steady", &[]);
    let mut client = client(&addr, None).await;
    let one = submit(
        &mut client,
        "one.toml",
        &campaign("one", &dataset, "[1]", "[[model]]\nkind = \"svm-linear\"\n"),
    )
    .await
    .unwrap();
    wait_done(&mut client, &one.campaign_id, &[&worker]).await;

    first.kill();
    let second = CoordinatorProcess::start_at(&addr, &db, &[]);
    let mut client = crate::support::client(&second.addr, None).await;
    let two = submit(
        &mut client,
        "two.toml",
        &campaign("two", &dataset, "[2]", "[[model]]\nkind = \"svm-linear\"\n"),
    )
    .await
    .unwrap();
    let status = wait_done(&mut client, &two.campaign_id, &[&worker]).await;
    assert_eq!(
        status.succeeded, 1,
        "the same worker process took the new job"
    );
    assert!(
        worker.log_text().contains("reconnecting"),
        "{}",
        worker.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_finished_while_the_coordinator_is_down_survives_the_worker_too() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let db = tmp.path().join("db");
    let mut first = CoordinatorProcess::start(&db, &[]);
    let addr = first.addr.clone();
    let state = tmp.path().join("worker-state");
    let worker = WorkerProcess::start_with_state(&addr, tmp.path(), "patient", &state, &[]);
    let mut client = client(&addr, None).await;
    let models = "[[model]]\nkind = \"cnn\"\nepochs = 20\n";
    let submitted = submit(
        &mut client,
        "slow.toml",
        &campaign("slow", &dataset, "[1]", models),
    )
    .await
    .unwrap();
    wait_leased(&mut client, &submitted.campaign_id).await;
    // The worker got the lease (not only the store: a kill right after the write can
    // cut the answer) and its training runs.
    while !worker.log_text().contains("job started") {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    first.kill();
    // The job ends while nobody listens: delivery fails, the result stays in the outbox.
    while !worker.log_text().contains("lost the coordinator") {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(worker); // kill -9: only the outbox on disk remembers the result

    let second = CoordinatorProcess::start_at(&addr, &db, &[]);
    // Another process on the same state folder (under another id) delivers it, under the
    // id of the worker whose lease produced it.
    let successor = WorkerProcess::start_with_state(&addr, tmp.path(), "successor", &state, &[]);
    let mut client = crate::support::client(&second.addr, None).await;
    let status = wait_done(&mut client, &submitted.campaign_id, &[&successor]).await;
    assert_eq!((status.succeeded, status.failed), (1, 0));
    let report = report(&mut client, "slow").await;
    let jobs = csv_rows(&report_file(&report, "jobs.csv"));
    assert_eq!(
        jobs[0]["attempts"], "1",
        "delivered, not trained again: {:?}",
        jobs[0]
    );
    assert_eq!(
        jobs[0]["worker"], "patient",
        "credited to the worker that trained it"
    );
    assert!(
        successor.log_text().contains("delivering a stored outcome"),
        "{}",
        successor.log_text()
    );
    let outbox = std::fs::read_dir(state.join("outbox")).unwrap().count();
    assert_eq!(outbox, 0, "delivered outcomes are removed");
}
