//! Reports: a campaign's stored jobs and results become domain [`Run`]s (a thin
//! adapter, [`build`]), a pure aggregation turns those into the one report model
//! ([`Report`]), and every format renders from it: the terminal table, `jobs.csv`,
//! `summary.csv`, the CodeCarbon-compatible `emissions.csv`, `report.json` and
//! `report.md`. Groups are (model, full configuration, machine class): a
//! configuration's label carries its stage (` pretrain=…`, ` pretrained=…`) and the
//! job keys that differ within the campaign, and fine-tunes carry the carbon debt of
//! their weights ([`Debt`]).

use std::collections::HashMap;

use ecobench_shared::{CampaignSpec, EpochMetrics, HardwareFingerprint};
use serde::{Deserialize, Serialize};

use crate::coordinator::CampaignStatus;
use crate::scheduler::{JobRecord, JobState};
use crate::store::ResultRecord;

#[cfg(test)]
use aggregate::summarise;
pub use aggregate::{ParetoPoint, aggregate, config_hash, machine_class, pareto_front};
pub use compare::{Comparison, Delta, RowChange, compare};
pub use debt::{Debt, PretrainLedger};
pub use input::{CampaignInfo, Run, RunState};
pub use render::Format;

/// One job's line in the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct JobRow {
    /// `<campaign>-<index>`.
    pub job_id: String,
    /// Model kind.
    pub model: String,
    /// Hyper-parameter label, then the stage's (` pretrain=…`, ` pretrained=… frozen`),
    /// then the job keys that differ within the campaign (` train=…`, ` threads=…`).
    pub config: String,
    /// Short hash of the full configuration (everything in the job but seed, index and
    /// campaign): equal configurations have equal hashes in any campaign.
    pub config_hash: String,
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
    /// Training samples per second of `train_s`.
    pub samples_per_s: Option<f64>,
    /// Wall-clock seconds of the training process.
    pub duration_s: Option<f64>,
    /// CPU time of the process.
    pub cpu_time_s: Option<f64>,
    /// CPU energy of the process.
    pub cpu_energy_kwh: Option<f64>,
    /// Memory energy of the process.
    pub ram_energy_kwh: Option<f64>,
    /// Energy of the training process.
    pub energy_kwh: Option<f64>,
    /// Its CO₂e.
    pub co2_kg: Option<f64>,
    /// Mean power of the process.
    pub avg_power_w: Option<f64>,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
    /// CPU energy of the whole machine over the run (counters only).
    pub machine_cpu_kwh: Option<f64>,
    /// The part of it an idle machine would have drawn.
    pub idle_cpu_kwh: Option<f64>,
    /// Memory energy of the whole machine over the run (DRAM counter only).
    pub machine_ram_kwh: Option<f64>,
    /// The part of it idle memory would have drawn.
    pub idle_ram_kwh: Option<f64>,
    /// `powercap` or `perf_event` when counters were read; empty otherwise.
    pub rapl_interface: String,
    /// Why the job fell back to the model although counters were read; empty otherwise.
    pub fallback_reason: String,
    /// `rapl` or `model`.
    pub method: String,
    /// The worker that holds or produced it.
    pub worker: String,
    /// Machine class: CPU model and logical cores (empty when unknown).
    pub machine: String,
    /// That worker's CPU.
    pub cpu_model: String,
    /// Its logical CPUs.
    pub logical_cores: Option<u32>,
    /// Its physical cores.
    pub physical_cores: Option<u32>,
    /// Its memory.
    pub ram_bytes: Option<u64>,
    /// Its host name.
    pub hostname: String,
    /// Its operating system.
    pub os: String,
    /// Its kernel.
    pub kernel: String,
    /// What its meter measures.
    pub energy_source: String,
    /// The worker's version.
    pub worker_version: String,
    /// The worker's calibration score, GFLOP/s.
    pub calibration_gflops: Option<f64>,
    /// Intensity used for the CO₂.
    pub carbon_intensity_g_per_kwh: Option<f64>,
    /// Where the intensity comes from: ISO3 code, cloud region (`aws:eu-west-3`), `world`
    /// or `override`.
    pub carbon_region: String,
    /// Power usage effectiveness applied.
    pub pue: Option<f64>,
    /// The intensity's source in words (empty for results of older workers).
    pub carbon_source: String,
    /// The PUE's source: `--pue` or `default 1.0` (empty for results of older workers).
    pub pue_source: String,
    /// Training samples used.
    pub n_train: Option<u32>,
    /// Test samples used.
    pub n_test: Option<u32>,
    /// Solver or optimiser.
    pub solver: String,
    /// Digest of the data trained on.
    pub dataset_sha256: String,
    /// Unix milliseconds of the result.
    pub completed_unix_ms: Option<u64>,
    /// Energy of this job's attempts that produced no result (waste).
    pub spent_kwh: f64,
    /// Their CO₂e.
    pub spent_co2_kg: f64,
    /// Such attempts with a measurement.
    pub spent_attempts: usize,
    /// Why attempts failed, oldest first, then the workers that declined it and why.
    pub error: String,
    /// For a reused pretrain job, the job whose weights served instead.
    pub note: String,
    /// Per-epoch metrics of the result (empty for models without epochs).
    pub epochs: Vec<EpochMetrics>,
    /// The carbon debt of a fine-tune's weights (empty for other stages).
    #[serde(flatten)]
    pub debt: Debt,
}

/// Statistics of one figure over a group's succeeded runs; every field is `None`
/// when there is no value ("–" in tables, never 0).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Stat {
    /// Values counted.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1), from two values on.
    pub std: Option<f64>,
    /// Lower end of the 95 % Student-t interval of the mean, from two values on.
    pub ci_low: Option<f64>,
    /// Upper end of that interval.
    pub ci_high: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean without the smallest and the largest value, from five values on.
    pub trimmed_mean: Option<f64>,
}

/// Time and energy a group's runs took to first reach the campaign's
/// `target_accuracy`, from the per-epoch curves (the whole run for models without
/// epochs).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct ToTarget {
    /// The target accuracy.
    pub target: f64,
    /// Succeeded runs that reached it.
    pub n_reached: usize,
    /// Succeeded runs that did not ("not reached").
    pub n_not_reached: usize,
    /// Seconds of training until the target was reached.
    pub time_s: Stat,
    /// Energy until then.
    pub energy_kwh: Stat,
    /// True when an epoch lacked its energy reading and its energy was estimated as
    /// the run's energy × elapsed / duration.
    pub energy_estimated: bool,
}

/// A group's time and energy as they would be on the reference machine class, scaled
/// by the ratio of calibration scores (an estimate, marked as normalized).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Normalized {
    /// The reference machine class.
    pub reference: String,
    /// This class's score over the reference's.
    pub factor: f64,
    /// Fitting seconds, normalized.
    pub train_s: Stat,
    /// Energy per run, normalized.
    pub energy_kwh: Stat,
}

/// One (model, configuration, machine class) line of the summary, over seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct SummaryRow {
    /// Model kind.
    pub model: String,
    /// Hyper-parameter label, then the stage's, then the keys that differ.
    pub config: String,
    /// Short hash of the full configuration.
    pub config_hash: String,
    /// `scratch`, `pretrain` or `fine-tune`.
    pub stage: String,
    /// Machine class (CPU model and logical cores); empty when no run says.
    pub machine: String,
    /// Mean calibration score of the class's workers, GFLOP/s.
    pub calibration_gflops: Option<f64>,
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
    /// CPU energy per run.
    pub cpu_energy_kwh: Stat,
    /// Memory energy per run.
    pub ram_energy_kwh: Stat,
    /// Energy per run.
    pub energy_kwh: Stat,
    /// CO₂e per run.
    pub co2_kg: Stat,
    /// Mean power of the process.
    pub avg_power_w: Stat,
    /// Training throughput.
    pub samples_per_s: Stat,
    /// Mean accuracy per mean Wh.
    pub accuracy_per_wh: Option<f64>,
    /// Time and energy to reach the campaign's target accuracy, when it has one.
    pub to_target: Option<ToTarget>,
    /// Times and energies on the reference class, when the configuration ran on
    /// several classes and both scores are known.
    pub normalized: Option<Normalized>,
    /// Why a configuration that ran on several classes is not normalized.
    pub normalization_note: String,
    /// Not dominated beyond the intervals on accuracy and CO₂e by any other row.
    pub on_pareto_front: bool,
    /// Energy methods seen, joined by `+`.
    pub methods: String,
    /// For fine-tunes, the debt of their weights; the totals add the share to the
    /// mean own cost per run.
    #[serde(flatten)]
    pub debt: Debt,
}

impl SummaryRow {
    /// How the row is named in notes: `model config [machine]`.
    pub fn name(&self) -> String {
        if self.machine.is_empty() {
            format!("{} {}", self.model, self.config)
        } else {
            format!("{} {} [{}]", self.model, self.config, self.machine)
        }
    }
}

/// What the whole campaign used, with the waste apart.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Totals {
    /// Energy of the succeeded runs.
    pub energy_kwh: f64,
    /// Their CO₂e.
    pub co2_kg: f64,
    /// Energy of attempts that produced no result (failed, or retried elsewhere).
    pub waste_kwh: f64,
    /// Their CO₂e.
    pub waste_co2_kg: f64,
    /// Such attempts with a measurement.
    pub wasted_attempts: usize,
}

/// A campaign's report: the one model every format renders from.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Report {
    /// Job counts (not serialised: the JSON has the rows).
    #[serde(skip)]
    pub status: CampaignStatus,
    /// The campaign's id.
    pub campaign_id: String,
    /// The campaign's name.
    pub name: String,
    /// The campaign's target accuracy, if any.
    pub target_accuracy: Option<f64>,
    /// The machine class normalized figures refer to (that with most results), when
    /// some configuration ran on several classes.
    pub reference_machine: Option<String>,
    /// One row per (model, configuration, machine class).
    pub summary: Vec<SummaryRow>,
    /// Pairs of rows (by [`SummaryRow::name`]) whose accuracy and CO₂e intervals both
    /// overlap: not distinguishable by this campaign.
    pub indistinguishable: Vec<[String; 2]>,
    /// The campaign's totals, waste apart.
    pub totals: Totals,
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
    let runs = input::runs(jobs, results, workers, ledger);
    let mut report = aggregate(&CampaignInfo::of(spec), &runs);
    report.status = status(spec, jobs);
    report
}

mod aggregate;
mod compare;
mod debt;
mod emissions;
mod input;
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

    /// Reads a report back from its `report.json`.
    pub fn from_json(json: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(json)
    }
}

#[cfg(test)]
mod aggregate_tests;
#[cfg(test)]
mod tests;

pub mod charts;
pub mod html;
mod page;
