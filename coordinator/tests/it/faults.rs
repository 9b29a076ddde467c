//! The fault-injection suite: a real coordinator and real workers run a 40-job campaign
//! while workers are killed mid-job, the coordinator is killed (once for longer than the
//! lease), a worker's line is cut, the store fails, and bad callers knock; then it counts
//! what was lost, trained twice or duplicated, and prints one summary line.

mod cluster;
mod proxy;
mod raw;
mod suite;
mod tally;

use std::time::Duration;

use self::proxy::Line;
use self::suite::Suite;

/// The token every caller but the intruders presents.
const TOKEN: &str = "fault-suite-token";
/// Jobs of the main campaign: 20 seeds × 2 configurations.
const N_JOBS: usize = 40;
/// The main campaign's models: small nets that train for about 1.5 s each in a debug
/// build on an idle core, long enough to be killed mid-job.
const MODELS: &str = "[[model]]\nkind = \"cnn\"\nepochs = 8\nbatch_size = 1\n\n[[model]]\nkind = \"cnn\"\nepochs = 16\nbatch_size = 2\nlearning_rate = 0.01\n";
/// The coordinator's lease: short, so that killed workers' jobs come back soon, yet long
/// enough that a worker whose line or store was away for [`CUT`] or [`STORE_OUTAGE`]
/// gets a heartbeat or its result through (after its reconnect backoff: 0.5 s, 1 s,
/// 2 s… ± 50 %) before the deadline, so that no one else trains its job.
const LEASE_S: u64 = 10;
/// The long coordinator outage: longer than the lease.
const LONG_OUTAGE: Duration = Duration::from_secs(14);
/// How long a worker's line stays cut.
const CUT: Duration = Duration::from_secs(2);
/// How long every store write fails.
const STORE_OUTAGE: Duration = Duration::from_secs(2);
/// The longest one step waits for its cue.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest the campaign may take to end once every fault was injected.
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn fault_suite() {
    let mut suite = Suite::start();
    suite.wire_faults().await;
    suite.submit_campaigns().await;
    suite.start_workers().await;
    // Workers killed mid-job, the coordinator killed at arbitrary moments, a line cut.
    suite.kill_worker_mid_job(0).await;
    suite.wait_succeeded(4).await;
    suite
        .kill_coordinator(Duration::ZERO, "at an arbitrary moment")
        .await;
    suite.kill_worker_mid_job(1).await;
    suite.cut_line(Line::Dropped).await;
    // The store fails for a while.
    suite.wait_succeeded(12).await;
    suite.store_outage().await;
    // The coordinator away for longer than the lease while workers train.
    suite.wait_busy(2).await;
    let long = "while two workers train, for longer than the lease";
    suite.kill_coordinator(LONG_OUTAGE, long).await;
    suite.kill_worker_mid_job(2).await;
    suite.cut_line(Line::BlackHoled).await;
    suite.wait_succeeded(28).await;
    suite
        .kill_coordinator(Duration::ZERO, "at an arbitrary moment")
        .await;
    suite.kill_worker_mid_job(0).await;

    let summary = suite.finish().await;
    println!("{summary}");
    eprintln!("{summary}");
    suite.assert(&summary);
}
