//! Live events: `WatchCampaign` from the first lease to the campaign's end, a late
//! watcher, `status --watch` and `run` (the real binary, stdout piped).

use std::process::Stdio;
use std::time::Duration;

use ecobench_proto::pb;
use ecobench_shared::events::CampaignEvent;
use tokio_stream::StreamExt;

use crate::support::*;

/// The longest a watch may take for a tiny campaign.
const WATCH_TIMEOUT: Duration = Duration::from_secs(180);

const ONE_CNN: &str = "[[model]]\nkind = \"cnn\"\n";

/// Every event of a watch until the coordinator ends the stream.
async fn watch_to_end(client: &mut RawClient, campaign: &str) -> Vec<CampaignEvent> {
    let request = pb::WatchCampaignRequest {
        campaign: campaign.to_string(),
    };
    let mut stream = client.watch_campaign(request).await.unwrap().into_inner();
    let mut events = Vec::new();
    let collect = async {
        while let Some(event) = stream.next().await {
            events.push(CampaignEvent::try_from(event.unwrap()).unwrap());
        }
    };
    tokio::time::timeout(WATCH_TIMEOUT, collect)
        .await
        .expect("the watch ends when the campaign ends");
    events
}

fn position(events: &[CampaignEvent], what: &str, test: impl Fn(&CampaignEvent) -> bool) -> usize {
    events
        .iter()
        .position(test)
        .unwrap_or_else(|| panic!("no {what} event in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watcher_sees_lease_progress_success_and_end_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let mut client = client(&coordinator.addr, None).await;
    let text = campaign("watched", &dataset, "[1]", ONE_CNN);
    let submitted = submit(&mut client, "watched.toml", &text).await.unwrap();

    // Watchers connect before any worker exists: a gRPC one, and the CLI.
    let watcher = tokio::spawn({
        let mut client = client.clone();
        let id = submitted.campaign_id.clone();
        async move { watch_to_end(&mut client, &id).await }
    });
    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["status", "watched", "--watch", "--addr", &coordinator.addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let worker = WorkerProcess::start(&coordinator.addr, tmp.path(), "w1", &[]);

    let events = watcher.await.unwrap();
    let CampaignEvent::Snapshot(first) = &events[0] else {
        panic!("the first event is the snapshot: {events:#?}");
    };
    assert_eq!((first.n_jobs, first.pending, first.succeeded), (1, 1, 0));
    let leased = position(
        &events,
        "leased",
        |e| matches!(e, CampaignEvent::JobLeased { worker_id, attempt: 1, .. } if worker_id == "w1"),
    );
    let progress = position(
        &events,
        "progress",
        |e| matches!(e, CampaignEvent::Progress { progress, .. } if progress.epoch >= 1 && progress.n_epochs == 2),
    );
    let succeeded = position(
        &events,
        "succeeded",
        |e| matches!(e, CampaignEvent::JobSucceeded { worker_id, .. } if worker_id == "w1"),
    );
    assert!(
        leased < progress && progress < succeeded && succeeded == events.len() - 2,
        "{events:#?}"
    );
    let Some(CampaignEvent::CampaignFinished {
        n_jobs: 1,
        succeeded: 1,
        failed: 0,
        ..
    }) = events.last()
    else {
        panic!(
            "the last event is the end: {events:#?}\n{}",
            worker.log_text()
        );
    };
    assert!(
        events.iter().any(
            |e| matches!(e, CampaignEvent::WorkerJoined { worker_id, .. } if worker_id == "w1")
        ),
        "{events:#?}"
    );

    // The CLI watcher ends with the campaign, in plain lines.
    let output = tokio::time::timeout(WATCH_TIMEOUT, cli.wait_with_output())
        .await
        .expect("`status --watch` exits when the campaign ends")
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.contains("watched: 1/1 done, 1 succeeded, 0 failed")),
        "{stdout}"
    );
    assert!(stdout.contains("leased to w1"), "{stdout}");
    assert!(stdout.contains("on w1: epoch 1/2"), "{stdout}");
    assert!(
        !stdout.contains('\x1b'),
        "no escape codes when piped: {stdout:?}"
    );

    // A late watcher gets the snapshot of the ended campaign, then the end.
    let late = watch_to_end(&mut client, "watched").await;
    assert_eq!(late.len(), 2, "{late:#?}");
    assert!(
        matches!(&late[0], CampaignEvent::Snapshot(s) if s.succeeded == 1 && s.running.is_empty()),
        "{late:#?}"
    );
    assert!(
        matches!(
            late[1],
            CampaignEvent::CampaignFinished { succeeded: 1, .. }
        ),
        "{late:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watching_an_unknown_campaign_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let mut client = client(&coordinator.addr, None).await;
    let request = pb::WatchCampaignRequest {
        campaign: "nope".into(),
    };
    let err = client.watch_campaign(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(err.message().contains("\"nope\""), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_logs_to_a_file_and_shows_progress_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let file = tmp.path().join("run.toml");
    std::fs::write(&file, campaign("ran", &dataset, "[1]", ONE_CNN)).unwrap();
    let out = tmp.path().join("out");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("run")
        .arg(&file)
        .args(["--workers", "1", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WATCH_TIMEOUT, run)
        .await
        .expect("run ends")
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("campaign ran: 1/1 done, 1 succeeded, 0 failed"),
        "{stdout}"
    );
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(
            !(line.contains(" INFO ") || line.contains(" WARN ")),
            "a tracing line on the terminal: {line:?}\n{stdout}\n{stderr}"
        );
    }
    let log = std::fs::read_to_string(out.join("coordinator.log")).unwrap();
    assert!(
        log.contains("coordinator serving") && log.contains("job succeeded"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "no colours in the log file");
}
