//! What the meter reads from procfs (machine and process CPU time, memory, CPU model) and
//! from `getrusage` (the exact CPU time of reaped children).

use std::fs;
use std::io;
use std::path::Path;

/// The CPU of the machine, as `/proc/cpuinfo` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// The `model name` line (`Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz`).
    pub model: String,
    /// Distinct (physical id, core id) pairs; the logical count when the kernel omits them.
    pub physical_cores: u32,
    /// `processor` entries (hardware threads).
    pub logical_cores: u32,
}

/// Machine-wide CPU time from the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineJiffies {
    /// user + nice + system + irq + softirq.
    pub busy: u64,
    /// busy + idle + iowait + steal.
    pub total: u64,
}

/// Memory of a process from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessMemory {
    /// Resident set now (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set so far (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// CPU time and peak memory of the reaped children of this process (`RUSAGE_CHILDREN`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChildUsage {
    /// User + system seconds of all reaped children and their reaped descendants.
    pub cpu_time_s: f64,
    /// Largest peak resident set of any reaped child.
    pub max_rss_bytes: u64,
}

/// Reads the machine's busy and total CPU ticks.
pub fn machine_jiffies(proc_root: &Path) -> io::Result<MachineJiffies> {
    let path = proc_root.join("stat");
    let text = fs::read_to_string(&path)?;
    let line = text
        .lines()
        .find(|line| line.starts_with("cpu "))
        .ok_or_else(|| invalid(&path, "no `cpu` line"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |idx: usize| fields.get(idx).copied().unwrap_or(0);
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    Ok(MachineJiffies {
        busy,
        total: busy + field(3) + field(4) + field(7),
    })
}

/// Reads utime + stime + cutime + cstime of a process (all its threads and its waited-for
/// children), in clock ticks.
pub fn process_ticks(proc_root: &Path, pid: u32) -> io::Result<u64> {
    let path = proc_root.join(pid.to_string()).join("stat");
    let text = fs::read_to_string(&path)?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let after_comm = text
        .rfind(')')
        .map(|idx| &text[idx + 1..])
        .ok_or_else(|| invalid(&path, "no ')'"))?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // After the name, field 0 is the state (stat field 3); utime is stat field 14.
    let ticks = |idx: usize| -> io::Result<u64> {
        fields
            .get(idx)
            .and_then(|field| field.parse::<i64>().ok())
            .map(|value| value.max(0) as u64)
            .ok_or_else(|| invalid(&path, "too few fields"))
    };
    Ok(ticks(11)? + ticks(12)? + ticks(13)? + ticks(14)?)
}

/// Reads the resident memory of a process.
pub fn process_memory(proc_root: &Path, pid: u32) -> io::Result<ProcessMemory> {
    let path = proc_root.join(pid.to_string()).join("status");
    let text = fs::read_to_string(&path)?;
    let kib = |key: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let rss_bytes = kib("VmRSS") * 1024;
    Ok(ProcessMemory {
        rss_bytes,
        peak_rss_bytes: (kib("VmHWM") * 1024).max(rss_bytes),
    })
}

/// Reads the CPU model and core counts from `<proc_root>/cpuinfo` (parsed once, by
/// [`super::machine::parse_cpuinfo`]).
pub fn cpu_info(proc_root: &Path) -> io::Result<CpuInfo> {
    let text = fs::read_to_string(proc_root.join("cpuinfo"))?;
    let machine = super::machine::parse_cpuinfo(&text);
    Ok(CpuInfo {
        model: machine.model_name,
        physical_cores: machine.physical_cores,
        logical_cores: machine.threads,
    })
}

/// Clock ticks per second of the `/proc` CPU times (`_SC_CLK_TCK`, usually 100).
pub fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Reads `getrusage(RUSAGE_CHILDREN)`: the totals of every child reaped so far.
pub fn rusage_children() -> ChildUsage {
    rusage(libc::RUSAGE_CHILDREN)
}

/// Reads `getrusage(RUSAGE_SELF)`: this process's own CPU time (the meter's overhead).
pub fn rusage_self() -> ChildUsage {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> ChildUsage {
    // SAFETY: rusage is plain old data, so all-zero is a valid value, and getrusage only
    // writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, writable rusage.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return ChildUsage::default();
    }
    let seconds = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    ChildUsage {
        cpu_time_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        max_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
    }
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_of_a_process_with_parentheses_in_its_name() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("42")).unwrap();
        let stat = "42 (my (odd) name) R 1 42 42 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 4 0 1 1 1";
        fs::write(root.path().join("42/stat"), stat).unwrap();
        assert_eq!(process_ticks(root.path(), 42).unwrap(), 250 + 50 + 7 + 3);
    }

    #[test]
    fn machine_busy_and_total() {
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("stat"),
            "cpu  10 2 3 100 5 1 1 4 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n",
        )
        .unwrap();
        let jiffies = machine_jiffies(root.path()).unwrap();
        assert_eq!(
            jiffies,
            MachineJiffies {
                busy: 17,
                total: 126
            }
        );
    }

    #[test]
    fn memory_from_status() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("7")).unwrap();
        fs::write(
            root.path().join("7/status"),
            "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n",
        )
        .unwrap();
        let memory = process_memory(root.path(), 7).unwrap();
        assert_eq!(
            memory,
            ProcessMemory {
                rss_bytes: 1024 * 1024,
                peak_rss_bytes: 2048 * 1024
            }
        );
    }

    #[test]
    fn cores_from_cpuinfo() {
        let root = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for (processor, core) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
            text.push_str(&format!(
                "processor\t: {processor}\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: {core}\n\n"
            ));
        }
        fs::write(root.path().join("cpuinfo"), text).unwrap();
        let info = cpu_info(root.path()).unwrap();
        assert_eq!(
            info,
            CpuInfo {
                model: "Test CPU".into(),
                physical_cores: 2,
                logical_cores: 4
            }
        );
    }

    #[test]
    fn real_proc_is_readable() {
        let root = Path::new("/proc");
        let info = cpu_info(root).unwrap();
        assert!(info.logical_cores >= info.physical_cores && info.physical_cores >= 1);
        assert!(machine_jiffies(root).unwrap().total > 0);
        assert!(process_memory(root, std::process::id()).unwrap().rss_bytes > 0);
        process_ticks(root, std::process::id()).unwrap();
    }
}
