//! A campaign pinned to its dataset fingerprints: the first result of a campaign on a
//! dataset pins the fingerprint of the copy it trained on, leases carry it, and a worker
//! with another copy declines the job, which goes to another worker at no attempt's cost.

use ecobench_shared::{JobResult, JobSpec};
use tracing::{info, instrument, warn};

use super::{Coordinator, CoordinatorError, parse_job_id};
use crate::scheduler::{self, JobRecord, JobState};
use crate::store::PinRecord;

impl Coordinator {
    /// Gives a job back that its worker declines (its copy of the dataset is not the
    /// campaign's): pending again without spending an attempt, and never offered to that
    /// worker again. Returns true: another worker will run it.
    #[instrument(skip_all, fields(job = %job_id))]
    pub async fn decline(
        &self,
        worker_id: &str,
        job_id: &str,
        lease_id: u64,
        reason: &str,
        energy: Option<ecobench_shared::EnergyReport>,
    ) -> Result<bool, CoordinatorError> {
        if let Some(energy) = &energy {
            ecobench_shared::validate::energy(energy).map_err(|err| {
                CoordinatorError::InvalidArgument(format!("decline of job {job_id} refused: {err}"))
            })?;
        }
        let key = parse_job_id(job_id)?;
        let guard = self.changes.lock().await;
        let job = self.stored_job(&key, job_id)?;
        let Some(next) = scheduler::decline(&job, lease_id, worker_id, reason, energy) else {
            return Err(CoordinatorError::FailedPrecondition(format!(
                "lease {lease_id} of worker {worker_id} does not hold job {job_id}: decline refused"
            )));
        };
        self.swap(&key, &job, &next)?;
        let worker = next.declines.last().map(|d| d.worker_id.as_str());
        warn!(worker, %reason, "job declined");
        self.publish(ecobench_shared::events::CampaignEvent::JobDeclined {
            job_id: job_id.to_string(),
            worker_id: worker.unwrap_or_default().to_string(),
            reason: reason.to_string(),
        });
        drop(guard);
        self.store.flush().await?;
        self.work.notify_waiters();
        Ok(true)
    }

    /// The leased job with the fingerprint its campaign is pinned to for its dataset.
    pub(super) fn with_pin(&self, mut spec: JobSpec) -> Result<JobSpec, CoordinatorError> {
        spec.expected_dataset_sha256 = self
            .store
            .pin(&spec.campaign_id, &spec.dataset)?
            .map(|pin| pin.dataset_sha256);
        Ok(spec)
    }

    /// Checks a result's dataset fingerprint against the campaign's pin: the pin to store
    /// with it if it is the campaign's first result on that dataset. A result on another
    /// copy (leased before the pin existed) is refused, and its job given back as declined
    /// by the worker that trained it, so that another worker runs it.
    pub(super) async fn check_pin(
        &self,
        key: &[u8],
        job: &JobRecord,
        lease_id: u64,
        result: &JobResult,
    ) -> Result<Option<PinRecord>, CoordinatorError> {
        let found = &result.train.dataset_sha256;
        let holder = match &job.state {
            JobState::Leased { worker_id, .. } => worker_id.clone(),
            _ => String::new(),
        };
        if found.is_empty() {
            return Ok(None);
        }
        let spec = &job.spec;
        let Some(pin) = self.store.pin(&spec.campaign_id, &spec.dataset)? else {
            info!(dataset = %spec.dataset, dataset_sha256 = %found, "pinning the campaign to this dataset copy");
            return Ok(Some(PinRecord {
                campaign_id: spec.campaign_id.clone(),
                dataset: spec.dataset.clone(),
                dataset_sha256: found.clone(),
                job_id: spec.job_id(),
            }));
        };
        if pin.dataset_sha256 == *found {
            return Ok(None);
        }
        let reason = format!(
            "the result of job {} was trained on a copy of dataset '{}' with fingerprint \
             {found}, but campaign {} is pinned to fingerprint {} (the copy job {} trained on)",
            spec.job_id(),
            spec.dataset,
            spec.campaign_id,
            pin.dataset_sha256,
            pin.job_id
        );
        // The refused result's training is waste: its energy joins the job's `spent`.
        if let Some(next) =
            scheduler::decline(job, lease_id, &holder, &reason, Some(result.energy.clone()))
            && self.store.swap_job(key, job, &next)?
        {
            self.store.flush().await?;
            self.work.notify_waiters();
        }
        warn!(worker = %holder, %reason, "result on another dataset copy refused");
        Err(CoordinatorError::FailedPrecondition(format!(
            "{reason}: result refused, the job goes to another worker"
        )))
    }
}
