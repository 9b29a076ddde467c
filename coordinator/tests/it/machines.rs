//! Machines and their costs on a real cluster: the calibration score in the stored
//! fingerprint, cumulative energy per epoch, the energy of failed attempts, and
//! `placement = "same-worker-per-seed"`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ecobench_coordinator::scheduler::JobState;
use ecobench_coordinator::store::Store;
use ecobench_proto::pb;

use crate::support::*;

/// Opens the store of a coordinator that was stopped (kill -9 releases the lock).
fn stopped_store(coordinator: &mut CoordinatorProcess, db: &Path) -> Store {
    coordinator.kill();
    Store::open(db).expect("the stopped coordinator's store opens")
}

/// Polls `what` every 20 ms until it gives a value; panics with the worker's log after
/// `limit`.
fn poll<T>(
    limit: Duration,
    what: &str,
    worker: &WorkerProcess,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; worker log:\n{}",
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_worker_sends_its_calibration_and_each_epoch_its_energy_so_far() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let db = tmp.path().join("db");
    let mut coordinator = CoordinatorProcess::start(&db, &[]);
    let worker = WorkerProcess::start(&coordinator.addr, tmp.path(), "w1", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let text = campaign(
        "epochs",
        &dataset,
        "[1]",
        "[[model]]\nkind = \"cnn\"\nepochs = 3\n",
    );
    let submitted = submit(&mut client, "epochs.toml", &text).await.unwrap();
    let status = wait_done(&mut client, &submitted.campaign_id, &[&worker]).await;
    assert_eq!(status.succeeded, 1, "{status:?}\n{}", worker.log_text());

    let workers = client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers;
    let score = workers[0]
        .fingerprint
        .as_ref()
        .and_then(|f| f.calibration_gflops)
        .expect("the worker sent a calibration score");
    assert!(score.is_finite() && score > 0.0, "{score}");

    let store = stopped_store(&mut coordinator, &db);
    let results = store.results_of(&submitted.campaign_id).unwrap();
    let (_, record) = &results[0];
    let stored_score = record
        .fingerprint
        .as_ref()
        .and_then(|f| f.calibration_gflops);
    assert_eq!(
        stored_score,
        Some(score),
        "the result keeps its worker's fingerprint"
    );
    let epochs = &record.result.train.epochs;
    assert_eq!(epochs.len(), 3);
    let energies: Vec<f64> = epochs
        .iter()
        .map(|e| e.energy_kwh.expect("every epoch has its energy"))
        .collect();
    assert!(energies[0] > 0.0, "{energies:?}");
    assert!(
        energies.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {energies:?}"
    );
    let total = record.result.energy.energy_kwh;
    assert!(
        energies[2] <= total,
        "{energies:?} within the job's {total}"
    );
    assert!(
        energies[2] < total || energies[1] < energies[2],
        "readings taken while it ran, not the total copied: {energies:?} / {total}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_and_killed_attempts_leave_what_they_spent() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let mut coordinator = CoordinatorProcess::start(&db, &[]);
    let worker = WorkerProcess::start(&coordinator.addr, tmp.path(), "w", &[]);
    let mut client = client(&coordinator.addr, None).await;

    // A dataset that loads as no dataset: the attempt runs and fails for good.
    let junk = tmp.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for name in ecobench_worker::data::SPLIT_FILES {
        std::fs::write(junk.join(name), "<html>not a dataset</html>\n").unwrap();
    }
    let text = campaign("junk", &junk, "[1]", "[[model]]\nkind = \"svm-linear\"\n");
    let bad = submit(&mut client, "junk.toml", &text).await.unwrap();
    let status = wait_done(&mut client, &bad.campaign_id, &[&worker]).await;
    assert_eq!(status.failed, 1, "{status:?}");

    // A training child killed twice: two attempts spent, the third succeeds.
    let dataset = tiny_dataset(tmp.path());
    let text = campaign(
        "killed",
        &dataset,
        "[1]",
        "[[model]]\nkind = \"cnn\"\nepochs = 200\n",
    );
    let killed = submit(&mut client, "killed.toml", &text).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let child = poll(Duration::from_secs(60), "a training child", &worker, || {
            children_of(worker.pid())
                .into_iter()
                .find(|(pid, ticks)| !seen.contains(pid) && *ticks >= 10)
                .map(|(pid, _)| pid)
        });
        seen.push(child);
        // SAFETY: kill(2) on the worker's training child, found just above.
        unsafe { libc::kill(child as i32, libc::SIGKILL) };
    }
    let status = wait_done(&mut client, &killed.campaign_id, &[&worker]).await;
    assert_eq!(status.succeeded, 1, "{status:?}\n{}", worker.log_text());

    let store = stopped_store(&mut coordinator, &db);
    let failed = &store.jobs_of(&bad.campaign_id).unwrap()[0];
    assert_eq!((&failed.state, failed.attempts), (&JobState::Failed, 1));
    assert_eq!(failed.spent.len(), 1, "{failed:?}");
    let retried = &store.jobs_of(&killed.campaign_id).unwrap()[0];
    assert_eq!(retried.attempts, 3, "{retried:?}");
    assert_eq!(
        retried.spent.len(),
        2,
        "one per killed attempt: {retried:?}"
    );
    for spent in failed.spent.iter().chain(&retried.spent) {
        assert_eq!(spent.worker_id, "w");
        assert!(spent.energy.energy_kwh > 0.0, "{spent:?}");
        assert!(spent.energy.co2_kg > 0.0, "{spent:?}");
    }
}

/// A net whose loss blows up fails at once, for good, naming where it diverged, and
/// what it burned is kept as the job's waste.
#[tokio::test(flavor = "multi_thread")]
async fn a_diverging_job_fails_once_naming_epoch_and_batch_and_keeps_its_energy() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let mut coordinator = CoordinatorProcess::start(&db, &[]);
    let worker = WorkerProcess::start(&coordinator.addr, tmp.path(), "w", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let dataset = tiny_dataset(tmp.path());
    let text = campaign(
        "wild",
        &dataset,
        "[1]",
        "[[model]]\nkind = \"cnn\"\nlearning_rate = 1e6\n",
    );
    let wild = submit(&mut client, "wild.toml", &text).await.unwrap();
    let status = wait_done(&mut client, &wild.campaign_id, &[&worker]).await;
    assert_eq!(status.failed, 1, "{status:?}");

    let store = stopped_store(&mut coordinator, &db);
    let job = &store.jobs_of(&wild.campaign_id).unwrap()[0];
    assert_eq!(
        (&job.state, job.attempts),
        (&JobState::Failed, 1),
        "{job:?}"
    );
    assert!(
        job.failures[0].contains("diverged at epoch ") && job.failures[0].contains(", batch "),
        "{:?}",
        job.failures
    );
    assert_eq!(job.spent.len(), 1, "{job:?}");
    assert!(job.spent[0].energy.energy_kwh > 0.0, "{job:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_worker_per_seed_runs_every_model_of_a_seed_on_one_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = tiny_dataset(tmp.path());
    let db = tmp.path().join("db");
    let mut coordinator = CoordinatorProcess::start(&db, &[]);
    let w1 = WorkerProcess::start(&coordinator.addr, tmp.path(), "w1", &[]);
    let w2 = WorkerProcess::start(&coordinator.addr, tmp.path(), "w2", &[]);
    let mut client = client(&coordinator.addr, None).await;
    let start = Instant::now();
    while client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers
        .len()
        < 2
    {
        assert!(start.elapsed() < Duration::from_secs(60), "workers joined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let models = "[[model]]\nkind = \"svm-linear\"\nc = [0.5, 1.0]\n\n[[model]]\nkind = \"cnn\"\n";
    let text = campaign("placed", &dataset, "[1, 2, 3, 4]", models).replacen(
        "seeds = ",
        "placement = \"same-worker-per-seed\"\nseeds = ",
        1,
    );
    let placed = submit(&mut client, "placed.toml", &text).await.unwrap();
    assert_eq!(placed.n_jobs, 12);
    let status = wait_done(&mut client, &placed.campaign_id, &[&w1, &w2]).await;
    assert_eq!(status.succeeded, 12, "{status:?}");

    let store = stopped_store(&mut coordinator, &db);
    let jobs = store.jobs_of(&placed.campaign_id).unwrap();
    let mut by_seed: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (idx, record) in store.results_of(&placed.campaign_id).unwrap() {
        let seed = jobs[idx as usize].spec.seed;
        by_seed.entry(seed).or_default().push(record.worker_id);
    }
    assert_eq!(by_seed.len(), 4);
    for (seed, workers) in &by_seed {
        assert_eq!(workers.len(), 3, "seed {seed}: {by_seed:?}");
        assert!(
            workers.iter().all(|w| *w == workers[0]),
            "seed {seed} ran on one worker: {by_seed:?}"
        );
    }
    let mut used: Vec<&String> = by_seed.values().map(|w| &w[0]).collect();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 2, "both workers took seeds: {by_seed:?}");
}
