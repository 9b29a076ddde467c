//! The suite's cluster and its faults, one method each: the test reads as a script.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecobench_proto::pb;

use super::cluster::{Coordinator, CoordinatorSpec, Worker};
use super::proxy::{Line, Proxy};
use super::tally::{self, Checks, Summary};
use super::{CUT, FINISH_TIMEOUT, LEASE_S, MODELS, N_JOBS, STEP_TIMEOUT, STORE_OUTAGE, TOKEN};
use crate::support::{RawClient, campaign, csv_rows, report, report_file, submit, tiny_dataset};

/// A coordinator, three workers (the third through the proxy) and what was seen.
pub struct Suite {
    started: Instant,
    tmp: tempfile::TempDir,
    dataset: PathBuf,
    store_fault: PathBuf,
    token_arg: String,
    coordinator: Coordinator,
    proxy: Option<Proxy>,
    workers: Vec<Worker>,
    client: RawClient,
    /// The main campaign's id.
    main: String,
    /// The diverging campaign's id.
    wild: String,
    /// Jobs the proxied worker delivered before its last cut.
    w3_delivered: usize,
    /// What was injected and which checks failed.
    pub checks: Checks,
}

impl Suite {
    /// Starts the coordinator (with a token, a short lease and the store fault switch).
    pub fn start() -> Suite {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let token_arg = token_file.display().to_string();
        let store_fault = dir.join("store-fault");
        let lease = LEASE_S.to_string();
        let coordinator = Coordinator::start(CoordinatorSpec {
            listen: format!("127.0.0.1:{}", free_port()),
            db: dir.join("db"),
            // The previous run's leases wait 15 s after a restart (deliveries come 1-10 s
            // after it, with the workers' backoff), not the default 60 s, so that a worker
            // killed just before a restart does not hold its job a minute.
            args: [
                "--token-file",
                &token_arg,
                "--lease-s",
                &lease,
                "--restart-grace-s",
                "15",
            ]
            .map(String::from)
            .to_vec(),
            env: vec![("ECOBENCH_INJECT_STORE_FAULT".into(), store_fault.clone())],
            log_dir: dir.clone(),
        });
        let client = lazy_client(coordinator.addr());
        let suite = Suite {
            started: Instant::now(),
            dataset: tiny_dataset(&dir),
            tmp,
            store_fault,
            token_arg,
            coordinator,
            proxy: None,
            workers: Vec::new(),
            client,
            main: String::new(),
            wild: String::new(),
            w3_delivered: 0,
            checks: Checks::default(),
        };
        suite.progress(&format!(
            "coordinator on {}, logs in {}",
            suite.coordinator.addr(),
            dir.display()
        ));
        suite
    }

    /// Says where the suite is, with the time since it started.
    pub fn progress(&self, what: &str) {
        eprintln!(
            "faults: [{:5.1} s] {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Missing and wrong tokens, replayed completions (before any worker joins, so that
    /// the raw worker gets the replay campaign's job).
    pub async fn wire_faults(&mut self) {
        let models = "[[model]]\nkind = \"svm-linear\"\n";
        let replay = campaign("replay", &self.dataset, "[1]", models);
        let addr = self.coordinator.addr().to_string();
        super::raw::wire_faults(&addr, TOKEN, &replay, &mut self.checks).await;
        self.progress("wire faults done");
    }

    /// Submits the main campaign and the diverging one.
    pub async fn submit_campaigns(&mut self) {
        let seeds: Vec<String> = (1..=N_JOBS / 2).map(|s| s.to_string()).collect();
        let seeds = format!("[{}]", seeds.join(", "));
        let text = campaign("faults", &self.dataset, &seeds, MODELS);
        let main = submit(&mut self.client, "faults.toml", &text)
            .await
            .unwrap();
        assert_eq!(main.n_jobs as usize, N_JOBS);
        self.main = main.campaign_id;
        let models = "[[model]]\nkind = \"cnn\"\nlearning_rate = 1e6\n";
        let text = campaign("wild", &self.dataset, "[1]", models);
        self.wild = submit(&mut self.client, "wild.toml", &text)
            .await
            .unwrap()
            .campaign_id;
        self.checks
            .injected("a diverging job (learning_rate = 1e6)");
    }

    /// Starts w1 and w2 joining the coordinator, w3 joining through the proxy.
    pub async fn start_workers(&mut self) {
        let addr = self.coordinator.addr().to_string();
        let proxy = Proxy::start(addr.parse().unwrap()).await;
        let args = vec!["--token-file".to_string(), self.token_arg.clone()];
        let dir = self.tmp.path();
        let proxied = proxy.addr.to_string();
        for (id, join) in [("w1", &addr), ("w2", &addr), ("w3", &proxied)] {
            self.workers.push(Worker::start(id, join, dir, &args));
        }
        self.proxy = Some(proxy);
        self.progress("3 workers started (w3 through the proxy)");
    }

    /// kill -9 of worker `idx` (0-based) mid-job (an expired lease is not a failed
    /// attempt: kills never fail a job for good), then the same worker started again on
    /// its state folder.
    pub async fn kill_worker_mid_job(&mut self, idx: usize) {
        let worker = &self.workers[idx];
        let what = format!("{} mid-job", worker.id);
        if wait_for(&mut self.checks, &what, || worker.mid_job()).await {
            let worker = &mut self.workers[idx];
            worker.kill();
            self.checks.injected(&format!("kill -9 of {what}"));
            worker.restart();
        }
    }

    /// Waits until `n` jobs of the main campaign succeeded (or it has nothing left).
    pub async fn wait_succeeded(&mut self, n: u32) {
        let start = Instant::now();
        while start.elapsed() < STEP_TIMEOUT {
            let status = campaign_status(&mut self.client, &self.main).await;
            if status.is_some_and(|s| s.succeeded >= n || s.pending + s.leased == 0) {
                return self.progress(&format!("{n} jobs succeeded"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let what = format!("{n} jobs succeeded: not within {STEP_TIMEOUT:?}");
        self.checks.check(false, what);
    }

    /// Waits until `n` workers are mid-job.
    pub async fn wait_busy(&mut self, n: usize) {
        let workers = &self.workers;
        let busy = || workers.iter().filter(|w| w.mid_job()).count() >= n;
        wait_for(&mut self.checks, &format!("{n} workers mid-job"), busy).await;
    }

    /// kill -9 of the coordinator after a pseudo-random delay under a second, down for
    /// `outage`, then started again on the same port and database.
    pub async fn kill_coordinator(&mut self, outage: Duration, what: &str) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let delay = Duration::from_millis(u64::from(nanos % 1000));
        tokio::time::sleep(delay).await;
        tokio::task::block_in_place(|| self.coordinator.kill());
        self.checks.injected(&format!(
            "kill -9 of the coordinator {what} ({} ms after the cue, down {outage:?})",
            delay.as_millis()
        ));
        let down = Instant::now();
        // The outage itself is the fault: its length is measured, not waited on a condition.
        tokio::time::sleep(outage.saturating_sub(down.elapsed())).await;
        tokio::task::block_in_place(|| self.coordinator.restart());
        let back = down.elapsed().as_secs_f64();
        self.progress(&format!("coordinator back after {back:.1} s"));
    }

    /// Cuts the proxied worker's line mid-job for [`CUT`], then brings it back.
    pub async fn cut_line(&mut self, how: Line) {
        let w3 = &self.workers[2];
        if !wait_for(&mut self.checks, "w3 mid-job", || w3.mid_job()).await {
            return;
        }
        let proxy = self.proxy.as_ref().unwrap();
        let cut = proxy.cut();
        proxy.set(how);
        self.checks
            .injected(&format!("w3's line {how:?} mid-job for {CUT:?}"));
        tokio::time::sleep(CUT).await;
        proxy.set(Line::Up);
        if how == Line::Dropped {
            let closed = proxy.cut() > cut;
            self.checks
                .check(closed, "dropping the line closed w3's live connection");
        }
        let (accepted, cut) = (proxy.accepted(), proxy.cut());
        self.progress(&format!(
            "w3's line up again ({accepted} connections accepted, {cut} cut so far)"
        ));
        self.w3_delivered = delivered(&self.workers[2]);
    }

    /// Makes store writes fail, as a full disk does: the write is refused as Unavailable
    /// and the coordinator stops by itself, saying why (sled takes no write after an I/O
    /// error until the database is reopened). After [`STORE_OUTAGE`] the fault is gone
    /// and the coordinator is started again, as its supervisor would, and writes work.
    pub async fn store_outage(&mut self) {
        let addr = self.coordinator.addr().to_string();
        let mut probe = super::raw::worker_client(&addr, Some(TOKEN)).await;
        let join = |n: u32| pb::JoinRequest {
            worker_id: format!("store-probe-{n}"),
            fingerprint: Some(super::raw::fingerprint()),
        };
        std::fs::write(&self.store_fault, "fail every store write\n").unwrap();
        let start = Instant::now();
        self.checks
            .injected(&format!("store writes fail for {STORE_OUTAGE:?}"));
        let refused = probe.join(join(1)).await;
        let unavailable = |s: &tonic::Status| s.code() == tonic::Code::Unavailable;
        self.checks.check(
            refused.as_ref().is_err_and(unavailable),
            format!("a write while the store fails is refused as Unavailable: {refused:?}"),
        );
        let exited = tokio::task::block_in_place(|| self.coordinator.wait_exit(STEP_TIMEOUT));
        let log = self
            .coordinator
            .logs()
            .last()
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .unwrap_or_default();
        self.checks.check(
            exited.is_some_and(|status| !status.success())
                && log.contains("failed a write")
                && log.contains("store-fault exists"),
            format!(
                "the coordinator stops by itself, saying which write failed: {exited:?}, log ends {:?}",
                log.lines().last()
            ),
        );
        tokio::time::sleep(STORE_OUTAGE.saturating_sub(start.elapsed())).await;
        std::fs::remove_file(&self.store_fault).unwrap();
        tokio::task::block_in_place(|| self.coordinator.restart());
        let mut probe = super::raw::worker_client(&addr, Some(TOKEN)).await;
        let healed = probe.join(join(2)).await;
        self.checks.check(
            healed.is_ok(),
            format!("writes work again once the coordinator is back: {healed:?}"),
        );
    }

    /// Waits for the campaign to end and the workers to be idle, checks the diverging
    /// job, and counts.
    pub async fn finish(&mut self) -> Summary {
        let what = format!("{} faults injected", self.checks.injected);
        self.progress(&format!("{what}; waiting for the campaign to end"));
        let finished = Instant::now();
        let mut ended = false;
        while !ended && finished.elapsed() < FINISH_TIMEOUT {
            let status = campaign_status(&mut self.client, &self.main).await;
            ended = status.is_some_and(|s| s.pending + s.leased == 0);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let what = format!("the campaign ends within {FINISH_TIMEOUT:?} of the last fault");
        self.checks.check(ended, what);
        // A training still running (a cancelled lease's) would end later and count twice.
        let workers = &self.workers;
        let idle = || workers.iter().all(|w| !w.mid_job());
        wait_for(&mut self.checks, "workers idle", idle).await;
        self.progress("campaign ended, workers idle");
        let w3_after = delivered(&self.workers[2]);
        self.checks.check(
            w3_after > self.w3_delivered,
            format!("w3 delivers jobs after its line came back ({w3_after} in all)"),
        );
        self.check_diverged().await;
        self.tally().await
    }

    /// The suite's verdict; keeps the logs when it fails.
    pub fn assert(self, summary: &Summary) {
        let ok = summary.lost == 0
            && summary.trained_twice == 0
            && summary.duplicated == 0
            && summary.succeeded == N_JOBS;
        if ok && self.checks.failed().is_empty() {
            return;
        }
        let failed = self.checks.failed().join("\n- ");
        let logs = self.tmp.keep();
        panic!(
            "{summary}\nfailed checks:\n- {failed}\nlogs in {}",
            logs.display()
        );
    }

    /// The diverging job failed at its first divergence, naming it, and was not retried.
    /// Attempts before it may have ended in an outage (its worker killed mid-job by the
    /// suite: an expired lease), which is not a failure.
    async fn check_diverged(&mut self) {
        let report = report(&mut self.client, &self.wild).await;
        let rows = csv_rows(&report_file(&report, "jobs.csv"));
        let attempts: Vec<&str> = rows
            .first()
            .map(|row| row["error"].split(" | ").collect())
            .unwrap_or_default();
        let (last, outages) = attempts.split_last().unwrap_or((&"", &[]));
        self.checks.check(
            rows.len() == 1
                && rows[0]["status"] == "failed"
                && rows[0]["attempts"] == attempts.len().to_string()
                && last.contains("diverged")
                && outages.iter().all(|attempt| attempt.contains("expired")),
            format!("the diverging job fails once, for good, naming the divergence: {rows:?}"),
        );
    }

    /// Counts the main campaign's outcome from its report rows and the processes' logs.
    async fn tally(&mut self) -> Summary {
        let report = report(&mut self.client, &self.main).await;
        let rows = csv_rows(&report_file(&report, "jobs.csv"));
        let durations: Vec<f64> = rows
            .iter()
            .filter_map(|r| r["duration_s"].parse().ok())
            .collect();
        let mean_s = durations.iter().sum::<f64>() / durations.len().max(1) as f64;
        let mut attempts: Vec<&str> = rows.iter().map(|r| r["attempts"].as_str()).collect();
        attempts.sort();
        attempts.dedup();
        self.progress(&format!(
            "jobs metered {mean_s:.2} s on average; attempts seen {attempts:?}; {} coordinator incarnations",
            self.coordinator.incarnations
        ));
        let worker_logs: Vec<PathBuf> = self.workers.iter().flat_map(|w| w.logs()).collect();
        let (trainings, marker) = tally::trainings_per_job(&worker_logs);
        self.progress(&format!("trainings counted by worker log lines {marker:?}"));
        let successes = tally::lines_per_job(&self.coordinator.logs(), tally::DELIVERED_MARKER);
        tally::summarise(&rows, &self.main, &trainings, &successes, &mut self.checks)
    }
}

/// Jobs a worker delivered, by its logs.
fn delivered(worker: &Worker) -> usize {
    tally::lines_per_job(&worker.logs(), tally::DELIVERED_MARKER)
        .values()
        .sum()
}

/// A free loopback port: bound once, released, then reused by every coordinator.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A campaign client that reconnects by itself after a coordinator restart.
fn lazy_client(addr: &str) -> RawClient {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let token = ecobench_proto::auth::BearerToken::new(Some(TOKEN)).unwrap();
    pb::campaign_service_client::CampaignServiceClient::with_interceptor(channel, token)
}

/// The campaign's counts; `None` while the coordinator is away.
async fn campaign_status(client: &mut RawClient, campaign: &str) -> Option<pb::CampaignStatus> {
    let request = pb::GetCampaignRequest {
        campaign: campaign.to_string(),
    };
    let answer = client.get_campaign(request).await;
    answer.ok().map(tonic::Response::into_inner)
}

/// Polls `condition` until it holds; false (and a failed check: the fault it cues is
/// not injected) after [`STEP_TIMEOUT`].
async fn wait_for(checks: &mut Checks, what: &str, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < STEP_TIMEOUT {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let what = format!("{what}: not reached within {STEP_TIMEOUT:?}; the fault was not injected");
    checks.check(false, what);
    false
}
