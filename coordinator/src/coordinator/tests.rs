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
            ..Default::default()
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
async fn the_gauges_follow_leases_completions_and_failures() {
    let c = coordinator(CoordinatorConfig {
        max_attempts: 1,
        ..CoordinatorConfig::default()
    });
    let two_seeds = CAMPAIGN.replace("seeds = [1]", "seeds = [1, 2]");
    c.submit("d.toml", &two_seeds).await.unwrap();
    let counts = |c: &Coordinator| {
        let gauges = c.gauges().unwrap();
        let n = |state| {
            gauges
                .jobs_by_state
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(u64::MAX, |(_, n)| *n)
        };
        (n("pending"), n("leased"), n("succeeded"), n("failed"))
    };
    assert_eq!(counts(&c), (2, 0, 0, 0));
    let idle = c.gauges().unwrap();
    assert_eq!((idle.workers_alive, idle.oldest_lease_age_s), (0, 0.0));

    joined(&c, "w").await;
    let first = c.lease_job("w", 0).await.unwrap().unwrap();
    let second = c.lease_job("w", 0).await.unwrap().unwrap();
    assert_eq!(counts(&c), (0, 2, 0, 0));
    let busy = c.gauges().unwrap();
    assert_eq!(busy.workers_alive, 1);
    assert!(
        (0.0..5.0).contains(&busy.oldest_lease_age_s),
        "just granted: {}",
        busy.oldest_lease_age_s
    );

    let job_id = first.job.job_id();
    c.complete("w", &job_id, first.lease_id, result(0.8))
        .await
        .unwrap();
    c.complete("w", &job_id, first.lease_id, result(0.8))
        .await
        .unwrap();
    assert_eq!(counts(&c), (0, 1, 1, 0), "a duplicate counts once");
    c.fail(
        "w",
        &second.job.job_id(),
        second.lease_id,
        "boom",
        Ending::Failed { retryable: false },
        None,
    )
    .await
    .unwrap();
    assert_eq!(counts(&c), (0, 0, 1, 1));
    assert_eq!(c.gauges().unwrap().oldest_lease_age_s, 0.0);
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
async fn an_expired_lease_is_not_a_failure_and_its_late_result_still_counts() {
    let config = CoordinatorConfig {
        lease_ms: 0,
        restart_grace_ms: 0,
        max_attempts: 1,
        ..CoordinatorConfig::default()
    };
    let c = coordinator(config);
    joined(&c, "w").await;
    joined(&c, "w2").await;
    let submitted = c.submit("d.toml", CAMPAIGN).await.unwrap();
    let first = c.lease_job("w", 0).await.unwrap().unwrap();
    assert_eq!(c.reap_expired().await.unwrap(), 1);
    let second = c.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2);
    let status = c.status(&submitted.campaign_id).unwrap();
    assert_eq!(
        (status.leased, status.failed),
        (1, 0),
        "max_attempts 1, not failed"
    );
    // w delivers after its lease expired: nobody completed the job, so it wins; w2's
    // lease is void (its heartbeat cancels) and its result refused.
    let job_id = first.job.job_id();
    c.complete("w", &job_id, first.lease_id, result(0.9))
        .await
        .unwrap();
    assert!(
        c.heartbeat("w2", &job_id, second.lease_id, Progress::default())
            .await
            .unwrap(),
        "w2 is told to cancel"
    );
    let refused = c
        .complete("w2", &job_id, second.lease_id, result(0.8))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("already completed"),
        "{refused}"
    );
    let report = c.report("d").unwrap();
    assert_eq!(report.jobs[0].accuracy, Some(0.9));
    let notes = &report.jobs[0].error;
    assert!(
        notes.contains(&format!("lease {} expired on worker w", first.lease_id))
            && notes.contains("arrived later and was accepted"),
        "{notes}"
    );
}

#[tokio::test]
async fn an_earlier_run_s_leases_get_a_grace_after_a_restart() {
    let config = CoordinatorConfig {
        lease_ms: 0,
        restart_grace_ms: 60_000,
        ..CoordinatorConfig::default()
    };
    let store = Store::temporary().unwrap();
    let before = Coordinator::new(
        store.clone(),
        ArtifactStore::temporary(store.clone(), 1 << 20),
        config.clone(),
    );
    joined(&before, "w").await;
    before
        .submit(
            "d.toml",
            "name = \"d\"\nseeds = [1, 2]\n[[model]]\nkind = \"svm-linear\"\n",
        )
        .await
        .unwrap();
    let old = before.lease_job("w", 0).await.unwrap().unwrap();
    drop(before);
    // Restarted on the same store: the old lease is past its deadline but in the grace;
    // a lease of this run expires as usual.
    let after = Coordinator::new(
        store.clone(),
        ArtifactStore::temporary(store, 1 << 20),
        config,
    );
    joined(&after, "w2").await;
    let new = after.lease_job("w2", 0).await.unwrap().unwrap();
    assert_eq!(
        after.reap_expired().await.unwrap(),
        1,
        "only this run's lease"
    );
    // The old lease's worker comes back: it holds.
    assert!(
        !after
            .heartbeat("w", &old.job.job_id(), old.lease_id, Progress::default())
            .await
            .unwrap()
    );
    // The new lease's worker comes back too, before anyone took its job: it holds again.
    assert!(
        !after
            .heartbeat("w2", &new.job.job_id(), new.lease_id, Progress::default())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn only_the_holder_acts_on_a_lease_and_bad_floats_are_refused() {
    let c = coordinator(CoordinatorConfig::default());
    joined(&c, "w").await;
    joined(&c, "intruder").await;
    c.submit("d.toml", CAMPAIGN).await.unwrap();
    let lease = c.lease_job("w", 0).await.unwrap().unwrap();
    let job_id = lease.job.job_id();
    let err = c
        .complete("intruder", &job_id, lease.lease_id, result(0.9))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never held job"), "{err}");
    let err = c
        .fail(
            "intruder",
            &job_id,
            lease.lease_id,
            "x",
            Ending::HandedBack,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not hold job"), "{err}");
    let mut bad = result(0.9);
    bad.energy.energy_kwh = f64::NAN;
    let err = c
        .complete("w", &job_id, lease.lease_id, bad)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("energy.energy_kwh = NaN is not a finite number"),
        "{err}"
    );
    let nan_loss = Progress {
        loss: f64::NAN,
        ..Progress::default()
    };
    let err = c
        .heartbeat("w", &job_id, lease.lease_id, nan_loss)
        .await
        .unwrap_err();
    assert!(matches!(err, CoordinatorError::InvalidArgument(_)), "{err}");
    // Nothing was stored by the refused calls; the holder still completes.
    c.complete("w", &job_id, lease.lease_id, result(0.9))
        .await
        .unwrap();
    assert_eq!(c.report("d").unwrap().jobs[0].accuracy, Some(0.9));
}

#[tokio::test]
async fn a_handed_back_job_is_pending_again_without_a_failed_attempt() {
    let c = coordinator(CoordinatorConfig {
        max_attempts: 1,
        ..CoordinatorConfig::default()
    });
    joined(&c, "w").await;
    let submitted = c.submit("d.toml", CAMPAIGN).await.unwrap();
    for _ in 0..3 {
        let lease = c.lease_job("w", 0).await.unwrap().unwrap();
        let again = c
            .fail(
                "w",
                &lease.job.job_id(),
                lease.lease_id,
                "stopping",
                Ending::HandedBack,
                None,
            )
            .await
            .unwrap();
        assert!(again);
    }
    let status = c.status(&submitted.campaign_id).unwrap();
    assert_eq!((status.pending, status.failed), (1, 0));
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
        c.decline("w2", &next.job.job_id(), next.lease_id, "other copy", None)
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
        restart_grace_ms: 0,
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
    c.heartbeat(
        "w",
        &first.job.job_id(),
        first.lease_id,
        Progress::default(),
    )
    .await
    .unwrap();
    c.heartbeat("w", &first.job.job_id(), first.lease_id, progress.clone())
        .await
        .unwrap();
    c.heartbeat("w", &first.job.job_id(), first.lease_id, progress.clone())
        .await
        .unwrap();
    c.complete("w", &first.job.job_id(), first.lease_id, result(0.9))
        .await
        .unwrap();
    let second = c.lease_job("w", 0).await.unwrap().unwrap();
    assert_eq!(c.reap_expired().await.unwrap(), 1);
    // Its worker was lost; the next attempt fails for good.
    let third = c.lease_job("w", 0).await.unwrap().unwrap();
    let retried = c
        .fail(
            "w",
            &third.job.job_id(),
            third.lease_id,
            "no such dataset",
            Ending::Failed { retryable: false },
            None,
        )
        .await
        .unwrap();
    assert!(!retried);

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
            job_id: two.clone(),
            reason: format!(
                "attempt 1: lease {} expired on worker w (no heartbeat)",
                second.lease_id
            ),
            will_retry: true,
        },
        CampaignEvent::JobLeased {
            job_id: two.clone(),
            model: "svm-linear c=1 solver=dcd".into(),
            worker_id: "w".into(),
            attempt: 2,
        },
        CampaignEvent::JobFailed {
            job_id: two,
            reason: "attempt 2: no such dataset".into(),
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
            "w",
            &lease.job.job_id(),
            lease.lease_id,
            "crashed",
            Ending::Failed { retryable: true },
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
