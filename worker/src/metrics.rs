//! The worker's Prometheus metrics (`worker --metrics ADDR`): the running job's power and
//! energy as the meter counts them after each sample, its progress from the epoch lines
//! of the `worker exec` child, and the jobs done. The names are listed in
//! [`ecobench_shared::metrics::WORKER_METRICS`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use ecobench_shared::{EnergyReport, Progress};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::energy::LiveJoules;

/// Joules in a kWh.
const J_PER_KWH: f64 = 3.6e6;

/// Where a figure comes from (`rapl` counters or the `model`) and what it covers
/// (`cpu` or `ram`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabels {
    source: String,
    part: String,
}

/// The running job.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    model: String,
}

/// How a job ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The worker's metrics and their registry; clones share them.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    registry: Arc<Registry>,
    power_w: Family<PartLabels, Gauge<f64, AtomicU64>>,
    energy_j: Family<PartLabels, Counter<f64, AtomicU64>>,
    progress: Gauge<f64, AtomicU64>,
    epoch: Gauge,
    info: Family<JobLabels, Gauge>,
    samples_per_s: Gauge<f64, AtomicU64>,
    jobs: Family<OutcomeLabel, Counter>,
}

impl Default for WorkerMetrics {
    fn default() -> WorkerMetrics {
        WorkerMetrics::new()
    }
}

impl WorkerMetrics {
    /// Registers every metric, at zero.
    pub fn new() -> WorkerMetrics {
        let mut registry = Registry::with_prefix("ecobench_worker");
        let metrics = WorkerMetrics {
            registry: Arc::new(Registry::default()),
            power_w: Family::default(),
            energy_j: Family::default(),
            progress: Gauge::default(),
            epoch: Gauge::default(),
            info: Family::default(),
            samples_per_s: Gauge::default(),
            jobs: Family::default(),
        };
        registry.register_with_unit(
            "power",
            "Power of the running job over the last sample, by source (rapl, model) and part (cpu, ram); 0 between jobs",
            Unit::Other("watts".into()),
            metrics.power_w.clone(),
        );
        registry.register_with_unit(
            "energy",
            "Energy of the jobs run, by source and part",
            Unit::Joules,
            metrics.energy_j.clone(),
        );
        registry.register_with_unit(
            "job_progress",
            "Epochs done over epochs of the running job, 0 to 1",
            Unit::Other("ratio".into()),
            metrics.progress.clone(),
        );
        registry.register(
            "job_epoch",
            "Last epoch the running job finished",
            metrics.epoch.clone(),
        );
        registry.register(
            "job_info",
            "1 for the running job, labelled with its id and model",
            metrics.info.clone(),
        );
        registry.register(
            "samples_per_second",
            "Training samples per second of the running job's last epoch",
            metrics.samples_per_s.clone(),
        );
        registry.register("jobs", "Jobs run, by outcome", metrics.jobs.clone());
        // Zero series, so that the families show before the first job.
        for part in ["cpu", "ram"] {
            let labels = PartLabels {
                source: "model".into(),
                part: part.into(),
            };
            let _ = metrics.power_w.get_or_create(&labels);
            let _ = metrics.energy_j.get_or_create(&labels);
        }
        let _ = metrics.jobs.get_or_create(&OutcomeLabel {
            outcome: "succeeded".into(),
        });
        WorkerMetrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        ecobench_shared::metrics::encode(&self.registry)
    }

    /// Starts following job `job_id` of `model`.
    pub fn job_started(&self, job_id: &str, model: &str) -> JobMetrics {
        self.info.clear();
        self.info
            .get_or_create(&JobLabels {
                job: job_id.into(),
                model: model.into(),
            })
            .set(1);
        self.progress.set(0.0);
        self.epoch.set(0);
        self.samples_per_s.set(0.0);
        JobMetrics {
            metrics: self.clone(),
            counted: LiveJoules::default(),
            at: Instant::now(),
            powered: Vec::new(),
        }
    }
}

/// The figures of one running job, from [`WorkerMetrics::job_started`] to
/// [`JobMetrics::finished`].
#[derive(Debug)]
pub struct JobMetrics {
    metrics: WorkerMetrics,
    /// What the meter had counted at the last sample.
    counted: LiveJoules,
    at: Instant,
    /// The power series this job set, zeroed when it ends.
    powered: Vec<PartLabels>,
}

impl JobMetrics {
    /// Takes the meter's totals after a sample: the power since the last one, the energy added.
    pub fn sampled(&mut self, now: LiveJoules) {
        let seconds = self.at.elapsed().as_secs_f64();
        self.at = Instant::now();
        for (part, source, j, before) in [
            ("cpu", now.cpu_source, now.cpu_j, self.counted.cpu_j),
            ("ram", now.ram_source, now.ram_j, self.counted.ram_j),
        ] {
            let labels = PartLabels {
                source: source.into(),
                part: part.into(),
            };
            // The meter may fall back to the model mid-run: never count backwards.
            let added_j = (j - before).max(0.0);
            self.metrics.energy_j.get_or_create(&labels).inc_by(added_j);
            if seconds > 0.0 {
                self.metrics
                    .power_w
                    .get_or_create(&labels)
                    .set(added_j / seconds);
            }
            if !self.powered.contains(&labels) {
                self.powered.push(labels);
            }
        }
        self.counted = now;
    }

    /// Takes the progress of an epoch line.
    pub fn progress(&self, progress: &Progress) {
        let ratio = f64::from(progress.epoch) / f64::from(progress.n_epochs.max(1));
        self.metrics.progress.set(ratio.clamp(0.0, 1.0));
        self.metrics.epoch.set(i64::from(progress.epoch));
        self.metrics.samples_per_s.set(progress.samples_per_s);
    }

    /// Ends the job: adds what the final report counts beyond the samples, zeroes the
    /// power, counts the outcome.
    pub fn finished(self, energy: Option<&EnergyReport>, outcome: &str) {
        let totals_j = energy.map(|e| (e.cpu_energy_kwh * J_PER_KWH, e.ram_energy_kwh * J_PER_KWH));
        self.finished_j(totals_j, outcome)
    }

    /// [`JobMetrics::finished`] with the final CPU and RAM joules.
    fn finished_j(mut self, totals_j: Option<(f64, f64)>, outcome: &str) {
        if let Some((cpu_j, ram_j)) = totals_j {
            let last = LiveJoules {
                cpu_j,
                ram_j,
                ..self.counted
            };
            self.sampled(last);
        }
        self.ended(outcome)
    }

    fn ended(self, outcome: &str) {
        let metrics = &self.metrics;
        for labels in &self.powered {
            metrics.power_w.get_or_create(labels).set(0.0);
        }
        if outcome == "succeeded" {
            metrics.progress.set(1.0);
        }
        metrics.info.clear();
        metrics
            .jobs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(series))
    }

    #[test]
    fn a_job_shows_its_power_energy_and_progress_and_ends_at_zero_power() {
        let metrics = WorkerMetrics::new();
        let mut job = metrics.job_started("00ab-3", "cnn");
        let text = metrics.render();
        assert_eq!(
            line(&text, "ecobench_worker_job_info{"),
            Some("ecobench_worker_job_info{job=\"00ab-3\",model=\"cnn\"} 1")
        );
        job.sampled(LiveJoules {
            cpu_j: 30.0,
            ram_j: 3.0,
            cpu_source: "rapl",
            ram_source: "model",
        });
        job.progress(&Progress {
            epoch: 1,
            n_epochs: 4,
            loss: 1.0,
            accuracy: 0.5,
            samples_per_s: 250.0,
        });
        let text = metrics.render();
        let power = line(
            &text,
            "ecobench_worker_power_watts{source=\"rapl\",part=\"cpu\"}",
        )
        .expect("cpu power from rapl");
        let watts: f64 = power.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(watts > 0.0, "{power}");
        assert!(
            text.contains("ecobench_worker_job_progress_ratio 0.25"),
            "{text}"
        );
        assert!(
            text.contains("ecobench_worker_samples_per_second 250.0"),
            "{text}"
        );

        // The final report adds what the samples had not counted yet.
        job.finished_j(Some((40.0, 3.0)), "succeeded");
        let text = metrics.render();
        assert!(
            text.contains("ecobench_worker_energy_joules_total{source=\"rapl\",part=\"cpu\"} 40.0"),
            "{text}"
        );
        assert!(
            text.contains("ecobench_worker_power_watts{source=\"rapl\",part=\"cpu\"} 0.0"),
            "{text}"
        );
        assert!(line(&text, "ecobench_worker_job_info{").is_none(), "{text}");
        assert!(
            text.contains("ecobench_worker_jobs_total{outcome=\"succeeded\"} 1"),
            "{text}"
        );
    }
}
