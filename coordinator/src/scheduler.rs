//! The job state machine as pure functions: no I/O and no clock reads; the
//! caller passes the time and stores what comes back.
//!
//! `pending → leased(worker, lease, deadline) → succeeded | failed`. A failed attempt
//! goes back to pending until `max_attempts` attempts have failed; an expired lease
//! (the worker stopped heartbeating: it died, or the network or the coordinator was
//! down) is an outage, not a failure: it goes back to pending without counting against
//! `max_attempts`, up to `max_lost_leases` times, and the lease is remembered so that
//! the result its worker delivers later is still accepted if no one else completed the
//! job first (the first valid result wins; a live lease on the job is then void, its
//! heartbeat answered with "cancel"). A worker that declines a job (its copy of the
//! dataset is not the campaign's) or hands it back (it is stopping) gives it back
//! without spending an attempt. Only the worker holding a lease may act on it.
//!
//! Placement: in a campaign with `placement = "same-worker-per-seed"`, the jobs of one seed
//! are bound to the worker that holds, or last completed, one of them ([`seed_owner`]), as
//! long as that worker is alive; [`may_place`] says whether a worker may take a job.

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Pending,
    /// Held by a worker until the deadline, extended by heartbeats.
    Leased {
        /// The worker holding the lease.
        worker_id: String,
        /// Unique id of this lease.
        lease_id: u64,
        /// Unix milliseconds after which the lease is void.
        deadline_unix_ms: u64,
    },
    /// Done; its result is stored.
    Succeeded {
        /// The worker that produced the result.
        worker_id: String,
        /// The lease under which it was produced.
        lease_id: u64,
    },
    /// Given up on; `JobRecord::failures` says why.
    Failed,
    /// A pretrain job that did not run: the same pretraining (same key) had already
    /// produced its artifact in job `job_id`, whose weights serve instead.
    Reused {
        /// The job that trained the weights (`<campaign>-<index>`).
        job_id: String,
    },
}

impl JobState {
    /// Every state's name, as [`JobState::name`] gives it (the metrics' `state` label).
    pub const NAMES: [&'static str; 5] = ["pending", "leased", "succeeded", "failed", "reused"];

    /// The state's name, lowercase: `pending`, `leased`, `succeeded`, `failed`, `reused`.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Leased { .. } => "leased",
            JobState::Succeeded { .. } => "succeeded",
            JobState::Failed => "failed",
            JobState::Reused { .. } => "reused",
        }
    }
}

/// A job as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job to run.
    pub spec: ecobench_shared::JobSpec,
    /// Current state.
    pub state: JobState,
    /// Attempts started so far (leases granted).
    pub attempts: u32,
    /// Why earlier attempts ended without the result, oldest first (failures, expired
    /// leases, hand-backs, late results accepted).
    pub failures: Vec<String>,
    /// The store's revision of this record, bumped by every write: what the store's
    /// compare-and-swap compares (absent from records written before it: 0).
    #[serde(default)]
    pub rev: u64,
    /// Attempts that failed (FailJob): what `max_attempts` bounds.
    #[serde(default)]
    pub failed_attempts: u32,
    /// Leases that expired, oldest first: their workers' results are still accepted
    /// while no one else has completed the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<ExpiredLease>,
    /// Workers that declined the job, oldest first; none of them is offered it again.
    /// Left out of the stored form when empty, so that older records read and compare
    /// unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declines: Vec<Decline>,
    /// What attempts that did not produce the result cost (failed with a measurement,
    /// declined after loading data, or whose result was refused as trained on another
    /// copy of the dataset), oldest first: the campaign's waste. Written in the same store
    /// operation as the failure or decline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spent: Vec<SpentAttempt>,
}

/// A lease that expired before its worker delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredLease {
    /// The lease.
    pub lease_id: u64,
    /// The worker that held it.
    pub worker_id: String,
}

/// How many expired leases a job survives before it is failed: a job whose workers keep
/// vanishing (one that takes its machine down) must end some time.
pub const MAX_LOST_LEASES: u32 = 10;

/// The measured cost of an attempt that produced no result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpentAttempt {
    /// The worker that ran it.
    pub worker_id: String,
    /// Its energy report (what the meter measured until the attempt ended).
    pub energy: ecobench_shared::EnergyReport,
}

/// A worker's refusal of a job it cannot run as the campaign requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decline {
    /// The worker that declined.
    pub worker_id: String,
    /// Why, as the worker said it.
    pub reason: String,
}

impl JobRecord {
    /// A new, pending job.
    pub fn new(spec: ecobench_shared::JobSpec) -> JobRecord {
        JobRecord {
            spec,
            state: JobState::Pending,
            attempts: 0,
            failures: Vec::new(),
            rev: 0,
            failed_attempts: 0,
            expired: Vec::new(),
            declines: Vec::new(),
            spent: Vec::new(),
        }
    }

    /// True if `worker_id` declined the job before.
    pub fn declined_by(&self, worker_id: &str) -> bool {
        self.declines.iter().any(|d| d.worker_id == worker_id)
    }

    /// The declines as the report shows them: `declined by worker w2: …`.
    pub fn decline_notes(&self) -> Vec<String> {
        self.declines
            .iter()
            .map(|d| format!("declined by worker {}: {}", d.worker_id, d.reason))
            .collect()
    }

    /// True once the job has succeeded, failed for good, or been served by another.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            JobState::Succeeded { .. } | JobState::Failed | JobState::Reused { .. }
        )
    }

    /// The lease id if the job is leased.
    pub fn lease_id(&self) -> Option<u64> {
        match self.state {
            JobState::Leased { lease_id, .. } => Some(lease_id),
            _ => None,
        }
    }
}

/// Grants a lease on a pending job; `None` if the job is not pending or the worker
/// declined it before.
pub fn lease(
    job: &JobRecord,
    worker_id: &str,
    lease_id: u64,
    deadline_unix_ms: u64,
) -> Option<JobRecord> {
    if job.state != JobState::Pending || job.declined_by(worker_id) {
        return None;
    }
    let mut next = job.clone();
    next.state = JobState::Leased {
        worker_id: worker_id.to_string(),
        lease_id,
        deadline_unix_ms,
    };
    next.attempts += 1;
    Some(next)
}

/// The worker the jobs of one seed are bound to under
/// [`Placement::SameWorkerPerSeed`](ecobench_shared::Placement), from the states of that
/// seed's jobs in one campaign: the holder of a live lease (the latest, should there be
/// several), else the latest worker to complete one of them, if `alive` says it still is;
/// `None` when the seed is free (nothing leased or done yet, or its worker was lost).
pub fn seed_owner<'a>(
    states: impl IntoIterator<Item = &'a JobState>,
    alive: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    // The latest (lease id, worker) of a live lease and of a result.
    let mut leased: Option<(u64, &str)> = None;
    let mut done: Option<(u64, &str)> = None;
    for state in states {
        match state {
            JobState::Leased {
                worker_id,
                lease_id,
                ..
            } if leased.is_none_or(|(latest, _)| *lease_id > latest) => {
                leased = Some((*lease_id, worker_id.as_str()));
            }
            JobState::Succeeded {
                worker_id,
                lease_id,
            } if done.is_none_or(|(latest, _)| *lease_id > latest) => {
                done = Some((*lease_id, worker_id.as_str()));
            }
            _ => {}
        }
    }
    leased
        .map(|(_, worker)| worker)
        .or_else(|| done.map(|(_, worker)| worker).filter(|w| alive(w)))
}

/// Whether `worker_id` may take a job of a campaign placed so, given its seed's owner.
pub fn may_place(
    placement: ecobench_shared::Placement,
    owner: Option<&str>,
    worker_id: &str,
) -> bool {
    match placement {
        ecobench_shared::Placement::Any => true,
        ecobench_shared::Placement::SameWorkerPerSeed => owner.is_none_or(|o| o == worker_id),
    }
}

/// Whether a pending job may be leased, given the state of the pretrain job it depends on.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    /// No dependency, or its weights exist: lease it (with this artifact, if any).
    Ready(Option<String>),
    /// The dependency has not finished yet.
    Waiting,
    /// The dependency failed for good: fail this job with the reason.
    Doomed(String),
}

/// Decides whether a fine-tune can run: `dependency` is its pretrain job's record and
/// `artifact` the weights published under that pretraining's key, if any.
pub fn readiness(dependency: Option<&JobRecord>, artifact: Option<&str>) -> Readiness {
    let Some(dependency) = dependency else {
        return Readiness::Ready(None);
    };
    if let Some(sha) = artifact {
        return Readiness::Ready(Some(sha.to_string()));
    }
    match dependency.state {
        JobState::Failed => Readiness::Doomed(format!(
            "its pretrain job {} failed: {}",
            dependency.spec.job_id(),
            dependency.failures.join(" | ")
        )),
        _ => Readiness::Waiting,
    }
}

/// Fails a pending job for good without an attempt (its dependency failed).
pub fn doom(job: &JobRecord, reason: String) -> Option<JobRecord> {
    if job.state != JobState::Pending {
        return None;
    }
    let mut next = job.clone();
    next.failures.push(reason);
    next.state = JobState::Failed;
    Some(next)
}

/// Marks a pending pretrain job as served by the artifact of `job_id`.
pub fn reuse(job: &JobRecord, job_id: &str) -> Option<JobRecord> {
    if job.state != JobState::Pending {
        return None;
    }
    let mut next = job.clone();
    next.state = JobState::Reused {
        job_id: job_id.to_string(),
    };
    Some(next)
}

/// Extends a live lease; `None` if `lease_id` of `worker` does not hold the job.
pub fn extend(
    job: &JobRecord,
    lease_id: u64,
    worker: &str,
    deadline_unix_ms: u64,
) -> Option<JobRecord> {
    match &job.state {
        JobState::Leased {
            worker_id,
            lease_id: held,
            ..
        } if *held == lease_id && worker_id == worker => {
            let mut next = job.clone();
            next.state = JobState::Leased {
                worker_id: worker_id.clone(),
                lease_id,
                deadline_unix_ms,
            };
            Some(next)
        }
        _ => None,
    }
}

/// Takes back a lease that expired while its job is still pending (no one took it since):
/// its worker's heartbeat shows it is still training, so the lease holds again and no
/// work is thrown away. `None` otherwise.
pub fn revive(
    job: &JobRecord,
    lease_id: u64,
    worker: &str,
    deadline_unix_ms: u64,
) -> Option<JobRecord> {
    if job.state != JobState::Pending {
        return None;
    }
    let at = job
        .expired
        .iter()
        .position(|e| e.lease_id == lease_id && e.worker_id == worker)?;
    let mut next = job.clone();
    next.expired.remove(at);
    next.failures.push(format!(
        "lease {lease_id} of worker {worker} came back before the job was leased again: it holds again"
    ));
    next.state = JobState::Leased {
        worker_id: worker.to_string(),
        lease_id,
        deadline_unix_ms,
    };
    Some(next)
}

/// What a completion means for a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Store the result with this new record.
    Accept(Box<JobRecord>),
    /// The same lease already completed: acknowledge, store nothing.
    Duplicate,
    /// The job was completed under another lease (or served by another job's weights):
    /// refuse.
    Stale,
    /// The lease is not one this worker holds or held on the job: refuse.
    NotHolder,
}

/// Decides what a `CompleteJob` of `worker` under `lease_id` does. The lease that holds
/// the job completes it; so does a lease that expired, while no one else has completed
/// the job (the first valid result wins; a live lease of another worker is void from
/// then on).
pub fn complete(job: &JobRecord, lease_id: u64, worker: &str) -> Completion {
    let succeeded = |job: &JobRecord| {
        let mut next = job.clone();
        next.state = JobState::Succeeded {
            worker_id: worker.to_string(),
            lease_id,
        };
        next
    };
    match &job.state {
        JobState::Leased {
            worker_id,
            lease_id: held,
            ..
        } if *held == lease_id => {
            if worker_id != worker {
                return Completion::NotHolder;
            }
            Completion::Accept(Box::new(succeeded(job)))
        }
        JobState::Succeeded {
            lease_id: done,
            worker_id,
        } if *done == lease_id => {
            if worker_id == worker {
                Completion::Duplicate
            } else {
                Completion::NotHolder
            }
        }
        JobState::Succeeded { .. } | JobState::Reused { .. } => {
            if job.expired.iter().any(|e| e.lease_id == lease_id)
                || job.lease_id() == Some(lease_id)
            {
                Completion::Stale
            } else {
                Completion::NotHolder
            }
        }
        JobState::Pending | JobState::Leased { .. } | JobState::Failed => {
            match job.expired.iter().find(|e| e.lease_id == lease_id) {
                Some(expired) if expired.worker_id == worker => {
                    let mut next = succeeded(job);
                    // A live lease of another worker is void now: remembered with the
                    // expired ones, so that its result is refused as completed.
                    if let JobState::Leased {
                        worker_id,
                        lease_id: live,
                        ..
                    } = &job.state
                    {
                        next.expired.push(ExpiredLease {
                            lease_id: *live,
                            worker_id: worker_id.clone(),
                        });
                    }
                    next.failures.push(format!(
                        "lease {lease_id} of worker {worker} had expired; its result arrived \
                         later and was accepted"
                    ));
                    Completion::Accept(Box::new(next))
                }
                _ => Completion::NotHolder,
            }
        }
    }
}

/// Whether `worker`'s lease `lease_id` ever held the job (the live one or an expired one).
pub fn ever_held(job: &JobRecord, lease_id: u64, worker: &str) -> bool {
    holder(job, lease_id) == Some(worker)
        || job
            .expired
            .iter()
            .any(|e| e.lease_id == lease_id && e.worker_id == worker)
        || matches!(&job.state, JobState::Succeeded { worker_id, lease_id: done } if *done == lease_id && worker_id == worker)
}

/// A failed attempt as its worker reports it.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// Why, as stored among the job's failures.
    pub reason: &'a str,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// What the attempt spent, when a training process ran.
    pub energy: Option<ecobench_shared::EnergyReport>,
}

/// Records a failed attempt: back to pending while fewer than `max_attempts` attempts
/// have failed and the failure is retryable, failed for good otherwise; what it spent
/// joins the job's `spent`, credited to the lease holder. `None` if `worker`'s lease
/// does not hold the job.
pub fn fail(
    job: &JobRecord,
    lease_id: u64,
    worker: &str,
    failure: Failure<'_>,
    max_attempts: u32,
) -> Option<JobRecord> {
    let worker_id = holder(job, lease_id).filter(|w| *w == worker)?;
    let mut next = job.clone();
    next.failures.push(failure.reason.to_string());
    next.failed_attempts += 1;
    next.state = if failure.retryable && next.failed_attempts < max_attempts {
        JobState::Pending
    } else {
        JobState::Failed
    };
    spend(&mut next, worker_id, failure.energy);
    Some(next)
}

/// A job its worker hands back because it is stopping (SIGTERM): pending again, the
/// attempt not counted as failed, what it spent kept. `None` if `worker`'s lease does not
/// hold the job.
pub fn hand_back(
    job: &JobRecord,
    lease_id: u64,
    worker: &str,
    reason: &str,
    energy: Option<ecobench_shared::EnergyReport>,
) -> Option<JobRecord> {
    let worker_id = holder(job, lease_id).filter(|w| *w == worker)?;
    let mut next = job.clone();
    next.failures.push(reason.to_string());
    next.state = JobState::Pending;
    spend(&mut next, worker_id, energy);
    Some(next)
}

/// The worker holding `job` under `lease_id`; `None` for a stale or absent lease.
fn holder(job: &JobRecord, lease_id: u64) -> Option<&str> {
    match &job.state {
        JobState::Leased {
            worker_id,
            lease_id: held,
            ..
        } if *held == lease_id => Some(worker_id),
        _ => None,
    }
}

/// Adds what an attempt of `worker_id` measured, if anything, to the job's `spent`.
fn spend(job: &mut JobRecord, worker_id: &str, energy: Option<ecobench_shared::EnergyReport>) {
    if let Some(energy) = energy {
        job.spent.push(SpentAttempt {
            worker_id: worker_id.to_string(),
            energy,
        });
    }
}

/// Gives a declined job back: pending again, the attempt not counted, the lease holder
/// remembered so that it is not offered the job again, and what loading the data cost
/// (`energy`) among the job's `spent`. `None` if `worker`'s lease does not hold the job.
pub fn decline(
    job: &JobRecord,
    lease_id: u64,
    worker: &str,
    reason: &str,
    energy: Option<ecobench_shared::EnergyReport>,
) -> Option<JobRecord> {
    let worker_id = holder(job, lease_id).filter(|w| *w == worker)?;
    let mut next = job.clone();
    next.declines.push(Decline {
        worker_id: worker_id.to_string(),
        reason: reason.to_string(),
    });
    next.attempts = job.attempts.saturating_sub(1);
    next.state = JobState::Pending;
    spend(&mut next, worker_id, energy);
    Some(next)
}

/// Voids a lease whose deadline passed: the job goes back to pending without counting a
/// failed attempt (an outage is not the job's fault), the lease remembered so that its
/// late result is still accepted; after [`MAX_LOST_LEASES`] expired leases the job is
/// failed. `None` if the job holds no expired lease.
pub fn expire(job: &JobRecord, now_unix_ms: u64) -> Option<JobRecord> {
    match &job.state {
        JobState::Leased {
            worker_id,
            lease_id,
            deadline_unix_ms,
        } if *deadline_unix_ms <= now_unix_ms => {
            let mut next = job.clone();
            next.failures.push(format!(
                "attempt {}: lease {lease_id} expired on worker {worker_id} (no heartbeat)",
                job.attempts
            ));
            next.expired.push(ExpiredLease {
                lease_id: *lease_id,
                worker_id: worker_id.clone(),
            });
            next.state = if next.expired.len() as u32 >= MAX_LOST_LEASES {
                JobState::Failed
            } else {
                JobState::Pending
            };
            Some(next)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fine_tune_waits_for_its_pretrain_job_and_fails_with_its_reason() {
        let mut pretrain = job();
        assert_eq!(readiness(None, None), Readiness::Ready(None));
        assert_eq!(readiness(Some(&pretrain), None), Readiness::Waiting);
        pretrain = lease(&pretrain, "w", 1, 10).unwrap();
        assert_eq!(readiness(Some(&pretrain), None), Readiness::Waiting);
        assert_eq!(
            readiness(Some(&pretrain), Some("ab")),
            Readiness::Ready(Some("ab".into()))
        );
        let failed = fail(&pretrain, 1, "w", failure("attempt 1: diverged", false), 3).unwrap();
        let Readiness::Doomed(reason) = readiness(Some(&failed), None) else {
            panic!()
        };
        assert!(reason.contains("pretrain job 00000000000000aa-0 failed: attempt 1: diverged"));
        let doomed = doom(&job(), reason).unwrap();
        assert_eq!(doomed.state, JobState::Failed);
        assert_eq!(doomed.attempts, 0, "no attempt spent");
        assert!(
            doom(&pretrain, String::new()).is_none(),
            "only pending jobs"
        );
    }

    #[test]
    fn a_pretrain_job_already_trained_elsewhere_is_reused_not_leased() {
        let reused = reuse(&job(), "00000000000000bb-0").unwrap();
        assert!(reused.is_finished());
        assert!(lease(&reused, "w", 1, 10).is_none());
    }
    use ecobench_shared::{JobSpec, ModelConfig, Placement, SvmConfig, SvmSolver};

    fn failure(reason: &str, retryable: bool) -> Failure<'_> {
        Failure {
            reason,
            retryable,
            energy: None,
        }
    }

    fn energy(kwh: f64) -> ecobench_shared::EnergyReport {
        ecobench_shared::EnergyReport {
            method: ecobench_shared::EnergyMethod::Model,
            duration_s: 1.0,
            cpu_time_s: 1.0,
            cpu_energy_kwh: kwh,
            ram_energy_kwh: 0.0,
            energy_kwh: kwh,
            machine_energy_kwh: None,
            avg_power_w: kwh * 3.6e6,
            carbon_intensity_g_per_kwh: 475.0,
            carbon_region: "world".into(),
            pue: 1.0,
            co2_kg: kwh * 0.475,
            tdp_w: Some(100.0),
            uncertainty: 0.4,
            sample_interval_s: 1.0,
            n_samples: 1,
            peak_rss_bytes: 1,
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_attempt_keeps_what_it_spent_credited_to_its_lease_holder() {
        let leased = lease(&job(), "w1", 1, 100).unwrap();
        let spent = Failure {
            energy: Some(energy(0.002)),
            ..failure("attempt 1: crashed", true)
        };
        let retried = fail(&leased, 1, "w1", spent.clone(), 3).unwrap();
        assert_eq!(retried.state, JobState::Pending);
        assert_eq!(retried.spent.len(), 1);
        assert_eq!(retried.spent[0].worker_id, "w1");
        assert_eq!(retried.spent[0].energy.energy_kwh, 0.002);
        assert!(
            fail(&leased, 2, "w1", spent, 3).is_none(),
            "a stale lease spends nothing"
        );
        let again = lease(&retried, "w2", 2, 100).unwrap();
        let unmeasured = fail(&again, 2, "w2", failure("attempt 2: no weights", false), 3).unwrap();
        assert_eq!(unmeasured.state, JobState::Failed);
        assert_eq!(
            unmeasured.spent, retried.spent,
            "nothing ran: nothing added"
        );
        let plain = serde_json::to_string(&job()).unwrap();
        assert!(!plain.contains("spent"), "{plain}");
    }

    fn leased_by(worker: &str, lease_id: u64) -> JobState {
        JobState::Leased {
            worker_id: worker.into(),
            lease_id,
            deadline_unix_ms: 100,
        }
    }

    fn done_by(worker: &str, lease_id: u64) -> JobState {
        JobState::Succeeded {
            worker_id: worker.into(),
            lease_id,
        }
    }

    #[test]
    fn a_seed_belongs_to_the_holder_of_its_lease_or_its_last_live_producer() {
        let everyone = |_: &str| true;
        assert_eq!(
            seed_owner(&[JobState::Pending, JobState::Failed], everyone),
            None
        );
        let states = [JobState::Pending, done_by("w1", 3), leased_by("w2", 5)];
        assert_eq!(
            seed_owner(&states, everyone),
            Some("w2"),
            "a live lease wins"
        );
        let states = [done_by("w1", 3), done_by("w2", 7), JobState::Pending];
        assert_eq!(
            seed_owner(&states, everyone),
            Some("w2"),
            "the latest producer"
        );
        assert_eq!(
            seed_owner(&states, |w| w != "w2"),
            None,
            "its producer was lost: the seed is free"
        );
        let lease_holder_lost = [leased_by("w2", 9)];
        assert_eq!(
            seed_owner(&lease_holder_lost, |_| false),
            Some("w2"),
            "a lease holds until it expires, whatever the contact"
        );
    }

    #[test]
    fn same_worker_per_seed_sends_a_seed_only_to_its_owner() {
        assert!(may_place(Placement::Any, Some("w1"), "w2"));
        assert!(may_place(Placement::SameWorkerPerSeed, None, "w2"));
        assert!(may_place(Placement::SameWorkerPerSeed, Some("w1"), "w1"));
        assert!(!may_place(Placement::SameWorkerPerSeed, Some("w1"), "w2"));
    }

    fn job() -> JobRecord {
        JobRecord::new(JobSpec {
            campaign_id: "00000000000000aa".into(),
            job_idx: 0,
            dataset: "d".into(),
            train_samples: None,
            test_samples: None,
            seed: 1,
            threads: 0,
            model: ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Dcd)),
            stage: Default::default(),
            transform: Default::default(),
            expected_dataset_sha256: None,
        })
    }

    #[test]
    fn a_decline_costs_no_attempt_and_skips_that_worker() {
        let leased = lease(&job(), "w2", 1, 100).unwrap();
        assert_eq!(leased.attempts, 1);
        assert!(
            decline(&leased, 2, "w2", "other copy", None).is_none(),
            "stale lease"
        );
        let declined = decline(&leased, 1, "w2", "other copy", None).unwrap();
        assert_eq!(declined.state, JobState::Pending);
        assert_eq!(declined.attempts, 0, "the attempt is not counted");
        assert!(declined.failures.is_empty());
        assert_eq!(
            declined.decline_notes(),
            vec!["declined by worker w2: other copy".to_string()]
        );
        assert!(declined.declined_by("w2") && !declined.declined_by("w1"));
        assert!(lease(&declined, "w2", 2, 100).is_none(), "not to w2 again");
        let again = lease(&declined, "w1", 3, 100).unwrap();
        assert_eq!(again.attempts, 1);
        let Completion::Accept(done) = complete(&again, 3, "w1") else {
            panic!("not accepted")
        };
        assert_eq!((done.attempts, done.declines.len()), (1, 1));
    }

    #[test]
    fn a_job_every_worker_declined_waits_and_records_without_declines_read_as_before() {
        let mut record = job();
        for (lease_id, worker) in [(1, "w1"), (2, "w2")] {
            record = lease(&record, worker, lease_id, 100).unwrap();
            record = decline(&record, lease_id, worker, "other copy", None).unwrap();
        }
        assert_eq!(
            (record.state.clone(), record.attempts),
            (JobState::Pending, 0)
        );
        assert!(lease(&record, "w1", 3, 100).is_none());
        assert!(
            lease(&record, "w3", 3, 100).is_some(),
            "a new worker may take it"
        );
        let plain = serde_json::to_string(&job()).unwrap();
        assert!(!plain.contains("declines"), "{plain}");
        let read: JobRecord = serde_json::from_str(&plain).unwrap();
        assert_eq!(read, job());
    }

    #[test]
    fn a_job_is_leased_once_and_completed_once() {
        let leased = lease(&job(), "w1", 10, 1_000).unwrap();
        assert!(lease(&leased, "w2", 11, 1_000).is_none());
        let Completion::Accept(done) = complete(&leased, 10, "w1") else {
            panic!("not accepted")
        };
        assert_eq!(complete(&done, 10, "w1"), Completion::Duplicate);
        assert_eq!(complete(&done, 11, "w1"), Completion::NotHolder);
        assert!(lease(&done, "w2", 12, 1_000).is_none());
    }

    #[test]
    fn expired_leases_are_not_failures_but_bounded() {
        let mut record = job();
        for lease_id in 1..=u64::from(MAX_LOST_LEASES) {
            assert_eq!(record.state, JobState::Pending, "lease {lease_id}");
            record = lease(&record, "w", lease_id, 100).unwrap();
            assert!(expire(&record, 99).is_none(), "not yet due");
            record = expire(&record, 100).unwrap();
            assert_eq!(record.failed_attempts, 0, "an outage is not a failure");
        }
        assert_eq!(record.state, JobState::Failed);
        assert_eq!(record.failures.len(), MAX_LOST_LEASES as usize);
        assert!(record.failures[2].starts_with("attempt 3: lease 3 expired on worker w"));
    }

    #[test]
    fn max_attempts_counts_failed_attempts_only() {
        let mut record = job();
        let mut lease_id = 0;
        let mut next = |record: &JobRecord| {
            lease_id += 1;
            (lease(record, "w", lease_id, 100).unwrap(), lease_id)
        };
        // An expiry and a hand-back between failures do not count.
        let (leased, id) = next(&record);
        record = expire(&leased, 100).unwrap();
        let (leased, id2) = next(&record);
        record = hand_back(&leased, id2, "w", "worker stopping", None).unwrap();
        assert_eq!((record.attempts, record.failed_attempts), (2, 0));
        for n in 1..=3 {
            let (leased, id) = next(&record);
            record = fail(&leased, id, "w", failure("crashed", true), 3).unwrap();
            assert_eq!(record.failed_attempts, n);
        }
        assert_eq!(record.state, JobState::Failed, "three failed attempts");
        assert_eq!(record.attempts, 5);
        // The first lease expired but its worker's result still counts: nobody else
        // completed the job.
        let Completion::Accept(done) = complete(&record, id, "w") else {
            panic!("a late result of an expired lease is accepted")
        };
        assert!(matches!(
            done.state,
            JobState::Succeeded { lease_id: 1, .. }
        ));
    }

    #[test]
    fn an_expired_lease_whose_worker_comes_back_holds_again_if_no_one_took_the_job() {
        let first = lease(&job(), "w1", 1, 100).unwrap();
        let requeued = expire(&first, 100).unwrap();
        assert!(revive(&requeued, 1, "w2", 500).is_none(), "not w2's lease");
        let back = revive(&requeued, 1, "w1", 500).unwrap();
        assert_eq!(back.state, first_with_deadline(&first, 500));
        assert_eq!(back.attempts, 1, "the same attempt");
        let taken = lease(&requeued, "w2", 2, 300).unwrap();
        assert!(
            revive(&taken, 1, "w1", 500).is_none(),
            "someone else took it"
        );
    }

    fn first_with_deadline(job: &JobRecord, deadline_unix_ms: u64) -> JobState {
        let JobState::Leased {
            worker_id,
            lease_id,
            ..
        } = &job.state
        else {
            panic!("not leased")
        };
        JobState::Leased {
            worker_id: worker_id.clone(),
            lease_id: *lease_id,
            deadline_unix_ms,
        }
    }

    #[test]
    fn a_late_result_wins_over_a_live_lease_and_only_the_first_counts() {
        let first = lease(&job(), "w1", 1, 100).unwrap();
        let requeued = expire(&first, 100).unwrap();
        assert_eq!(requeued.expired.len(), 1);
        let second = lease(&requeued, "w2", 2, 300).unwrap();
        assert_eq!(
            complete(&second, 1, "w2"),
            Completion::NotHolder,
            "w1's lease"
        );
        let Completion::Accept(done) = complete(&second, 1, "w1") else {
            panic!("late result refused")
        };
        assert_eq!(
            done.state,
            JobState::Succeeded {
                worker_id: "w1".into(),
                lease_id: 1
            }
        );
        assert!(
            done.failures
                .last()
                .unwrap()
                .contains("arrived later and was accepted")
        );
        // The live lease is void: its heartbeat cancels, its result is refused.
        assert!(extend(&done, 2, "w2", 400).is_none());
        assert_eq!(complete(&done, 2, "w2"), Completion::Stale);
        assert_eq!(complete(&done, 1, "w1"), Completion::Duplicate);
        assert_eq!(complete(&done, 7, "w3"), Completion::NotHolder);
    }

    #[test]
    fn stale_lease_cannot_complete_or_fail_or_extend() {
        let first = lease(&job(), "w1", 1, 100).unwrap();
        let requeued = expire(&first, 200).unwrap();
        let second = lease(&requeued, "w2", 2, 300).unwrap();
        assert!(
            extend(&second, 2, "w1", 400).is_none(),
            "only the holder extends"
        );
        assert_eq!(complete(&second, 2, "w1"), Completion::NotHolder);
        assert!(fail(&second, 2, "w1", failure("x", true), 3).is_none());
        assert!(fail(&second, 1, "w1", failure("x", true), 3).is_none());
        assert!(extend(&second, 1, "w1", 400).is_none());
        assert_eq!(
            extend(&second, 2, "w2", 400).unwrap().state,
            JobState::Leased {
                worker_id: "w2".into(),
                lease_id: 2,
                deadline_unix_ms: 400
            }
        );
    }

    #[test]
    fn a_non_retryable_failure_is_final() {
        let leased = lease(&job(), "w", 1, 100).unwrap();
        let failed = fail(&leased, 1, "w", failure("not an IDX file", false), 3).unwrap();
        assert_eq!(failed.state, JobState::Failed);
        assert_eq!(failed.failures, vec!["not an IDX file".to_string()]);
    }

    /// Random interleavings of lease, expire, complete: no lease is ever
    /// accepted twice and a succeeded job never changes again.
    #[test]
    fn random_interleavings_never_accept_twice() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next_random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let mut record = job();
            let mut accepted = 0;
            let mut next_lease = 1;
            for now in 0..50u64 {
                match next_random() % 4 {
                    0 => {
                        if let Some(r) = lease(&record, "w", next_lease, now + 3) {
                            record = r;
                            next_lease += 1;
                        }
                    }
                    1 => {
                        if let Some(r) = expire(&record, now) {
                            record = r;
                        }
                    }
                    _ => {
                        let guess = next_random() % next_lease.max(1) + 1;
                        if let Completion::Accept(r) = complete(&record, guess, "w") {
                            record = *r;
                            accepted += 1;
                        }
                    }
                }
            }
            assert!(accepted <= 1);
            assert_eq!(
                accepted == 1,
                matches!(record.state, JobState::Succeeded { .. })
            );
        }
    }
}
