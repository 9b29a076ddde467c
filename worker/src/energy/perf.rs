//! RAPL energy counters through `perf_event_open` and the kernel's `power` PMU
//! (`/sys/bus/event_source/devices/power`): one system-wide counter per package and event,
//! read with one `read(2)` each, cheaper than powercap's sysfs text files and never wrapping
//! (64-bit counts).
//!
//! The PMU directory holds `type` (the PMU number for `perf_event_attr.type`), `cpumask`
//! (one CPU per package, the one to open the counter on), and `events/energy-pkg`
//! (`event=0x02`), `events/energy-pkg.scale` (joules per count, e.g.
//! `2.3283064365386962890625e-10`), likewise `energy-ram`. Opening needs
//! `perf_event_paranoid` ≤ 0 or `CAP_PERFMON` (or root).

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::powercap::{Zone, ZoneKind};

/// The PMU's directory on a Linux machine.
pub const DEFAULT_PMU_DIR: &str = "/sys/bus/event_source/devices/power";

/// `perf_event_open` flag: the descriptor is closed on exec (linux/perf_event.h).
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// The prefix of `perf_event_attr` the kernel accepts as `PERF_ATTR_SIZE_VER0` (64 bytes);
/// zeroed fields mean: counting, enabled, no sampling.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// One open system-wide counter of the `power` PMU.
#[derive(Debug)]
pub struct PerfCounter {
    file: File,
    /// Joules per count.
    scale_j: f64,
}

impl PerfCounter {
    /// Reads the counter, in microjoules since it was opened.
    pub fn read_uj(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        (&self.file).read_exact(&mut buf)?;
        Ok((u64::from_ne_bytes(buf) as f64 * self.scale_j * 1e6) as u64)
    }
}

impl PartialEq for PerfCounter {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// Opens one counter of every package for energy-pkg (and energy-ram where the PMU has
/// it), or says why not: no PMU, no event, or the permission the kernel wants.
pub fn probe(pmu_dir: &Path, proc_root: &Path) -> Result<Vec<Zone>, String> {
    let type_path = pmu_dir.join("type");
    let pmu_type: u32 = match fs::read_to_string(&type_path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|err| format!("{}: {err} (expected the PMU number)", type_path.display()))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "no RAPL perf PMU ({} is missing: the CPU or the hypervisor exposes no RAPL)",
                type_path.display()
            ));
        }
        Err(err) => return Err(format!("cannot read {}: {err}", type_path.display())),
    };
    let cpumask_path = pmu_dir.join("cpumask");
    let cpus = fs::read_to_string(&cpumask_path)
        .map_err(|err| format!("cannot read {}: {err}", cpumask_path.display()))
        .and_then(|text| {
            parse_cpu_list(&text)
                .ok_or_else(|| format!("{}: {text:?} is not a CPU list", cpumask_path.display()))
        })?;
    let mut zones = Vec::new();
    for (event, kind, prefix) in [
        ("energy-pkg", ZoneKind::Package, "package"),
        ("energy-ram", ZoneKind::Dram, "dram"),
    ] {
        let event_path = pmu_dir.join("events").join(event);
        let Ok(spec) = fs::read_to_string(&event_path) else {
            if kind == ZoneKind::Package {
                return Err(format!(
                    "the power PMU has no {event} event ({} is missing)",
                    event_path.display()
                ));
            }
            continue;
        };
        let config = parse_event(&spec)
            .ok_or_else(|| format!("{}: cannot parse {spec:?}", event_path.display()))?;
        let scale_path = pmu_dir.join("events").join(format!("{event}.scale"));
        let scale_j: f64 = fs::read_to_string(&scale_path)
            .map_err(|err| format!("cannot read {}: {err}", scale_path.display()))?
            .trim()
            .parse()
            .map_err(|err| format!("{}: {err}", scale_path.display()))?;
        for (idx, &cpu) in cpus.iter().enumerate() {
            let counter = open(pmu_type, config, cpu, scale_j)
                .map_err(|err| open_failure(event, cpu, &err, proc_root))?;
            zones.push(Zone {
                label: format!("{prefix}-{idx}"),
                kind,
                dir: pmu_dir.join("events").join(event),
                max_range_uj: u64::MAX,
                perf: Some(Arc::new(counter)),
            });
        }
    }
    Ok(zones)
}

/// Why `perf_event_open` failed, with the fix for a permission error.
fn open_failure(event: &str, cpu: u32, err: &io::Error, proc_root: &Path) -> String {
    let denied = matches!(err.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM));
    if !denied {
        return format!("perf_event_open(power/{event}, cpu {cpu}) failed: {err}");
    }
    let paranoid_path: PathBuf = proc_root.join("sys/kernel/perf_event_paranoid");
    let paranoid = fs::read_to_string(&paranoid_path)
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "perf_event_open(power/{event}, cpu {cpu}) denied ({err}); perf_event_paranoid is \
         {paranoid}: grant the worker CAP_PERFMON (`sudo setcap cap_perfmon+ep $(which worker)`) \
         or allow system-wide counters (`sudo sysctl kernel.perf_event_paranoid=0`)"
    )
}

/// `perf_event_open(attr, pid = -1, cpu, group = -1, flags = 0)`: a system-wide counter.
fn open(pmu_type: u32, config: u64, cpu: u32, scale_j: f64) -> io::Result<PerfCounter> {
    let attr = PerfEventAttr {
        kind: pmu_type,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config,
        ..PerfEventAttr::default()
    };
    // SAFETY: attr is a live, initialised PERF_ATTR_SIZE_VER0 struct whose size field says
    // so; the kernel only reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            -1 as libc::pid_t,
            cpu as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd as libc::c_int) };
    Ok(PerfCounter { file, scale_j })
}

/// `event=0x02` (possibly with other `key=value` terms) → 2.
fn parse_event(spec: &str) -> Option<u64> {
    spec.trim().split(',').find_map(|term| {
        let value = term.trim().strip_prefix("event=")?;
        match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        }
    })
}

/// `0`, `0,28`, `0-1,4` → the CPUs.
fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => cpus.extend(lo.parse::<u32>().ok()?..=hi.parse::<u32>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_pmu(dir: &Path, pmu_type: &str) {
        fs::create_dir_all(dir.join("events")).unwrap();
        fs::write(dir.join("type"), pmu_type).unwrap();
        fs::write(dir.join("cpumask"), "0,28\n").unwrap();
        fs::write(dir.join("events/energy-pkg"), "event=0x02\n").unwrap();
        fs::write(
            dir.join("events/energy-pkg.scale"),
            "2.3283064365386962890625e-10\n",
        )
        .unwrap();
        fs::write(dir.join("events/energy-pkg.unit"), "Joules\n").unwrap();
    }

    #[test]
    fn event_specs_and_cpu_lists() {
        assert_eq!(parse_event("event=0x02\n"), Some(2));
        assert_eq!(parse_event("event=0x3,umask=0"), Some(3));
        assert_eq!(parse_event("umask=1"), None);
        assert_eq!(parse_cpu_list("0,28\n"), Some(vec![0, 28]));
        assert_eq!(parse_cpu_list("0-1,4"), Some(vec![0, 1, 4]));
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list("\n"), None);
    }

    #[test]
    fn missing_pmu_says_so() {
        let root = tempfile::tempdir().unwrap();
        let reason = probe(&root.path().join("power"), Path::new("/proc")).unwrap_err();
        assert!(reason.contains("no RAPL perf PMU"), "{reason}");
        assert!(reason.contains("power/type"), "{reason}");
    }

    #[test]
    fn pmu_without_energy_pkg_says_which_file() {
        let root = tempfile::tempdir().unwrap();
        let pmu = root.path().join("power");
        fake_pmu(&pmu, "4242");
        fs::remove_file(pmu.join("events/energy-pkg")).unwrap();
        let reason = probe(&pmu, Path::new("/proc")).unwrap_err();
        assert!(reason.contains("no energy-pkg event"), "{reason}");
    }

    /// A faithful PMU layout whose type the kernel does not know: the open fails and the
    /// reason names the event and the CPU (with the fix when it is a permission error).
    #[test]
    fn a_pmu_the_kernel_refuses_gives_the_reason() {
        let root = tempfile::tempdir().unwrap();
        let pmu = root.path().join("power");
        fake_pmu(&pmu, "4242");
        let proc_root = root.path().join("proc");
        fs::create_dir_all(proc_root.join("sys/kernel")).unwrap();
        fs::write(proc_root.join("sys/kernel/perf_event_paranoid"), "2\n").unwrap();
        let reason = probe(&pmu, &proc_root).unwrap_err();
        assert!(
            reason.contains("perf_event_open(power/energy-pkg, cpu 0)"),
            "{reason}"
        );
        if reason.contains("denied") {
            assert!(reason.contains("perf_event_paranoid is 2"), "{reason}");
            assert!(reason.contains("CAP_PERFMON"), "{reason}");
        }
    }

    #[test]
    fn the_attr_prefix_is_ver0() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64);
    }
}
