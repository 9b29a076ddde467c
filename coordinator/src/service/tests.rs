//! The watch stream over a temporary store: a watcher that falls behind.

use std::sync::Arc;

use ecobench_shared::HardwareFingerprint;
use ecobench_shared::events::CampaignEvent;

use super::*;
use crate::artifacts::ArtifactStore;
use crate::coordinator::CoordinatorConfig;
use crate::store::Store;

const CAMPAIGN: &str = "name = \"d\"\nseeds = [1, 2]\n[[model]]\nkind = \"svm-linear\"\n";

fn joined_event(idx: usize) -> CampaignEvent {
    CampaignEvent::WorkerJoined {
        worker_id: format!("w{idx}"),
        hostname: "h".into(),
    }
}

async fn next(
    stream: &mut tokio::sync::mpsc::Receiver<Result<pb::CampaignEvent, Status>>,
) -> Option<CampaignEvent> {
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.recv())
        .await
        .expect("the forwarder answers")?;
    Some(CampaignEvent::try_from(event.unwrap()).unwrap())
}

#[tokio::test]
async fn a_watcher_that_falls_behind_gets_a_fresh_snapshot_then_the_rest() {
    let store = Store::temporary().unwrap();
    let artifacts = ArtifactStore::temporary(store.clone(), 1 << 20);
    let coordinator = Arc::new(Coordinator::new(
        store,
        artifacts,
        CoordinatorConfig::default(),
    ));
    let submitted = coordinator.submit("d.toml", CAMPAIGN).await.unwrap();
    let first = coordinator.snapshot(&submitted.campaign_id).unwrap();
    assert_eq!((first.pending, first.leased), (2, 0));

    // The watcher's queue holds 2 events; 4 come, and a job is leased meanwhile.
    let (bus, events) = tokio::sync::broadcast::channel(2);
    for idx in 0..4 {
        bus.send(joined_event(idx)).unwrap();
    }
    coordinator
        .join("w", HardwareFingerprint::default())
        .await
        .unwrap();
    coordinator.lease_job("w", 0).await.unwrap().expect("a job");
    let (out, mut stream) = tokio::sync::mpsc::channel(64);
    let forwarder = tokio::spawn(forward_events(coordinator.clone(), events, first, out));

    let Some(CampaignEvent::Snapshot(initial)) = next(&mut stream).await else {
        panic!("the watch starts with the snapshot");
    };
    assert_eq!(initial.leased, 0);
    let Some(CampaignEvent::Snapshot(fresh)) = next(&mut stream).await else {
        panic!("a fresh snapshot replaces the missed events");
    };
    assert_eq!((fresh.pending, fresh.leased), (1, 1));
    assert_eq!(fresh.running.len(), 1);
    assert_eq!(fresh.running[0].worker_id, "w");
    // Then the events still queued, the newest two.
    assert_eq!(next(&mut stream).await, Some(joined_event(2)));
    assert_eq!(next(&mut stream).await, Some(joined_event(3)));
    // Another campaign's end is not this watcher's; its own ends the stream.
    let end = |campaign_id: &str| CampaignEvent::CampaignFinished {
        campaign_id: campaign_id.into(),
        name: "d".into(),
        n_jobs: 2,
        succeeded: 2,
        failed: 0,
    };
    bus.send(end("other")).unwrap();
    bus.send(end(&submitted.campaign_id)).unwrap();
    assert_eq!(next(&mut stream).await, Some(end(&submitted.campaign_id)));
    assert_eq!(next(&mut stream).await, None);
    forwarder.await.unwrap();
}
