//! Attribution against fake powercap and procfs trees that the tests advance: long runs
//! whose counters wrap, two packages with DRAM, unreadable and vanishing zones, ticks the
//! samples missed, an unreadable `/proc/<pid>/stat`, and two processes sharing a machine.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

/// An Intel package's wrap point (about 43 min at 100 W).
const PACKAGE_MAX_UJ: u64 = 262_143_328_850;
const DRAM_MAX_UJ: u64 = 65_712_999_613;

fn write(path: &Path, text: impl AsRef<str>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text.as_ref()).unwrap();
}

fn no_children() -> ChildUsage {
    ChildUsage::default()
}

/// A machine under test: a powercap tree of `n_packages` packages with DRAM, and a procfs.
struct Machine {
    _root: tempfile::TempDir,
    powercap: PathBuf,
    proc_root: PathBuf,
    n_packages: u32,
    package_uj: u64,
    dram_uj: u64,
    busy: u64,
    idle: u64,
}

impl Machine {
    fn new(n_packages: u32) -> Machine {
        let root = tempfile::tempdir().unwrap();
        let powercap = root.path().join("powercap");
        let proc_root = root.path().join("proc");
        write(&powercap.join("intel-rapl/enabled"), "1");
        for pkg in 0..n_packages {
            let dir = powercap.join(format!("intel-rapl:{pkg}"));
            write(&dir.join("name"), format!("package-{pkg}"));
            write(&dir.join("max_energy_range_uj"), PACKAGE_MAX_UJ.to_string());
            let dram = dir.join(format!("intel-rapl:{pkg}:0"));
            write(&dram.join("name"), "dram");
            write(&dram.join("max_energy_range_uj"), DRAM_MAX_UJ.to_string());
        }
        let mut cpuinfo = String::new();
        for idx in 0..4 * n_packages {
            cpuinfo.push_str(&format!(
                "processor\t: {idx}\nmodel name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\n\
                 physical id\t: {}\ncore id\t\t: {}\n\n",
                idx / 4,
                idx % 4
            ));
        }
        write(&proc_root.join("cpuinfo"), cpuinfo);
        let machine = Machine {
            _root: root,
            powercap,
            proc_root,
            n_packages,
            package_uj: PACKAGE_MAX_UJ - 5_000_000,
            dram_uj: DRAM_MAX_UJ - 1_000_000,
            busy: 10_000,
            idle: 50_000,
        };
        machine.write_counters();
        machine.write_stat();
        machine
    }

    fn meter(&self) -> Meter {
        let mut meter = Meter::new(MeterConfig {
            powercap_root: self.powercap.clone(),
            perf_pmu_dir: self.proc_root.join("no-power-pmu"),
            proc_root: self.proc_root.clone(),
            ..MeterConfig::default()
        })
        .unwrap();
        meter.child_usage = no_children;
        meter.clock_ticks_per_s = 100.0;
        meter
    }

    fn write_counters(&self) {
        for pkg in 0..self.n_packages {
            let dir = self.powercap.join(format!("intel-rapl:{pkg}"));
            if dir.join("name").exists() {
                write(&dir.join("energy_uj"), self.package_uj.to_string());
                let dram = dir.join(format!("intel-rapl:{pkg}:0"));
                if dram.join("energy_uj").is_dir() {
                    continue; // Made unreadable by the test.
                }
                write(&dram.join("energy_uj"), self.dram_uj.to_string());
            }
        }
    }

    fn write_stat(&self) {
        write(
            &self.proc_root.join("stat"),
            format!("cpu  {} 0 0 {} 0 0 0 0 0 0\n", self.busy, self.idle),
        );
    }

    /// One second: each package draws `package_w` and each DRAM `dram_w`; the machine is
    /// busy for `busy` ticks and idle for `idle`.
    fn advance(&mut self, package_w: u64, dram_w: u64, busy: u64, idle: u64) {
        self.package_uj = (self.package_uj + package_w * 1_000_000) % (PACKAGE_MAX_UJ + 1);
        self.dram_uj = (self.dram_uj + dram_w * 1_000_000) % (DRAM_MAX_UJ + 1);
        self.busy += busy;
        self.idle += idle;
        self.write_counters();
        self.write_stat();
    }
}

/// Writes a process's stat (utime = `ticks`) and status; `None` removes it (reaped).
fn write_process(proc_root: &Path, pid: u32, ticks: Option<u64>) {
    let dir = proc_root.join(pid.to_string());
    match ticks {
        Some(ticks) => {
            write(
                &dir.join("stat"),
                format!("{pid} (train) R 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 3 0 1 1 1"),
            );
            write(
                &dir.join("status"),
                "Name:\ttrain\nVmHWM:\t2048 kB\nVmRSS:\t1024 kB\n",
            );
        }
        None => {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

fn joules(kwh: f64) -> f64 {
    kwh * model::J_PER_KWH
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

/// Four hours at 1 Hz on two packages with DRAM: the package counters wrap five times and
/// the DRAM ones more; nothing is lost, the process gets its half, the idle part follows
/// the curve at the machine's load.
#[test]
fn two_packages_with_dram_across_hours_of_wraps() {
    let mut machine = Machine::new(2);
    let meter = machine.meter();
    assert_eq!(
        meter.describe(),
        "rapl: package-0, package-1, dram-0, dram-1"
    );
    assert_eq!(meter.rapl_interface(), Some("powercap"));
    let pid = 7001;
    write_process(&machine.proc_root, pid, Some(0));
    let mut run = meter.start(pid);
    let seconds = 4 * 3600;
    for second in 1..=seconds {
        // 8 CPUs at 100 ticks/s: 400 busy (the process 200 of them), 400 idle.
        machine.advance(100, 10, 400, 400);
        write_process(&machine.proc_root, pid, Some(200 * second));
        run.sample();
    }
    let report = run.finish();
    let machine_cpu_j = 2.0 * 100.0 * seconds as f64;
    let machine_ram_j = 2.0 * 10.0 * seconds as f64;
    assert_eq!(report.method, EnergyMethod::Rapl);
    assert!(
        close(joules(report.machine_cpu_kwh.unwrap()), machine_cpu_j),
        "{report:?}"
    );
    assert!(
        close(joules(report.machine_ram_kwh.unwrap()), machine_ram_j),
        "{report:?}"
    );
    assert!(
        close(joules(report.cpu_energy_kwh), machine_cpu_j / 2.0),
        "{report:?}"
    );
    assert!(
        close(joules(report.ram_energy_kwh), machine_ram_j / 2.0),
        "{report:?}"
    );
    // Load 0.5: the package's idle part is the curve's floor over its value at 0.5; the
    // DRAM's is f0 / (f0 + (1 − f0) × 0.5).
    let idle = |f0: f64| f0 / (f0 + (1.0 - f0) * 0.5);
    assert!(close(
        joules(report.idle_cpu_kwh.unwrap()),
        machine_cpu_j * model::IDLE_FRACTION / model::tdp_fraction(0.5)
    ));
    assert!(close(
        joules(report.idle_ram_kwh.unwrap()),
        machine_ram_j * idle(model::DRAM_IDLE_FRACTION)
    ));
    assert_eq!(report.rapl_interface.as_deref(), Some("powercap"));
    assert_eq!(report.fallback_reason, None);
}

/// The case: the samples never saw the process (reaped before them), so all its
/// ticks arrive at the end. They are charged against every span's energy, not against the
/// last interval clamped to share 1 (which charged about one second of package energy).
#[test]
fn ticks_the_samples_missed_are_charged_against_all_their_energy() {
    static CPU_S: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    fn children() -> ChildUsage {
        ChildUsage {
            cpu_time_s: CPU_S.load(std::sync::atomic::Ordering::SeqCst) as f64,
            max_rss_bytes: 0,
        }
    }
    let mut machine = Machine::new(1);
    let mut meter = machine.meter();
    meter.child_usage = children;
    let pid = 7002;
    let mut run = meter.start(pid);
    for _ in 0..10 {
        machine.advance(50, 0, 100, 300);
        run.sample();
    }
    CPU_S.store(10, std::sync::atomic::Ordering::SeqCst);
    let report = run.finish();
    assert!(close(report.cpu_time_s, 10.0));
    assert!(close(joules(report.cpu_energy_kwh), 500.0), "{report:?}");
    assert!(close(joules(report.machine_cpu_kwh.unwrap()), 500.0));
}

/// `/proc/<pid>/stat` exists but cannot be read: the share is unknown, so the job's energy
/// is the model's, the report says why, and the machine's measured energy is still there.
#[test]
fn unreadable_process_stat_falls_back_to_the_model_and_says_so() {
    let mut machine = Machine::new(1);
    let meter = machine.meter();
    let pid = 7003;
    write_process(&machine.proc_root, pid, Some(0));
    let mut run = meter.start(pid);
    machine.advance(50, 5, 100, 100);
    write_process(&machine.proc_root, pid, Some(100));
    run.sample();
    // A stat that is a directory: read_to_string fails with something other than NotFound.
    let stat = machine.proc_root.join(pid.to_string()).join("stat");
    fs::remove_file(&stat).unwrap();
    fs::create_dir(&stat).unwrap();
    machine.advance(50, 5, 100, 100);
    run.sample();
    let report = run.finish();
    assert_eq!(report.method, EnergyMethod::Model, "{report:?}");
    let why = report.fallback_reason.as_deref().unwrap();
    assert!(why.contains(&stat.display().to_string()), "{why}");
    assert!(why.contains("model"), "{why}");
    assert!(report.tdp_w.is_some());
    assert!(close(joules(report.machine_cpu_kwh.unwrap()), 100.0));
    // One second of CPU time seen, in a span where the machine was half busy.
    let expected_cpu_j = meter.cpu_power.w_per_busy_thread(0.5);
    assert!(expected_cpu_j > 0.0);
    assert!(
        close(joules(report.cpu_energy_kwh), expected_cpu_j),
        "{report:?}"
    );
}

/// Two processes on one machine each get their share, and together never more than it.
#[test]
fn two_processes_share_a_machine_without_exceeding_it() {
    let mut machine = Machine::new(1);
    let meter = machine.meter();
    let (a, b) = (7004, 7005);
    write_process(&machine.proc_root, a, Some(0));
    write_process(&machine.proc_root, b, Some(0));
    let mut run_a = meter.start(a);
    let mut run_b = meter.start(b);
    let (mut ticks_a, mut ticks_b) = (0, 0);
    for second in 0..60u64 {
        // 400 busy ticks: a takes 300 then 100, b 50 then 250; the rest is other work.
        let (da, db) = if second < 30 { (300, 50) } else { (100, 250) };
        ticks_a += da;
        ticks_b += db;
        machine.advance(80, 8, 400, 0);
        write_process(&machine.proc_root, a, Some(ticks_a));
        write_process(&machine.proc_root, b, Some(ticks_b));
        run_a.sample();
        run_b.sample();
    }
    let (ra, rb) = (run_a.finish(), run_b.finish());
    let machine_j = joules(ra.machine_energy_kwh.unwrap());
    assert!(close(machine_j, 60.0 * 88.0));
    let expected_a = 30.0 * 88.0 * (300.0 + 100.0) / 400.0;
    let expected_b = 30.0 * 88.0 * (50.0 + 250.0) / 400.0;
    assert!(close(joules(ra.energy_kwh), expected_a), "{ra:?}");
    assert!(close(joules(rb.energy_kwh), expected_b), "{rb:?}");
    assert!(joules(ra.energy_kwh + rb.energy_kwh) <= machine_j + 1e-6);
}

/// A DRAM counter that cannot be read is left out at probe time, and the RAM falls back
/// to the model; a package whose counter cannot be read leaves the meter on the model,
/// naming the file.
#[test]
fn unreadable_energy_uj() {
    let machine = Machine::new(1);
    let dram = machine
        .powercap
        .join("intel-rapl:0/intel-rapl:0:0/energy_uj");
    fs::remove_file(&dram).unwrap();
    fs::create_dir(&dram).unwrap();
    let meter = machine.meter();
    assert_eq!(meter.describe(), "rapl: package-0 (ram: model)");

    let package = machine.powercap.join("intel-rapl:0/energy_uj");
    fs::remove_file(&package).unwrap();
    fs::create_dir(&package).unwrap();
    let meter = machine.meter();
    assert_eq!(meter.method(), EnergyMethod::Model);
    let note = meter.probe_note().unwrap();
    assert!(note.contains("intel-rapl:0"), "{note}");
    let passed_over: Vec<&str> = meter.passed_over().iter().map(|(i, _)| *i).collect();
    assert_eq!(passed_over, ["perf_event", "powercap"]);
}

/// A zone that vanishes mid-run (driver unloaded) stops counting without spoiling the
/// other; back again, it counts from its next reading, never the gap.
#[test]
fn a_zone_vanishing_mid_run() {
    let mut machine = Machine::new(2);
    let meter = machine.meter();
    let pid = 7006;
    write_process(&machine.proc_root, pid, Some(0));
    let mut run = meter.start(pid);
    let mut ticks = 0;
    let mut step = |machine: &mut Machine, run: &mut MeterRun| {
        machine.advance(100, 0, 100, 0);
        ticks += 100;
        write_process(&machine.proc_root, pid, Some(ticks));
        run.sample();
    };
    step(&mut machine, &mut run); // Both: 200 J.
    let gone = machine.powercap.join("intel-rapl:1");
    let kept = machine.powercap.join("intel-rapl-1-away");
    fs::rename(&gone, &kept).unwrap();
    step(&mut machine, &mut run); // Package 0 only: 100 J.
    step(&mut machine, &mut run); // 100 J.
    fs::rename(&kept, &gone).unwrap();
    step(&mut machine, &mut run); // Package 1's first reading back: 100 J.
    step(&mut machine, &mut run); // Both: 200 J.
    let report = run.finish();
    assert!(
        close(joules(report.machine_cpu_kwh.unwrap()), 700.0),
        "{report:?}"
    );
    assert!(close(joules(report.cpu_energy_kwh), 700.0), "{report:?}");
}

/// A mirrored package (same name, same counter, as multi-die AMD parts show) counts once.
#[test]
fn mirrored_zones_count_once() {
    let mut machine = Machine::new(1);
    let mirror = machine.powercap.join("intel-rapl:1");
    write(&mirror.join("name"), "package-0");
    write(
        &mirror.join("max_energy_range_uj"),
        PACKAGE_MAX_UJ.to_string(),
    );
    write(&mirror.join("energy_uj"), machine.package_uj.to_string());
    let meter = machine.meter();
    assert_eq!(meter.describe(), "rapl: package-0, dram-0");
    let pid = 7007;
    write_process(&machine.proc_root, pid, Some(0));
    let mut run = meter.start(pid);
    machine.advance(60, 0, 100, 0);
    write(&mirror.join("energy_uj"), machine.package_uj.to_string());
    write_process(&machine.proc_root, pid, Some(100));
    run.sample();
    let report = run.finish();
    assert!(
        close(joules(report.machine_cpu_kwh.unwrap()), 60.0),
        "{report:?}"
    );
}
