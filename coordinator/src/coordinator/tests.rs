//! Tests of the domain over a temporary store: leases, completions, failures, reports.

use std::sync::Arc;

use ecobench_shared::{EnergyMethod, EnergyReport, JobResult, TrainReport};

use super::*;

const CAMPAIGN: &str = "name = \"d\"\nseeds = [1]\n[[model]]\nkind = \"svm-linear\"\n";

fn coordinator(config: CoordinatorConfig) -> Coordinator {
    let store = Store::temporary().unwrap();
    let artifacts = ArtifactStore::temporary(store.clone(), 1 << 20);
    Coordinator::new(store, artifacts, config)
}

fn result(accuracy: f64) -> JobResult {
    JobResult {
        train: TrainReport {
            accuracy,
            train_s: 1.0,
            eval_s: 0.1,
            samples_per_s: 100.0,
            n_train: 100,
            n_test: 10,
            solver: "test".into(),
            dataset_sha256: "ab".into(),
            epochs: vec![],
        },
        energy: EnergyReport {
            method: EnergyMethod::Model,
            duration_s: 1.0,
            cpu_time_s: 1.0,
            cpu_energy_kwh: 1e-6,
            ram_energy_kwh: 0.0,
            energy_kwh: 1e-6,
            machine_energy_kwh: None,
            avg_power_w: 3.6,
            carbon_intensity_g_per_kwh: 475.0,
            carbon_region: "world".into(),
            pue: 1.0,
            co2_kg: 4.75e-7,
            tdp_w: Some(20.0),
            uncertainty: 0.6,
            sample_interval_s: 1.0,
            n_samples: 1,
            peak_rss_bytes: 1,
        },
        artifact_sha256: None,
    }
}

async fn joined(c: &Coordinator, worker: &str) {
    c.join(worker, HardwareFingerprint::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_result_is_stored_once_and_a_stale_lease_is_refused() {
    let c = coordinator(CoordinatorConfig::default());
    joined(&c, "w").await;
    let submitted = c.submit("d.toml", CAMPAIGN).await.unwrap();
    let lease = c.lease_job("w", 0).await.unwrap().expect("a pending job");
    let job_id = lease.job.job_id();
    assert!(
        !c.complete("w", &job_id, lease.lease_id, result(0.8))
            .await
            .unwrap()
    );
    assert!(
        c.complete("w", &job_id, lease.lease_id, result(0.8))
            .await
            .unwrap(),
        "a repeat is a duplicate"
    );
    let stale = c
        .complete("w", &job_id, lease.lease_id + 1, result(0.9))
        .await
        .unwrap_err();
    assert!(
        matches!(stale, CoordinatorError::FailedPrecondition(_)),
        "{stale}"
    );
    let report = c.report(&submitted.campaign_id).unwrap();
    assert_eq!(report.jobs.len(), 1);
    assert_eq!(report.jobs[0].accuracy, Some(0.8));
    assert!(c.lease_job("w", 0).await.unwrap().is_none(), "nothing left");
}

#[tokio::test]
async fn impossible_results_are_refused_and_nothing_is_stored() {
    let c = coordinator(CoordinatorConfig::default());
    joined(&c, "w").await;
    let submitted = c.submit("d.toml", CAMPAIGN).await.unwrap();
    let lease = c.lease_job("w", 0).await.unwrap().unwrap();
    for bad in [result(f64::NAN), result(1.5)] {
        let err = c
            .complete("w", &lease.job.job_id(), lease.lease_id, bad)
            .await
            .unwrap_err();
        assert!(matches!(err, CoordinatorError::InvalidArgument(_)), "{err}");
    }
    assert_eq!(c.status(&submitted.campaign_id).unwrap().leased, 1);
}

#[tokio::test]
async fn an_expired_lease_goes_back_to_pending_then_fails() {
    let config = CoordinatorConfig {
        lease_ms: 0,
        max_attempts: 2,
        ..CoordinatorConfig::default()
    };
    let c = coordinator(config);
    joined(&c, "w").await;
    let submitted = c.submit("d.toml", CAMPAIGN).await.unwrap();
    for attempt in 1..=2 {
        let lease = c.lease_job("w", 0).await.unwrap().unwrap();
        assert_eq!(lease.attempt, attempt);
        assert_eq!(c.reap_expired().await.unwrap(), 1);
    }
    let status = c.status(&submitted.campaign_id).unwrap();
    assert_eq!((status.pending, status.failed), (0, 1));
    let report = c.report("d").unwrap();
    assert!(
        report.jobs[0].error.contains("lease expired on worker w"),
        "{}",
        report.jobs[0].error
    );
}

#[tokio::test]
async fn a_waiting_lease_wakes_when_work_arrives() {
    let c = Arc::new(coordinator(CoordinatorConfig::default()));
    joined(&c, "w").await;
    let waiter = tokio::spawn({
        let c = c.clone();
        async move { c.lease_job("w", 20_000).await }
    });
    tokio::task::yield_now().await;
    c.submit("d.toml", CAMPAIGN).await.unwrap();
    let lease = waiter.await.unwrap().unwrap();
    assert!(lease.is_some());
}

#[tokio::test]
async fn an_unknown_worker_or_campaign_is_named() {
    let c = coordinator(CoordinatorConfig::default());
    let err = c.lease_job("ghost", 0).await.unwrap_err().to_string();
    assert!(err.contains("ghost") && err.contains("Join"), "{err}");
    c.submit("d.toml", CAMPAIGN).await.unwrap();
    let err = c.report("nope").unwrap_err().to_string();
    assert!(err.contains("\"nope\"") && err.contains("d ("), "{err}");
}

#[tokio::test]
async fn the_first_result_pins_the_dataset_copy_and_another_copy_is_declined() {
    let c = coordinator(CoordinatorConfig::default());
    joined(&c, "w1").await;
    joined(&c, "w2").await;
    let three = "name = \"p\"\nseeds = [1, 2, 3]\n[[model]]\nkind = \"svm-linear\"\n";
    let id = c.submit("p.toml", three).await.unwrap().campaign_id;
    let first = c.lease_job("w1", 0).await.unwrap().unwrap();
    let early = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(
        first.job.expected_dataset_sha256, None,
        "nothing pinned yet"
    );
    c.complete("w1", &first.job.job_id(), first.lease_id, result(0.8))
        .await
        .unwrap();

    // Leased before the pin, trained on another copy: refused, and the job given back.
    let mut other = result(0.8);
    other.train.dataset_sha256 = "cd".into();
    let refused = c
        .complete("w2", &early.job.job_id(), early.lease_id, other)
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, CoordinatorError::FailedPrecondition(_)));
    assert!(
        message.contains("fingerprint cd") && message.contains("fingerprint ab"),
        "{message}"
    );

    // Later leases carry the pin; w2 declines, and is not offered that job again.
    let next = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(next.job.expected_dataset_sha256.as_deref(), Some("ab"));
    assert!(
        c.decline(&next.job.job_id(), next.lease_id, "other copy", None)
            .await
            .unwrap()
    );
    assert!(
        c.lease_job("w2", 0).await.unwrap().is_none(),
        "w2 declined both"
    );
    for _ in 0..2 {
        let lease = c.lease_job("w1", 0).await.unwrap().unwrap();
        assert_eq!(lease.attempt, 1, "declines cost no attempt");
        c.complete("w1", &lease.job.job_id(), lease.lease_id, result(0.8))
            .await
            .unwrap();
    }
    let report = c.report(&id).unwrap();
    assert!(
        report
            .jobs
            .iter()
            .all(|j| j.status == "succeeded" && j.attempts == 1)
    );
    assert!(
        report
            .jobs
            .iter()
            .any(|j| j.error.contains("declined by worker w2: other copy"))
    );
}

#[tokio::test]
async fn events_tell_leases_progress_ends_and_lost_workers() {
    use ecobench_shared::events::CampaignEvent;
    // Leases expire at once: the reaper finds them expired.
    let c = coordinator(CoordinatorConfig {
        lease_ms: 0,
        max_attempts: 1,
        ..CoordinatorConfig::default()
    });
    let mut events = c.subscribe();
    let submitted = c
        .submit(
            "d.toml",
            "name = \"d\"\nseeds = [1, 2]\n[[model]]\nkind = \"svm-linear\"\n",
        )
        .await
        .unwrap();
    joined(&c, "w").await;
    let first = c.lease_job("w", 0).await.unwrap().unwrap();
    let progress = Progress {
        epoch: 1,
        n_epochs: 1,
        loss: 0.5,
        accuracy: 0.5,
        samples_per_s: 10.0,
    };
    c.heartbeat(&first.job.job_id(), first.lease_id, Progress::default())
        .await
        .unwrap();
    c.heartbeat(&first.job.job_id(), first.lease_id, progress.clone())
        .await
        .unwrap();
    c.heartbeat(&first.job.job_id(), first.lease_id, progress.clone())
        .await
        .unwrap();
    c.complete("w", &first.job.job_id(), first.lease_id, result(0.9))
        .await
        .unwrap();
    let second = c.lease_job("w", 0).await.unwrap().unwrap();
    assert_eq!(c.reap_expired().await.unwrap(), 1);

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let (one, two) = (first.job.job_id(), second.job.job_id());
    let expected = vec![
        CampaignEvent::WorkerJoined {
            worker_id: "w".into(),
            hostname: String::new(),
        },
        CampaignEvent::JobLeased {
            job_id: one.clone(),
            model: "svm-linear c=1 solver=dcd".into(),
            worker_id: "w".into(),
            attempt: 1,
        },
        // Epoch 0 says nothing; the same progress twice is told once.
        CampaignEvent::Progress {
            job_id: one.clone(),
            progress,
        },
        CampaignEvent::JobSucceeded {
            job_id: one,
            worker_id: "w".into(),
            accuracy: 0.9,
            energy_kwh: 1e-6,
        },
        CampaignEvent::JobLeased {
            job_id: two.clone(),
            model: "svm-linear c=1 solver=dcd".into(),
            worker_id: "w".into(),
            attempt: 1,
        },
        CampaignEvent::WorkerLost {
            worker_id: "w".into(),
            job_id: two.clone(),
        },
        CampaignEvent::JobFailed {
            job_id: two,
            reason: "attempt 1: lease expired on worker w (no heartbeat)".into(),
            will_retry: false,
        },
        CampaignEvent::CampaignFinished {
            campaign_id: submitted.campaign_id.clone(),
            name: "d".into(),
            n_jobs: 2,
            succeeded: 1,
            failed: 1,
        },
    ];
    assert_eq!(seen, expected);
    let snapshot = c.snapshot("d").unwrap();
    assert!(
        snapshot.finished() && snapshot.running.is_empty(),
        "{snapshot:?}"
    );
}

const PLACED: &str = "name = \"placed\"\nplacement = \"same-worker-per-seed\"\nseeds = [1, 2]\n\
                      [[model]]\nkind = \"svm-linear\"\nc = [0.5, 1.0]\n";

#[tokio::test]
async fn same_worker_per_seed_keeps_a_seed_on_its_worker_until_that_worker_is_lost() {
    let c = coordinator(CoordinatorConfig::default());
    joined(&c, "w1").await;
    joined(&c, "w2").await;
    c.submit("placed.toml", PLACED).await.unwrap();
    let seed_of = |lease: &Lease| (lease.job.seed, lease.job.job_idx);
    // Jobs: 0 = (c 0.5, seed 1), 1 = (0.5, 2), 2 = (1.0, 1), 3 = (1.0, 2).
    let first = c.lease_job("w1", 0).await.unwrap().unwrap();
    assert_eq!(seed_of(&first), (1, 0));
    let second = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(seed_of(&second), (2, 1), "seed 1 is w1's: w2 takes seed 2");
    c.complete("w2", &second.job.job_id(), second.lease_id, result(0.8))
        .await
        .unwrap();
    let third = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(
        seed_of(&third),
        (2, 3),
        "w2 skips seed 1's job 2 for its own seed"
    );
    c.complete("w2", &third.job.job_id(), third.lease_id, result(0.8))
        .await
        .unwrap();
    assert!(
        c.lease_job("w2", 0).await.unwrap().is_none(),
        "job 2 waits for w1, which holds seed 1"
    );
    c.complete("w1", &first.job.job_id(), first.lease_id, result(0.8))
        .await
        .unwrap();
    assert!(
        c.lease_job("w2", 0).await.unwrap().is_none(),
        "w1 finished its job but is alive: seed 1 stays its"
    );

    // w1 is lost: no call within a lease's lifetime plus a long poll.
    c.contacts.lock().unwrap().insert("w1".into(), 0);
    let mut w1 = c.store.worker("w1").unwrap().unwrap();
    w1.last_seen_unix_ms = 0;
    c.store.put_worker(&w1).unwrap();
    let moved = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(
        seed_of(&moved),
        (1, 2),
        "a lost worker's seed goes to another"
    );
}

#[tokio::test]
async fn campaigns_without_placement_go_to_any_worker() {
    let c = coordinator(CoordinatorConfig::default());
    joined(&c, "w1").await;
    joined(&c, "w2").await;
    let any = PLACED.replace("placement = \"same-worker-per-seed\"\n", "");
    c.submit("any.toml", &any).await.unwrap();
    let first = c.lease_job("w1", 0).await.unwrap().unwrap();
    let second = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!((first.job.job_idx, second.job.job_idx), (0, 1));
    c.complete("w2", &second.job.job_id(), second.lease_id, result(0.8))
        .await
        .unwrap();
    let third = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(
        third.job.job_idx, 2,
        "seed 1's next job, though w1 runs seed 1"
    );
}

#[tokio::test]
async fn a_failed_attempt_s_energy_is_stored_with_the_failure() {
    let c = coordinator(CoordinatorConfig::default());
    joined(&c, "w").await;
    let submitted = c.submit("d.toml", CAMPAIGN).await.unwrap();
    let lease = c.lease_job("w", 0).await.unwrap().unwrap();
    let spent = result(0.0).energy;
    let will_retry = c
        .fail(
            &lease.job.job_id(),
            lease.lease_id,
            "crashed",
            true,
            Some(spent.clone()),
        )
        .await
        .unwrap();
    assert!(will_retry);
    let stored = &c.store.jobs_of(&submitted.campaign_id).unwrap()[0];
    assert_eq!(stored.spent.len(), 1);
    assert_eq!(
        (stored.spent[0].worker_id.as_str(), &stored.spent[0].energy),
        ("w", &spent)
    );
    assert_eq!(stored.failures, vec!["attempt 1: crashed".to_string()]);
}
