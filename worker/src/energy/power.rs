//! The CPU power model of a machine: which rule applies where the worker runs, and the
//! watts it gives at a load.
//!
//! - Bare metal: every package draws its TDP through the Teads/Boavizta load curve
//!   ([`model::TEADS_CURVE`]): `P(load) = TDP × sockets × curve(load)`.
//! - VM, host part known: a vCPU is one hardware thread of the host part, so it draws the
//!   host TDP ÷ the part's threads through the same curve: `P(load) = vCPUs × TDP ÷
//!   threads × curve(load)`. The vCPU count alone would divide one package's TDP among a
//!   few vCPUs and charge each ~30× too much.
//! - VM, part hidden (`Intel(R) Xeon(R) Processor`, `Common KVM processor`): Cloud Carbon
//!   Footprint's per-vCPU min/max watts of the microarchitecture (from CPUID family/model),
//!   or their AWS average, with the load interpolating min → max.
//! - `--cpu-w-per-vcpu` (TDP share of one vCPU or hardware thread) and `--tdp-w` (one
//!   package) override the table.
//!
//! A process is charged the part above the idle floor in proportion to its share of the
//! busy CPU time: [`CpuPower::w_per_busy_thread`].

use super::machine::{Machine, Microarch};
use super::model::{self, tdp_fraction};
use super::specs::{self, CpuSpec};

/// Watts per physical core assumed on bare metal for a CPU the tables do not know.
pub use super::tdp::FALLBACK_W_PER_CORE;

/// Cloud Carbon Footprint's per-vCPU (min, max) watts averaged over AWS's fleet, used when
/// neither the CPU model nor its microarchitecture is known.
pub const CLOUD_AVERAGE_W_PER_VCPU: (f64, f64) = (0.74, 3.5);

/// Cloud Carbon Footprint's per-vCPU (min, max) watts of a microarchitecture (AWS
/// coefficients, derived from SPECpower_ssj2008 results); `None` where it publishes none.
pub fn ccf_w_per_vcpu(microarch: Microarch) -> Option<(f64, f64)> {
    match microarch {
        Microarch::SandyBridge => Some((2.17, 8.58)),
        Microarch::IvyBridge => Some((3.04, 8.25)),
        Microarch::Haswell => Some((1.00, 4.74)),
        Microarch::Broadwell => Some((0.71, 3.69)),
        Microarch::Skylake => Some((0.65, 4.26)),
        Microarch::CascadeLake => Some((0.64, 3.97)),
        Microarch::CoffeeLake => Some((1.14, 5.42)),
        Microarch::Zen => Some((0.82, 2.55)),
        Microarch::Zen2 => Some((0.47, 1.69)),
        Microarch::Zen3 => Some((0.45, 2.02)),
        _ => None,
    }
}

/// The machine the model is asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct HostDescription {
    /// The CPU model string (`/proc/cpuinfo` `model name`, or `--cpu`).
    pub model_name: String,
    /// A virtual machine (power per vCPU) or bare metal (power per package).
    pub vm: bool,
    /// Packages (bare metal).
    pub sockets: u32,
    /// Hardware threads of the whole machine (bare metal) or vCPUs (VM); `None` to take
    /// the table's threads × sockets.
    pub threads: Option<u32>,
    /// Physical cores of the whole machine, for the bare-metal fallback TDP.
    pub physical_cores: Option<u32>,
    /// The microarchitecture from CPUID, when known.
    pub microarch: Option<Microarch>,
}

impl From<&Machine> for HostDescription {
    fn from(machine: &Machine) -> Self {
        HostDescription {
            model_name: machine.model_name.clone(),
            vm: machine.is_vm(),
            sockets: machine.sockets,
            threads: Some(machine.threads),
            physical_cores: Some(machine.physical_cores),
            microarch: machine.microarch(),
        }
    }
}

/// User overrides of the table.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PowerOverrides {
    /// TDP of one package, watts.
    pub tdp_w: Option<f64>,
    /// TDP share of one vCPU (or hardware thread on bare metal), watts.
    pub w_per_vcpu: Option<f64>,
}

/// How power grows with load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `tdp_w × curve(load)` on the Teads/Boavizta curve (`tdp_w` for the whole machine or
    /// all the VM's vCPUs).
    Curve {
        /// The TDP (or TDP share) of everything metered.
        tdp_w: f64,
    },
    /// `min_w + (max_w − min_w) × load` (Cloud Carbon Footprint's coefficients × vCPUs).
    Linear {
        /// Watts at idle.
        min_w: f64,
        /// Watts at full load.
        max_w: f64,
    },
}

/// The CPU model of one machine: its power at a load, the rule and row it comes from, and
/// its uncertainty.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuPower {
    /// Power as a function of load.
    pub shape: Shape,
    /// Threads (bare metal) or vCPUs (VM) the power is spread over.
    pub threads: u32,
    /// TDP of one package used, when a TDP is used.
    pub tdp_w: Option<f64>,
    /// The table row used, when one is.
    pub row: Option<String>,
    /// The rule, in words, with its figures and sources.
    pub rule: String,
    /// Relative uncertainty of the CPU figures.
    pub uncertainty: f64,
}

/// Why the model cannot describe the machine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PowerError {
    /// An override is not a positive number.
    #[error("{flag} {value} is invalid: give a positive number of watts")]
    InvalidOverride {
        /// The flag (`--tdp-w`, `--cpu-w-per-vcpu`).
        flag: &'static str,
        /// The value given.
        value: f64,
    },
    /// A VM's TDP override needs the host part's thread count, which the table lacks.
    #[error(
        "--tdp-w in a VM needs the host CPU's thread count, and `{0}` is not in the CPU table: \
         give --cpu-w-per-vcpu (the TDP ÷ threads of the host part) instead"
    )]
    TdpWithoutThreads(String),
    /// The load is outside [0, 1].
    #[error("--load {0} is invalid: give the busy fraction of the CPUs, from 0 to 1 (e.g. 0.5)")]
    InvalidLoad(f64),
    /// A count (sockets, vCPUs) is zero.
    #[error("{0} must be at least 1")]
    ZeroCount(&'static str),
    /// Bare metal, a CPU the table does not know, and no core count to guess from.
    #[error(
        "CPU `{0}` is not in the CPU table (worker/data/cpu_specs.csv): give its TDP with \
         --tdp-w, or describe a VM with --vm --vcpus N"
    )]
    UnknownCpu(String),
}

impl CpuPower {
    /// Chooses the rule for `host`: the per-vCPU override, the TDP override, the table, and
    /// the fallbacks (cores × 10 W on bare metal; per-vCPU coefficients in a VM).
    pub fn resolve(host: &HostDescription, overrides: PowerOverrides) -> Result<Self, PowerError> {
        for (flag, value) in [
            ("--tdp-w", overrides.tdp_w),
            ("--cpu-w-per-vcpu", overrides.w_per_vcpu),
        ] {
            if let Some(value) = value.filter(|w| !w.is_finite() || *w <= 0.0) {
                return Err(PowerError::InvalidOverride { flag, value });
            }
        }
        let spec = specs::lookup(&host.model_name);
        let sockets = host.sockets.max(1);
        let unit = if host.vm { "vCPU" } else { "thread" };
        let threads = host
            .threads
            .or_else(|| spec.as_ref().and_then(|s| s.threads).map(|t| t * sockets))
            .or_else(|| spec.as_ref().and_then(|s| s.cores).map(|c| c * sockets))
            .unwrap_or(1)
            .max(1);
        let row = spec.as_ref().map(|s| s.name.to_string());
        let row_note = |spec: &CpuSpec| {
            if spec.matched == "exact" || spec.matched == "contains" {
                format!("row `{}`", spec.name)
            } else {
                format!("row `{}`: {}", spec.name, spec.matched)
            }
        };

        if let Some(w) = overrides.w_per_vcpu {
            return Ok(CpuPower {
                shape: Shape::Curve {
                    tdp_w: w * f64::from(threads),
                },
                threads,
                tdp_w: None,
                row,
                rule: format!(
                    "override: {w} W per {unit} × {threads} {unit}s on the Teads/Boavizta load curve"
                ),
                uncertainty: model::CPU_UNCERTAINTY_OVERRIDE_W_PER_VCPU,
            });
        }

        if !host.vm {
            let (tdp_w, source, uncertainty) = match (overrides.tdp_w, &spec) {
                (Some(tdp_w), _) => (
                    tdp_w,
                    "override".to_string(),
                    model::CPU_UNCERTAINTY_KNOWN_TDP,
                ),
                (None, Some(spec)) if spec.tdp_w.is_some() => (
                    spec.tdp_w.unwrap_or_default(),
                    row_note(spec),
                    model::CPU_UNCERTAINTY_KNOWN_TDP,
                ),
                _ => {
                    let cores = host
                        .physical_cores
                        .ok_or_else(|| PowerError::UnknownCpu(host.model_name.clone()))?;
                    let total_w = f64::from(cores.max(1)) * FALLBACK_W_PER_CORE;
                    return Ok(CpuPower {
                        shape: Shape::Curve { tdp_w: total_w },
                        threads,
                        tdp_w: Some(total_w / f64::from(sockets)),
                        row: None,
                        rule: format!(
                            "bare metal: CPU not in table, TDP assumed {FALLBACK_W_PER_CORE} W × \
                             {cores} physical cores = {total_w} W on the Teads/Boavizta load curve"
                        ),
                        uncertainty: model::CPU_UNCERTAINTY_FALLBACK_TDP,
                    });
                }
            };
            let plural = if sockets == 1 { "" } else { "s" };
            return Ok(CpuPower {
                shape: Shape::Curve {
                    tdp_w: tdp_w * f64::from(sockets),
                },
                threads,
                tdp_w: Some(tdp_w),
                row,
                rule: format!(
                    "bare metal: TDP {tdp_w} W ({source}) × {sockets} socket{plural} on the \
                     Teads/Boavizta load curve"
                ),
                uncertainty,
            });
        }

        // A VM: a vCPU is one hardware thread of the host part.
        let host_threads = spec.as_ref().and_then(|s| s.threads);
        let tdp = overrides
            .tdp_w
            .map(|w| (w, "override".to_string()))
            .or_else(|| {
                let spec = spec.as_ref()?;
                spec.tdp_w.map(|w| (w, row_note(spec)))
            });
        match (tdp, host_threads) {
            (Some((tdp_w, source)), Some(host_threads)) => {
                let per_vcpu_w = tdp_w / f64::from(host_threads);
                return Ok(CpuPower {
                    shape: Shape::Curve {
                        tdp_w: per_vcpu_w * f64::from(threads),
                    },
                    threads,
                    tdp_w: Some(tdp_w),
                    row,
                    rule: format!(
                        "VM: {threads} vCPUs × (TDP {tdp_w} W ÷ {host_threads} threads of the \
                         host part = {per_vcpu_w:.2} W) ({source}) on the Teads/Boavizta load curve"
                    ),
                    uncertainty: model::CPU_UNCERTAINTY_VCPU_SHARE,
                });
            }
            (Some(_), None) if overrides.tdp_w.is_some() => {
                return Err(PowerError::TdpWithoutThreads(host.model_name.clone()));
            }
            _ => {}
        }
        let microarch = host
            .microarch
            .or_else(|| spec.as_ref().and_then(|s| s.microarch));
        let hidden = match &spec {
            Some(spec) => format!("threads of `{}` unknown", spec.name),
            None => format!("CPU model `{}` not in the table", host.model_name),
        };
        let n = f64::from(threads);
        let (min_w, max_w, rule, uncertainty) =
            match microarch.and_then(|m| Some((m, ccf_w_per_vcpu(m)?))) {
                Some((microarch, (min_w, max_w))) => (
                    min_w,
                    max_w,
                    format!(
                        "VM: {hidden}; {} coefficients {min_w}–{max_w} W per vCPU (Cloud Carbon \
                     Footprint) × {threads} vCPUs",
                        microarch.name()
                    ),
                    model::CPU_UNCERTAINTY_MICROARCH,
                ),
                None => {
                    let (min_w, max_w) = CLOUD_AVERAGE_W_PER_VCPU;
                    let arch = microarch.map_or("microarchitecture unknown".to_string(), |m| {
                        format!("no coefficients for {}", m.name())
                    });
                    (
                        min_w,
                        max_w,
                        format!(
                            "VM: {hidden}, {arch}; AWS average {min_w}–{max_w} W per vCPU (Cloud \
                         Carbon Footprint) × {threads} vCPUs"
                        ),
                        model::CPU_UNCERTAINTY_CLOUD_AVERAGE,
                    )
                }
            };
        Ok(CpuPower {
            shape: Shape::Linear {
                min_w: min_w * n,
                max_w: max_w * n,
            },
            threads,
            tdp_w: None,
            row,
            rule,
            uncertainty,
        })
    }

    /// CPU watts of the whole machine (or the VM's vCPUs) at a load in [0, 1].
    pub fn power_w(&self, load: f64) -> f64 {
        match self.shape {
            Shape::Curve { tdp_w } => tdp_w * tdp_fraction(load),
            Shape::Linear { min_w, max_w } => {
                let load = if load.is_nan() {
                    0.0
                } else {
                    load.clamp(0.0, 1.0)
                };
                min_w + (max_w - min_w) * load
            }
        }
    }

    /// CPU watts at idle: the floor no job is charged for.
    pub fn idle_w(&self) -> f64 {
        self.power_w(0.0)
    }

    /// Watts above the idle floor per busy thread (or vCPU) when the machine runs at
    /// `load`: what one second of a process's CPU time costs. On the concave curve the
    /// first busy threads cost more than the last.
    pub fn w_per_busy_thread(&self, load: f64) -> f64 {
        let n = f64::from(self.threads);
        let load = if load.is_nan() {
            0.0
        } else {
            load.clamp(1.0 / (n * 1000.0), 1.0)
        };
        (self.power_w(load) - self.idle_w()) / (load * n)
    }
}

/// What `worker meter estimate` prints: the model's CPU watts for a described machine.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// CPU watts of the machine (bare metal: all its sockets; VM: its vCPUs) at `load`.
    pub cpu_watts: f64,
    /// CPU watts at idle (the floor).
    pub idle_watts: f64,
    /// The load asked for.
    pub load: f64,
    /// Always `model`.
    pub method: &'static str,
    /// The rule used, with its figures and sources.
    pub rule: String,
    /// The table row used, when one is.
    pub row: Option<String>,
    /// The TDP of one package used, when a TDP is used.
    pub tdp_w: Option<f64>,
    /// Relative uncertainty of `cpu_watts`.
    pub uncertainty: f64,
    /// A VM (per-vCPU rules) or bare metal.
    pub vm: bool,
    /// Packages (bare metal).
    pub sockets: u32,
    /// Threads (bare metal) or vCPUs (VM) the watts are spread over.
    pub threads: u32,
}

/// The model's CPU watts for the machine described: a bare-metal machine with `sockets`
/// packages of `cpu`, or with `vcpus` set a VM with that many vCPUs of a `cpu` host,
/// whatever machine this runs on.
pub fn estimate(
    cpu: &str,
    load: f64,
    sockets: u32,
    vcpus: Option<u32>,
    overrides: PowerOverrides,
) -> Result<Estimate, PowerError> {
    if !(0.0..=1.0).contains(&load) {
        return Err(PowerError::InvalidLoad(load));
    }
    if sockets == 0 {
        return Err(PowerError::ZeroCount("--sockets"));
    }
    if vcpus == Some(0) {
        return Err(PowerError::ZeroCount("--vcpus"));
    }
    let host = HostDescription {
        model_name: cpu.to_string(),
        vm: vcpus.is_some(),
        sockets,
        threads: vcpus,
        physical_cores: None,
        microarch: None,
    };
    let power = CpuPower::resolve(&host, overrides)?;
    Ok(Estimate {
        cpu_watts: power.power_w(load),
        idle_watts: power.idle_w(),
        load,
        method: "model",
        rule: power.rule,
        row: power.row,
        tdp_w: power.tdp_w,
        uncertainty: power.uncertainty,
        vm: host.vm,
        sockets,
        threads: power.threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(model: &str, vm: bool, sockets: u32, threads: Option<u32>) -> HostDescription {
        HostDescription {
            model_name: model.to_string(),
            vm,
            sockets,
            threads,
            physical_cores: None,
            microarch: None,
        }
    }

    const P8375C: &str = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz";

    #[test]
    fn a_small_vm_of_a_big_part_gets_per_vcpu_watts() {
        let power =
            CpuPower::resolve(&host(P8375C, true, 1, Some(2)), PowerOverrides::default()).unwrap();
        // 2 × 300 W ÷ 64 threads = 9.375 W of TDP share, 102 % at full load.
        assert!((power.power_w(1.0) - 9.5625).abs() < 1e-9, "{power:?}");
        assert!((power.idle_w() - 1.125).abs() < 1e-9);
        // One vCPU busy of two: 5.9 W, not the ~135 W of a whole package per vCPU.
        let per_vcpu = power.w_per_busy_thread(0.5);
        assert!((1.0..10.0).contains(&per_vcpu), "{per_vcpu}");
        assert_eq!(power.row.as_deref(), Some("Intel Xeon Platinum 8375C"));
        assert!(power.rule.contains("÷ 64 threads"), "{}", power.rule);
        assert_eq!(power.uncertainty, model::CPU_UNCERTAINTY_VCPU_SHARE);
    }

    #[test]
    fn bare_metal_counts_every_socket() {
        let one =
            CpuPower::resolve(&host(P8375C, false, 1, None), PowerOverrides::default()).unwrap();
        let two =
            CpuPower::resolve(&host(P8375C, false, 2, None), PowerOverrides::default()).unwrap();
        assert!((one.power_w(1.0) - 306.0).abs() < 1e-9);
        assert!((two.power_w(1.0) - 612.0).abs() < 1e-9);
        assert!((two.power_w(0.0) - 72.0).abs() < 1e-9);
        assert_eq!((one.threads, two.threads), (64, 128));
        // Every thread of both sockets busy: each costs the active part ÷ 128.
        assert!((two.w_per_busy_thread(1.0) - (612.0 - 72.0) / 128.0).abs() < 1e-9);
        assert!(two.rule.contains("× 2 sockets"), "{}", two.rule);
    }

    #[test]
    fn hidden_model_falls_back_to_microarchitecture() {
        let mut vm = host("Intel(R) Xeon(R) Processor", true, 1, Some(4));
        vm.microarch = Some(Microarch::CascadeLake);
        let power = CpuPower::resolve(&vm, PowerOverrides::default()).unwrap();
        assert!((power.idle_w() - 4.0 * 0.64).abs() < 1e-9);
        assert!((power.power_w(1.0) - 4.0 * 3.97).abs() < 1e-9);
        assert!((power.w_per_busy_thread(0.25) - (3.97 - 0.64)).abs() < 1e-9);
        assert!(power.rule.contains("Cascade Lake"), "{}", power.rule);
        assert_eq!(power.tdp_w, None);

        vm.microarch = None;
        vm.model_name = "Common KVM processor".into();
        let power = CpuPower::resolve(&vm, PowerOverrides::default()).unwrap();
        assert!((power.power_w(1.0) - 4.0 * 3.5).abs() < 1e-9);
        assert!(power.rule.contains("AWS average"), "{}", power.rule);
        assert_eq!(power.uncertainty, model::CPU_UNCERTAINTY_CLOUD_AVERAGE);
    }

    #[test]
    fn overrides_win() {
        let overrides = PowerOverrides {
            tdp_w: Some(100.0),
            w_per_vcpu: None,
        };
        let power = CpuPower::resolve(&host(P8375C, true, 1, Some(2)), overrides).unwrap();
        assert!((power.power_w(1.0) - 2.0 * 100.0 / 64.0 * 1.02).abs() < 1e-9);
        let overrides = PowerOverrides {
            tdp_w: None,
            w_per_vcpu: Some(5.0),
        };
        let power = CpuPower::resolve(&host(P8375C, true, 1, Some(2)), overrides).unwrap();
        assert!((power.power_w(0.5) - 10.0 * 0.75).abs() < 1e-9);
        assert!(power.rule.starts_with("override"), "{}", power.rule);

        let hidden = host("Intel(R) Xeon(R) Processor", true, 1, Some(2));
        let overrides = PowerOverrides {
            tdp_w: Some(100.0),
            w_per_vcpu: None,
        };
        let err = CpuPower::resolve(&hidden, overrides).unwrap_err();
        assert!(err.to_string().contains("--cpu-w-per-vcpu"), "{err}");
        let bad = PowerOverrides {
            tdp_w: Some(-3.0),
            w_per_vcpu: None,
        };
        let err = CpuPower::resolve(&hidden, bad).unwrap_err();
        assert!(err.to_string().contains("--tdp-w -3"), "{err}");
    }

    #[test]
    fn estimate_describes_the_machine_not_this_one() {
        let e = estimate(
            "AMD EPYC 7B13 64-Core Processor",
            0.5,
            1,
            None,
            PowerOverrides::default(),
        )
        .unwrap();
        assert!((e.cpu_watts - 280.0 * 0.75).abs() < 1e-9, "{e:?}");
        assert!((e.idle_watts - 280.0 * 0.12).abs() < 1e-9);
        assert!(e.rule.contains("Google-custom"), "{}", e.rule);
        assert_eq!((e.method, e.vm, e.threads), ("model", false, 128));
        let e = estimate(P8375C, 1.0, 1, Some(2), PowerOverrides::default()).unwrap();
        assert!((e.cpu_watts - 9.5625).abs() < 1e-9, "{e:?}");
        let err = estimate(P8375C, 1.5, 1, None, PowerOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("--load 1.5"), "{err}");
        let err = estimate("Imaginary 9000", 0.5, 1, None, PowerOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("not in the CPU table"), "{err}");
    }

    #[test]
    fn unknown_bare_metal_cpu() {
        let mut machine = host("Imaginary Quantum 9000", false, 1, Some(16));
        let err = CpuPower::resolve(&machine, PowerOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("--tdp-w"), "{err}");
        machine.physical_cores = Some(8);
        let power = CpuPower::resolve(&machine, PowerOverrides::default()).unwrap();
        assert!((power.power_w(1.0) - 80.0 * 1.02).abs() < 1e-9);
        assert_eq!(power.uncertainty, model::CPU_UNCERTAINTY_FALLBACK_TDP);
    }
}
