//! What kind of machine the worker runs on, read from `/proc/cpuinfo` and
//! `/sys/class/dmi/id/*` (both through injectable roots): a VM or bare metal, sockets,
//! physical cores, threads, vendor, and the CPUID family/model/stepping mapped to a
//! microarchitecture.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

/// A CPU microarchitecture, as far as the model needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Microarch {
    /// Intel Sandy Bridge (2011).
    SandyBridge,
    /// Intel Ivy Bridge (2012).
    IvyBridge,
    /// Intel Haswell (2013).
    Haswell,
    /// Intel Broadwell (2014).
    Broadwell,
    /// Intel Skylake (2015; server parts 2017).
    Skylake,
    /// Intel Kaby Lake, Coffee Lake, Comet Lake (client Skylake derivatives).
    CoffeeLake,
    /// Intel Cascade Lake (2019) and Cooper Lake.
    CascadeLake,
    /// Intel Ice Lake (2019; server parts 2021).
    IceLake,
    /// Intel Sapphire Rapids and Emerald Rapids (2023).
    SapphireRapids,
    /// AMD Zen / Zen+ (EPYC 1st gen, Naples).
    Zen,
    /// AMD Zen 2 (EPYC 2nd gen, Rome).
    Zen2,
    /// AMD Zen 3 (EPYC 3rd gen, Milan).
    Zen3,
    /// AMD Zen 4 (EPYC 4th gen, Genoa, Bergamo).
    Zen4,
    /// AMD Zen 5 (EPYC 5th gen, Turin).
    Zen5,
}

impl Microarch {
    /// Its usual name: `Cascade Lake`, `Zen 2 (EPYC 2nd gen)`.
    pub fn name(self) -> &'static str {
        match self {
            Microarch::SandyBridge => "Sandy Bridge",
            Microarch::IvyBridge => "Ivy Bridge",
            Microarch::Haswell => "Haswell",
            Microarch::Broadwell => "Broadwell",
            Microarch::Skylake => "Skylake",
            Microarch::CoffeeLake => "Coffee Lake",
            Microarch::CascadeLake => "Cascade Lake",
            Microarch::IceLake => "Ice Lake",
            Microarch::SapphireRapids => "Sapphire Rapids",
            Microarch::Zen => "Zen (EPYC 1st gen)",
            Microarch::Zen2 => "Zen 2 (EPYC 2nd gen)",
            Microarch::Zen3 => "Zen 3 (EPYC 3rd gen)",
            Microarch::Zen4 => "Zen 4 (EPYC 4th gen)",
            Microarch::Zen5 => "Zen 5 (EPYC 5th gen)",
        }
    }

    /// The microarchitecture of a CPUID vendor, family, model and stepping (`None` when
    /// the table does not know it).
    pub fn from_cpuid(vendor: &str, family: u32, model: u32, stepping: u32) -> Option<Microarch> {
        match (vendor, family) {
            ("GenuineIntel", 6) => match model {
                0x2A | 0x2D => Some(Microarch::SandyBridge),
                0x3A | 0x3E => Some(Microarch::IvyBridge),
                0x3C | 0x3F | 0x45 | 0x46 => Some(Microarch::Haswell),
                0x3D | 0x47 | 0x4F | 0x56 => Some(Microarch::Broadwell),
                0x4E | 0x5E => Some(Microarch::Skylake),
                // Model 0x55 is Skylake-SP up to stepping 4, Cascade Lake 5–7, Cooper Lake 10–11.
                0x55 if stepping <= 4 => Some(Microarch::Skylake),
                0x55 => Some(Microarch::CascadeLake),
                0x8E | 0x9E | 0xA5 | 0xA6 => Some(Microarch::CoffeeLake),
                0x6A | 0x6C | 0x7D | 0x7E => Some(Microarch::IceLake),
                // Tiger Lake and Rocket Lake (0xA7, what KVM guests often report) have the
                // Sunny/Cypress Cove core of Ice Lake; no per-vCPU figures of their own exist.
                0x8C | 0x8D | 0xA7 => Some(Microarch::IceLake),
                0x8F | 0xCF => Some(Microarch::SapphireRapids),
                _ => None,
            },
            ("AuthenticAMD", 0x17) => match model {
                0x00..=0x2F => Some(Microarch::Zen),
                0x30..=0x7F => Some(Microarch::Zen2),
                _ => None,
            },
            ("AuthenticAMD", 0x19) => match model {
                0x00..=0x0F | 0x20..=0x5F => Some(Microarch::Zen3),
                0x10..=0x1F | 0x60..=0xAF => Some(Microarch::Zen4),
                _ => None,
            },
            ("AuthenticAMD", 0x1A) => Some(Microarch::Zen5),
            _ => None,
        }
    }

    /// The microarchitecture named by a table's `code_name` column (`Ice Lake-SP`, `Rome`).
    pub fn from_code_name(code_name: &str) -> Option<Microarch> {
        let name = code_name.to_lowercase();
        let starts = |prefix: &str| name.starts_with(prefix);
        Some(if starts("sandy bridge") {
            Microarch::SandyBridge
        } else if starts("ivy bridge") {
            Microarch::IvyBridge
        } else if starts("haswell") {
            Microarch::Haswell
        } else if starts("broadwell") {
            Microarch::Broadwell
        } else if starts("skylake") {
            Microarch::Skylake
        } else if starts("kaby lake") || starts("coffee lake") || starts("comet lake") {
            Microarch::CoffeeLake
        } else if starts("cascade lake") || starts("cooper lake") {
            Microarch::CascadeLake
        } else if starts("ice lake") {
            Microarch::IceLake
        } else if starts("sapphire rapids") || starts("emerald rapids") {
            Microarch::SapphireRapids
        } else if starts("naples") || starts("summit ridge") || starts("pinnacle ridge") {
            Microarch::Zen
        } else if starts("rome") || starts("matisse") || starts("castle peak") {
            Microarch::Zen2
        } else if starts("milan") || starts("vermeer") {
            Microarch::Zen3
        } else if starts("genoa") || starts("bergamo") || starts("raphael") {
            Microarch::Zen4
        } else if starts("turin") {
            Microarch::Zen5
        } else {
            return None;
        })
    }
}

/// Whether the worker runs in a virtual machine, and what says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Virtualisation {
    /// No sign of a hypervisor.
    BareMetal,
    /// A VM; the evidence (`cpuinfo flag hypervisor`, `DMI sys_vendor QEMU`).
    Vm(String),
}

/// The machine as procfs and DMI describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// The `model name` line (`Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz`).
    pub model_name: String,
    /// The `vendor_id` line (`GenuineIntel`, `AuthenticAMD`), empty when absent.
    pub vendor: String,
    /// CPUID family, model and stepping when cpuinfo gives them.
    pub cpuid: Option<(u32, u32, u32)>,
    /// Distinct `physical id`s (1 when the kernel omits them).
    pub sockets: u32,
    /// Distinct (physical id, core id) pairs; the thread count when the kernel omits them.
    pub physical_cores: u32,
    /// `processor` entries: hardware threads, or vCPUs in a VM.
    pub threads: u32,
    /// VM or bare metal.
    pub virtualisation: Virtualisation,
}

impl Machine {
    /// True in a virtual machine.
    pub fn is_vm(&self) -> bool {
        matches!(self.virtualisation, Virtualisation::Vm(_))
    }

    /// The microarchitecture from CPUID family/model (`None` when unknown).
    pub fn microarch(&self) -> Option<Microarch> {
        let (family, model, stepping) = self.cpuid?;
        Microarch::from_cpuid(&self.vendor, family, model, stepping)
    }
}

/// Reads `<proc_root>/cpuinfo` and the DMI strings under `dmi_root` (missing DMI files are
/// fine: containers and ARM boards often lack them).
pub fn detect(proc_root: &Path, dmi_root: &Path) -> io::Result<Machine> {
    let text = fs::read_to_string(proc_root.join("cpuinfo"))?;
    let mut machine = parse_cpuinfo(&text);
    if machine.virtualisation == Virtualisation::BareMetal
        && let Some(evidence) = dmi_vm_evidence(dmi_root)
    {
        machine.virtualisation = Virtualisation::Vm(evidence);
    }
    Ok(machine)
}

/// Parses the text of `/proc/cpuinfo` (x86 layout; other layouts give what they can).
pub fn parse_cpuinfo(text: &str) -> Machine {
    let mut model_name = None;
    let mut vendor = String::new();
    let (mut family, mut model, mut stepping): (Option<u32>, Option<u32>, Option<u32>) =
        (None, None, None);
    let mut threads = 0u32;
    let mut sockets = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut physical_id = None;
    let mut hypervisor = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => {
                threads += 1;
                physical_id = None;
            }
            "model name" if model_name.is_none() => model_name = Some(value.to_string()),
            "vendor_id" if vendor.is_empty() => vendor = value.to_string(),
            "cpu family" if family.is_none() => family = value.parse().ok(),
            "model" if model.is_none() => model = value.parse().ok(),
            "stepping" if stepping.is_none() => stepping = value.parse().ok(),
            "flags" if !hypervisor => {
                hypervisor = value.split_whitespace().any(|flag| flag == "hypervisor");
            }
            "physical id" => {
                sockets.insert(value.to_string());
                physical_id = Some(value.to_string());
            }
            "core id" => {
                cores.insert((physical_id.clone().unwrap_or_default(), value.to_string()));
            }
            _ => {}
        }
    }
    let threads = threads.max(1);
    Machine {
        model_name: model_name.unwrap_or_else(|| "unknown CPU".to_string()),
        vendor,
        cpuid: family
            .zip(model)
            .map(|(f, m)| (f, m, stepping.unwrap_or(0))),
        sockets: (sockets.len() as u32).max(1),
        physical_cores: if cores.is_empty() {
            threads
        } else {
            cores.len() as u32
        },
        threads,
        virtualisation: if hypervisor {
            Virtualisation::Vm("cpuinfo flag `hypervisor`".to_string())
        } else {
            Virtualisation::BareMetal
        },
    }
}

/// DMI strings naming a hypervisor, as `DMI <file> <value>`.
fn dmi_vm_evidence(dmi_root: &Path) -> Option<String> {
    const VM_MARKERS: [&str; 10] = [
        "qemu",
        "kvm",
        "vmware",
        "virtualbox",
        "innotek",
        "xen",
        "bochs",
        "parallels",
        "virtual machine",
        "google compute engine",
    ];
    let read = |file: &str| {
        fs::read_to_string(dmi_root.join(file))
            .ok()
            .map(|text| text.trim().to_string())
    };
    let product = read("product_name").unwrap_or_default();
    for file in ["sys_vendor", "product_name", "bios_vendor", "board_vendor"] {
        let Some(value) = read(file) else { continue };
        let lower = value.to_lowercase();
        // EC2 bare-metal instances say `Amazon EC2` too, with a product `*.metal`.
        let ec2_vm = lower == "amazon ec2" && !product.ends_with(".metal");
        if ec2_vm || VM_MARKERS.iter().any(|marker| lower.contains(marker)) {
            return Some(format!("DMI {file} `{value}`"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpuinfo(
        model: &str,
        sockets: u32,
        cores: u32,
        threads_per_core: u32,
        flags: &str,
    ) -> String {
        let mut text = String::new();
        let mut idx = 0;
        for socket in 0..sockets {
            for thread in 0..threads_per_core {
                for core in 0..cores {
                    let _ = thread;
                    text.push_str(&format!(
                        "processor\t: {idx}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
                         model\t\t: 85\nmodel name\t: {model}\nstepping\t: 7\n\
                         physical id\t: {socket}\ncore id\t\t: {core}\nflags\t\t: fpu {flags}\n\n"
                    ));
                    idx += 1;
                }
            }
        }
        text
    }

    #[test]
    fn dual_socket_bare_metal() {
        let machine = parse_cpuinfo(&cpuinfo("Intel(R) Xeon(R) Gold 6248 CPU", 2, 20, 2, "sse"));
        assert_eq!(machine.sockets, 2);
        assert_eq!(machine.physical_cores, 40);
        assert_eq!(machine.threads, 80);
        assert_eq!(machine.virtualisation, Virtualisation::BareMetal);
        assert_eq!(machine.microarch(), Some(Microarch::CascadeLake));
    }

    #[test]
    fn hypervisor_flag_means_vm() {
        let machine = parse_cpuinfo(&cpuinfo(
            "Intel(R) Xeon(R) Processor",
            1,
            2,
            1,
            "hypervisor",
        ));
        assert!(machine.is_vm());
        assert_eq!(machine.threads, 2);
        assert_eq!(machine.cpuid, Some((6, 85, 7)));
    }

    #[test]
    fn dmi_vendor_means_vm() {
        let root = tempfile::tempdir().unwrap();
        let proc_root = root.path().join("proc");
        let dmi_root = root.path().join("dmi");
        fs::create_dir_all(&proc_root).unwrap();
        fs::create_dir_all(&dmi_root).unwrap();
        fs::write(proc_root.join("cpuinfo"), cpuinfo("X", 1, 2, 1, "sse")).unwrap();
        // No DMI files: bare metal.
        let machine = detect(&proc_root, &dmi_root).unwrap();
        assert!(!machine.is_vm());
        fs::write(dmi_root.join("sys_vendor"), "QEMU\n").unwrap();
        let machine = detect(&proc_root, &dmi_root).unwrap();
        assert_eq!(
            machine.virtualisation,
            Virtualisation::Vm("DMI sys_vendor `QEMU`".into())
        );
        // An EC2 bare-metal instance is not a VM.
        fs::write(dmi_root.join("sys_vendor"), "Amazon EC2\n").unwrap();
        fs::write(dmi_root.join("product_name"), "m5.metal\n").unwrap();
        assert!(!detect(&proc_root, &dmi_root).unwrap().is_vm());
        fs::write(dmi_root.join("product_name"), "m5.large\n").unwrap();
        assert!(detect(&proc_root, &dmi_root).unwrap().is_vm());
    }

    #[test]
    fn cpuid_to_microarch() {
        let intel = |model, stepping| Microarch::from_cpuid("GenuineIntel", 6, model, stepping);
        assert_eq!(intel(0x55, 4), Some(Microarch::Skylake));
        assert_eq!(intel(0x55, 7), Some(Microarch::CascadeLake));
        assert_eq!(intel(0x6A, 6), Some(Microarch::IceLake));
        assert_eq!(intel(0xA7, 1), Some(Microarch::IceLake));
        assert_eq!(intel(0x8F, 8), Some(Microarch::SapphireRapids));
        assert_eq!(intel(0x3F, 2), Some(Microarch::Haswell));
        assert_eq!(intel(0x4F, 1), Some(Microarch::Broadwell));
        let amd = |family, model| Microarch::from_cpuid("AuthenticAMD", family, model, 0);
        assert_eq!(amd(0x17, 0x01), Some(Microarch::Zen));
        assert_eq!(amd(0x17, 0x31), Some(Microarch::Zen2));
        assert_eq!(amd(0x19, 0x01), Some(Microarch::Zen3));
        assert_eq!(amd(0x19, 0x11), Some(Microarch::Zen4));
        assert_eq!(Microarch::from_cpuid("GenuineIntel", 15, 4, 0), None);
        assert_eq!(
            Microarch::from_code_name("Ice Lake-SP"),
            Some(Microarch::IceLake)
        );
        assert_eq!(Microarch::from_code_name("Rome"), Some(Microarch::Zen2));
    }
}
