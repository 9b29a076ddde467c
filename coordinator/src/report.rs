//! Reports: aggregation of a campaign's results (pure) and rendering as a
//! terminal table, `jobs.csv`, `summary.csv` and `report.json`. Groups never mix
//! stages: a configuration's label carries its stage (` pretrain=…`, ` pretrained=…`),
//! and fine-tunes carry the carbon debt of their weights ([`Debt`]).

use std::collections::HashMap;

use ecobench_shared::{CampaignSpec, HardwareFingerprint, Stage};
use serde::Serialize;

use crate::coordinator::CampaignStatus;
use crate::scheduler::{JobRecord, JobState};
use crate::store::ResultRecord;

pub use debt::{Debt, PretrainLedger};
pub use render::Format;

/// One job's line in the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRow {
    /// `<campaign>-<index>`.
    pub job_id: String,
    /// Model kind.
    pub model: String,
    /// Hyper-parameter label, then the stage's (` pretrain=…`, ` pretrained=… frozen`).
    pub config: String,
    /// `scratch`, `pretrain` or `fine-tune`.
    pub stage: String,
    /// The job's seed.
    pub seed: u64,
    /// `pending`, `running`, `succeeded`, `failed`, or `reused` (a pretrain job whose
    /// weights had already been trained, see `note`).
    pub status: String,
    /// Leases granted so far.
    pub attempts: u32,
    /// Test accuracy, once succeeded.
    pub accuracy: Option<f64>,
    /// Fitting seconds.
    pub train_s: Option<f64>,
    /// Energy of the training process.
    pub energy_kwh: Option<f64>,
    /// Its CO₂e.
    pub co2_kg: Option<f64>,
    /// `rapl` or `model`.
    pub method: String,
    /// The worker that holds or produced it.
    pub worker: String,
    /// That worker's CPU.
    pub cpu_model: String,
    /// Intensity used for the CO₂.
    pub carbon_intensity_g_per_kwh: Option<f64>,
    /// Where the intensity comes from.
    pub carbon_region: String,
    /// Training samples used.
    pub n_train: Option<u32>,
    /// Test samples used.
    pub n_test: Option<u32>,
    /// Solver or optimiser.
    pub solver: String,
    /// Digest of the data trained on.
    pub dataset_sha256: String,
    /// Why attempts failed, oldest first, then the workers that declined it and why.
    pub error: String,
    /// For a reused pretrain job, the job whose weights served instead.
    pub note: String,
    /// The carbon debt of a fine-tune's weights (empty for other stages).
    #[serde(flatten)]
    pub debt: Debt,
}

/// Mean, sample standard deviation and count of one figure.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Stat {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub std: f64,
    /// Values counted.
    pub n: usize,
}

impl Stat {
    /// The statistics of `values` (std is 0 for fewer than two values).
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Stat {
            mean,
            std: var.sqrt(),
            n,
        }
    }
}

/// One (model, configuration) line of the summary, over seeds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryRow {
    /// Model kind.
    pub model: String,
    /// Hyper-parameter label, then the stage's.
    pub config: String,
    /// `scratch`, `pretrain` or `fine-tune`.
    pub stage: String,
    /// Seeds that succeeded.
    pub n_succeeded: usize,
    /// Seeds that failed for good.
    pub n_failed: usize,
    /// Pretrain jobs that reused weights trained before instead of running.
    pub n_reused: usize,
    /// Test accuracy over the succeeded seeds.
    pub accuracy: Stat,
    /// Fitting seconds.
    pub train_s: Stat,
    /// Energy per run.
    pub energy_kwh: Stat,
    /// CO₂e per run.
    pub co2_kg: Stat,
    /// Energy methods seen, joined by `+`.
    pub methods: String,
    /// For fine-tunes, the debt of their weights; the totals add the share to the
    /// mean own cost per run.
    #[serde(flatten)]
    pub debt: Debt,
}

/// A campaign's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Job counts (not serialised: the JSON has the rows).
    #[serde(skip)]
    pub status: CampaignStatus,
    /// The campaign's id.
    pub campaign_id: String,
    /// The campaign's name.
    pub name: String,
    /// One row per (model, configuration).
    pub summary: Vec<SummaryRow>,
    /// One row per job.
    pub jobs: Vec<JobRow>,
}

/// Job counts by state.
pub fn status(spec: &CampaignSpec, jobs: &[JobRecord]) -> CampaignStatus {
    let mut status = CampaignStatus {
        campaign_id: spec.id.clone(),
        name: spec.name.clone(),
        n_jobs: jobs.len() as u32,
        ..CampaignStatus::default()
    };
    for job in jobs {
        match job.state {
            JobState::Pending => status.pending += 1,
            JobState::Leased { .. } => status.leased += 1,
            JobState::Succeeded { .. } | JobState::Reused { .. } => status.succeeded += 1,
            JobState::Failed => status.failed += 1,
        }
    }
    status
}

/// Builds the report from stored jobs, results and worker fingerprints; `ledger`
/// holds the pretrainings and the uses of their weights over every campaign.
pub fn build(
    spec: &CampaignSpec,
    jobs: &[JobRecord],
    results: &HashMap<u32, ResultRecord>,
    workers: &HashMap<String, HardwareFingerprint>,
    ledger: &PretrainLedger,
) -> Report {
    let local_uses = debt::local_uses(jobs);
    let rows: Vec<JobRow> = jobs
        .iter()
        .map(|job| {
            let mut row = job_row(job, results.get(&job.spec.job_idx), workers);
            row.debt = debt::job_debt(job, jobs, ledger, &local_uses, (row.energy_kwh, row.co2_kg));
            row
        })
        .collect();
    Report {
        status: status(spec, jobs),
        campaign_id: spec.id.clone(),
        name: spec.name.clone(),
        summary: summarise(&rows),
        jobs: rows,
    }
}

fn job_row(
    job: &JobRecord,
    result: Option<&ResultRecord>,
    workers: &HashMap<String, HardwareFingerprint>,
) -> JobRow {
    let (status, worker, note) = match &job.state {
        JobState::Pending => ("pending", String::new(), String::new()),
        JobState::Leased { worker_id, .. } => ("running", worker_id.clone(), String::new()),
        JobState::Succeeded { worker_id, .. } => ("succeeded", worker_id.clone(), String::new()),
        JobState::Failed => ("failed", String::new(), String::new()),
        JobState::Reused { job_id } => (
            "reused",
            String::new(),
            format!("reused the weights trained by job {job_id}"),
        ),
    };
    let train = result.map(|r| &r.result.train);
    let energy = result.map(|r| &r.result.energy);
    JobRow {
        job_id: job.spec.job_id(),
        model: job.spec.model.kind().to_string(),
        config: format!("{}{}", job.spec.model.label(), job.spec.stage.label()),
        stage: stage_name(&job.spec.stage).to_string(),
        seed: job.spec.seed,
        status: status.to_string(),
        attempts: job.attempts,
        accuracy: train.map(|t| t.accuracy),
        train_s: train.map(|t| t.train_s),
        energy_kwh: energy.map(|e| e.energy_kwh),
        co2_kg: energy.map(|e| e.co2_kg),
        method: energy.map_or(String::new(), |e| e.method.as_str().to_string()),
        cpu_model: workers
            .get(&worker)
            .map_or(String::new(), |f| f.cpu_model.clone()),
        worker,
        carbon_intensity_g_per_kwh: energy.map(|e| e.carbon_intensity_g_per_kwh),
        carbon_region: energy.map_or(String::new(), |e| e.carbon_region.clone()),
        n_train: train.map(|t| t.n_train),
        n_test: train.map(|t| t.n_test),
        solver: train.map_or(String::new(), |t| t.solver.clone()),
        dataset_sha256: train.map_or(String::new(), |t| t.dataset_sha256.clone()),
        error: job
            .failures
            .iter()
            .cloned()
            .chain(job.decline_notes())
            .collect::<Vec<_>>()
            .join(" | "),
        note,
        debt: Debt::default(),
    }
}

fn stage_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::Scratch => "scratch",
        Stage::Pretrain { .. } => "pretrain",
        Stage::FineTune { .. } => "fine-tune",
    }
}

/// Groups job rows by (model, config), in order of first appearance (the config label
/// carries the stage, so a group is of one stage).
pub fn summarise(rows: &[JobRow]) -> Vec<SummaryRow> {
    let mut groups: Vec<((String, String), Vec<&JobRow>)> = Vec::new();
    for row in rows {
        let key = (row.model.clone(), row.config.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    groups
        .into_iter()
        .map(|((model, config), members)| {
            let ok: Vec<&JobRow> = members
                .iter()
                .copied()
                .filter(|r| r.status == "succeeded")
                .collect();
            let figure = |f: fn(&JobRow) -> Option<f64>| {
                Stat::of(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let mut methods: Vec<&str> = ok.iter().map(|r| r.method.as_str()).collect();
            methods.sort_unstable();
            methods.dedup();
            let (energy_kwh, co2_kg) = (figure(|r| r.energy_kwh), figure(|r| r.co2_kg));
            let mean = |stat: Stat| (stat.n > 0).then_some(stat.mean);
            let representative = ok.first().unwrap_or(&members[0]);
            SummaryRow {
                model,
                config,
                stage: members[0].stage.clone(),
                n_succeeded: ok.len(),
                n_failed: members.iter().filter(|r| r.status == "failed").count(),
                n_reused: members.iter().filter(|r| r.status == "reused").count(),
                accuracy: figure(|r| r.accuracy),
                train_s: figure(|r| r.train_s),
                energy_kwh,
                co2_kg,
                methods: methods.join("+"),
                debt: debt::group_debt(&representative.debt, (mean(energy_kwh), mean(co2_kg))),
            }
        })
        .collect()
}

mod debt;
mod render;

impl Report {
    /// The distinct dataset digests of the succeeded jobs, in order of appearance:
    /// more than one means that workers trained on different copies of the data.
    pub fn dataset_digests(&self) -> Vec<&str> {
        let mut digests: Vec<&str> = Vec::new();
        for row in self.jobs.iter().filter(|r| r.status == "succeeded") {
            if !digests.contains(&row.dataset_sha256.as_str()) {
                digests.push(&row.dataset_sha256);
            }
        }
        digests
    }
}

#[cfg(test)]
mod tests;

pub mod charts;
pub mod html;
