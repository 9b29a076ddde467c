//! The per-process energy meter: RAPL counters through `perf_event` (the `power` PMU) where
//! permitted, else through powercap when readable, else a TDP model; CO₂ from the
//! configured carbon intensity.
//!
//! - [`perf`]: RAPL through `perf_event_open`.
//! - [`powercap`]: zone discovery and wrap-aware counter arithmetic.
//! - [`procfs`]: machine and process CPU time, memory and CPU model from `/proc`, and
//!   `getrusage` for reaped children.
//! - [`tdp`]: CPU model → TDP from the embedded CodeCarbon table.
//! - [`specs`]: CPU model → TDP, cores, threads, microarchitecture (Boavizta table).
//! - [`machine`]: VM or bare metal, sockets, cores, threads, CPUID → microarchitecture.
//! - [`power`]: the CPU model's rule for this machine (per package, per vCPU).
//! - [`model`]: the load → power curve and the memory model.
//!
//! The job runner calls [`Meter::start`] when it spawns the training child,
//! [`MeterRun::sample`] every [`SAMPLE_INTERVAL`] while it runs, and [`MeterRun::finish`]
//! once it has been reaped. Only this module reads `/sys` and `/proc` for energy.

#[cfg(test)]
mod attrib_tests;
pub mod machine;
pub mod model;
pub mod perf;
pub mod power;
pub mod powercap;
pub mod procfs;
mod run;
pub mod specs;
pub mod tdp;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ecobench_shared::EnergyMethod;
use ecobench_shared::carbon::{self, CarbonError, GridChoice};

pub use machine::{Machine, Microarch, Virtualisation};
pub use power::{CpuPower, HostDescription, PowerError, PowerOverrides};
pub use powercap::{Probe, Zone, ZoneKind, counter_delta};
pub use procfs::{ChildUsage, CpuInfo};
pub use run::{LiveJoules, MeterRun};
pub use tdp::{Tdp, TdpSource};

/// How often the caller should call [`MeterRun::sample`] (RAPL counters must be polled at
/// 1 Hz or more so that no wraparound is missed).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The PUE used when none is given: no data-centre overhead counted.
pub const DEFAULT_PUE: f64 = 1.0;

/// Where to read from and how to turn energy into CO₂.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterConfig {
    /// The powercap class directory.
    pub powercap_root: PathBuf,
    /// The `power` perf PMU directory (`/sys/bus/event_source/devices/power`).
    pub perf_pmu_dir: PathBuf,
    /// The procfs mount.
    pub proc_root: PathBuf,
    /// ISO-3166 alpha-3 code of the country whose grid powers the worker.
    pub country: Option<String>,
    /// Cloud region (`aws:eu-west-3`) whose grid powers the worker; wins over the country.
    pub region: Option<String>,
    /// Carbon intensity in gCO₂e/kWh, overriding the region's and the country's.
    pub carbon_intensity_g_per_kwh: Option<f64>,
    /// Power usage effectiveness of the data centre, as given (`--pue`); [`DEFAULT_PUE`]
    /// when `None`.
    pub pue: Option<f64>,
    /// The CPU's TDP (one package), overriding the table.
    pub cpu_tdp_w: Option<f64>,
    /// The TDP share of one vCPU (or hardware thread), overriding the table and the rules.
    pub cpu_w_per_vcpu: Option<f64>,
    /// The DMI strings directory (`/sys/class/dmi/id`), read to tell a VM.
    pub dmi_root: PathBuf,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            powercap_root: PathBuf::from("/sys/class/powercap"),
            perf_pmu_dir: PathBuf::from(perf::DEFAULT_PMU_DIR),
            proc_root: PathBuf::from("/proc"),
            country: None,
            region: None,
            carbon_intensity_g_per_kwh: None,
            pue: None,
            cpu_tdp_w: None,
            cpu_w_per_vcpu: None,
            dmi_root: PathBuf::from("/sys/class/dmi/id"),
        }
    }
}

/// Why the meter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EnergyError {
    /// The country, the region or the intensity override is unusable.
    #[error("carbon intensity: {0}")]
    Carbon(#[from] CarbonError),
    /// `/proc/cpuinfo` could not be read.
    #[error(
        "cannot read {path}: {source}; the energy meter needs procfs (mount /proc, or set proc_root)"
    )]
    CpuInfo {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The PUE is below 1 or not a number.
    #[error("PUE {0} is invalid: give a finite number >= 1.0 (1.0 means no data-centre overhead)")]
    InvalidPue(f64),
    /// The TDP override is not a positive number.
    #[error("CPU TDP override {0} W is invalid: give a positive number of watts, e.g. 150")]
    InvalidTdp(f64),
    /// The CPU model cannot describe this machine with the overrides given.
    #[error("CPU power model: {0}")]
    Power(#[from] PowerError),
}

/// Where the meter's energy figures come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// RAPL counters, packages first.
    Rapl(Vec<Zone>),
    /// The TDP model.
    Model,
}

/// A configured meter for one worker: the source it found and the carbon intensity it uses.
#[derive(Debug)]
pub struct Meter {
    pub(crate) config: MeterConfig,
    pub(crate) source: Source,
    /// Why counters are not used, when they are not.
    probe_note: Option<String>,
    /// Why each RAPL interface not used was passed over: (`perf_event` | `powercap`, why).
    passed_over: Vec<(&'static str, String)>,
    pub(crate) cpu_info: CpuInfo,
    pub(crate) machine: Machine,
    pub(crate) cpu_power: CpuPower,
    /// The carbon intensity chosen, its label and its source.
    pub(crate) carbon: carbon::Intensity,
    /// The PUE applied.
    pub(crate) pue: f64,
    /// Where the PUE comes from: `--pue` or `default 1.0`.
    pub(crate) pue_source: String,
    pub(crate) clock_ticks_per_s: f64,
    /// Reads the CPU time of reaped children; replaced by a script in tests.
    pub(crate) child_usage: fn() -> ChildUsage,
}

impl Meter {
    /// Probes for counters (falling back to the model) and resolves the carbon intensity;
    /// an unknown country or region is an error here, at worker start.
    pub fn new(config: MeterConfig) -> Result<Meter, EnergyError> {
        let (pue, pue_source) = match config.pue {
            Some(pue) => (pue, "--pue".to_string()),
            None => (DEFAULT_PUE, format!("default {DEFAULT_PUE:.1}")),
        };
        if !pue.is_finite() || pue < 1.0 {
            return Err(EnergyError::InvalidPue(pue));
        }
        if let Some(tdp_w) = config.cpu_tdp_w.filter(|w| !w.is_finite() || *w <= 0.0) {
            return Err(EnergyError::InvalidTdp(tdp_w));
        }
        let carbon = carbon::resolve(GridChoice {
            country: config.country.as_deref(),
            region: config.region.as_deref(),
            override_g_per_kwh: config.carbon_intensity_g_per_kwh,
        })?;
        let cpu_info =
            procfs::cpu_info(&config.proc_root).map_err(|source| EnergyError::CpuInfo {
                path: config.proc_root.join("cpuinfo"),
                source,
            })?;
        let machine = machine::detect(&config.proc_root, &config.dmi_root).map_err(|source| {
            EnergyError::CpuInfo {
                path: config.proc_root.join("cpuinfo"),
                source,
            }
        })?;
        let cpu_power = CpuPower::resolve(
            &HostDescription::from(&machine),
            PowerOverrides {
                tdp_w: config.cpu_tdp_w,
                w_per_vcpu: config.cpu_w_per_vcpu,
            },
        )?;
        let mut passed_over = Vec::new();
        let (source, probe_note) = match perf::probe(&config.perf_pmu_dir, &config.proc_root) {
            Ok(zones) => {
                passed_over.push(("powercap", "perf_event is used instead".to_string()));
                (Source::Rapl(zones), None)
            }
            Err(perf_reason) => {
                passed_over.push(("perf_event", perf_reason));
                match powercap::probe(&config.powercap_root) {
                    Probe::Counters(zones) => (Source::Rapl(zones), None),
                    Probe::Unavailable(reason) => {
                        passed_over.push(("powercap", reason.clone()));
                        (Source::Model, Some(reason))
                    }
                }
            }
        };
        let meter = Meter {
            config,
            source,
            probe_note,
            passed_over,
            cpu_info,
            machine,
            cpu_power,
            carbon,
            pue,
            pue_source,
            clock_ticks_per_s: procfs::clock_ticks_per_s(),
            child_usage: procfs::rusage_children,
        };
        tracing::info!(
            source = %meter.describe(),
            no_counters_because = meter.probe_note.as_deref().unwrap_or("-"),
            carbon_g_per_kwh = meter.carbon.g_per_kwh,
            carbon_region = %meter.carbon.label,
            carbon_source = %meter.carbon.source,
            pue = meter.pue,
            pue_source = %meter.pue_source,
            "energy meter ready"
        );
        Ok(meter)
    }

    /// What the meter measures with: `rapl: package-0, dram-0` or `model: Intel(R) Xeon(R)
    /// Gold 6248 CPU @ 2.50GHz; bare metal: TDP 150 W (row `Intel Xeon Gold 6248`) × 1
    /// socket on the Teads/Boavizta load curve; ±40 %`.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Rapl(zones) => {
                let labels: Vec<&str> = zones.iter().map(|zone| zone.label.as_str()).collect();
                let ram = if zones.iter().any(|zone| zone.kind == ZoneKind::Dram) {
                    ""
                } else {
                    " (ram: model)"
                };
                format!("rapl: {}{ram}", labels.join(", "))
            }
            Source::Model => format!(
                "model: {}; {}; ±{:.0} %",
                self.machine.model_name,
                self.cpu_power.rule,
                self.cpu_power.uncertainty * 100.0
            ),
        }
    }

    /// Why no counter is used (`None` when RAPL is used).
    pub fn probe_note(&self) -> Option<&str> {
        self.probe_note.as_deref()
    }

    /// The RAPL interface the counters are read through (`perf_event` or `powercap`);
    /// `None` with the model.
    pub fn rapl_interface(&self) -> Option<&'static str> {
        match &self.source {
            Source::Rapl(zones) => zones.first().map(Zone::interface),
            Source::Model => None,
        }
    }

    /// The counters read, packages first (empty with the model).
    pub fn zones(&self) -> &[Zone] {
        match &self.source {
            Source::Rapl(zones) => zones,
            Source::Model => &[],
        }
    }

    /// Each RAPL interface not used and why: (`perf_event` | `powercap`, reason with the fix).
    pub fn passed_over(&self) -> &[(&'static str, String)] {
        &self.passed_over
    }

    /// Measured (`Rapl`) or estimated (`Model`).
    pub fn method(&self) -> EnergyMethod {
        match self.source {
            Source::Rapl(_) => EnergyMethod::Rapl,
            Source::Model => EnergyMethod::Model,
        }
    }

    /// The TDP of one package the model uses; `None` when counters are used or the model
    /// uses per-vCPU coefficients.
    pub fn tdp_w(&self) -> Option<f64> {
        if self.source == Source::Model {
            self.cpu_power.tdp_w
        } else {
            None
        }
    }

    /// The machine as procfs and DMI describe it (VM or bare metal, sockets, threads).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The CPU power model for this machine (used when no counter is).
    pub fn cpu_power(&self) -> &CpuPower {
        &self.cpu_power
    }

    /// Where the carbon intensity comes from: an ISO3 code, a cloud region
    /// (`aws:eu-west-3`), `world` or `override`.
    pub fn country_label(&self) -> String {
        self.carbon.label.clone()
    }

    /// The carbon intensity applied, gCO₂e/kWh.
    pub fn carbon_intensity_g_per_kwh(&self) -> f64 {
        self.carbon.g_per_kwh
    }

    /// Where the carbon intensity comes from, in words (stored as `carbon_source`).
    pub fn carbon_source(&self) -> &str {
        &self.carbon.source
    }

    /// The PUE applied and where it comes from (`--pue` or `default 1.0`).
    pub fn pue(&self) -> (f64, &str) {
        (self.pue, &self.pue_source)
    }

    /// The machine's CPU as `/proc/cpuinfo` describes it.
    pub fn cpu_info(&self) -> &CpuInfo {
        &self.cpu_info
    }

    /// The procfs root the meter reads.
    pub fn proc_root(&self) -> &Path {
        &self.config.proc_root
    }

    /// Starts metering the child `pid`: records the children's CPU time so far, the
    /// counters, the machine's CPU time and the clock.
    pub fn start(&self, pid: u32) -> MeterRun {
        MeterRun::start(self, pid)
    }
}
