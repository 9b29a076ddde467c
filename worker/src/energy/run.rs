//! One metered process: samples taken while it runs, and the report once it has been reaped.
//!
//! With counters, the energy of each span between two readings of the process's CPU time is
//! attributed to the process as `Δpackage × Δprocess CPU ticks / Δmachine busy ticks`, and
//! DRAM likewise. A sample that cannot see the process (it was already reaped) leaves its
//! energy and machine ticks pending: they are attributed with the next reading that sees
//! the process's ticks, so ticks a sample missed are never charged against one interval's
//! energy only. The last span ends after the child was reaped: its process ticks are the
//! exact total from `getrusage(RUSAGE_CHILDREN)` minus what the samples already saw. A
//! share can exceed 1 only by tick-rounding jitter between the two files; it is capped there.
//!
//! `/proc/<pid>/stat` existing but unreadable (permission denied, garbled) is an error: the
//! process's share is unknown, so the job's figures come from the model and the report says
//! why (`fallback_reason`); the machine's energy is still reported.
//!
//! The machine's energy of each span is also split into its idle part with the load curve
//! of [`model`]: at machine load `l` (busy ÷ total ticks), an idle machine would have drawn
//! [`model::package_idle_share`] of it for packages (the Teads curve's floor over its value
//! at `l`) and `f₀ / (f₀ + (1 − f₀) × l)` for DRAM, `f₀` = [`model::DRAM_IDLE_FRACTION`].
//!
//! Without counters (or when the share is unknown), each span charges the process's CPU
//! seconds at the model's watts per busy thread at the machine's load over that span
//! ([`CpuPower::w_per_busy_thread`]).

use std::path::PathBuf;
use std::time::Instant;

use ecobench_shared::carbon;
use ecobench_shared::{EnergyMethod, EnergyReport};

use super::model::{self, J_PER_KWH};
use super::procfs::{self, ChildUsage, MachineJiffies};
use super::{CpuPower, Meter, SAMPLE_INTERVAL, Source, ZoneKind};

/// What the meter has counted so far for a running process, and from where: what the
/// worker's live metrics read after each sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveJoules {
    /// CPU joules so far.
    pub cpu_j: f64,
    /// Memory joules so far.
    pub ram_j: f64,
    /// `rapl` (the counters' share) or `model`.
    pub cpu_source: &'static str,
    /// `rapl` (a DRAM zone's share) or `model`.
    pub ram_source: &'static str,
}

/// The metering of one child process, from [`Meter::start`] to [`MeterRun::finish`].
#[derive(Debug)]
pub struct MeterRun {
    pid: u32,
    proc_root: PathBuf,
    source: Source,
    cpu_power: CpuPower,
    /// CPU joules the model charged so far (used without counters or an unknown share).
    model_cpu_j: f64,
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
    /// Energy and machine busy ticks read since the last sample that saw the process.
    pending_package_uj: u64,
    pending_dram_uj: u64,
    pending_busy_ticks: u64,
    pending_total_ticks: u64,
    idle_package_j: f64,
    idle_dram_j: f64,
    /// False once a span's machine load could not be read (the idle split is then unknown).
    idle_known: bool,
    process_cpu_j: f64,
    process_dram_j: f64,
    /// Why the process's share cannot be known (its stat file was unreadable).
    attribution_error: Option<String>,
    /// `powercap` or `perf_event`.
    interface: Option<&'static str>,
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
            cpu_power: meter.cpu_power.clone(),
            model_cpu_j: 0.0,
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
            pending_package_uj: 0,
            pending_dram_uj: 0,
            pending_busy_ticks: 0,
            pending_total_ticks: 0,
            idle_package_j: 0.0,
            idle_dram_j: 0.0,
            idle_known: true,
            process_cpu_j: 0.0,
            process_dram_j: 0.0,
            attribution_error: None,
            interface: meter.rapl_interface(),
            rss_sum_bytes: 0.0,
            n_rss_samples: 0,
            peak_rss_bytes: 0,
            n_samples: 0,
        };
        if let Source::Rapl(zones) = &run.source {
            run.last_counters_uj = zones.iter().map(|zone| zone.read_uj().ok()).collect();
        }
        run.last_jiffies = procfs::machine_jiffies(&run.proc_root).ok();
        run
    }

    /// Reads counters, machine and process CPU time and memory; call it every
    /// [`SAMPLE_INTERVAL`] while the child runs.
    pub fn sample(&mut self) {
        self.n_samples += 1;
        let process_ticks =
            match procfs::process_ticks(&self.proc_root, self.pid) {
                Ok(ticks) => Some(ticks),
                // Reaped already: the span stays pending until `finish` knows the total.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => {
                    if self.attribution_error.is_none() && matches!(self.source, Source::Rapl(_)) {
                        tracing::warn!(
                            pid = self.pid,
                            error = %err,
                            "cannot read the process's CPU time: its energy falls back to the model"
                        );
                    }
                    self.attribution_error.get_or_insert_with(|| {
                    format!(
                        "cannot read {}: {err}; the process's share of the counters is unknown, \
                         so its energy is the model's (mount /proc without hidepid, or run \
                         the worker as the jobs' user)",
                        self.proc_root.join(self.pid.to_string()).join("stat").display()
                    )
                });
                    None
                }
            };
        if let Ok(memory) = procfs::process_memory(&self.proc_root, self.pid) {
            self.rss_sum_bytes += memory.rss_bytes as f64;
            self.n_rss_samples += 1;
            self.peak_rss_bytes = self.peak_rss_bytes.max(memory.peak_rss_bytes);
        }
        self.step(process_ticks);
    }

    /// Ends the run after the child was reaped: the exact CPU time, the totals and the CO₂.
    pub fn finish(mut self) -> EnergyReport {
        let usage_now = (self.child_usage)();
        let rusage_cpu_s = (usage_now.cpu_time_s - self.usage_at_start.cpu_time_s).max(0.0);
        let sampled_cpu_s = self.last_process_ticks as f64 / self.clock_ticks_per_s;
        let cpu_time_s = rusage_cpu_s.max(sampled_cpu_s);
        self.step(Some((cpu_time_s * self.clock_ticks_per_s).round() as u64));
        let duration_s = self.started.elapsed().as_secs_f64();

        if self.peak_rss_bytes == 0 {
            self.peak_rss_bytes = usage_now.max_rss_bytes;
        }
        let (cpu_j, ram_j) = self.joules(duration_s);
        let counted = matches!(self.source, Source::Rapl(_)) && self.attribution_error.is_none();
        let has_dram = match &self.source {
            Source::Rapl(zones) => zones.iter().any(|zone| zone.kind == ZoneKind::Dram),
            Source::Model => false,
        };
        let (method, uncertainty) = if counted {
            let ram_uncertainty = if has_dram {
                model::RAPL_UNCERTAINTY
            } else {
                model::RAM_UNCERTAINTY
            };
            (
                EnergyMethod::Rapl,
                model::combined_uncertainty(&[
                    (cpu_j, model::RAPL_UNCERTAINTY),
                    (ram_j, ram_uncertainty),
                ]),
            )
        } else {
            let uncertainty = model::combined_uncertainty(&[
                (cpu_j, self.cpu_power.uncertainty),
                (ram_j, model::RAM_UNCERTAINTY),
            ]);
            (EnergyMethod::Model, uncertainty)
        };
        let read_counters = matches!(self.source, Source::Rapl(_));
        let kwh = |uj: u64| uj as f64 / 1e6 / J_PER_KWH;
        let machine_energy_kwh =
            read_counters.then(|| kwh(self.machine_package_uj + self.machine_dram_uj));
        let machine_cpu_kwh = read_counters.then(|| kwh(self.machine_package_uj));
        let machine_ram_kwh = (read_counters && has_dram).then(|| kwh(self.machine_dram_uj));
        let idle = read_counters && self.idle_known;
        let idle_cpu_kwh = idle.then(|| self.idle_package_j / J_PER_KWH);
        let idle_ram_kwh = (idle && has_dram).then(|| self.idle_dram_j / J_PER_KWH);
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
            tdp_w: if method == EnergyMethod::Model {
                self.cpu_power.tdp_w
            } else {
                None
            },
            uncertainty,
            sample_interval_s: SAMPLE_INTERVAL.as_secs_f64(),
            n_samples: self.n_samples,
            peak_rss_bytes: self.peak_rss_bytes,
            machine_cpu_kwh,
            idle_cpu_kwh,
            machine_ram_kwh,
            idle_ram_kwh,
            rapl_interface: self.interface.filter(|_| read_counters).map(String::from),
            fallback_reason: self.attribution_error.clone(),
            carbon_source: Some(self.carbon_source.clone()),
            pue_source: Some(self.pue_source.clone()),
        }
    }

    /// The process's energy so far (kWh, CPU and RAM as [`MeterRun::finish`] counts them),
    /// after taking a sample: what a job's epoch line records while the child still runs.
    /// The CPU time is the sampled one, never more than `finish` will count.
    pub fn energy_so_far_kwh(&mut self) -> f64 {
        self.sample();
        let (cpu_j, ram_j) = self.joules(self.started.elapsed().as_secs_f64());
        (cpu_j + ram_j) / J_PER_KWH
    }

    /// What the samples so far counted (no new sample), as [`MeterRun::finish`] counts it.
    pub fn live_joules(&self) -> LiveJoules {
        let (cpu_j, ram_j) = self.joules(self.started.elapsed().as_secs_f64());
        let (cpu_source, ram_source) = match &self.source {
            Source::Rapl(zones) if self.attribution_error.is_none() => {
                let has_dram = zones.iter().any(|zone| zone.kind == ZoneKind::Dram);
                ("rapl", if has_dram { "rapl" } else { "model" })
            }
            _ => ("model", "model"),
        };
        LiveJoules {
            cpu_j,
            ram_j,
            cpu_source,
            ram_source,
        }
    }

    /// CPU and RAM joules of the spans closed so far, over `duration_s`: the counters' share
    /// with RAPL (RAM by the model without a DRAM zone), else the models.
    fn joules(&self, duration_s: f64) -> (f64, f64) {
        let mean_rss_bytes = if self.n_rss_samples > 0 {
            self.rss_sum_bytes / f64::from(self.n_rss_samples)
        } else {
            self.peak_rss_bytes as f64
        };
        let ram_model_j = model::ram_energy_j(mean_rss_bytes, duration_s);
        match &self.source {
            Source::Rapl(zones) if self.attribution_error.is_none() => {
                let has_dram = zones.iter().any(|zone| zone.kind == ZoneKind::Dram);
                let ram_j = if has_dram {
                    self.process_dram_j
                } else {
                    ram_model_j
                };
                (self.process_cpu_j, ram_j)
            }
            _ => (self.model_cpu_j, ram_model_j),
        }
    }

    /// Closes one interval: accumulates counter deltas, their idle part, and, when the
    /// process's ticks are known (`Some`), its share of everything pending and the model's
    /// charge for its CPU time.
    fn step(&mut self, process_ticks: Option<u64>) {
        let (package_uj, dram_uj) = self.read_counters();

        let jiffies = procfs::machine_jiffies(&self.proc_root).ok();
        let (busy_delta, total_delta) = match (self.last_jiffies, jiffies) {
            (Some(prev), Some(cur)) => (
                cur.busy.saturating_sub(prev.busy),
                cur.total.saturating_sub(prev.total),
            ),
            _ => (0, 0),
        };
        if jiffies.is_some() {
            self.last_jiffies = jiffies;
        }
        let load = (total_delta > 0).then(|| (busy_delta as f64 / total_delta as f64).min(1.0));
        match load {
            Some(load) => {
                let dram_idle_part = |floor: f64| floor / (floor + (1.0 - floor) * load);
                self.idle_package_j += package_uj as f64 / 1e6 * model::package_idle_share(load);
                self.idle_dram_j +=
                    dram_uj as f64 / 1e6 * dram_idle_part(model::DRAM_IDLE_FRACTION);
            }
            None if package_uj + dram_uj > 0 => self.idle_known = false,
            None => {}
        }
        self.machine_package_uj += package_uj;
        self.machine_dram_uj += dram_uj;
        self.pending_package_uj += package_uj;
        self.pending_dram_uj += dram_uj;
        self.pending_busy_ticks += busy_delta;
        self.pending_total_ticks += total_delta;

        let Some(process_ticks) = process_ticks else {
            return;
        };
        let process_delta = process_ticks.saturating_sub(self.last_process_ticks);
        self.last_process_ticks = self.last_process_ticks.max(process_ticks);

        // The model: the process's CPU seconds at the watts of one busy thread at the
        // machine's load over the span (one busy thread when the load is unknown).
        let one_thread = 1.0 / f64::from(self.cpu_power.threads.max(1));
        let model_load = if self.pending_total_ticks > 0 {
            let busy = self.pending_busy_ticks.max(process_delta);
            (busy as f64 / self.pending_total_ticks as f64).max(one_thread)
        } else {
            one_thread
        };
        let cpu_s = process_delta as f64 / self.clock_ticks_per_s;
        self.model_cpu_j += cpu_s * self.cpu_power.w_per_busy_thread(model_load);

        let share = if self.pending_busy_ticks > 0 {
            // Above 1 only by tick rounding between /proc/stat and /proc/<pid>/stat.
            (process_delta as f64 / self.pending_busy_ticks as f64).min(1.0)
        } else if process_delta > 0 {
            1.0 // The machine's ticks are unreadable: the process did all the work seen.
        } else {
            0.0
        };
        self.process_cpu_j += self.pending_package_uj as f64 / 1e6 * share;
        self.process_dram_j += self.pending_dram_uj as f64 / 1e6 * share;
        self.pending_package_uj = 0;
        self.pending_dram_uj = 0;
        self.pending_busy_ticks = 0;
        self.pending_total_ticks = 0;
    }

    /// Package and DRAM microjoules since the last reading (zero without counters).
    fn read_counters(&mut self) -> (u64, u64) {
        let Source::Rapl(zones) = &self.source else {
            return (0, 0);
        };
        let (mut package_uj, mut dram_uj) = (0u64, 0u64);
        for (zone, last) in zones.iter().zip(self.last_counters_uj.iter_mut()) {
            match zone.read_uj() {
                Ok(cur_uj) => {
                    if let Some(prev_uj) = *last {
                        let delta_uj = super::counter_delta(prev_uj, cur_uj, zone.max_range_uj);
                        match zone.kind {
                            ZoneKind::Package => package_uj += delta_uj,
                            ZoneKind::Dram => dram_uj += delta_uj,
                        }
                    }
                    *last = Some(cur_uj);
                }
                Err(err) => {
                    // A vanished zone (hot-unplug, driver reload): its energy from now on is
                    // unknown; it counts again from its next reading.
                    if last.take().is_some() {
                        tracing::warn!(zone = %zone.label, error = %err, "RAPL zone unreadable");
                    }
                }
            }
        }
        (package_uj, dram_uj)
    }
}
