//! The coordinator's domain: campaigns, leases, results and reports, over the
//! store. Knows nothing of gRPC; `service.rs` adapts it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecobench_shared::events::{CampaignEvent, RunningJob, Snapshot};
use ecobench_shared::{
    HardwareFingerprint, JobResult, JobSpec, PretrainSource, Progress, Stage, campaign,
};
use tokio::sync::{Mutex, Notify, broadcast};
use tracing::{info, instrument, warn};

use crate::artifacts::ArtifactStore;
use crate::scheduler::{self, Completion, JobRecord, JobState};
use crate::store::{
    CampaignRecord, PretrainRecord, ResultRecord, Store, StoreError, WorkerRecord, campaign_key,
    job_key,
};

/// Tunables of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// How long a lease lives without a heartbeat.
    pub lease_ms: u64,
    /// After the coordinator starts, no lease expires for this long: workers that kept
    /// training through an outage reconnect and heartbeat (their backoff tops out at
    /// 15 s) before their jobs are given to others.
    pub restart_grace_ms: u64,
    /// How often workers are asked to send heartbeats.
    pub heartbeat_interval_ms: u32,
    /// Failed attempts before a job is failed for good (expired leases do not count).
    pub max_attempts: u32,
    /// Largest campaign matrix accepted.
    pub max_jobs: usize,
    /// Longest a `LeaseJob` call is held open waiting for work.
    pub max_lease_wait_ms: u32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            lease_ms: 15_000,
            restart_grace_ms: 60_000,
            heartbeat_interval_ms: 5_000,
            max_attempts: 3,
            max_jobs: campaign::DEFAULT_MAX_JOBS,
            max_lease_wait_ms: 20_000,
        }
    }
}

/// What can go wrong, by the kind of answer the caller gets.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The named campaign, job or worker does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (bad campaign file, bad result).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request does not fit the current state (stale lease, unknown worker).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of the coordinator (an artifact) cannot be read or written.
    #[error("{0}")]
    Io(String),
    /// A record changed between read and write (should not happen under the change
    /// lock); the caller may retry.
    #[error("{0}")]
    Conflict(String),
}

/// How a worker ended an attempt without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The attempt failed; `retryable` says whether another attempt may succeed.
    Failed {
        /// Whether another attempt may succeed.
        retryable: bool,
    },
    /// The worker is stopping (SIGTERM) and gives the job back: no failure counted.
    HandedBack,
}

/// The answer to a submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The campaign's content id.
    pub campaign_id: String,
    /// Its name.
    pub name: String,
    /// Jobs in its matrix.
    pub n_jobs: u32,
    /// False when it was already stored.
    pub created: bool,
}

/// A granted lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The job to run.
    pub job: JobSpec,
    /// The lease's id, to quote in heartbeats and completion.
    pub lease_id: u64,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Lease lifetime without heartbeat.
    pub lease_ms: u64,
}

/// Job counts of a campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignStatus {
    /// The campaign id.
    pub campaign_id: String,
    /// The campaign name.
    pub name: String,
    /// Jobs in all.
    pub n_jobs: u32,
    /// Waiting for a worker.
    pub pending: u32,
    /// Running.
    pub leased: u32,
    /// Done with a result.
    pub succeeded: u32,
    /// Given up on.
    pub failed: u32,
}

/// The coordinator: every state change goes through here, one at a time,
/// and is flushed to disk before the method returns.
#[derive(Debug)]
pub struct Coordinator {
    store: Store,
    artifacts: ArtifactStore,
    config: CoordinatorConfig,
    /// Serialises state changes so that read-decide-write is atomic.
    changes: Mutex<()>,
    /// Woken when a job may have become leasable.
    work: Notify,
    /// Latest progress per job id (not persisted).
    progress: std::sync::Mutex<HashMap<String, Progress>>,
    /// What happens, for watchers (`WatchCampaign`); sent under `changes`, so in order.
    events: broadcast::Sender<CampaignEvent>,
    /// When each worker last called (lease or completion), Unix ms (not persisted; the
    /// stored `last_seen_unix_ms` stands in after a restart): who is alive for placement.
    contacts: std::sync::Mutex<HashMap<String, u64>>,
    /// When this coordinator started, Unix ms: leases granted before (by an earlier run)
    /// expire only after the grace.
    started_unix_ms: u64,
    /// Lease ids below this were granted before this start (ids grow across restarts).
    first_lease_of_run: u64,
    /// Each campaign's placement, once read (campaigns never change once stored).
    placements: std::sync::Mutex<HashMap<String, campaign::Placement>>,
    /// Set when the server stops: long polls answer "no job" at once.
    closing: std::sync::atomic::AtomicBool,
}

/// Events a watcher may fall behind by before it gets a fresh snapshot instead.
pub const EVENT_BACKLOG: usize = 1024;

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The worker that holds the job's lease: the one that trained it, even when
/// another process delivers its stored result.
fn lease_holder(job: &JobRecord) -> Option<&str> {
    match &job.state {
        JobState::Leased { worker_id, .. } => Some(worker_id),
        _ => None,
    }
}

/// A job's model as watchers see it: kind and configuration.
fn model_label(spec: &JobSpec) -> String {
    format!(
        "{} {}{}",
        spec.model.kind(),
        spec.model.label(),
        spec.stage.label()
    )
}

fn parse_job_id(job_id: &str) -> Result<[u8; 12], CoordinatorError> {
    let bad = || {
        CoordinatorError::InvalidArgument(format!(
            "job id {job_id:?} is not of the form <campaign>-<index>"
        ))
    };
    let (campaign, idx) = job_id.split_once('-').ok_or_else(bad)?;
    let campaign = campaign_key(campaign).ok_or_else(bad)?;
    let idx: u32 = idx.parse().map_err(|_| bad())?;
    Ok(job_key(campaign, idx))
}

impl Coordinator {
    /// A coordinator over an opened store and its artifacts.
    pub fn new(store: Store, artifacts: ArtifactStore, config: CoordinatorConfig) -> Coordinator {
        // If no id can be drawn, every lease counts as an earlier run's: all get the grace.
        let first_lease_of_run = store.next_id().unwrap_or(u64::MAX);
        Coordinator {
            store,
            artifacts,
            config,
            changes: Mutex::new(()),
            work: Notify::new(),
            progress: std::sync::Mutex::new(HashMap::new()),
            events: broadcast::channel(EVENT_BACKLOG).0,
            contacts: std::sync::Mutex::new(HashMap::new()),
            started_unix_ms: now_unix_ms(),
            first_lease_of_run,
            placements: std::sync::Mutex::new(HashMap::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Stops handing out work: waiting `LeaseJob` calls return "no job" now, new ones at
    /// once, so that a graceful shutdown does not wait for long polls.
    pub fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.work.notify_waiters();
    }

    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes everything to disk (the server calls it once more when it stops).
    pub async fn flush(&self) -> Result<(), CoordinatorError> {
        Ok(self.store.flush().await?)
    }

    /// Live events from now on; a receiver that falls more than [`EVENT_BACKLOG`]
    /// behind gets `Lagged` and should take a fresh [`Coordinator::snapshot`].
    pub fn subscribe(&self) -> broadcast::Receiver<CampaignEvent> {
        self.events.subscribe()
    }

    fn publish(&self, event: CampaignEvent) {
        // No watcher is not an error.
        let _ = self.events.send(event);
    }

    /// A campaign's counts and running jobs with their latest progress.
    pub fn snapshot(&self, campaign: &str) -> Result<Snapshot, CoordinatorError> {
        let record = self.resolve(campaign)?;
        let jobs = self.store.jobs_of(&record.spec.id)?;
        let status = crate::report::status(&record.spec, &jobs);
        let progress = self.progress.lock().expect("progress lock");
        let running = jobs
            .iter()
            .filter_map(|job| {
                let JobState::Leased { worker_id, .. } = &job.state else {
                    return None;
                };
                let job_id = job.spec.job_id();
                Some(RunningJob {
                    progress: progress.get(&job_id).filter(|p| p.epoch > 0).cloned(),
                    job_id,
                    model: model_label(&job.spec),
                    worker_id: worker_id.clone(),
                    attempt: job.attempts,
                })
            })
            .collect();
        Ok(Snapshot {
            campaign_id: status.campaign_id,
            name: status.name,
            n_jobs: status.n_jobs,
            pending: status.pending,
            leased: status.leased,
            succeeded: status.succeeded,
            failed: status.failed,
            running,
        })
    }

    /// Publishes the campaign's end when its last job has just ended.
    fn publish_if_finished(&self, campaign_id: &str) {
        // The indexes answer "not yet" without reading the campaign's jobs.
        if self.store.has_unfinished(campaign_id).unwrap_or(true) {
            return;
        }
        match self.snapshot(campaign_id) {
            Ok(snapshot) if snapshot.finished() => self.publish(snapshot.finished_event()),
            Ok(_) => {}
            Err(err) => {
                warn!(campaign = %campaign_id, error = %err, "cannot tell whether the campaign ended")
            }
        }
    }

    /// Forgets a job's progress (its attempt ended).
    fn forget_progress(&self, job_id: &str) {
        self.progress.lock().expect("progress lock").remove(job_id);
    }

    /// Notes that `worker_id` called now.
    fn contact(&self, worker_id: &str) {
        self.contacts
            .lock()
            .expect("contacts lock")
            .insert(worker_id.to_string(), now_unix_ms());
    }

    /// Whether a worker counts as alive for placement: it called (or, after a restart of
    /// the coordinator, was last seen) within a lease's lifetime plus one long poll.
    fn alive(&self, worker: &WorkerRecord, now: u64) -> bool {
        let contact = self
            .contacts
            .lock()
            .expect("contacts lock")
            .get(&worker.worker_id)
            .copied();
        let last = contact.unwrap_or(0).max(worker.last_seen_unix_ms);
        let grace = self.config.lease_ms + u64::from(self.config.max_lease_wait_ms);
        now.saturating_sub(last) <= grace
    }

    /// The stored artifacts (weights files).
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    /// Registers a worker, or refreshes it after a reconnect.
    #[instrument(skip_all, fields(worker = %worker_id))]
    pub async fn join(
        &self,
        worker_id: &str,
        fingerprint: HardwareFingerprint,
    ) -> Result<u32, CoordinatorError> {
        if worker_id.is_empty() {
            return Err(CoordinatorError::InvalidArgument(
                "worker_id is empty: the worker must name itself".into(),
            ));
        }
        ecobench_shared::validate::fingerprint(&fingerprint).map_err(|err| {
            CoordinatorError::InvalidArgument(format!("join of worker {worker_id} refused: {err}"))
        })?;
        let guard = self.changes.lock().await;
        let jobs_done = self.store.worker(worker_id)?.map_or(0, |w| w.jobs_done);
        info!(host = %fingerprint.hostname, cpu = %fingerprint.cpu_model, energy = %fingerprint.energy_source, "worker joined");
        self.publish(CampaignEvent::WorkerJoined {
            worker_id: worker_id.to_string(),
            hostname: fingerprint.hostname.clone(),
        });
        let record = WorkerRecord {
            worker_id: worker_id.to_string(),
            fingerprint,
            last_seen_unix_ms: now_unix_ms(),
            jobs_done,
        };
        self.store.put_worker(&record)?;
        drop(guard);
        self.store.flush().await?;
        // Three heartbeats fit in a lease, so that one lost heartbeat does not void it.
        Ok(self
            .config
            .heartbeat_interval_ms
            .min((self.config.lease_ms / 3) as u32))
    }

    /// Parses, validates and stores a campaign that names no weights file.
    pub async fn submit(&self, file_name: &str, toml: &str) -> Result<Submitted, CoordinatorError> {
        self.submit_with_uploads(file_name, toml, &BTreeMap::new())
            .await
    }

    /// Parses, validates and stores a campaign; the same content is stored once.
    /// `uploads` maps the `file:` weights it names to the SHA-256 of their uploaded content.
    #[instrument(skip_all, fields(file = %file_name))]
    pub async fn submit_with_uploads(
        &self,
        file_name: &str,
        toml: &str,
        uploads: &BTreeMap<String, String>,
    ) -> Result<Submitted, CoordinatorError> {
        let spec = campaign::parse_with_uploads(file_name, toml, self.config.max_jobs, uploads)
            .map_err(|err| CoordinatorError::InvalidArgument(err.to_string()))?;
        self.check_uploaded_weights(file_name, &spec)?;
        let jobs: Vec<JobRecord> = spec.jobs.iter().cloned().map(JobRecord::new).collect();
        let record = CampaignRecord {
            spec: spec.clone(),
            submitted_unix_ms: now_unix_ms(),
        };
        let created = {
            let _guard = self.changes.lock().await;
            let created = self.store.insert_campaign(&record, &jobs)?;
            if created {
                // Its fine-tunes wait for their pretrain jobs: out of the leasable jobs
                // from the start, so that no lease walks past them.
                let campaign = campaign_key(&spec.id).expect("campaign ids are 16 hex digits");
                for job in &jobs {
                    if let Stage::FineTune {
                        pretrain_job: Some(idx),
                        ..
                    } = &job.spec.stage
                    {
                        self.store.park(
                            &job_key(campaign, job.spec.job_idx),
                            &job_key(campaign, *idx),
                        );
                    }
                }
            }
            created
        };
        self.store.flush().await?;
        info!(campaign = %spec.id, name = %spec.name, n_jobs = jobs.len(), created, "campaign submitted");
        self.work.notify_waiters();
        Ok(Submitted {
            campaign_id: spec.id,
            name: spec.name,
            n_jobs: jobs.len() as u32,
            created,
        })
    }

    /// Leases the next pending job to a worker, waiting up to `wait_ms` for one.
    #[instrument(skip_all, fields(worker = %worker_id))]
    pub async fn lease_job(
        &self,
        worker_id: &str,
        wait_ms: u32,
    ) -> Result<Option<Lease>, CoordinatorError> {
        if self.store.worker(worker_id)?.is_none() {
            return Err(CoordinatorError::FailedPrecondition(format!(
                "worker {worker_id} has not joined: call Join first"
            )));
        }
        let wait = Duration::from_millis(wait_ms.min(self.config.max_lease_wait_ms).into());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.contact(worker_id);
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closing() {
                return Ok(None);
            }
            if let Some(lease) = self.try_lease(worker_id).await? {
                return Ok(Some(lease));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn try_lease(&self, worker_id: &str) -> Result<Option<Lease>, CoordinatorError> {
        let guard = self.changes.lock().await;
        let now = now_unix_ms();
        // Pretrainings in flight: a second job with the same key waits for their weights
        // instead of training them again. Read (from the `leased` index) when a pending
        // pretrain job first comes up.
        let mut in_flight: Option<Vec<(String, Vec<u8>)>> = None;
        // For campaigns that bind a seed to a worker, the owner of each seed: read when
        // a pending job of theirs comes up, once per call.
        let mut owners: HashMap<(String, u64), Option<String>> = HashMap::new();
        let mut alive: Option<HashMap<String, bool>> = None;
        let mut settled = false;
        for key in self.store.pending_keys() {
            let key = key?;
            let Some(job) = self.store.job(&key)? else {
                continue;
            };
            if job.state != JobState::Pending {
                continue;
            }
            let mut ready = job.clone();
            match &job.spec.stage {
                Stage::Pretrain { key: pretrain, .. } => {
                    if let Some(done) = self.store.pretrain(pretrain)? {
                        if let Some(next) = scheduler::reuse(&job, &done.job_id)
                            && self.store.swap_job(&key, &job, &next)?
                        {
                            info!(job = %job.spec.job_id(), weights_of = %done.job_id, "pretraining reused");
                            self.publish_if_finished(&job.spec.campaign_id);
                            settled = true;
                        }
                        continue;
                    }
                    let in_flight = match &mut in_flight {
                        Some(keys) => keys,
                        None => in_flight.insert(self.pretrains_in_flight()?),
                    };
                    if let Some((_, training)) = in_flight.iter().find(|(k, _)| k == pretrain) {
                        // It waits for those weights: out of the leasable jobs until then.
                        self.store.park(&key, training);
                        continue;
                    }
                }
                Stage::FineTune {
                    pretrain_job: Some(idx),
                    ..
                } => match self.dependency(&job, *idx)? {
                    scheduler::Readiness::Ready(sha) => {
                        if let Stage::FineTune {
                            artifact_sha256, ..
                        } = &mut ready.spec.stage
                        {
                            *artifact_sha256 = sha;
                        }
                    }
                    scheduler::Readiness::Waiting => {
                        // Out of the leasable jobs until its pretrain job's state changes.
                        let campaign = campaign_key(&job.spec.campaign_id)
                            .expect("stored jobs have valid ids");
                        self.store.park(&key, &job_key(campaign, *idx));
                        continue;
                    }
                    scheduler::Readiness::Doomed(reason) => {
                        if let Some(next) = scheduler::doom(&job, reason)
                            && self.store.swap_job(&key, &job, &next)?
                        {
                            warn!(job = %job.spec.job_id(), reason = %next.failures.join(" | "), "job failed without running");
                            self.publish(CampaignEvent::JobFailed {
                                job_id: job.spec.job_id(),
                                reason: next.failures.join(" | "),
                                will_retry: false,
                            });
                            self.publish_if_finished(&job.spec.campaign_id);
                            settled = true;
                        }
                        continue;
                    }
                },
                _ => {}
            }
            if ready.declined_by(worker_id) {
                continue;
            }
            let campaign_id = &job.spec.campaign_id;
            let placement = self.placement(campaign_id)?;
            let seed = (campaign_id.clone(), job.spec.seed);
            if placement == campaign::Placement::SameWorkerPerSeed && !owners.contains_key(&seed) {
                let alive = match &mut alive {
                    Some(alive) => alive,
                    None => {
                        let mut known = HashMap::new();
                        for worker in self.store.workers()? {
                            let up = self.alive(&worker, now);
                            known.insert(worker.worker_id, up);
                        }
                        alive.insert(known)
                    }
                };
                let states: Vec<JobState> = self
                    .store
                    .jobs_of(campaign_id)?
                    .into_iter()
                    .filter(|j| j.spec.seed == job.spec.seed)
                    .map(|j| j.state)
                    .collect();
                let owner = scheduler::seed_owner(&states, |w| alive.get(w) == Some(&true));
                owners.insert(seed.clone(), owner.map(str::to_string));
            }
            let owner = owners.get(&seed).cloned().flatten();
            if !scheduler::may_place(placement, owner.as_deref(), worker_id) {
                continue;
            }
            let lease_id = self.store.next_id()?;
            let next = scheduler::lease(&ready, worker_id, lease_id, now + self.config.lease_ms)
                .expect("a pending job can be leased");
            if self.store.swap_job(&key, &job, &next)? {
                let spec = self.with_pin(next.spec.clone())?;
                info!(job = %next.spec.job_id(), lease_id, attempt = next.attempts, "job leased");
                self.forget_progress(&next.spec.job_id());
                self.publish(CampaignEvent::JobLeased {
                    job_id: next.spec.job_id(),
                    model: model_label(&next.spec),
                    worker_id: worker_id.to_string(),
                    attempt: next.attempts,
                });
                drop(guard);
                // Flushed outside the lock: concurrent changes share one disk sync, and a
                // later answer built on this state is itself flushed first.
                self.store.flush().await?;
                return Ok(Some(Lease {
                    job: spec,
                    lease_id,
                    attempt: next.attempts,
                    lease_ms: self.config.lease_ms,
                }));
            }
        }
        drop(guard);
        if settled {
            self.store.flush().await?;
        }
        Ok(None)
    }

    /// A campaign's placement, read once (a stored campaign never changes; its record
    /// holds every job spec, too large to decode per lease).
    fn placement(&self, campaign_id: &str) -> Result<campaign::Placement, CoordinatorError> {
        if let Some(placement) = self
            .placements
            .lock()
            .expect("placements lock")
            .get(campaign_id)
        {
            return Ok(*placement);
        }
        let placement = self
            .store
            .campaign(campaign_id)?
            .map_or(campaign::Placement::Any, |c| c.spec.placement);
        self.placements
            .lock()
            .expect("placements lock")
            .insert(campaign_id.to_string(), placement);
        Ok(placement)
    }

    /// The pretrainings leased now: their keys, with their jobs' store keys.
    fn pretrains_in_flight(&self) -> Result<Vec<(String, Vec<u8>)>, CoordinatorError> {
        let mut keys = Vec::new();
        for (job_key, _) in self.store.leased_keys() {
            if let Some(job) = self.store.job(&job_key)?
                && let Stage::Pretrain { key, .. } = job.spec.stage
            {
                keys.push((key, job_key));
            }
        }
        Ok(keys)
    }

    /// Whether the fine-tune `job` may run, given its campaign's pretrain job `idx`.
    fn dependency(
        &self,
        job: &JobRecord,
        idx: u32,
    ) -> Result<scheduler::Readiness, CoordinatorError> {
        let campaign = campaign_key(&job.spec.campaign_id).expect("stored jobs have valid ids");
        let Some(dependency) = self.store.job(&job_key(campaign, idx))? else {
            return Ok(scheduler::Readiness::Doomed(format!(
                "its pretrain job {}-{idx} is not in the campaign",
                job.spec.campaign_id
            )));
        };
        let artifact = match &dependency.spec.stage {
            Stage::Pretrain { key, .. } => self.store.pretrain(key)?.map(|r| r.artifact_sha256),
            _ => None,
        };
        Ok(scheduler::readiness(Some(&dependency), artifact.as_deref()))
    }

    /// The stored record of `job_id` (at `key`); not found is an error naming it.
    fn stored_job(&self, key: &[u8], job_id: &str) -> Result<JobRecord, CoordinatorError> {
        self.store
            .job(key)?
            .ok_or_else(|| CoordinatorError::NotFound(format!("no job {job_id}")))
    }

    /// Extends `worker_id`'s lease (or takes back its expired lease if no one took the
    /// job since); returns true when the worker should cancel the job: its lease no
    /// longer holds it (another worker took it or completed it, or it was cancelled).
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        job_id: &str,
        lease_id: u64,
        progress: Progress,
    ) -> Result<bool, CoordinatorError> {
        ecobench_shared::validate::progress(&progress).map_err(|err| {
            CoordinatorError::InvalidArgument(format!("heartbeat of job {job_id} refused: {err}"))
        })?;
        let key = parse_job_id(job_id)?;
        self.contact(worker_id);
        {
            let _guard = self.changes.lock().await;
            let job = self.stored_job(&key, job_id)?;
            let deadline = now_unix_ms() + self.config.lease_ms;
            let Some(next) = scheduler::extend(&job, lease_id, worker_id, deadline)
                .or_else(|| scheduler::revive(&job, lease_id, worker_id, deadline))
            else {
                warn!(job = %job_id, lease_id, worker = %worker_id, "heartbeat for a lease that does not hold the job: cancel");
                return Ok(true);
            };
            if job.state == JobState::Pending {
                info!(job = %job_id, lease_id, worker = %worker_id, "an expired lease came back before the job was leased again");
            }
            self.swap(&key, &job, &next)?;
            let changed = self
                .progress
                .lock()
                .expect("progress lock")
                .insert(job_id.to_string(), progress.clone())
                .is_none_or(|before| before != progress);
            // The first heartbeats come before any epoch ended: nothing to tell yet.
            if changed && progress.epoch > 0 {
                self.publish(CampaignEvent::Progress {
                    job_id: job_id.to_string(),
                    progress,
                });
            }
        }
        self.store.flush().await?;
        Ok(false)
    }

    /// Writes `next` over `job`, which must not have changed since it was read (all
    /// changes are made under `changes`, so a refused swap is a bug, reported as such).
    fn swap(&self, key: &[u8], job: &JobRecord, next: &JobRecord) -> Result<(), CoordinatorError> {
        if self.store.swap_job(key, job, next)? {
            Ok(())
        } else {
            Err(CoordinatorError::Conflict(format!(
                "job {} changed while it was being updated; retry",
                job.spec.job_id()
            )))
        }
    }

    /// Stores a job's result. Returns true when the same lease had already completed it.
    #[instrument(skip_all, fields(job = %job_id))]
    pub async fn complete(
        &self,
        worker_id: &str,
        job_id: &str,
        lease_id: u64,
        result: JobResult,
    ) -> Result<bool, CoordinatorError> {
        queries::check_result(job_id, &result)?;
        self.contact(worker_id);
        let key = parse_job_id(job_id)?;
        let guard = self.changes.lock().await;
        let job = self.stored_job(&key, job_id)?;
        match scheduler::complete(&job, lease_id, worker_id) {
            Completion::Duplicate => Ok(true),
            Completion::Stale => Err(CoordinatorError::FailedPrecondition(format!(
                "job {job_id} was already completed under another lease: the result of lease \
                 {lease_id} is refused (the first result wins)"
            ))),
            Completion::NotHolder => Err(CoordinatorError::FailedPrecondition(format!(
                "lease {lease_id} of worker {worker_id} never held job {job_id}: result refused"
            ))),
            Completion::Accept(next) => {
                let late = lease_holder(&job).is_none_or(|holder| holder != worker_id)
                    || job.lease_id() != Some(lease_id);
                let pin = self.check_pin(&key, &job, lease_id, &result).await?;
                let pretrain = match &job.spec.stage {
                    Stage::Pretrain { key, .. } => Some(PretrainRecord {
                        key: key.clone(),
                        job_id: job_id.to_string(),
                        artifact_sha256: self.published_weights(job_id, &result)?,
                        energy_kwh: result.energy.energy_kwh,
                        co2_kg: result.energy.co2_kg,
                    }),
                    _ => None,
                };
                let fingerprint = self.store.worker(worker_id)?.map(|w| w.fingerprint);
                let record = ResultRecord {
                    worker_id: worker_id.to_string(),
                    lease_id,
                    completed_unix_ms: now_unix_ms(),
                    result,
                    fingerprint,
                };
                if !self.store.complete_job(
                    &key,
                    &job,
                    &next,
                    &record,
                    pretrain.as_ref(),
                    pin.as_ref(),
                )? {
                    return Err(CoordinatorError::Conflict(format!(
                        "job {job_id} changed while its result was being stored; retry"
                    )));
                }
                info!(
                    accuracy = record.result.train.accuracy,
                    energy_kwh = record.result.energy.energy_kwh,
                    late,
                    "job succeeded"
                );
                if late {
                    // Any live lease on the job is void now: its heartbeat answers cancel.
                    warn!(lease_id, worker = %worker_id, "result of an expired lease accepted: no one else had completed the job");
                }
                self.forget_progress(job_id);
                self.publish(CampaignEvent::JobSucceeded {
                    job_id: job_id.to_string(),
                    worker_id: record.worker_id.clone(),
                    accuracy: record.result.train.accuracy,
                    energy_kwh: record.result.energy.energy_kwh,
                });
                self.publish_if_finished(&job.spec.campaign_id);
                drop(guard);
                self.store.flush().await?;
                if pretrain.is_some() {
                    // Its fine-tunes can run now.
                    self.work.notify_waiters();
                }
                Ok(false)
            }
        }
    }

    /// The weights a pretrain job's result names; refused when it names none or the
    /// coordinator does not hold them.
    fn published_weights(
        &self,
        job_id: &str,
        result: &JobResult,
    ) -> Result<String, CoordinatorError> {
        let Some(sha) = result.artifact_sha256.clone() else {
            return Err(CoordinatorError::InvalidArgument(format!(
                "job {job_id} is a pretrain job but its result names no weights: the worker \
                 uploads them with PutArtifact and sends their SHA-256 in the result"
            )));
        };
        if self.artifacts.get(&sha)?.is_none() {
            return Err(CoordinatorError::FailedPrecondition(format!(
                "the weights {sha} of pretrain job {job_id} are not stored: upload them \
                 (PutArtifact) before completing the job"
            )));
        }
        Ok(sha)
    }

    /// Every `file:` weights a campaign names is stored, and for a VGG holds the tensors
    /// of the configuration (torchvision's names and shapes).
    fn check_uploaded_weights(
        &self,
        file_name: &str,
        spec: &campaign::CampaignSpec,
    ) -> Result<(), CoordinatorError> {
        let mut checked: Vec<(String, String)> = Vec::new();
        for job in &spec.jobs {
            let Stage::FineTune {
                source: PretrainSource::File { path, sha256 },
                ..
            } = &job.stage
            else {
                continue;
            };
            let label = job.model.label();
            if checked.iter().any(|(sha, l)| sha == sha256 && *l == label) {
                continue;
            }
            let stored = self.artifacts.get(sha256)?.is_some();
            let Some(file) = self.artifacts.path(sha256).filter(|_| stored) else {
                return Err(CoordinatorError::InvalidArgument(format!(
                    "{file_name}: pretrained = \"file:{path}\": the weights (sha256 {sha256}) \
                     were not uploaded: `coordinator submit` uploads them before the campaign"
                )));
            };
            let refused = |reason: String| {
                CoordinatorError::InvalidArgument(format!(
                    "{file_name}: pretrained = \"file:{path}\" for {} {label}: {reason}",
                    job.model.kind()
                ))
            };
            // Every file must be safetensors; VGG files (torchvision's names) are checked
            // tensor by tensor. A cnn's or densenet's dense layer depends on the image
            // size, which only the worker knows: it checks their files when it loads them.
            let found = crate::artifacts::safetensors_shapes(&file).map_err(refused)?;
            if let ecobench_shared::ModelConfig::Vgg(vgg) = &job.model {
                let channels = job.transform.output_channels(1) as usize;
                let expected = ecobench_shared::pretrain::vgg_expected_tensors(vgg, channels);
                ecobench_shared::pretrain::check_tensor_shapes(&found, &expected)
                    .map_err(refused)?;
            }
            checked.push((sha256.clone(), label));
        }
        Ok(())
    }

    /// Records an attempt that ended without a result: failed (retried while fewer than
    /// `max_attempts` attempts failed and the failure is `retryable`), or handed back by
    /// its stopping worker (pending again, no failure counted). What it spent (`energy`,
    /// as the worker measured it) joins the job's `spent` in the same write. Only the
    /// worker holding the lease may do this. Returns true when the job will be tried again.
    #[instrument(skip_all, fields(job = %job_id))]
    pub async fn fail(
        &self,
        worker_id: &str,
        job_id: &str,
        lease_id: u64,
        reason: &str,
        ending: Ending,
        energy: Option<ecobench_shared::EnergyReport>,
    ) -> Result<bool, CoordinatorError> {
        if let Some(energy) = &energy {
            ecobench_shared::validate::energy(energy).map_err(|err| {
                CoordinatorError::InvalidArgument(format!(
                    "failure report of job {job_id} refused: {err}"
                ))
            })?;
        }
        let key = parse_job_id(job_id)?;
        self.contact(worker_id);
        let guard = self.changes.lock().await;
        let job = self.stored_job(&key, job_id)?;
        let reason = format!("attempt {}: {reason}", job.attempts);
        let next = match ending {
            Ending::Failed { retryable } => {
                let failure = scheduler::Failure {
                    reason: &reason,
                    retryable,
                    energy,
                };
                scheduler::fail(&job, lease_id, worker_id, failure, self.config.max_attempts)
            }
            Ending::HandedBack => scheduler::hand_back(&job, lease_id, worker_id, &reason, energy),
        };
        let Some(next) = next else {
            return Err(CoordinatorError::FailedPrecondition(format!(
                "lease {lease_id} of worker {worker_id} does not hold job {job_id} (it expired \
                 and the job was taken or completed, or it never did): report refused"
            )));
        };
        self.swap(&key, &job, &next)?;
        let will_retry = next.state == JobState::Pending;
        warn!(%reason, will_retry, handed_back = matches!(ending, Ending::HandedBack), "job attempt ended without a result");
        self.forget_progress(job_id);
        self.publish(CampaignEvent::JobFailed {
            job_id: job_id.to_string(),
            reason: reason.clone(),
            will_retry,
        });
        if !will_retry {
            self.publish_if_finished(&job.spec.campaign_id);
        }
        drop(guard);
        self.store.flush().await?;
        // A retry is new work; a pretrain job failed for good settles its fine-tunes,
        // which the next lease attempt fails.
        if will_retry || matches!(next.spec.stage, Stage::Pretrain { .. }) {
            self.work.notify_waiters();
        }
        Ok(will_retry)
    }

    /// Puts jobs whose lease expired back to pending (or fails them, after
    /// [`scheduler::MAX_LOST_LEASES`]); returns how many. A lease an earlier run of the
    /// coordinator granted does not expire during the grace period after this start, so
    /// that workers that kept training through the outage reconnect and heartbeat first.
    pub async fn reap_expired(&self) -> Result<usize, CoordinatorError> {
        let now = now_unix_ms();
        let in_grace = now < self.started_unix_ms + self.config.restart_grace_ms;
        let guard = self.changes.lock().await;
        let mut reaped = 0;
        let due: Vec<Vec<u8>> = self
            .store
            .leased_keys()
            .into_iter()
            .filter(|(_, deadline)| *deadline <= now)
            .map(|(key, _)| key)
            .collect();
        for key in due {
            let Some(job) = self.store.job(&key)? else {
                continue;
            };
            if in_grace
                && job
                    .lease_id()
                    .is_some_and(|id| id < self.first_lease_of_run)
            {
                continue;
            }
            if let Some(next) = scheduler::expire(&job, now)
                && self.store.swap_job(&key, &job, &next)?
            {
                let failed = next.state == JobState::Failed;
                warn!(job = %job.spec.job_id(), failed, "lease expired");
                let job_id = job.spec.job_id();
                self.forget_progress(&job_id);
                if let Some(worker_id) = lease_holder(&job) {
                    self.publish(CampaignEvent::WorkerLost {
                        worker_id: worker_id.to_string(),
                        job_id: job_id.clone(),
                    });
                }
                self.publish(CampaignEvent::JobFailed {
                    job_id,
                    reason: next
                        .failures
                        .last()
                        .cloned()
                        .unwrap_or_else(|| "its lease expired".into()),
                    will_retry: !failed,
                });
                if failed {
                    self.publish_if_finished(&job.spec.campaign_id);
                }
                reaped += 1;
            }
        }
        drop(guard);
        if reaped > 0 {
            self.store.flush().await?;
            self.work.notify_waiters();
        }
        Ok(reaped)
    }
}

mod pins;
mod queries;
pub use queries::Gauges;

#[cfg(test)]
mod tests;
