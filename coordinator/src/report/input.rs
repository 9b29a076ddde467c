//! The aggregation's input: one [`Run`] per job, built from the store's records by
//! [`runs`] (the only part of the report that knows the store).

use std::collections::HashMap;

use ecobench_shared::{CampaignSpec, EnergyReport, HardwareFingerprint, JobResult, JobSpec};

use super::debt::{self, Debt, PretrainLedger};
use crate::scheduler::{JobRecord, JobState};
use crate::store::ResultRecord;

/// What a report needs to know about the campaign itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CampaignInfo {
    /// The campaign's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The accuracy whose time and energy to reach the report measures.
    pub target_accuracy: Option<f64>,
}

impl CampaignInfo {
    /// The report's view of a campaign.
    pub fn of(spec: &CampaignSpec) -> CampaignInfo {
        CampaignInfo {
            id: spec.id.clone(),
            name: spec.name.clone(),
            target_accuracy: spec.target_accuracy,
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunState {
    /// Waiting for a worker.
    #[default]
    Pending,
    /// Held by a worker.
    Running,
    /// Done with a result.
    Succeeded,
    /// Given up on.
    Failed,
    /// A pretrain job whose weights were trained before by `job_id`.
    Reused {
        /// The job that trained them.
        job_id: String,
    },
}

/// One job of a campaign, as the aggregation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The job.
    pub spec: JobSpec,
    /// Where it stands.
    pub state: RunState,
    /// Leases granted.
    pub attempts: u32,
    /// Why attempts failed, then who declined and why.
    pub errors: Vec<String>,
    /// The result, once succeeded.
    pub result: Option<JobResult>,
    /// Unix milliseconds of the result.
    pub completed_unix_ms: Option<u64>,
    /// The worker holding or having produced it.
    pub worker_id: String,
    /// That worker's hardware (the result's own record of it, else the worker's).
    pub fingerprint: Option<HardwareFingerprint>,
    /// What attempts that produced no result cost.
    pub spent: Vec<EnergyReport>,
    /// The carbon debt of a fine-tune's weights.
    pub debt: Debt,
}

/// The runs of a campaign's `jobs`, in order.
pub fn runs(
    jobs: &[JobRecord],
    results: &HashMap<u32, ResultRecord>,
    workers: &HashMap<String, HardwareFingerprint>,
    ledger: &PretrainLedger,
) -> Vec<Run> {
    let local_uses = debt::local_uses(jobs);
    jobs.iter()
        .map(|job| {
            let record = results.get(&job.spec.job_idx);
            let (state, worker_id) = match &job.state {
                JobState::Pending => (RunState::Pending, String::new()),
                JobState::Leased { worker_id, .. } => (RunState::Running, worker_id.clone()),
                JobState::Succeeded { worker_id, .. } => (RunState::Succeeded, worker_id.clone()),
                JobState::Failed => (RunState::Failed, String::new()),
                JobState::Reused { job_id } => (
                    RunState::Reused {
                        job_id: job_id.clone(),
                    },
                    String::new(),
                ),
            };
            // A failed job's machine is that of its last measured attempt.
            let worker_id = if state == RunState::Failed {
                job.spent
                    .last()
                    .map_or(String::new(), |s| s.worker_id.clone())
            } else {
                worker_id
            };
            let own = record.map(|r| r.result.energy.energy_kwh);
            let own_co2 = record.map(|r| r.result.energy.co2_kg);
            Run {
                spec: job.spec.clone(),
                state,
                attempts: job.attempts,
                errors: job
                    .failures
                    .iter()
                    .cloned()
                    .chain(job.decline_notes())
                    .collect(),
                result: record.map(|r| r.result.clone()),
                completed_unix_ms: record.map(|r| r.completed_unix_ms),
                fingerprint: record
                    .and_then(|r| r.fingerprint.clone())
                    .or_else(|| workers.get(&worker_id).cloned()),
                worker_id,
                spent: job.spent.iter().map(|s| s.energy.clone()).collect(),
                debt: debt::job_debt(job, jobs, ledger, &local_uses, (own, own_co2)),
            }
        })
        .collect()
}
