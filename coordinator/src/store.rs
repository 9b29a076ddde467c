//! The only module that touches sled: typed records in named trees, one
//! transaction per state change, flushed by the caller before it answers.
//!
//! Trees: `campaigns` (campaign key → [`CampaignRecord`]), `jobs` (campaign key
//! ++ job index, big-endian → [`JobRecord`]), `results` (same key →
//! [`ResultRecord`]), `workers` (worker id → [`WorkerRecord`]), `artifacts`
//! (sha256 hex → [`ArtifactRecord`]), `pretrains` (pretrain key →
//! [`PretrainRecord`]), `pins` (campaign key ++ dataset name → [`PinRecord`]), `meta`
//! (`schema_version`). Values are JSON with a record version.
//!
//! A job write is one atomic sled operation: a compare-and-swap against the bytes just
//! read, made only if their revision ([`JobRecord::rev`]) is the expected one (never a
//! comparison with a re-encoding). Two in-memory indexes over `jobs`, built when the
//! database opens and updated with every job write, let leasing and reaping touch only
//! the jobs that matter, however many are stored: the pending jobs' keys, and the leased
//! jobs' keys with their deadlines.
//!
//! A completion writes the result (with its pin and pretraining record) first and the
//! job's new state last, each an atomic operation, so that hot paths need no sled
//! transaction (sled 0.34 transactions deadlock against a concurrent flush, which group
//! commit needs). A crash in between leaves a result whose job is not marked
//! succeeded: opening the database finishes that completion from the result record.
//!
//! A failed write stops the store for good: after an I/O error (a full disk, a dead
//! device) sled refuses every later write until the database is reopened, even once the
//! disk has room again. The store records the first such failure, refuses writes from
//! then on with [`StoreError::Stopped`], and tells whoever watches [`Store::failed`]:
//! `serve` then stops the coordinator, so that its supervisor starts it again on the
//! reopened database. What it answered is on disk (each state change is flushed before
//! the answer); a write that failed was not answered.
//!
//! Fault injection: when the process has `ECOBENCH_INJECT_STORE_FAULT=<path>` in its
//! environment and that path exists, a write fails with [`StoreError::Injected`] and
//! stops the store, as a full disk does (the fault suite drives it; nothing else sets it).

use std::path::Path;

use ecobench_shared::{CampaignSpec, HardwareFingerprint, JobResult};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::scheduler::JobRecord;

/// sled's page cache size.
const CACHE_BYTES: u64 = 128 << 20;

/// Version of the on-disk layout; a database of another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption it detected, lock held by another process).
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode.
    #[error("database record {tree}/{key} does not decode: {source}")]
    Corrupt {
        /// The tree holding the record.
        tree: &'static str,
        /// The record's key, hex.
        key: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A write was refused by the fault injection (`ECOBENCH_INJECT_STORE_FAULT`).
    #[error("injected store fault: {0} exists")]
    Injected(String),
    /// An earlier write failed (its error is the string): sled takes no more writes
    /// until the database is reopened.
    #[error("an earlier write failed ({0}); the database takes no writes until it is reopened")]
    Stopped(String),
    /// The database was written by another schema version.
    #[error(
        "database schema version {found} is not {SCHEMA_VERSION}: use a matching coordinator or a new --db path"
    )]
    Schema {
        /// The version found on disk.
        found: u32,
    },
}

/// A stored campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignRecord {
    /// The expanded campaign.
    pub spec: CampaignSpec,
    /// Unix milliseconds of the first submission.
    pub submitted_unix_ms: u64,
}

/// A stored result: what the worker sent, and under which lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The worker that produced it.
    pub worker_id: String,
    /// The lease it was produced under.
    pub lease_id: u64,
    /// Unix milliseconds of the completion.
    pub completed_unix_ms: u64,
    /// Training and energy figures.
    pub result: JobResult,
    /// The producing worker's hardware as it was when the result arrived (absent from
    /// results stored before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<ecobench_shared::HardwareFingerprint>,
}

/// A stored worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The worker's id.
    pub worker_id: String,
    /// Its hardware, as sent when it joined.
    pub fingerprint: HardwareFingerprint,
    /// Unix milliseconds of its last call.
    pub last_seen_unix_ms: u64,
    /// Jobs it completed.
    pub jobs_done: u32,
}

/// The weights a pretraining produced, by its key (`Stage::Pretrain::key`): every later
/// job with the same key, in any campaign, reuses them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainRecord {
    /// The pretraining's content key.
    pub key: String,
    /// The job that trained them (`<campaign>-<index>`).
    pub job_id: String,
    /// SHA-256 of the weights (an artifact).
    pub artifact_sha256: String,
    /// Energy of the pretrain job.
    pub energy_kwh: f64,
    /// Its CO₂e.
    pub co2_kg: f64,
}

/// The dataset fingerprint a campaign is pinned to for one dataset: that of its first
/// result on it. Later results on that dataset must have the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    /// The campaign.
    pub campaign_id: String,
    /// The dataset as its jobs name it.
    pub dataset: String,
    /// SHA-256 of the decoded dataset (`TrainReport::dataset_sha256`).
    pub dataset_sha256: String,
    /// The job whose result pinned it (`<campaign>-<index>`).
    pub job_id: String,
}

/// The key of a pin: campaign key ++ the dataset name's bytes.
fn pin_key(campaign: [u8; 8], dataset: &str) -> Vec<u8> {
    let mut key = campaign.to_vec();
    key.extend_from_slice(dataset.as_bytes());
    key
}

/// A stored artifact; its content is the file `<db>.artifacts/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// SHA-256 of the content, 64 lowercase hex digits.
    pub sha256: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// The human name it was put under (a file name, `pretrain <job id>`).
    pub name: String,
    /// Unix milliseconds of the first put.
    pub created_unix_ms: u64,
}

/// Every record is wrapped with a version so that the layout can evolve.
#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    v: u32,
    record: T,
}

/// Typed access to the coordinator's sled database.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    campaigns: sled::Tree,
    jobs: sled::Tree,
    results: sled::Tree,
    workers: sled::Tree,
    pretrains: sled::Tree,
    artifacts: sled::Tree,
    pins: sled::Tree,
    index: std::sync::Arc<std::sync::Mutex<JobIndex>>,
    fault: Option<std::path::PathBuf>,
    durability: std::sync::Arc<Durability>,
}

/// The pending and leased jobs, by key (in memory; rebuilt when the database opens).
/// A pending job that waits for another job (a fine-tune for its pretrain job, a
/// pretraining for the same one in flight) is parked behind it, out of `pending`, until
/// that job's record is written with a state other than leased.
#[derive(Debug, Default)]
struct JobIndex {
    pending: std::collections::BTreeSet<Vec<u8>>,
    leased: std::collections::BTreeMap<Vec<u8>, u64>,
    /// Job key → the pending jobs parked behind it.
    parked: std::collections::HashMap<Vec<u8>, Vec<Vec<u8>>>,
    /// Every parked job's key.
    waiting: std::collections::BTreeSet<Vec<u8>>,
    /// Jobs in each state, by [`JobState::name`](crate::scheduler::JobState::name).
    counts: std::collections::HashMap<&'static str, u64>,
}

impl JobIndex {
    /// Records that job `key` went from `previous` (`None`: a new job) to `state`.
    fn update(
        &mut self,
        key: &[u8],
        previous: Option<&crate::scheduler::JobState>,
        state: &crate::scheduler::JobState,
    ) {
        use crate::scheduler::JobState;
        if let Some(count) = previous.and_then(|p| self.counts.get_mut(p.name())) {
            *count = count.saturating_sub(1);
        }
        *self.counts.entry(state.name()).or_default() += 1;
        self.waiting.remove(key);
        if *state == JobState::Pending {
            self.pending.insert(key.to_vec());
        } else {
            self.pending.remove(key);
        }
        // What waited for this job may be ready now (a heartbeat, which leaves it
        // leased, changes nothing for them).
        if !matches!(state, JobState::Leased { .. })
            && let Some(waiting) = self.parked.remove(key)
        {
            for job in waiting {
                if self.waiting.remove(&job) {
                    self.pending.insert(job);
                }
            }
        }
        match state {
            JobState::Leased {
                deadline_unix_ms, ..
            } => {
                self.leased.insert(key.to_vec(), *deadline_unix_ms);
            }
            _ => {
                self.leased.remove(key);
            }
        }
    }
}

/// The pending jobs' keys in key order, read lazily (each step takes the index lock
/// briefly, so that the caller may write jobs while it walks).
#[derive(Debug)]
pub struct PendingKeys {
    index: std::sync::Arc<std::sync::Mutex<JobIndex>>,
    after: Option<Vec<u8>>,
}

impl Iterator for PendingKeys {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::ops::Bound;
        let index = self.index.lock().expect("index lock");
        let from = match &self.after {
            Some(key) => Bound::Excluded(key.clone()),
            None => Bound::Unbounded,
        };
        let next = index
            .pending
            .range((from, Bound::Unbounded))
            .next()
            .cloned()?;
        self.after = Some(next.clone());
        Some(Ok(next))
    }
}

/// Group commit. A write bumps `written` once done; a flush syncs every write counted
/// before it started, so that one disk sync serves every caller waiting on it, and
/// callers whose writes an earlier sync covered return at once. Plain writes go on
/// during a sync; the rare transactions (a campaign's insertion) never overlap one
/// (`gate`): sled 0.34 deadlocks when a transaction waits for its write lock while a
/// flush holding a read lock waits for the log's I/O threads, which then wait behind
/// the transaction.
#[derive(Debug, Default)]
struct Durability {
    gate: std::sync::RwLock<()>,
    written: std::sync::atomic::AtomicU64,
    flushed: std::sync::atomic::AtomicU64,
    flusher: tokio::sync::Mutex<()>,
    /// The first write failure that stopped the store (see the module's documentation).
    failure: tokio::sync::watch::Sender<Option<String>>,
}

impl Durability {
    /// Runs a transaction outside any sync, and counts it.
    fn transaction<T>(&self, f: impl FnOnce() -> T) -> T {
        let out = {
            let _open = self.gate.read().unwrap_or_else(|e| e.into_inner());
            f()
        };
        self.count();
        out
    }

    /// Counts a write (after it is done).
    fn count(&self) {
        self.written
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The environment variable naming the file whose existence makes writes fail.
pub const FAULT_ENV: &str = "ECOBENCH_INJECT_STORE_FAULT";

/// The key of a campaign: its 16-hex-digit id as a big-endian u64.
pub fn campaign_key(campaign_id: &str) -> Option<[u8; 8]> {
    u64::from_str_radix(campaign_id, 16)
        .ok()
        .filter(|_| campaign_id.len() == 16)
        .map(u64::to_be_bytes)
}

/// The key of a job: campaign key ++ job index, big-endian, so order is numeric.
pub fn job_key(campaign: [u8; 8], job_idx: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&campaign);
    key[8..].copy_from_slice(&job_idx.to_be_bytes());
    key
}

/// The revision of a stored job record; `None` if it does not decode.
fn stored_rev(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Rev {
        #[serde(default)]
        rev: u64,
    }
    serde_json::from_slice::<Versioned<Rev>>(bytes)
        .ok()
        .map(|v| v.record.rev)
}

/// `next` as stored after `expected`: one revision later.
fn revised(expected: &JobRecord, next: &JobRecord) -> JobRecord {
    let mut next = next.clone();
    next.rev = expected.rev + 1;
    next
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(&Versioned {
        v: SCHEMA_VERSION,
        record,
    })
    .expect("records serialise")
}

fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice::<Versioned<T>>(bytes)
        .map(|versioned| versioned.record)
        .map_err(|source| StoreError::Corrupt {
            tree,
            key: key.iter().map(|b| format!("{b:02x}")).collect(),
            source,
        })
}

fn flatten<T>(err: TransactionError<T>) -> Result<T, StoreError> {
    match err {
        TransactionError::Abort(value) => Ok(value),
        TransactionError::Storage(err) => Err(StoreError::Sled(err)),
    }
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // sled's page cache defaults to 1 GiB; the hot records (pending and leased jobs,
        // recent results) fit in far less.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        Store::from_db(db)
    }

    /// A database in a temporary directory, removed when dropped.
    pub fn temporary() -> Result<Store, StoreError> {
        Store::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Store, StoreError> {
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            Some(bytes) => {
                let found = decode::<u32>("meta", b"schema_version", &bytes)?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { found });
                }
            }
            None => {
                meta.insert("schema_version", encode(&SCHEMA_VERSION))?;
            }
        }
        let store = Store {
            campaigns: db.open_tree("campaigns")?,
            jobs: db.open_tree("jobs")?,
            results: db.open_tree("results")?,
            workers: db.open_tree("workers")?,
            pretrains: db.open_tree("pretrains")?,
            artifacts: db.open_tree("artifacts")?,
            pins: db.open_tree("pins")?,
            index: Default::default(),
            fault: std::env::var_os(FAULT_ENV).map(std::path::PathBuf::from),
            durability: std::sync::Arc::new(Durability::default()),
            db,
        };
        store.finish_completions()?;
        store.build_indexes()?;
        Ok(store)
    }

    /// Marks succeeded every job whose result is stored but whose state is not (a crash
    /// between the two writes of a completion).
    fn finish_completions(&self) -> Result<(), StoreError> {
        use crate::scheduler::JobState;
        let mut repaired = 0;
        for entry in self.results.iter() {
            let (key, value) = entry?;
            let Some(bytes) = self.jobs.get(&key)? else {
                continue;
            };
            let mut job: JobRecord = decode("jobs", &key, &bytes)?;
            if matches!(job.state, JobState::Succeeded { .. }) {
                continue;
            }
            let result: ResultRecord = decode("results", &key, &value)?;
            job.state = JobState::Succeeded {
                worker_id: result.worker_id,
                lease_id: result.lease_id,
            };
            job.rev += 1;
            self.jobs.insert(&key, encode(&job))?;
            repaired += 1;
        }
        if repaired > 0 {
            self.db.flush()?;
            tracing::warn!(
                repaired,
                "finished completions a crash interrupted (result stored, job not yet marked)"
            );
        }
        Ok(())
    }

    /// Builds the in-memory indexes from the stored jobs (only their states are read).
    fn build_indexes(&self) -> Result<(), StoreError> {
        #[derive(Deserialize)]
        struct StateOnly {
            state: crate::scheduler::JobState,
        }
        let mut index = JobIndex::default();
        for entry in self.jobs.iter() {
            let (key, value) = entry?;
            let job: StateOnly = decode("jobs", &key, &value)?;
            index.update(&key, None, &job.state);
        }
        *self.index.lock().expect("index lock") = index;
        Ok(())
    }

    /// Fails when the store has stopped, or when the fault injection is on (which stops
    /// it).
    fn writable(&self) -> Result<(), StoreError> {
        if let Some(cause) = self.durability.failure.borrow().clone() {
            return Err(StoreError::Stopped(cause));
        }
        match &self.fault {
            Some(path) if path.exists() => {
                self.stopped(Err(StoreError::Injected(path.display().to_string())))
            }
            _ => Ok(()),
        }
    }

    /// Runs a write: refused once the store has stopped; an I/O error stops it.
    fn write<T>(&self, write: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.writable()?;
        self.stopped(write())
    }

    /// Passes `outcome` on, first recording a failure that stops the store: an I/O
    /// error (after which sled writes nothing more) or an injected fault.
    fn stopped<T>(&self, outcome: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(err @ (StoreError::Sled(sled::Error::Io(_)) | StoreError::Injected(_))) =
            &outcome
        {
            let cause = err.to_string();
            self.durability.failure.send_if_modified(|failure| {
                let first = failure.is_none();
                if first {
                    tracing::error!(error = %cause, "a database write failed; the store takes no more writes until it is reopened");
                    *failure = Some(cause);
                }
                first
            });
        }
        outcome
    }

    /// The failure that stopped the store, once there is one (see the module's
    /// documentation); `None` while writes work.
    pub fn failed(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.durability.failure.subscribe()
    }

    /// Makes every write made so far durable; call before answering a state change.
    /// Concurrent callers share one disk sync (see `Durability`).
    pub async fn flush(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.writable()?;
        let d = &self.durability;
        let target = d.written.load(SeqCst);
        if d.flushed.load(SeqCst) >= target && target > 0 {
            return Ok(());
        }
        let _one = d.flusher.lock().await;
        if d.flushed.load(SeqCst) >= target && target > 0 {
            return Ok(());
        }
        let (db, durability) = (self.db.clone(), self.durability.clone());
        let synced = tokio::task::spawn_blocking(move || {
            let upto = durability.written.load(SeqCst);
            // No transaction may run during the sync (see `Durability`).
            let _closed = durability.gate.write().unwrap_or_else(|e| e.into_inner());
            db.flush().map(|_| upto)
        })
        .await
        .map_err(|err| StoreError::Sled(sled::Error::ReportableBug(format!("flush task: {err}"))));
        let upto = self.stopped(synced.and_then(|upto| Ok(upto?)))?;
        d.flushed.fetch_max(upto, SeqCst);
        Ok(())
    }

    /// A new unique id, monotonic across restarts.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.write(|| Ok(self.db.generate_id()?))
    }

    /// Stores a campaign and its pending jobs in one transaction.
    /// Returns false, writing nothing, when the campaign is already stored.
    pub fn insert_campaign(
        &self,
        record: &CampaignRecord,
        jobs: &[JobRecord],
    ) -> Result<bool, StoreError> {
        self.write(|| {
            let key = campaign_key(&record.spec.id).expect("campaign ids are 16 hex digits");
            let trees = (&self.campaigns, &self.jobs);
            let result = self.durability.transaction(|| {
                trees.transaction(|(campaigns, job_tree)| {
                    if campaigns.get(key)?.is_some() {
                        return Ok(false);
                    }
                    campaigns.insert(&key, encode(record))?;
                    for job in jobs {
                        let job_key = job_key(key, job.spec.job_idx);
                        job_tree.insert(&job_key, encode(job))?;
                    }
                    Ok::<_, ConflictableTransactionError<bool>>(true)
                })
            });
            let created = result.or_else(flatten)?;
            if created {
                let mut index = self.index.lock().expect("index lock");
                for job in jobs {
                    index.update(&job_key(key, job.spec.job_idx), None, &job.state);
                }
            }
            Ok(created)
        })
    }

    /// Every campaign, in key order.
    pub fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError> {
        self.campaigns
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode("campaigns", &key, &value)
            })
            .collect()
    }

    /// One campaign by id.
    pub fn campaign(&self, campaign_id: &str) -> Result<Option<CampaignRecord>, StoreError> {
        let Some(key) = campaign_key(campaign_id) else {
            return Ok(None);
        };
        self.campaigns
            .get(key)?
            .map(|value| decode("campaigns", &key, &value))
            .transpose()
    }

    /// The jobs of a campaign, in index order.
    pub fn jobs_of(&self, campaign_id: &str) -> Result<Vec<JobRecord>, StoreError> {
        let Some(key) = campaign_key(campaign_id) else {
            return Ok(Vec::new());
        };
        self.jobs
            .scan_prefix(key)
            .map(|entry| {
                let (key, value) = entry?;
                decode("jobs", &key, &value)
            })
            .collect()
    }

    /// Every job with its key, in key order.
    pub fn all_jobs(
        &self,
    ) -> impl Iterator<Item = Result<(sled::IVec, JobRecord), StoreError>> + '_ {
        self.jobs.iter().map(|entry| {
            let (key, value) = entry?;
            let record = decode("jobs", &key, &value)?;
            Ok((key, record))
        })
    }

    /// One job by key.
    pub fn job(&self, key: &[u8]) -> Result<Option<JobRecord>, StoreError> {
        self.jobs
            .get(key)?
            .map(|value| decode("jobs", key, &value))
            .transpose()
    }

    /// Replaces a job record if its stored revision is still `expected.rev`, writing
    /// `next` at the revision after it; false, writing nothing, otherwise. One atomic
    /// compare-and-swap against the bytes read.
    pub fn swap_job(
        &self,
        key: &[u8],
        expected: &JobRecord,
        next: &JobRecord,
    ) -> Result<bool, StoreError> {
        self.write(|| {
            let Some(current) = self.jobs.get(key)? else {
                return Ok(false);
            };
            if stored_rev(&current) != Some(expected.rev) {
                return Ok(false);
            }
            let next = revised(expected, next);
            let swapped = self
                .jobs
                .compare_and_swap(key, Some(current), Some(encode(&next)))?
                .is_ok();
            self.durability.count();
            if swapped {
                self.index.lock().expect("index lock").update(
                    key,
                    Some(&expected.state),
                    &next.state,
                );
            }
            Ok(swapped)
        })
    }

    /// The keys of the pending jobs, in key order (read lazily).
    pub fn pending_keys(&self) -> PendingKeys {
        PendingKeys {
            index: self.index.clone(),
            after: None,
        }
    }

    /// Takes pending job `key` out of the leasable ones until job `behind` is written
    /// with a state other than leased (it waits for that job).
    pub fn park(&self, key: &[u8], behind: &[u8]) {
        let mut index = self.index.lock().expect("index lock");
        if index.pending.remove(key) {
            index.waiting.insert(key.to_vec());
            index
                .parked
                .entry(behind.to_vec())
                .or_default()
                .push(key.to_vec());
        }
    }

    /// Whether a campaign still has a pending or leased job (from the indexes).
    pub fn has_unfinished(&self, campaign_id: &str) -> Result<bool, StoreError> {
        let Some(key) = campaign_key(campaign_id) else {
            return Ok(false);
        };
        let index = self.index.lock().expect("index lock");
        let pending = index.pending.range(key.to_vec()..).next();
        let leased = index.leased.range(key.to_vec()..).next().map(|(k, _)| k);
        let waiting = index.waiting.range(key.to_vec()..).next();
        Ok(pending.is_some_and(|k| k.starts_with(&key))
            || leased.is_some_and(|k| k.starts_with(&key))
            || waiting.is_some_and(|k| k.starts_with(&key)))
    }

    /// How many jobs are in each state (every state named, from the indexes: no read).
    pub fn job_counts(&self) -> Vec<(&'static str, u64)> {
        let index = self.index.lock().expect("index lock");
        crate::scheduler::JobState::NAMES
            .iter()
            .map(|name| (*name, index.counts.get(name).copied().unwrap_or(0)))
            .collect()
    }

    /// The earliest lease deadline (Unix ms) among the leased jobs, from the indexes.
    pub fn earliest_lease_deadline(&self) -> Option<u64> {
        let index = self.index.lock().expect("index lock");
        index.leased.values().min().copied()
    }

    /// The leased jobs' keys with their lease deadlines (Unix ms), in key order.
    pub fn leased_keys(&self) -> Vec<(Vec<u8>, u64)> {
        let index = self.index.lock().expect("index lock");
        index
            .leased
            .iter()
            .map(|(key, deadline)| (key.clone(), *deadline))
            .collect()
    }

    /// Marks a job succeeded and stores its result (and, for a pretrain job, the record
    /// of its weights; for the campaign's first result on a dataset, its pin), in one
    /// transaction.
    /// False, writing nothing, if the job changed since `expected` was read (its revision).
    pub fn complete_job(
        &self,
        key: &[u8],
        expected: &JobRecord,
        next: &JobRecord,
        result: &ResultRecord,
        pretrain: Option<&PretrainRecord>,
        pin: Option<&PinRecord>,
    ) -> Result<bool, StoreError> {
        self.write(|| {
            let next = revised(expected, next);
            let pin = pin.map(|record| {
                let campaign =
                    campaign_key(&record.campaign_id).expect("stored jobs have valid ids");
                (pin_key(campaign, &record.dataset), encode(record))
            });
            // The job's revision first: refuse without writing anything if it changed.
            let Some(current) = self.jobs.get(key)? else {
                return Ok(false);
            };
            if stored_rev(&current) != Some(expected.rev) {
                return Ok(false);
            }
            // The result and what comes with it, then the job's state: a crash in between is
            // finished when the database opens (`finish_completions`).
            self.results.insert(key, encode(result))?;
            if let Some(record) = pretrain {
                self.pretrains
                    .insert(record.key.as_bytes(), encode(record))?;
            }
            if let Some((pin_key, pin)) = &pin {
                self.pins.insert(pin_key.as_slice(), pin.as_slice())?;
            }
            let swapped = self
                .jobs
                .compare_and_swap(key, Some(current), Some(encode(&next)))?
                .is_ok();
            self.durability.count();
            if !swapped {
                // Cannot happen under the coordinator's change lock; take the result back.
                self.results.remove(key)?;
                return Ok(false);
            }
            self.index
                .lock()
                .expect("index lock")
                .update(key, Some(&expected.state), &next.state);
            if let Some(bytes) = self.workers.get(result.worker_id.as_bytes())?
                && let Ok(mut worker) =
                    decode::<WorkerRecord>("workers", result.worker_id.as_bytes(), &bytes)
            {
                worker.jobs_done += 1;
                worker.last_seen_unix_ms = result.completed_unix_ms;
                self.workers
                    .insert(result.worker_id.as_bytes(), encode(&worker))?;
            }
            Ok(true)
        })
    }

    /// The fingerprint `campaign_id` is pinned to for `dataset`, if a result pinned it.
    pub fn pin(&self, campaign_id: &str, dataset: &str) -> Result<Option<PinRecord>, StoreError> {
        let Some(campaign) = campaign_key(campaign_id) else {
            return Ok(None);
        };
        let key = pin_key(campaign, dataset);
        self.pins
            .get(&key)?
            .map(|value| decode("pins", &key, &value))
            .transpose()
    }

    /// The weights of a pretraining, by key.
    pub fn pretrain(&self, key: &str) -> Result<Option<PretrainRecord>, StoreError> {
        self.pretrains
            .get(key.as_bytes())?
            .map(|value| decode("pretrains", key.as_bytes(), &value))
            .transpose()
    }

    /// Every pretraining's weights.
    pub fn pretrains(&self) -> Result<Vec<PretrainRecord>, StoreError> {
        self.pretrains
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode("pretrains", &key, &value)
            })
            .collect()
    }

    /// The results of a campaign, keyed by job index.
    pub fn results_of(&self, campaign_id: &str) -> Result<Vec<(u32, ResultRecord)>, StoreError> {
        let Some(key) = campaign_key(campaign_id) else {
            return Ok(Vec::new());
        };
        self.results
            .scan_prefix(key)
            .map(|entry| {
                let (key, value) = entry?;
                let job_idx =
                    u32::from_be_bytes(key[8..12].try_into().expect("job keys are 12 bytes"));
                Ok((job_idx, decode("results", &key, &value)?))
            })
            .collect()
    }

    /// Stores (or replaces) a worker.
    pub fn put_worker(&self, worker: &WorkerRecord) -> Result<(), StoreError> {
        self.write(|| {
            self.workers
                .insert(worker.worker_id.as_bytes(), encode(worker))?;
            self.durability.count();
            Ok(())
        })
    }

    /// One worker by id.
    pub fn worker(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        let key = worker_id.as_bytes();
        self.workers
            .get(key)?
            .map(|value| decode("workers", key, &value))
            .transpose()
    }

    /// Every worker, by id.
    pub fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.workers
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode("workers", &key, &value)
            })
            .collect()
    }

    /// Records an artifact unless one with its hash is recorded; true if it was new.
    pub fn insert_artifact(&self, record: &ArtifactRecord) -> Result<bool, StoreError> {
        self.write(|| {
            let swapped = self.artifacts.compare_and_swap(
                record.sha256.as_bytes(),
                None as Option<&[u8]>,
                Some(encode(record)),
            )?;
            self.durability.count();
            Ok(swapped.is_ok())
        })
    }

    /// One artifact by its hash.
    pub fn artifact(&self, sha256: &str) -> Result<Option<ArtifactRecord>, StoreError> {
        let key = sha256.as_bytes();
        self.artifacts
            .get(key)?
            .map(|value| decode("artifacts", key, &value))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
