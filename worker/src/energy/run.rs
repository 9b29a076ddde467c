//! One metered process: samples taken while it runs, and the report once it has been reaped.
//!
//! With counters, each interval between two samples attributes to the process
//! `Δpackage × min(1, Δprocess CPU ticks / Δmachine busy ticks)`, and DRAM likewise; the
//! machine's energy is the sum of the package and DRAM deltas. The last interval ends after
//! the child was reaped, when `/proc/<pid>` is gone: its process ticks are the exact total
//! from `getrusage(RUSAGE_CHILDREN)` minus what the samples already saw.

use std::path::PathBuf;
use std::time::Instant;

use ecobench_shared::carbon;
use ecobench_shared::{EnergyMethod, EnergyReport};

use super::model::{self, J_PER_KWH};
use super::procfs::{self, ChildUsage, MachineJiffies};
use super::{Meter, SAMPLE_INTERVAL, Source, TdpSource, ZoneKind};

/// The metering of one child process, from [`Meter::start`] to [`MeterRun::finish`].
#[derive(Debug)]
pub struct MeterRun {
    pid: u32,
    proc_root: PathBuf,
    source: Source,
    tdp_w: f64,
    tdp_known: bool,
    logical_cores: u32,
    g_per_kwh: f64,
    region_label: String,
    carbon_source: String,
    pue: f64,
    pue_source: String,
    clock_ticks_per_s: f64,
    child_usage: fn() -> ChildUsage,
    usage_at_start: ChildUsage,
    started: Instant,
    /// Last reading of each zone's counter (same order as the zones).
    last_counters_uj: Vec<Option<u64>>,
    last_jiffies: Option<MachineJiffies>,
    /// Process CPU ticks seen by the latest sample.
    last_process_ticks: u64,
    machine_package_uj: u64,
    machine_dram_uj: u64,
    process_cpu_j: f64,
    process_dram_j: f64,
    rss_sum_bytes: f64,
    n_rss_samples: u32,
    peak_rss_bytes: u64,
    n_samples: u32,
}

impl MeterRun {
    pub(super) fn start(meter: &Meter, pid: u32) -> MeterRun {
        let mut run = MeterRun {
            pid,
            proc_root: meter.config.proc_root.clone(),
            source: meter.source.clone(),
            tdp_w: meter.tdp.tdp_w,
            tdp_known: meter.tdp.source != TdpSource::CoresFallback,
            logical_cores: meter.cpu_info.logical_cores,
            g_per_kwh: meter.carbon.g_per_kwh,
            region_label: meter.carbon.label.clone(),
            carbon_source: meter.carbon.source.clone(),
            pue: meter.pue,
            pue_source: meter.pue_source.clone(),
            clock_ticks_per_s: meter.clock_ticks_per_s,
            child_usage: meter.child_usage,
            usage_at_start: (meter.child_usage)(),
            started: Instant::now(),
            last_counters_uj: Vec::new(),
            last_jiffies: None,
            last_process_ticks: 0,
            machine_package_uj: 0,
            machine_dram_uj: 0,
            process_cpu_j: 0.0,
            process_dram_j: 0.0,
            rss_sum_bytes: 0.0,
            n_rss_samples: 0,
            peak_rss_bytes: 0,
            n_samples: 0,
        };
        if let Source::Rapl(zones) = &run.source {
            run.last_counters_uj = zones.iter().map(|zone| zone.read_uj().ok()).collect();
            run.last_jiffies = procfs::machine_jiffies(&run.proc_root).ok();
        }
        run
    }

    /// Reads counters, machine and process CPU time and memory; call it every
    /// [`SAMPLE_INTERVAL`] while the child runs.
    pub fn sample(&mut self) {
        self.n_samples += 1;
        let process_ticks = procfs::process_ticks(&self.proc_root, self.pid).ok();
        if let Ok(memory) = procfs::process_memory(&self.proc_root, self.pid) {
            self.rss_sum_bytes += memory.rss_bytes as f64;
            self.n_rss_samples += 1;
            self.peak_rss_bytes = self.peak_rss_bytes.max(memory.peak_rss_bytes);
        }
        let process_ticks = process_ticks.unwrap_or(self.last_process_ticks);
        self.step(process_ticks);
    }

    /// Ends the run after the child was reaped: the exact CPU time, the totals and the CO₂.
    pub fn finish(mut self) -> EnergyReport {
        let usage_now = (self.child_usage)();
        let rusage_cpu_s = (usage_now.cpu_time_s - self.usage_at_start.cpu_time_s).max(0.0);
        let sampled_cpu_s = self.last_process_ticks as f64 / self.clock_ticks_per_s;
        let cpu_time_s = rusage_cpu_s.max(sampled_cpu_s);
        self.step((cpu_time_s * self.clock_ticks_per_s).round() as u64);
        let duration_s = self.started.elapsed().as_secs_f64();

        if self.peak_rss_bytes == 0 {
            self.peak_rss_bytes = usage_now.max_rss_bytes;
        }
        let (cpu_j, ram_j) = self.joules(cpu_time_s, duration_s);
        let (method, machine_energy_kwh, uncertainty) = match &self.source {
            Source::Rapl(zones) => {
                let has_dram = zones.iter().any(|zone| zone.kind == ZoneKind::Dram);
                let ram_uncertainty = if has_dram {
                    model::RAPL_UNCERTAINTY
                } else {
                    model::RAM_UNCERTAINTY
                };
                let machine_uj = self.machine_package_uj + self.machine_dram_uj;
                (
                    EnergyMethod::Rapl,
                    Some(machine_uj as f64 / 1e6 / J_PER_KWH),
                    model::combined_uncertainty(&[
                        (cpu_j, model::RAPL_UNCERTAINTY),
                        (ram_j, ram_uncertainty),
                    ]),
                )
            }
            Source::Model => {
                let cpu_uncertainty = if self.tdp_known {
                    model::CPU_UNCERTAINTY_KNOWN_TDP
                } else {
                    model::CPU_UNCERTAINTY_FALLBACK_TDP
                };
                let uncertainty = model::combined_uncertainty(&[
                    (cpu_j, cpu_uncertainty),
                    (ram_j, model::RAM_UNCERTAINTY),
                ]);
                (EnergyMethod::Model, None, uncertainty)
            }
        };
        let energy_kwh = (cpu_j + ram_j) / J_PER_KWH;
        EnergyReport {
            method,
            duration_s,
            cpu_time_s,
            cpu_energy_kwh: cpu_j / J_PER_KWH,
            ram_energy_kwh: ram_j / J_PER_KWH,
            energy_kwh,
            machine_energy_kwh,
            avg_power_w: if duration_s > 0.0 {
                energy_kwh * J_PER_KWH / duration_s
            } else {
                0.0
            },
            carbon_intensity_g_per_kwh: self.g_per_kwh,
            carbon_region: self.region_label.clone(),
            pue: self.pue,
            co2_kg: carbon::co2_kg(energy_kwh, self.pue, self.g_per_kwh),
            tdp_w: (method == EnergyMethod::Model).then_some(self.tdp_w),
            uncertainty,
            sample_interval_s: SAMPLE_INTERVAL.as_secs_f64(),
            n_samples: self.n_samples,
            peak_rss_bytes: self.peak_rss_bytes,
            carbon_source: Some(self.carbon_source.clone()),
            pue_source: Some(self.pue_source.clone()),
        }
    }

    /// The process's energy so far (kWh, CPU and RAM as [`MeterRun::finish`] counts them),
    /// after taking a sample: what a job's epoch line records while the child still runs.
    /// The CPU time is the sampled one, never more than `finish` will count.
    pub fn energy_so_far_kwh(&mut self) -> f64 {
        self.sample();
        let cpu_time_s = self.last_process_ticks as f64 / self.clock_ticks_per_s;
        let (cpu_j, ram_j) = self.joules(cpu_time_s, self.started.elapsed().as_secs_f64());
        (cpu_j + ram_j) / J_PER_KWH
    }

    /// CPU and RAM joules for `cpu_time_s` of process CPU time over `duration_s`: the
    /// counters' share with RAPL (RAM by the model without a DRAM zone), else the models.
    fn joules(&self, cpu_time_s: f64, duration_s: f64) -> (f64, f64) {
        let mean_rss_bytes = if self.n_rss_samples > 0 {
            self.rss_sum_bytes / f64::from(self.n_rss_samples)
        } else {
            self.peak_rss_bytes as f64
        };
        let ram_model_j = model::ram_energy_j(mean_rss_bytes, duration_s);
        match &self.source {
            Source::Rapl(zones) => {
                let has_dram = zones.iter().any(|zone| zone.kind == ZoneKind::Dram);
                let ram_j = if has_dram {
                    self.process_dram_j
                } else {
                    ram_model_j
                };
                (self.process_cpu_j, ram_j)
            }
            Source::Model => (
                model::cpu_energy_j(cpu_time_s, self.tdp_w, self.logical_cores),
                ram_model_j,
            ),
        }
    }

    /// Closes one interval: accumulates counter deltas and the process's share of them.
    fn step(&mut self, process_ticks: u64) {
        let process_delta = process_ticks.saturating_sub(self.last_process_ticks);
        self.last_process_ticks = self.last_process_ticks.max(process_ticks);
        let Source::Rapl(zones) = &self.source else {
            return;
        };

        let (mut package_uj, mut dram_uj) = (0u64, 0u64);
        for (zone, last) in zones.iter().zip(self.last_counters_uj.iter_mut()) {
            let Ok(cur_uj) = zone.read_uj() else { continue };
            if let Some(prev_uj) = *last {
                let delta_uj = super::counter_delta(prev_uj, cur_uj, zone.max_range_uj);
                match zone.kind {
                    ZoneKind::Package => package_uj += delta_uj,
                    ZoneKind::Dram => dram_uj += delta_uj,
                }
            }
            *last = Some(cur_uj);
        }

        let jiffies = procfs::machine_jiffies(&self.proc_root).ok();
        let busy_delta = match (self.last_jiffies, jiffies) {
            (Some(prev), Some(cur)) => Some(cur.busy.saturating_sub(prev.busy)),
            _ => None,
        };
        if jiffies.is_some() {
            self.last_jiffies = jiffies;
        }
        let share = match busy_delta {
            Some(busy) if busy > 0 => (process_delta as f64 / busy as f64).min(1.0),
            _ if process_delta > 0 => 1.0,
            _ => 0.0,
        };
        self.machine_package_uj += package_uj;
        self.machine_dram_uj += dram_uj;
        self.process_cpu_j += package_uj as f64 / 1e6 * share;
        self.process_dram_j += dram_uj as f64 / 1e6 * share;
    }
}
