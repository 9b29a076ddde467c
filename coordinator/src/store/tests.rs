//! Tests of the store over real sled databases in temporary folders.

use super::*;
use crate::scheduler;
use ecobench_shared::campaign;

const CAMPAIGN: &str = "name = \"s\"\nseeds = [1, 2]\n[[model]]\nkind = \"svm-linear\"\n";

fn record() -> (CampaignRecord, Vec<JobRecord>) {
    let spec = campaign::parse("s.toml", CAMPAIGN, 100).unwrap();
    let jobs = spec.jobs.iter().cloned().map(JobRecord::new).collect();
    (
        CampaignRecord {
            spec,
            submitted_unix_ms: 1,
        },
        jobs,
    )
}

#[test]
fn a_campaign_is_stored_once_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (campaign, jobs) = record();
    {
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert!(store.insert_campaign(&campaign, &jobs).unwrap());
        assert!(!store.insert_campaign(&campaign, &jobs).unwrap());
        store.db.flush().unwrap();
    }
    let store = Store::open(&dir.path().join("db")).unwrap();
    assert_eq!(store.campaigns().unwrap().len(), 1);
    let stored = store.jobs_of(&campaign.spec.id).unwrap();
    assert_eq!(stored, jobs);
}

#[test]
fn jobs_are_kept_in_numeric_order() {
    assert!(job_key([0; 8], 2) < job_key([0; 8], 10));
    assert!(job_key([0; 8], u32::MAX) < job_key([0, 0, 0, 0, 0, 0, 0, 1], 0));
    assert_eq!(campaign_key("zz"), None);
    assert_eq!(
        campaign_key("00000000000000ff"),
        Some([0, 0, 0, 0, 0, 0, 0, 0xff])
    );
}

#[test]
fn a_swap_against_a_stale_read_changes_nothing() {
    let store = Store::temporary().unwrap();
    let (campaign, jobs) = record();
    store.insert_campaign(&campaign, &jobs).unwrap();
    let key = job_key(campaign_key(&campaign.spec.id).unwrap(), 0);
    let leased = scheduler::lease(&jobs[0], "w1", 1, 100).unwrap();
    assert!(store.swap_job(&key, &jobs[0], &leased).unwrap());
    let other = scheduler::lease(&jobs[0], "w2", 2, 100).unwrap();
    assert!(
        !store.swap_job(&key, &jobs[0], &other).unwrap(),
        "the read was stale"
    );
    assert_eq!(store.job(&key).unwrap().unwrap().state, leased.state);
}

#[test]
fn a_database_of_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", encode(&99u32))
            .unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(&dir.path().join("db")).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

/// A record holding floats whose decoded value encodes to other digits (serde_json parses
/// some decimals one unit in the last place off) still swaps after a read.
#[test]
fn a_record_with_measured_floats_swaps_after_a_read() {
    let store = Store::temporary().unwrap();
    let (campaign, mut jobs) = record();
    let energy = |kwh: f64| ecobench_shared::EnergyReport {
        method: ecobench_shared::EnergyMethod::Model,
        duration_s: kwh * 1.7e7,
        cpu_time_s: kwh * 1.3e7,
        cpu_energy_kwh: kwh * 0.93,
        ram_energy_kwh: kwh * 0.07,
        energy_kwh: kwh,
        machine_energy_kwh: None,
        avg_power_w: kwh * 3.6e6 / 0.11,
        carbon_intensity_g_per_kwh: 475.0,
        carbon_region: "world".into(),
        pue: 1.0,
        co2_kg: kwh * 0.475,
        tdp_w: Some(20.0),
        uncertainty: 0.6,
        sample_interval_s: 1.0,
        n_samples: 1,
        peak_rss_bytes: 1,
        ..Default::default()
    };
    // Values like the meter's (the failing one of a cluster run among them).
    let mut kwh = 2.534441908248161e-7;
    for _ in 0..64 {
        jobs[0].spent.push(scheduler::SpentAttempt {
            worker_id: "w".into(),
            energy: energy(kwh),
        });
        kwh = kwh * 1.618_033_988_749_895 + 3.3e-9;
    }
    store.insert_campaign(&campaign, &jobs).unwrap();
    let key = job_key(campaign_key(&campaign.spec.id).unwrap(), 0);
    let read = store.job(&key).unwrap().unwrap();
    let mut next = read.clone();
    next.attempts += 1;
    assert!(store.swap_job(&key, &read, &next).unwrap());
    assert_eq!(store.job(&key).unwrap().unwrap().attempts, 1);
    assert!(
        !store.swap_job(&key, &read, &next).unwrap(),
        "the stale read no longer matches"
    );
}

fn pending(store: &Store) -> usize {
    store.pending_keys().count()
}

#[test]
fn the_pending_and_leased_indexes_follow_every_job_write() {
    let store = Store::temporary().unwrap();
    let (campaign, jobs) = record();
    store.insert_campaign(&campaign, &jobs).unwrap();
    assert_eq!((pending(&store), store.leased_keys().len()), (2, 0));
    let key = job_key(campaign_key(&campaign.spec.id).unwrap(), 0);
    let leased = scheduler::lease(&jobs[0], "w1", 1, 1234).unwrap();
    assert!(store.swap_job(&key, &jobs[0], &leased).unwrap());
    let stored = store.job(&key).unwrap().unwrap();
    assert_eq!(stored.rev, 1, "every write bumps the revision");
    assert_eq!(pending(&store), 1);
    let in_flight = store.leased_keys();
    assert_eq!(in_flight, vec![(key.to_vec(), 1234)]);
    let scheduler::Completion::Accept(done) = scheduler::complete(&stored, 1, "w1") else {
        panic!()
    };
    let result = ResultRecord {
        worker_id: "w1".into(),
        lease_id: 1,
        completed_unix_ms: 1,
        result: serde_json::from_str(RESULT).unwrap(),
        fingerprint: None,
    };
    assert!(
        !store
            .complete_job(&key, &jobs[0], &done, &result, None, None)
            .unwrap(),
        "a stale revision"
    );
    assert!(
        store
            .complete_job(&key, &stored, &done, &result, None, None)
            .unwrap()
    );
    assert_eq!((pending(&store), store.leased_keys().len()), (1, 0));
    assert_eq!(store.results_of(&campaign.spec.id).unwrap().len(), 1);
}

const RESULT: &str = r#"{"train":{"accuracy":0.5,"train_s":1.0,"eval_s":0.1,"samples_per_s":1.0,
"n_train":1,"n_test":1,"solver":"t","epochs":[]},"energy":{"method":"model","duration_s":1.0,
"cpu_time_s":1.0,"cpu_energy_kwh":0.0,"ram_energy_kwh":0.0,"energy_kwh":0.0,
"machine_energy_kwh":null,"avg_power_w":0.0,"carbon_intensity_g_per_kwh":475.0,
"carbon_region":"world","pue":1.0,"co2_kg":0.0,"tdp_w":null,"uncertainty":0.5,
"sample_interval_s":1.0,"n_samples":1,"peak_rss_bytes":1}}"#;

#[test]
fn reopening_rebuilds_the_indexes_and_finishes_an_interrupted_completion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (campaign, jobs) = record();
    let key = |idx| job_key(campaign_key(&campaign.spec.id).unwrap(), idx);
    {
        let store = Store::open(&path).unwrap();
        store.insert_campaign(&campaign, &jobs).unwrap();
        let leased = scheduler::lease(&jobs[1], "w", 7, 99).unwrap();
        assert!(store.swap_job(&key(1), &jobs[1], &leased).unwrap());
        // A crash between a completion's two writes: job 0's result is stored, its state
        // is still pending.
        let result = ResultRecord {
            worker_id: "w".into(),
            lease_id: 3,
            completed_unix_ms: 1,
            result: serde_json::from_str(RESULT).unwrap(),
            fingerprint: None,
        };
        store.results.insert(key(0), encode(&result)).unwrap();
        store.db.flush().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(pending(&store), 0);
    assert_eq!(store.leased_keys(), vec![(key(1).to_vec(), 99)]);
    assert_eq!(store.earliest_lease_deadline(), Some(99));
    assert_eq!(
        store.job_counts(),
        vec![
            ("pending", 0),
            ("leased", 1),
            ("succeeded", 1),
            ("failed", 0),
            ("reused", 0)
        ],
        "the counts are rebuilt with the indexes"
    );
    assert_eq!(
        store.job(&key(0)).unwrap().unwrap().state,
        scheduler::JobState::Succeeded {
            worker_id: "w".into(),
            lease_id: 3
        }
    );
    assert!(!store.has_unfinished("0000000000000000").unwrap());
    assert!(store.has_unfinished(&campaign.spec.id).unwrap());
}

#[test]
fn a_failed_write_stops_the_store_until_it_is_reopened_and_loses_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path).unwrap();
    let switch = dir.path().join("disk-full");
    store.fault = Some(switch.clone());
    let failed = store.failed();
    let (campaign, jobs) = record();
    store.insert_campaign(&campaign, &jobs).unwrap();
    assert!(failed.borrow().is_none(), "writes work");
    std::fs::write(&switch, "").unwrap();
    let key = job_key(campaign_key(&campaign.spec.id).unwrap(), 0);
    let leased = scheduler::lease(&jobs[0], "w1", 1, 100).unwrap();
    let err = store.swap_job(&key, &jobs[0], &leased).unwrap_err();
    assert!(
        matches!(err, StoreError::Injected(_)) && err.to_string().contains("disk-full exists"),
        "{err}"
    );
    let cause = failed.borrow().clone().expect("the failure is told");
    assert!(cause.contains("disk-full exists"), "{cause}");
    assert_eq!(
        store.job(&key).unwrap().unwrap(),
        jobs[0],
        "reads still work"
    );
    // As sled after an I/O error: the disk has room again, but the store stays stopped.
    std::fs::remove_file(&switch).unwrap();
    let err = store.swap_job(&key, &jobs[0], &leased).unwrap_err();
    assert!(
        matches!(&err, StoreError::Stopped(c) if *c == cause),
        "{err}"
    );
    let err = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.flush())
        .unwrap_err();
    assert!(matches!(err, StoreError::Stopped(_)), "{err}");
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert!(reopened.failed().borrow().is_none());
    assert_eq!(
        reopened.job(&key).unwrap().unwrap(),
        jobs[0],
        "nothing lost"
    );
    assert!(
        reopened.swap_job(&key, &jobs[0], &leased).unwrap(),
        "writes work on the reopened database"
    );
}

#[test]
fn a_parked_job_waits_until_the_job_it_waits_for_leaves_the_leased_state() {
    let store = Store::temporary().unwrap();
    let (campaign, jobs) = record();
    store.insert_campaign(&campaign, &jobs).unwrap();
    let key = |idx| job_key(campaign_key(&campaign.spec.id).unwrap(), idx).to_vec();
    let leased = scheduler::lease(&jobs[0], "w", 1, 100).unwrap();
    assert!(store.swap_job(&key(0), &jobs[0], &leased).unwrap());
    store.park(&key(1), &key(0));
    assert_eq!(pending(&store), 0, "parked: not leasable");
    assert!(
        store.has_unfinished(&campaign.spec.id).unwrap(),
        "but not finished"
    );
    // A heartbeat rewrites job 0, still leased: job 1 stays parked.
    let read = store.job(&key(0)).unwrap().unwrap();
    let extended = scheduler::extend(&read, 1, "w", 200).unwrap();
    assert!(store.swap_job(&key(0), &read, &extended).unwrap());
    assert_eq!(pending(&store), 0);
    // Job 0 goes back to pending (its lease expired): job 1 is leasable again.
    let read = store.job(&key(0)).unwrap().unwrap();
    let expired = scheduler::expire(&read, 300).unwrap();
    assert!(store.swap_job(&key(0), &read, &expired).unwrap());
    let keys: Vec<Vec<u8>> = store.pending_keys().map(Result::unwrap).collect();
    assert_eq!(keys, vec![key(0), key(1)]);
}
