//! Reports: aggregation of a campaign's results (pure) and rendering as a
//! terminal table, `jobs.csv`, `summary.csv` and `report.json`.

use std::collections::HashMap;

use ecobench_shared::{CampaignSpec, HardwareFingerprint};
use serde::Serialize;

use crate::coordinator::CampaignStatus;
use crate::scheduler::{JobRecord, JobState};
use crate::store::ResultRecord;

/// One job's line in the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobRow {
    /// `<campaign>-<index>`.
    pub job_id: String,
    /// Model kind.
    pub model: String,
    /// Hyper-parameter label.
    pub config: String,
    /// The job's seed.
    pub seed: u64,
    /// `pending`, `running`, `succeeded` or `failed`.
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
    /// Hyper-parameter label.
    pub config: String,
    /// Seeds that succeeded.
    pub n_succeeded: usize,
    /// Seeds that failed for good.
    pub n_failed: usize,
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

/// Builds the report from stored jobs, results and worker fingerprints.
pub fn build(
    spec: &CampaignSpec,
    jobs: &[JobRecord],
    results: &HashMap<u32, ResultRecord>,
    workers: &HashMap<String, HardwareFingerprint>,
) -> Report {
    let rows: Vec<JobRow> = jobs
        .iter()
        .map(|job| job_row(job, results.get(&job.spec.job_idx), workers))
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
    let (status, worker) = match &job.state {
        JobState::Pending => ("pending", String::new()),
        JobState::Leased { worker_id, .. } => ("running", worker_id.clone()),
        JobState::Succeeded { worker_id, .. } => ("succeeded", worker_id.clone()),
        JobState::Failed => ("failed", String::new()),
        JobState::Reused { job_id } => ("reused", job_id.clone()),
    };
    let train = result.map(|r| &r.result.train);
    let energy = result.map(|r| &r.result.energy);
    JobRow {
        job_id: job.spec.job_id(),
        model: job.spec.model.kind().to_string(),
        config: job.spec.model.label(),
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
    }
}

/// Groups job rows by (model, config), in order of first appearance.
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
            SummaryRow {
                model,
                config,
                n_succeeded: ok.len(),
                n_failed: members.iter().filter(|r| r.status == "failed").count(),
                accuracy: figure(|r| r.accuracy),
                train_s: figure(|r| r.train_s),
                energy_kwh: figure(|r| r.energy_kwh),
                co2_kg: figure(|r| r.co2_kg),
                methods: methods.join("+"),
            }
        })
        .collect()
}

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
mod tests {
    use super::*;

    fn row(model: &str, status: &str, accuracy: f64) -> JobRow {
        JobRow {
            job_id: "x-0".into(),
            model: model.into(),
            config: "c=1".into(),
            seed: 1,
            status: status.into(),
            attempts: 1,
            accuracy: (status == "succeeded").then_some(accuracy),
            train_s: Some(2.0),
            energy_kwh: Some(1e-4),
            co2_kg: Some(5e-5),
            method: "model".into(),
            worker: "w".into(),
            cpu_model: "cpu".into(),
            carbon_intensity_g_per_kwh: Some(475.0),
            carbon_region: "world".into(),
            n_train: Some(10),
            n_test: Some(10),
            solver: "s".into(),
            dataset_sha256: "d1".into(),
            error: String::new(),
        }
    }

    #[test]
    fn identical_results_have_zero_spread() {
        let rows = vec![row("cnn", "succeeded", 0.8); 4];
        let summary = summarise(&rows);
        assert_eq!(summary.len(), 1);
        assert_eq!(
            summary[0].accuracy,
            Stat {
                mean: 0.8,
                std: 0.0,
                n: 4
            }
        );
    }

    #[test]
    fn failed_runs_are_counted_not_averaged() {
        let rows = vec![
            row("cnn", "succeeded", 0.6),
            row("cnn", "succeeded", 0.8),
            row("cnn", "failed", 0.0),
        ];
        let summary = summarise(&rows);
        assert_eq!(summary[0].n_succeeded, 2);
        assert_eq!(summary[0].n_failed, 1);
        assert!((summary[0].accuracy.mean - 0.7).abs() < 1e-12);
        assert!((summary[0].accuracy.std - 0.02f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn different_copies_of_the_dataset_are_flagged() {
        let mut other = row("cnn", "succeeded", 0.7);
        other.dataset_sha256 = "d2".into();
        let jobs = vec![
            row("cnn", "succeeded", 0.8),
            other,
            row("cnn", "failed", 0.0),
        ];
        let report = Report {
            status: CampaignStatus::default(),
            campaign_id: "c".into(),
            name: "n".into(),
            summary: summarise(&jobs),
            jobs,
        };
        assert_eq!(report.dataset_digests(), vec!["d1", "d2"]);
        assert!(
            report
                .table()
                .contains("warning: the jobs trained on 2 different copies"),
            "{}",
            report.table()
        );
    }

    #[test]
    fn csv_quotes_fields_with_commas_and_quotes() {
        let mut out = String::new();
        render::push_csv_line(&mut out, &["a".into(), "b,c".into(), "say \"hi\"".into()]);
        assert_eq!(out, "a,\"b,c\",\"say \"\"hi\"\"\"\n");
    }
}
