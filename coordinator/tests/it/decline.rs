//! A campaign pinned to its dataset fingerprint: a worker with another copy declines.

use std::time::{Duration, Instant};

use crate::support::*;

/// The longest a test waits for a condition.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Polls the campaign's rows until `done` holds; panics with the worker logs on timeout.
async fn wait_rows(
    client: &mut RawClient,
    campaign: &str,
    workers: &[&WorkerProcess],
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) {
    let start = Instant::now();
    loop {
        let rows = job_rows(client, campaign).await;
        if done(&rows) {
            return;
        }
        if start.elapsed() > TIMEOUT {
            let logs: Vec<String> = workers.iter().map(|w| w.log_text()).collect();
            panic!(
                "not {what} in time: {rows:#?}\nworker logs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn field<'a>(row: &'a serde_json::Value, name: &str) -> &'a str {
    row[name].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_with_a_different_dataset_copy_declines_without_losing_an_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (_, pinned) = tiny_dataset_copy(&dir_a.join("data"), 0);
    let (_, other) = tiny_dataset_copy(&dir_b.join("data"), 1);
    assert_ne!(pinned, other);
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let data_arg = |dir: &std::path::Path| dir.join("data").display().to_string();
    let (data_a, data_b) = (data_arg(&dir_a), data_arg(&dir_b));
    let a = WorkerProcess::start(&coordinator.addr, &dir_a, "a", &["--data-dir", &data_a]);
    let mut client = client(&coordinator.addr, None).await;
    // Both workers resolve the name `tiny-idx` in their own --data-dir.
    // Nets slow enough (seconds a job) that worker a cannot finish them all between two
    // polls of the test.
    let models = "[[model]]\nkind = \"cnn\"\nepochs = 40\n";
    let text = campaign("pinned", "tiny-idx".as_ref(), "[1, 2, 3, 4]", models);
    let id = submit(&mut client, "pinned.toml", &text)
        .await
        .unwrap()
        .campaign_id;

    // Worker a's first result pins its copy; frozen, it can take no more than it holds.
    wait_rows(&mut client, &id, &[&a], "one job succeeded", |rows| {
        rows.iter().any(|r| field(r, "status") == "succeeded")
    })
    .await;
    a.pause();
    let b = WorkerProcess::start(&coordinator.addr, &dir_b, "b", &["--data-dir", &data_b]);
    // Worker b declines every job left to it, one by one, and holds none.
    wait_rows(&mut client, &id, &[&a, &b], "declined by b", |rows| {
        let declined = |r: &&serde_json::Value| field(r, "error").contains("declined by worker b");
        let waiting: Vec<_> = rows
            .iter()
            .filter(|r| !["succeeded", "running"].contains(&field(r, "status")))
            .collect();
        let b_holds = rows.iter().any(|r| field(r, "worker") == "b");
        !waiting.is_empty() && waiting.iter().all(declined) && !b_holds
    })
    .await;
    a.resume();

    let status = wait_done(&mut client, &id, &[&a, &b]).await;
    assert_eq!((status.succeeded, status.failed), (4, 0), "{status:?}");
    let rows = job_rows(&mut client, &id).await;
    for row in &rows {
        assert_eq!(field(row, "worker"), "a", "{row:#}");
        assert_eq!(row["attempts"], 1, "a decline costs no attempt: {row:#}");
        assert_eq!(field(row, "dataset_sha256"), pinned, "{row:#}");
    }
    let reasons: Vec<&str> = rows
        .iter()
        .map(|r| field(r, "error"))
        .filter(|e| !e.is_empty())
        .collect();
    assert!(!reasons.is_empty());
    for reason in reasons {
        assert!(reason.contains("declined by worker b"), "{reason}");
        assert!(reason.contains(&pinned), "names the pinned copy: {reason}");
        assert!(reason.contains(&other), "names b's copy: {reason}");
        assert!(reason.contains(&data_b), "says where b's copy is: {reason}");
    }
    assert!(b.log_text().contains("job declined"), "{}", b.log_text());
    let mut b = b;
    assert!(b.exited().is_none(), "b keeps serving after declining");
}
