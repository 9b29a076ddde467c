//! The aggregation (pure): runs → job rows → groups by (model, full configuration,
//! machine class) with their statistics, targets, normalization, Pareto front and
//! totals.

use ecobench_shared::{JobSpec, Stage};
use sha2::{Digest, Sha256};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::debt;
use super::input::{CampaignInfo, Run, RunState};
use super::{JobRow, Normalized, Report, Stat, SummaryRow, ToTarget, Totals};

impl Stat {
    /// The statistics of `values` (non-finite values are left out).
    pub fn of(values: &[f64]) -> Stat {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let (Some(&min), Some(&max)) = (sorted.first(), sorted.last()) else {
            return Stat::default();
        };
        if min == max {
            // Identical values: exactly no spread, whatever rounding would say.
            return Stat {
                n,
                mean: Some(min),
                std: (n > 1).then_some(0.0),
                ci_low: (n > 1).then_some(min),
                ci_high: (n > 1).then_some(min),
                min: Some(min),
                max: Some(max),
                trimmed_mean: (n >= 5).then_some(min),
            };
        }
        let mean = (sorted.iter().sum::<f64>() / n as f64).clamp(min, max);
        let mut stat = Stat {
            n,
            mean: Some(mean),
            min: Some(min),
            max: Some(max),
            ..Stat::default()
        };
        if n > 1 {
            let var = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let std = var.sqrt();
            let half = t_quantile_975(n - 1) * std / (n as f64).sqrt();
            stat.std = Some(std);
            stat.ci_low = Some(mean - half);
            stat.ci_high = Some(mean + half);
        }
        if n >= 5 {
            let inner = &sorted[1..n - 1];
            stat.trimmed_mean =
                Some((inner.iter().sum::<f64>() / inner.len() as f64).clamp(min, max));
        }
        stat
    }

    /// Half the width of the 95 % interval, from two values on.
    pub fn half_width(&self) -> Option<f64> {
        Some((self.ci_high? - self.ci_low?) / 2.0)
    }

    /// The interval, or the single value as a point; `None` without values.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        match (self.ci_low, self.ci_high, self.mean) {
            (Some(lo), Some(hi), _) => Some((lo, hi)),
            (_, _, Some(mean)) => Some((mean, mean)),
            _ => None,
        }
    }

    /// Every figure multiplied by `factor` (> 0).
    pub fn scaled(&self, factor: f64) -> Stat {
        let f = |v: Option<f64>| v.map(|v| v * factor);
        Stat {
            n: self.n,
            mean: f(self.mean),
            std: f(self.std),
            ci_low: f(self.ci_low),
            ci_high: f(self.ci_high),
            min: f(self.min),
            max: f(self.max),
            trimmed_mean: f(self.trimmed_mean),
        }
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom.
fn t_quantile_975(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df as f64)
        .expect("df ≥ 1 is a valid Student-t")
        .inverse_cdf(0.975)
}

/// A short hash of everything in `spec` that makes its configuration: not the seed,
/// index, campaign or pinned dataset digest, and the stage by its label (a fine-tune's
/// pretrain job index and artifact differ per seed).
pub fn config_hash(spec: &JobSpec) -> String {
    let key = serde_json::json!({
        "dataset": spec.dataset,
        "train_samples": spec.train_samples,
        "test_samples": spec.test_samples,
        "threads": spec.threads,
        "model": spec.model,
        "stage": spec.stage.label(),
        "transform": spec.transform,
    });
    let digest = Sha256::digest(key.to_string().as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The job keys outside the model's label, with their values.
fn extra_keys(spec: &JobSpec) -> [(&'static str, String); 5] {
    let count = |n: Option<u32>| n.map_or("all".to_string(), |n| n.to_string());
    let transform = spec.transform.label();
    [
        ("dataset", spec.dataset.clone()),
        ("train", count(spec.train_samples)),
        ("test", count(spec.test_samples)),
        ("threads", spec.threads.to_string()),
        (
            "transform",
            if transform.is_empty() {
                "none".into()
            } else {
                transform
            },
        ),
    ]
}

/// `cpu (N threads)`, the machine class of a fingerprint.
pub fn machine_class(cpu_model: &str, logical_cores: u32) -> String {
    format!("{} ({logical_cores} threads)", cpu_model.trim())
}

fn stage_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::Scratch => "scratch",
        Stage::Pretrain { .. } => "pretrain",
        Stage::FineTune { .. } => "fine-tune",
    }
}

/// The report of `campaign` over its `runs` (the status counts are left default).
pub fn aggregate(campaign: &CampaignInfo, runs: &[Run]) -> Report {
    // Keys outside the model label that differ within the campaign join the label.
    let varying: Vec<&str> = (0..5)
        .filter(|&k| {
            let mut values = runs.iter().map(|r| extra_keys(&r.spec)[k].1.clone());
            let first = values.next();
            values.any(|v| Some(v) != first)
        })
        .map(|k| ["dataset", "train", "test", "threads", "transform"][k])
        .collect();
    let jobs: Vec<JobRow> = runs.iter().map(|run| job_row(run, &varying)).collect();
    let mut summary = summarise_with_target(&jobs, campaign.target_accuracy);
    let reference_machine = normalize(&mut summary);
    // A pretrain job's accuracy is on its source task, not the campaign's: it is not
    // compared (its cost reaches the fine-tunes as their debt).
    let points: Vec<ParetoPoint> = summary
        .iter()
        .map(|row| match row.stage.as_str() {
            "pretrain" => ParetoPoint {
                accuracy: None,
                co2: None,
            },
            _ => ParetoPoint::of(row),
        })
        .collect();
    for (row, on) in summary.iter_mut().zip(pareto_front(&points)) {
        row.on_pareto_front = on;
    }
    let indistinguishable = indistinguishable(&summary, &points);
    let totals = totals(&jobs);
    Report {
        status: Default::default(),
        campaign_id: campaign.id.clone(),
        name: campaign.name.clone(),
        target_accuracy: campaign.target_accuracy,
        reference_machine,
        summary,
        indistinguishable,
        totals,
        jobs,
    }
}

fn job_row(run: &Run, varying: &[&str]) -> JobRow {
    let spec = &run.spec;
    let (status, note) = match &run.state {
        RunState::Pending => ("pending", String::new()),
        RunState::Running => ("running", String::new()),
        RunState::Succeeded => ("succeeded", String::new()),
        RunState::Failed => ("failed", String::new()),
        RunState::Reused { job_id } => (
            "reused",
            format!("reused the weights trained by job {job_id}"),
        ),
    };
    let mut config = format!("{}{}", spec.model.label(), spec.stage.label());
    for (key, value) in extra_keys(spec) {
        if varying.contains(&key) {
            config += &format!(" {key}={value}");
        }
    }
    let train = run.result.as_ref().map(|r| &r.train);
    let energy = run.result.as_ref().map(|r| &r.energy);
    let fp = run.fingerprint.as_ref();
    let text = |v: Option<&String>| v.cloned().unwrap_or_default();
    JobRow {
        job_id: spec.job_id(),
        model: spec.model.kind().to_string(),
        config,
        config_hash: config_hash(spec),
        stage: stage_name(&spec.stage).to_string(),
        seed: spec.seed,
        status: status.to_string(),
        attempts: run.attempts,
        accuracy: train.map(|t| t.accuracy),
        train_s: train.map(|t| t.train_s),
        samples_per_s: train.map(|t| t.samples_per_s),
        duration_s: energy.map(|e| e.duration_s),
        cpu_time_s: energy.map(|e| e.cpu_time_s),
        cpu_energy_kwh: energy.map(|e| e.cpu_energy_kwh),
        ram_energy_kwh: energy.map(|e| e.ram_energy_kwh),
        energy_kwh: energy.map(|e| e.energy_kwh),
        co2_kg: energy.map(|e| e.co2_kg),
        avg_power_w: energy.map(|e| e.avg_power_w),
        peak_rss_bytes: energy.map(|e| e.peak_rss_bytes),
        machine_cpu_kwh: energy.and_then(|e| e.machine_cpu_kwh),
        idle_cpu_kwh: energy.and_then(|e| e.idle_cpu_kwh),
        machine_ram_kwh: energy.and_then(|e| e.machine_ram_kwh),
        idle_ram_kwh: energy.and_then(|e| e.idle_ram_kwh),
        rapl_interface: text(energy.and_then(|e| e.rapl_interface.as_ref())),
        fallback_reason: text(energy.and_then(|e| e.fallback_reason.as_ref())),
        method: energy.map_or(String::new(), |e| e.method.as_str().to_string()),
        worker: run.worker_id.clone(),
        machine: fp.map_or(String::new(), |f| {
            machine_class(&f.cpu_model, f.logical_cores)
        }),
        cpu_model: text(fp.map(|f| &f.cpu_model)),
        logical_cores: fp.map(|f| f.logical_cores),
        physical_cores: fp.map(|f| f.physical_cores),
        ram_bytes: fp.map(|f| f.ram_bytes),
        hostname: text(fp.map(|f| &f.hostname)),
        os: text(fp.map(|f| &f.os)),
        kernel: text(fp.map(|f| &f.kernel)),
        energy_source: text(fp.map(|f| &f.energy_source)),
        worker_version: text(fp.map(|f| &f.version)),
        calibration_gflops: fp.and_then(|f| f.calibration_gflops),
        carbon_intensity_g_per_kwh: energy.map(|e| e.carbon_intensity_g_per_kwh),
        carbon_region: energy.map_or(String::new(), |e| e.carbon_region.clone()),
        pue: energy.map(|e| e.pue),
        carbon_source: text(energy.and_then(|e| e.carbon_source.as_ref())),
        pue_source: text(energy.and_then(|e| e.pue_source.as_ref())),
        n_train: train.map(|t| t.n_train),
        n_test: train.map(|t| t.n_test),
        solver: train.map_or(String::new(), |t| t.solver.clone()),
        dataset_sha256: train.map_or(String::new(), |t| t.dataset_sha256.clone()),
        completed_unix_ms: run.completed_unix_ms,
        spent_kwh: sum(run.spent.iter().map(|e| e.energy_kwh)),
        spent_co2_kg: sum(run.spent.iter().map(|e| e.co2_kg)),
        spent_attempts: run.spent.len(),
        error: run.errors.join(" | "),
        note,
        epochs: train.map_or(Vec::new(), |t| t.epochs.clone()),
        debt: run.debt.clone(),
    }
}

/// Groups job rows by (model, configuration hash, machine class), in order of first
/// appearance; with no target accuracy.
#[cfg(test)]
pub fn summarise(rows: &[JobRow]) -> Vec<SummaryRow> {
    summarise_with_target(rows, None)
}

/// Time and energy `row` took to first reach `target`: (seconds, kWh, estimated).
fn row_reach(row: &JobRow, target: f64) -> Option<(f64, f64, bool)> {
    if row.epochs.is_empty() {
        return (row.accuracy? >= target).then_some((row.train_s?, row.energy_kwh?, false));
    }
    let epoch = row.epochs.iter().find(|e| e.test_accuracy >= target)?;
    Some(match epoch.energy_kwh {
        Some(kwh) => (epoch.elapsed_s, kwh, false),
        None => {
            let (energy, duration) = (row.energy_kwh?, row.duration_s.unwrap_or(0.0));
            let share = if duration > 0.0 {
                (epoch.elapsed_s / duration).min(1.0)
            } else {
                1.0
            };
            (epoch.elapsed_s, energy * share, true)
        }
    })
}

/// (model, configuration hash, machine class).
type GroupKey = (String, String, String);

fn summarise_with_target(rows: &[JobRow], target: Option<f64>) -> Vec<SummaryRow> {
    // Runs without a machine (pending, failed before measuring) join their
    // configuration's first class.
    let class_of = |row: &JobRow| -> String {
        if !row.machine.is_empty() {
            return row.machine.clone();
        }
        rows.iter()
            .find(|r| {
                r.model == row.model && r.config_hash == row.config_hash && !r.machine.is_empty()
            })
            .map_or(String::new(), |r| r.machine.clone())
    };
    let mut groups: Vec<(GroupKey, Vec<&JobRow>)> = Vec::new();
    for row in rows {
        let key = (row.model.clone(), row.config_hash.clone(), class_of(row));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    groups
        .into_iter()
        .map(|((model, config_hash, machine), members)| {
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
            let (energy_kwh, co2_kg, accuracy) = (
                figure(|r| r.energy_kwh),
                figure(|r| r.co2_kg),
                figure(|r| r.accuracy),
            );
            let representative = ok.first().unwrap_or(&members[0]);
            let scores: Vec<f64> = ok.iter().filter_map(|r| r.calibration_gflops).collect();
            let to_target = target.map(|target| {
                let reached: Vec<(f64, f64, bool)> =
                    ok.iter().filter_map(|r| row_reach(r, target)).collect();
                ToTarget {
                    target,
                    n_reached: reached.len(),
                    n_not_reached: ok.len() - reached.len(),
                    time_s: Stat::of(&reached.iter().map(|r| r.0).collect::<Vec<_>>()),
                    energy_kwh: Stat::of(&reached.iter().map(|r| r.1).collect::<Vec<_>>()),
                    energy_estimated: reached.iter().any(|r| r.2),
                }
            });
            SummaryRow {
                model,
                config: members[0].config.clone(),
                config_hash,
                stage: members[0].stage.clone(),
                machine,
                calibration_gflops: (!scores.is_empty())
                    .then(|| scores.iter().sum::<f64>() / scores.len() as f64),
                n_succeeded: ok.len(),
                n_failed: members.iter().filter(|r| r.status == "failed").count(),
                n_reused: members.iter().filter(|r| r.status == "reused").count(),
                accuracy_per_wh: match (accuracy.mean, energy_kwh.mean) {
                    (Some(a), Some(e)) if e > 0.0 => Some(a / (e * 1000.0)),
                    _ => None,
                },
                accuracy,
                train_s: figure(|r| r.train_s),
                cpu_energy_kwh: figure(|r| r.cpu_energy_kwh),
                ram_energy_kwh: figure(|r| r.ram_energy_kwh),
                energy_kwh,
                co2_kg,
                avg_power_w: figure(|r| r.avg_power_w),
                samples_per_s: figure(|r| r.samples_per_s),
                to_target,
                normalized: None,
                normalization_note: String::new(),
                on_pareto_front: false,
                methods: methods.join("+"),
                debt: debt::group_debt(&representative.debt, (energy_kwh.mean, co2_kg.mean)),
            }
        })
        .collect()
}

/// Normalizes the rows of configurations that ran on several machine classes to the
/// class with the most succeeded runs (its own rows stay as they are); returns that class when any was needed.
fn normalize(summary: &mut [SummaryRow]) -> Option<String> {
    let multi = |row: &SummaryRow, all: &[SummaryRow]| {
        all.iter()
            .filter(|r| {
                r.model == row.model
                    && r.config_hash == row.config_hash
                    && !r.machine.is_empty()
                    && r.n_succeeded > 0
            })
            .count()
            > 1
    };
    if !summary.iter().any(|r| multi(r, summary)) {
        return None;
    }
    let mut classes: Vec<(String, usize, Option<f64>)> = Vec::new();
    for row in summary.iter().filter(|r| !r.machine.is_empty()) {
        match classes.iter_mut().find(|c| c.0 == row.machine) {
            Some(c) => {
                c.1 += row.n_succeeded;
                c.2 = c.2.or(row.calibration_gflops);
            }
            None => classes.push((row.machine.clone(), row.n_succeeded, row.calibration_gflops)),
        }
    }
    let reference = classes
        .iter()
        .fold(
            None::<&(String, usize, Option<f64>)>,
            |best, c| match best {
                Some(b) if b.1 >= c.1 => Some(b),
                _ => Some(c),
            },
        )?
        .clone();
    let snapshot = summary.to_vec();
    for row in summary.iter_mut() {
        // The reference class's own rows need no normalizing.
        if row.n_succeeded == 0 || row.machine == reference.0 || !multi(row, &snapshot) {
            continue;
        }
        match (row.calibration_gflops, reference.2) {
            (Some(score), Some(reference_score)) if score > 0.0 && reference_score > 0.0 => {
                let factor = score / reference_score;
                row.normalized = Some(Normalized {
                    reference: reference.0.clone(),
                    factor,
                    train_s: row.train_s.scaled(factor),
                    energy_kwh: row.energy_kwh.scaled(factor),
                });
            }
            (score, _) => {
                let missing = if score.is_none() {
                    &row.machine
                } else {
                    &reference.0
                };
                row.normalization_note = format!(
                    "not normalized to {}: no calibration score for {missing} (workers from \
                     before calibration; restart them to measure it)",
                    reference.0
                );
            }
        }
    }
    Some(reference.0)
}

/// A summary row on the accuracy-vs-CO₂e plane: its intervals (or its single value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoPoint {
    /// Accuracy interval, higher is better; `None` without a succeeded run.
    pub accuracy: Option<(f64, f64)>,
    /// CO₂e interval, lower is better.
    pub co2: Option<(f64, f64)>,
}

impl ParetoPoint {
    /// The point of a summary row.
    pub fn of(row: &SummaryRow) -> ParetoPoint {
        ParetoPoint {
            accuracy: row.accuracy.bounds(),
            co2: row.co2_kg.bounds(),
        }
    }

    /// True when `self` is better than `other` beyond both intervals: more accurate
    /// than `other`'s interval allows, and less CO₂e.
    pub fn dominates(&self, other: &ParetoPoint) -> bool {
        match (self.accuracy, self.co2, other.accuracy, other.co2) {
            (Some(a), Some(c), Some(oa), Some(oc)) => a.0 > oa.1 && c.1 < oc.0,
            _ => false,
        }
    }

    /// True when both intervals overlap those of `other`.
    pub fn overlaps(&self, other: &ParetoPoint) -> bool {
        let overlap = |a: (f64, f64), b: (f64, f64)| a.0 <= b.1 && b.0 <= a.1;
        match (self.accuracy, self.co2, other.accuracy, other.co2) {
            (Some(a), Some(c), Some(oa), Some(oc)) => overlap(a, oa) && overlap(c, oc),
            _ => false,
        }
    }
}

/// For each point with both figures, whether no other point dominates it (points
/// without figures are never on the front).
pub fn pareto_front(points: &[ParetoPoint]) -> Vec<bool> {
    points
        .iter()
        .map(|p| {
            p.accuracy.is_some()
                && p.co2.is_some()
                && !points.iter().any(|other| other.dominates(p))
        })
        .collect()
}

fn indistinguishable(summary: &[SummaryRow], points: &[ParetoPoint]) -> Vec<[String; 2]> {
    let mut pairs = Vec::new();
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            if points[i].overlaps(&points[j]) {
                pairs.push([summary[i].name(), summary[j].name()]);
            }
        }
    }
    pairs
}

/// The sum of `values`, 0 (not −0, which `Iterator::sum` gives) when there are none.
fn sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |a, b| a + b)
}

fn totals(jobs: &[JobRow]) -> Totals {
    let ok = jobs.iter().filter(|r| r.status == "succeeded");
    Totals {
        energy_kwh: sum(ok.clone().filter_map(|r| r.energy_kwh)),
        co2_kg: sum(ok.filter_map(|r| r.co2_kg)),
        waste_kwh: sum(jobs.iter().map(|r| r.spent_kwh)),
        waste_co2_kg: sum(jobs.iter().map(|r| r.spent_co2_kg)),
        wasted_attempts: jobs.iter().map(|r| r.spent_attempts).sum(),
    }
}
