//! Read-only questions to the coordinator (campaigns, workers, reports), and
//! the plausibility check of results.

use std::collections::HashMap;

use ecobench_shared::{HardwareFingerprint, JobResult};

use super::{CampaignStatus, Coordinator, CoordinatorError};
use crate::report::{self, PretrainLedger, Report};
use crate::store::{CampaignRecord, ResultRecord, WorkerRecord};

/// What the metrics show of the coordinator's state, cheap enough for every scrape (the
/// job counts come from the store's in-memory indexes).
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    /// Jobs in each state, every state named.
    pub jobs_by_state: Vec<(&'static str, u64)>,
    /// Workers that called within a lease's lifetime plus one long poll.
    pub workers_alive: usize,
    /// Seconds since the least recently renewed live lease was granted or last
    /// heartbeated; 0 without leases.
    pub oldest_lease_age_s: f64,
}

impl Coordinator {
    /// The figures of the metrics' gauges, now.
    pub fn gauges(&self) -> Result<Gauges, CoordinatorError> {
        let now = super::now_unix_ms();
        let workers_alive = self
            .store
            .workers()?
            .iter()
            .filter(|worker| self.alive(worker, now))
            .count();
        // A deadline is the lease's grant or last heartbeat plus its lifetime.
        let oldest_lease_age_s = self
            .store
            .earliest_lease_deadline()
            .map_or(0.0, |deadline| {
                (now + self.config.lease_ms).saturating_sub(deadline) as f64 / 1000.0
            });
        Ok(Gauges {
            jobs_by_state: self.store.job_counts(),
            workers_alive,
            oldest_lease_age_s,
        })
    }

    /// Finds a campaign by id, or by name (the latest submitted of that name).
    pub fn resolve(&self, campaign: &str) -> Result<CampaignRecord, CoordinatorError> {
        if let Some(record) = self.store.campaign(campaign)? {
            return Ok(record);
        }
        let all = self.store.campaigns()?;
        all.iter()
            .filter(|record| record.spec.name == campaign)
            .max_by_key(|record| record.submitted_unix_ms)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<String> = all
                    .iter()
                    .map(|r| format!("{} ({})", r.spec.name, r.spec.id))
                    .collect();
                CoordinatorError::NotFound(format!(
                    "no campaign with id or name {campaign:?}; known: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    /// Job counts of a campaign.
    pub fn status(&self, campaign: &str) -> Result<CampaignStatus, CoordinatorError> {
        let record = self.resolve(campaign)?;
        let jobs = self.store.jobs_of(&record.spec.id)?;
        Ok(report::status(&record.spec, &jobs))
    }

    /// Every campaign's counts.
    pub fn list_campaigns(&self) -> Result<Vec<CampaignStatus>, CoordinatorError> {
        let mut statuses = Vec::new();
        for record in self.store.campaigns()? {
            let jobs = self.store.jobs_of(&record.spec.id)?;
            statuses.push(report::status(&record.spec, &jobs));
        }
        Ok(statuses)
    }

    /// Every worker that ever joined.
    pub fn list_workers(&self) -> Result<Vec<WorkerRecord>, CoordinatorError> {
        Ok(self.store.workers()?)
    }

    /// The campaign's report from what is stored now.
    pub fn report(&self, campaign: &str) -> Result<Report, CoordinatorError> {
        let record = self.resolve(campaign)?;
        let jobs = self.store.jobs_of(&record.spec.id)?;
        let results: HashMap<u32, ResultRecord> = self
            .store
            .results_of(&record.spec.id)?
            .into_iter()
            .collect();
        let workers: HashMap<String, HardwareFingerprint> = self
            .store
            .workers()?
            .into_iter()
            .map(|w| (w.worker_id, w.fingerprint))
            .collect();
        let ledger = self.pretrain_ledger()?;
        Ok(report::build(
            &record.spec,
            &jobs,
            &results,
            &workers,
            &ledger,
        ))
    }

    /// The completed pretrainings and the uses of their weights over every campaign
    /// (see [`PretrainLedger::count_uses`] for what counts).
    fn pretrain_ledger(&self) -> Result<PretrainLedger, CoordinatorError> {
        let mut ledger = PretrainLedger {
            pretrains: self
                .store
                .pretrains()?
                .into_iter()
                .map(|record| (record.key.clone(), record))
                .collect(),
            ..PretrainLedger::default()
        };
        for campaign in self.store.campaigns()? {
            ledger.count_uses(&self.store.jobs_of(&campaign.spec.id)?);
        }
        Ok(ledger)
    }
}

/// Refuses results that cannot be true (NaN, negative energy, accuracy outside [0, 1]),
/// naming the field.
pub(super) fn check_result(job_id: &str, result: &JobResult) -> Result<(), CoordinatorError> {
    ecobench_shared::validate::train(&result.train)
        .and_then(|()| ecobench_shared::validate::energy(&result.energy))
        .map_err(|err| {
            CoordinatorError::InvalidArgument(format!(
                "result of job {job_id} refused: {err}; figures must be finite and in range"
            ))
        })
}

#[cfg(test)]
mod tests;
