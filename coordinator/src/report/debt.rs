//! The carbon debt of pretrained weights: what making a fine-tune's weights cost
//! (measured by its pretrain job, or declared with uploaded weights), and that cost
//! shared among every job that used the weights, across campaigns (pure).

use std::collections::HashMap;

use ecobench_shared::{PretrainSource, Stage};
use serde::{Deserialize, Serialize};

use crate::scheduler::{JobRecord, JobState};
use crate::store::PretrainRecord;

/// What a report needs to know about pretrained weights beyond its own campaign.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PretrainLedger {
    /// Completed pretrainings, by content key (the store's `pretrains` tree).
    pub pretrains: HashMap<String, PretrainRecord>,
    /// Uses of each artifact (SHA-256 of the weights), as [`PretrainLedger::count_uses`]
    /// counts them, over every campaign in the store.
    pub uses: HashMap<String, u32>,
}

impl PretrainLedger {
    /// Adds the uses among `jobs` (one campaign's, or any set of jobs): a use is a
    /// fine-tune job whose state is `Succeeded` and whose stored spec names the
    /// artifact in `artifact_sha256` (set at lease time for a task source, at
    /// submission for a file). Pending, running and failed fine-tunes do not count,
    /// nor do pretrain jobs, reused or not.
    pub fn count_uses<'a>(&mut self, jobs: impl IntoIterator<Item = &'a JobRecord>) {
        for job in jobs {
            if let Some(sha) = use_of(job) {
                *self.uses.entry(sha.to_string()).or_default() += 1;
            }
        }
    }

    /// The completed pretraining that produced the artifact `sha256`.
    fn producer(&self, sha256: &str) -> Option<&PretrainRecord> {
        self.pretrains
            .values()
            .find(|record| record.artifact_sha256 == sha256)
    }
}

/// The carbon debt of a fine-tune's weights; every field is empty for scratch and
/// pretrain jobs (a pretrain job's own cost *is* the debt).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Debt {
    /// SHA-256 of the weights the fine-tune starts from, once known.
    pub weights_sha256: String,
    /// Energy of making the weights, kWh: measured by the pretrain job, or declared
    /// for uploaded weights; `None` while unknown.
    pub pretrain_kwh: Option<f64>,
    /// CO₂e of making the weights, kg; `None` while unknown.
    pub pretrain_co2_kg: Option<f64>,
    /// `measured by <job id>`, `declared` or `unknown`; empty when not a fine-tune.
    pub pretrain_basis: String,
    /// The uses the pretraining cost is shared among (see
    /// [`PretrainLedger::count_uses`]), at least this report's; `None` while the
    /// weights are unknown.
    pub pretrain_uses: Option<u32>,
    /// `pretrain_kwh / pretrain_uses`.
    pub debt_share_kwh: Option<f64>,
    /// `pretrain_co2_kg / pretrain_uses`.
    pub debt_share_co2_kg: Option<f64>,
    /// The job's own energy plus its share.
    pub total_with_share_kwh: Option<f64>,
    /// The job's own CO₂e plus its share.
    pub total_with_share_co2_kg: Option<f64>,
}

/// `campaign`'s succeeded fine-tunes per artifact, to make sure a report counts at
/// least its own uses whatever the ledger says.
pub(super) fn local_uses(campaign: &[JobRecord]) -> HashMap<String, u32> {
    let mut local = PretrainLedger::default();
    local.count_uses(campaign);
    local.uses
}

/// The debt of `job`, one of the `campaign`'s jobs, whose own cost is `own` (kWh, kg).
pub(super) fn job_debt(
    job: &JobRecord,
    campaign: &[JobRecord],
    ledger: &PretrainLedger,
    local_uses: &HashMap<String, u32>,
    own: (Option<f64>, Option<f64>),
) -> Debt {
    let Stage::FineTune {
        source,
        pretrain_job,
        artifact_sha256,
        declared,
        ..
    } = &job.spec.stage
    else {
        return Debt::default();
    };
    let (weights, cost, basis) = match source {
        PretrainSource::File { sha256, .. } => {
            let known = declared.kwh.is_some() || declared.co2_kg.is_some();
            let basis = if known { "declared" } else { "unknown" };
            (
                Some(artifact_sha256.clone().unwrap_or_else(|| sha256.clone())),
                (declared.kwh, declared.co2_kg),
                basis.to_string(),
            )
        }
        PretrainSource::Task { .. } => {
            let record = pretrain_job
                .and_then(|idx| campaign.iter().find(|j| j.spec.job_idx == idx))
                .and_then(|pretrain| match &pretrain.spec.stage {
                    Stage::Pretrain { key, .. } => ledger.pretrains.get(key),
                    _ => None,
                })
                .or_else(|| artifact_sha256.as_deref().and_then(|s| ledger.producer(s)));
            match record {
                Some(r) => (
                    Some(artifact_sha256.clone().unwrap_or(r.artifact_sha256.clone())),
                    (Some(r.energy_kwh), Some(r.co2_kg)),
                    format!("measured by {}", r.job_id),
                ),
                None => (artifact_sha256.clone(), (None, None), "unknown".into()),
            }
        }
    };
    let uses = weights.as_ref().map(|sha| {
        let everywhere = ledger.uses.get(sha).copied().unwrap_or(0);
        everywhere.max(local_uses.get(sha).copied().unwrap_or(0))
    });
    let share = |cost: Option<f64>| match (cost, uses) {
        (Some(cost), Some(n)) if n > 0 => Some(cost / f64::from(n)),
        _ => None,
    };
    let (share_kwh, share_co2) = (share(cost.0), share(cost.1));
    Debt {
        weights_sha256: weights.unwrap_or_default(),
        pretrain_kwh: cost.0,
        pretrain_co2_kg: cost.1,
        pretrain_basis: basis,
        pretrain_uses: uses,
        debt_share_kwh: share_kwh,
        debt_share_co2_kg: share_co2,
        total_with_share_kwh: own.0.zip(share_kwh).map(|(a, b)| a + b),
        total_with_share_co2_kg: own.1.zip(share_co2).map(|(a, b)| a + b),
    }
}

/// A group's debt: that of `representative` (the group's first succeeded fine-tune,
/// else its first member), with the totals as the group's mean own cost plus the share.
pub(super) fn group_debt(representative: &Debt, mean_own: (Option<f64>, Option<f64>)) -> Debt {
    Debt {
        total_with_share_kwh: mean_own
            .0
            .zip(representative.debt_share_kwh)
            .map(|(a, b)| a + b),
        total_with_share_co2_kg: mean_own
            .1
            .zip(representative.debt_share_co2_kg)
            .map(|(a, b)| a + b),
        ..representative.clone()
    }
}

/// The artifact a job used, when it counts as a use.
fn use_of(job: &JobRecord) -> Option<&str> {
    match (&job.state, &job.spec.stage) {
        (
            JobState::Succeeded { .. },
            Stage::FineTune {
                artifact_sha256: Some(sha),
                ..
            },
        ) => Some(sha),
        _ => None,
    }
}
