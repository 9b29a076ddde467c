//! Meter tests against a faithful fake powercap and procfs tree, and against a real child.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

const PID: u32 = 4242;
const PACKAGE_MAX_UJ: u64 = 1_000_000_000;

/// The fake children's CPU time, in milliseconds, returned by [`fake_child_usage`].
static FAKE_CHILD_CPU_MS: AtomicU64 = AtomicU64::new(0);

fn fake_child_usage() -> ChildUsage {
    ChildUsage {
        cpu_time_s: FAKE_CHILD_CPU_MS.load(Ordering::SeqCst) as f64 / 1000.0,
        max_rss_bytes: 0,
    }
}

fn write(path: &Path, text: impl AsRef<str>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text.as_ref()).unwrap();
}

fn write_cpuinfo(proc_root: &Path, model: &str, n_logical: u32) {
    let mut text = String::new();
    for idx in 0..n_logical {
        text.push_str(&format!(
            "processor\t: {idx}\nmodel name\t: {model}\nphysical id\t: 0\ncore id\t\t: {}\n\n",
            idx % 2
        ));
    }
    write(&proc_root.join("cpuinfo"), text);
}

/// Sets the fake machine's busy ticks (idle fixed) and the process's utime.
fn write_proc(proc_root: &Path, busy: u64, process_ticks: Option<u64>, rss_kib: u64) {
    write(
        &proc_root.join("stat"),
        format!("cpu  {busy} 0 0 5000 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n"),
    );
    let dir = proc_root.join(PID.to_string());
    match process_ticks {
        Some(ticks) => {
            write(
                &dir.join("stat"),
                format!(
                    "{PID} (python3 (train)) R 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 3 0 1 1 1"
                ),
            );
            write(
                &dir.join("status"),
                format!("Name:\tpython3\nVmHWM:\t4096 kB\nVmRSS:\t{rss_kib} kB\n"),
            );
        }
        None => {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

fn write_counters(powercap: &Path, package_uj: u64, dram_uj: u64) {
    write(
        &powercap.join("intel-rapl:0/energy_uj"),
        package_uj.to_string(),
    );
    write(
        &powercap.join("intel-rapl:0/intel-rapl:0:0/energy_uj"),
        dram_uj.to_string(),
    );
    // The core counter moves too but must not be counted.
    write(
        &powercap.join("intel-rapl:0/intel-rapl:0:1/energy_uj"),
        (package_uj / 2).to_string(),
    );
}

/// A powercap tree like a single-socket Intel machine seen twice (as multi-die AMD does).
fn fake_powercap(powercap: &Path) {
    write(&powercap.join("intel-rapl/enabled"), "1");
    write(&powercap.join("intel-rapl:0/name"), "package-0");
    write(
        &powercap.join("intel-rapl:0/max_energy_range_uj"),
        PACKAGE_MAX_UJ.to_string(),
    );
    write(&powercap.join("intel-rapl:0/intel-rapl:0:0/name"), "dram");
    write(
        &powercap.join("intel-rapl:0/intel-rapl:0:0/max_energy_range_uj"),
        "65532610987",
    );
    write(&powercap.join("intel-rapl:0/intel-rapl:0:1/name"), "core");
    write(
        &powercap.join("intel-rapl:0/intel-rapl:0:1/max_energy_range_uj"),
        PACKAGE_MAX_UJ.to_string(),
    );
    write_counters(powercap, 990_000_000, 100_000);
    // The mirror: same name, same counter.
    write(&powercap.join("intel-rapl:1/name"), "package-0");
    write(
        &powercap.join("intel-rapl:1/max_energy_range_uj"),
        PACKAGE_MAX_UJ.to_string(),
    );
    write(&powercap.join("intel-rapl:1/energy_uj"), "990000000");
}

#[test]
fn rapl_energy_is_attributed_by_cpu_share_across_a_wrap() {
    let root = tempfile::tempdir().unwrap();
    let (powercap, proc_root) = (root.path().join("powercap"), root.path().join("proc"));
    fake_powercap(&powercap);
    write_cpuinfo(&proc_root, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 4);
    write_proc(&proc_root, 1000, Some(0), 1024);

    let config = MeterConfig {
        powercap_root: powercap.clone(),
        perf_pmu_dir: root.path().join("no-power-pmu"),
        proc_root: proc_root.clone(),
        country: Some("FRA".into()),
        pue: Some(1.2),
        ..MeterConfig::default()
    };
    let mut meter = Meter::new(config).unwrap();
    meter.child_usage = fake_child_usage;
    meter.clock_ticks_per_s = 100.0;
    assert_eq!(meter.method(), EnergyMethod::Rapl);
    assert_eq!(meter.describe(), "rapl: package-0, dram-0");
    assert_eq!(meter.tdp_w(), None);
    assert_eq!(meter.country_label(), "FRA");

    FAKE_CHILD_CPU_MS.store(10_000, Ordering::SeqCst);
    let mut run = meter.start(PID);

    // Interval 1: package +5 J, DRAM +1 J, machine busy +100 ticks, process +50: half.
    write_counters(&powercap, 995_000_000, 1_100_000);
    write_proc(&proc_root, 1100, Some(50), 1024);
    run.sample();
    // Interval 2: the package counter wraps (5 J to the top, 4 J after): +9 J; DRAM +2 J;
    // the process did all the busy work.
    write_counters(&powercap, 3_999_999, 3_100_000);
    write_proc(&proc_root, 1300, Some(250), 3072);
    // Read as an epoch line would be: a sample, then the process's joules so far,
    // 2.5 + 0.5 from interval 1 and 9 + 2 from interval 2.
    let so_far_j = run.energy_so_far_kwh() * model::J_PER_KWH;
    assert!((so_far_j - 14.0).abs() < 1e-9, "{so_far_j}");
    // The child exits and is reaped: /proc/<pid> is gone, getrusage says 3.5 s in total, so
    // the last interval holds 100 ticks of 400 busy: a quarter of +4 J and +0.5 J.
    write_counters(&powercap, 7_999_999, 3_600_000);
    write_proc(&proc_root, 1700, None, 0);
    FAKE_CHILD_CPU_MS.store(13_500, Ordering::SeqCst);
    let report = run.finish();

    let joules = |kwh: f64| kwh * model::J_PER_KWH;
    assert_eq!(report.method, EnergyMethod::Rapl);
    assert!((report.cpu_time_s - 3.5).abs() < 1e-9);
    assert!(
        (joules(report.cpu_energy_kwh) - 12.5).abs() < 1e-9,
        "{report:?}"
    );
    assert!(
        (joules(report.ram_energy_kwh) - 2.625).abs() < 1e-9,
        "{report:?}"
    );
    assert!((joules(report.energy_kwh) - 15.125).abs() < 1e-9);
    assert!((joules(report.machine_energy_kwh.unwrap()) - 21.5).abs() < 1e-9);
    // The machine is fully busy in every interval (idle ticks fixed): the idle part is
    // the curve's floor over its value at full load for the package, f₀ of the DRAM.
    assert!((joules(report.machine_cpu_kwh.unwrap()) - 18.0).abs() < 1e-9);
    assert!((joules(report.machine_ram_kwh.unwrap()) - 3.5).abs() < 1e-9);
    assert!(
        (joules(report.idle_cpu_kwh.unwrap()) - 18.0 * model::package_idle_share(1.0)).abs() < 1e-9
    );
    assert!((joules(report.idle_ram_kwh.unwrap()) - 3.5 * model::DRAM_IDLE_FRACTION).abs() < 1e-9);
    assert_eq!(report.rapl_interface.as_deref(), Some("powercap"));
    assert_eq!(report.fallback_reason, None);
    assert!((report.co2_kg - report.energy_kwh * 1.2 * 56.039 / 1000.0).abs() < 1e-18);
    assert_eq!((report.carbon_region.as_str(), report.pue), ("FRA", 1.2));
    assert_eq!(
        report.carbon_source.as_deref(),
        Some("country FRA (France), Our World in Data 2023 via CodeCarbon")
    );
    assert_eq!(report.pue_source.as_deref(), Some("--pue"));
    assert_eq!(report.n_samples, 2);
    assert_eq!(report.peak_rss_bytes, 4096 * 1024);
    assert_eq!(report.tdp_w, None);
    assert!((report.uncertainty - model::RAPL_UNCERTAINTY).abs() < 1e-12);
}

#[test]
fn empty_powercap_means_model() {
    let root = tempfile::tempdir().unwrap();
    let proc_root = root.path().join("proc");
    fs::create_dir(root.path().join("powercap")).unwrap();
    write_cpuinfo(&proc_root, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 4);
    let config = MeterConfig {
        powercap_root: root.path().join("powercap"),
        proc_root,
        dmi_root: root.path().join("no-dmi"),
        ..MeterConfig::default()
    };
    let meter = Meter::new(config).unwrap();
    assert_eq!(meter.method(), EnergyMethod::Model);
    assert_eq!(meter.tdp_w(), Some(150.0));
    // The description names the rule, the row and the uncertainty (it used to say only
    // `TDP 150 W (table: …)`).
    assert_eq!(
        meter.describe(),
        "model: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz; bare metal: TDP 150 W (row `Intel \
         Xeon Gold 6248`) × 1 socket on the Teads/Boavizta load curve; ±40 %"
    );
    assert!(
        meter
            .probe_note()
            .unwrap()
            .contains("no readable RAPL package zone")
    );
    assert_eq!(meter.country_label(), "world");
    assert_eq!(meter.cpu_info().logical_cores, 4);
    assert_eq!(meter.cpu_info().physical_cores, 2);
}

#[test]
fn unknown_country_fails_at_start() {
    let config = MeterConfig {
        country: Some("XYZ".into()),
        ..MeterConfig::default()
    };
    let err = Meter::new(config).unwrap_err();
    assert!(err.to_string().contains("\"XYZ\""), "{err}");
    let config = MeterConfig {
        pue: Some(0.5),
        ..MeterConfig::default()
    };
    assert!(matches!(
        Meter::new(config),
        Err(EnergyError::InvalidPue(_))
    ));
}

#[test]
fn real_child_is_metered_by_the_model() {
    let root = tempfile::tempdir().unwrap();
    let config = MeterConfig {
        powercap_root: root.path().to_path_buf(),
        ..MeterConfig::default()
    };
    let meter = Meter::new(config).unwrap();
    assert_eq!(meter.method(), EnergyMethod::Model);

    let mut child = std::process::Command::new("sh")
        .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
        .spawn()
        .unwrap();
    let mut run = meter.start(child.id());
    let mut readings = Vec::new();
    while child.try_wait().unwrap().is_none() {
        readings.push(run.energy_so_far_kwh());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = run.finish();
    assert!(
        readings.windows(2).all(|w| w[0] <= w[1]),
        "readings while it runs only grow: {readings:?}"
    );
    assert!(
        readings
            .last()
            .is_some_and(|&last| last <= report.energy_kwh),
        "{readings:?} within {report:?}"
    );

    assert_eq!(report.method, EnergyMethod::Model);
    assert!(report.cpu_time_s > 0.0, "{report:?}");
    assert!(
        report.energy_kwh > 0.0 && report.cpu_energy_kwh > 0.0,
        "{report:?}"
    );
    assert!(report.duration_s >= report.cpu_time_s * 0.5, "{report:?}");
    // The model charges each interval's CPU seconds at the watts per busy thread of the
    // machine's load then (it used to charge TDP × 0.9 ÷ threads whatever the load): the
    // total lies between the full-load and the one-thread rates, for the CPU time counted in
    // clock ticks (the total rounded to a tick: up to half a tick either way).
    let power = meter.cpu_power();
    let cpu_j = report.cpu_energy_kwh * model::J_PER_KWH;
    let (low_w, high_w) = (power.w_per_busy_thread(1.0), power.w_per_busy_thread(0.0));
    let half_tick_s = 0.5 / procfs::clock_ticks_per_s();
    assert!(
        cpu_j >= (report.cpu_time_s - half_tick_s) * low_w * (1.0 - 1e-9)
            && cpu_j <= (report.cpu_time_s + half_tick_s) * high_w * (1.0 + 1e-9),
        "{cpu_j} J for {} s at {low_w}..{high_w} W",
        report.cpu_time_s
    );
    assert_eq!(report.carbon_intensity_g_per_kwh, 475.0);
    assert!((report.co2_kg - report.energy_kwh * 475.0 / 1000.0).abs() < 1e-15);
    assert!(report.peak_rss_bytes > 0, "{report:?}");
}

/// A cpuinfo of `sockets` × `threads_per_socket` processors of CPUID family 6 model 85
/// stepping 7 (Cascade Lake), two threads per core, with the `hypervisor` flag or not.
fn write_machine_cpuinfo(
    proc_root: &Path,
    model: &str,
    sockets: u32,
    threads_per_socket: u32,
    hypervisor: bool,
) {
    let flags = if hypervisor {
        "fpu sse hypervisor"
    } else {
        "fpu sse"
    };
    let mut text = String::new();
    let mut idx = 0;
    for socket in 0..sockets {
        for thread in 0..threads_per_socket {
            text.push_str(&format!(
                "processor\t: {idx}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
                 model name\t: {model}\nstepping\t: 7\nphysical id\t: {socket}\n\
                 core id\t\t: {}\nflags\t\t: {flags}\n\n",
                thread / 2
            ));
            idx += 1;
        }
    }
    write(&proc_root.join("cpuinfo"), text);
}

/// Children's CPU time that never changes: the samples' ticks are the process's total.
fn constant_child_usage() -> ChildUsage {
    ChildUsage {
        cpu_time_s: 1.0,
        max_rss_bytes: 0,
    }
}

/// Meters one interval on the model: the machine goes from (1000 busy, 5000 idle) to
/// (1000 + busy, 5000 + idle) ticks while the process uses `process_ticks`; returns the
/// meter and the report.
fn model_interval(
    root: &Path,
    busy: u64,
    idle: u64,
    process_ticks: u64,
) -> (Meter, ecobench_shared::EnergyReport) {
    let proc_root = root.join("proc");
    fs::create_dir_all(root.join("powercap")).unwrap();
    write_proc(&proc_root, 1000, Some(0), 1024);
    let config = MeterConfig {
        powercap_root: root.join("powercap"),
        proc_root: proc_root.clone(),
        dmi_root: root.join("dmi"),
        ..MeterConfig::default()
    };
    let mut meter = Meter::new(config).unwrap();
    meter.child_usage = constant_child_usage;
    meter.clock_ticks_per_s = 100.0;
    assert_eq!(meter.method(), EnergyMethod::Model);
    let mut run = meter.start(PID);
    write_proc(&proc_root, 1000 + busy, Some(process_ticks), 1024);
    write(
        &proc_root.join("stat"),
        format!("cpu  {} 0 0 {} 0 0 0 0 0 0\n", 1000 + busy, 5000 + idle),
    );
    run.sample();
    write_proc(&proc_root, 1000 + busy, None, 0);
    let report = run.finish();
    (meter, report)
}

#[test]
fn a_two_vcpu_vm_of_a_64_thread_part_is_charged_per_vcpu() {
    let root = tempfile::tempdir().unwrap();
    write_machine_cpuinfo(
        &root.path().join("proc"),
        "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
        1,
        2,
        true,
    );
    // One second of one vCPU of two busy: load 0.5.
    let (meter, report) = model_interval(root.path(), 100, 100, 100);
    assert!(meter.machine().is_vm());
    assert_eq!(meter.machine().threads, 2);
    // 2 × 300 W ÷ 64 threads = 9.375 W of TDP share; from 12 % to 75 % of it for one busy
    // vCPU: 5.906 J, where the old model charged 300 × 0.9 ÷ 2 = 135 J.
    let cpu_j = report.cpu_energy_kwh * model::J_PER_KWH;
    assert!((cpu_j - 9.375 * (0.75 - 0.12)).abs() < 1e-9, "{report:?}");
    assert_eq!(report.tdp_w, Some(300.0));
    assert!(
        meter.describe().contains("÷ 64 threads"),
        "{}",
        meter.describe()
    );
    assert!(meter.describe().contains("VM"), "{}", meter.describe());
}

#[test]
fn a_dual_socket_host_counts_both_sockets() {
    let root = tempfile::tempdir().unwrap();
    write_machine_cpuinfo(
        &root.path().join("proc"),
        "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
        2,
        4,
        false,
    );
    // Every thread busy (800 ticks of 8 threads, no idle); the process used 4 s of it.
    let (meter, report) = model_interval(root.path(), 800, 0, 400);
    assert!(!meter.machine().is_vm());
    assert_eq!(meter.machine().sockets, 2);
    assert_eq!(meter.tdp_w(), Some(150.0));
    // 2 × 150 W from 12 % to 102 % over 8 threads: 33.75 W per busy thread, 135 J; the old
    // model divided one socket's 150 W by both sockets' threads (16.9 W).
    let cpu_j = report.cpu_energy_kwh * model::J_PER_KWH;
    assert!((cpu_j - 4.0 * 300.0 * 0.9 / 8.0).abs() < 1e-9, "{report:?}");
    assert!(
        meter.describe().contains("× 2 sockets"),
        "{}",
        meter.describe()
    );
}

#[test]
fn a_hidden_model_in_a_vm_uses_its_microarchitecture() {
    let root = tempfile::tempdir().unwrap();
    write_machine_cpuinfo(
        &root.path().join("proc"),
        "Intel(R) Xeon(R) Processor",
        1,
        4,
        false,
    );
    // No hypervisor flag, but DMI names QEMU.
    write(&root.path().join("dmi/sys_vendor"), "QEMU\n");
    let (meter, report) = model_interval(root.path(), 100, 300, 100);
    assert!(meter.machine().is_vm());
    // Cascade Lake (family 6, model 85, stepping 7): 0.64–3.97 W per vCPU, so one vCPU-second
    // costs 3.33 J whatever the load.
    let cpu_j = report.cpu_energy_kwh * model::J_PER_KWH;
    assert!((cpu_j - (3.97 - 0.64)).abs() < 1e-9, "{report:?}");
    assert_eq!(report.tdp_w, None);
    assert!(
        (report.uncertainty - model::CPU_UNCERTAINTY_MICROARCH).abs() < 0.2,
        "{report:?}"
    );
    assert!(
        meter.describe().contains("Cascade Lake"),
        "{}",
        meter.describe()
    );
}

#[test]
fn a_cloud_region_and_the_default_pue_are_stored_with_their_sources() {
    let root = tempfile::tempdir().unwrap();
    let (powercap, proc_root) = (root.path().join("powercap"), root.path().join("proc"));
    fs::create_dir(&powercap).unwrap();
    write_cpuinfo(&proc_root, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 4);
    write_proc(&proc_root, 1000, Some(0), 1024);
    let config = MeterConfig {
        powercap_root: powercap,
        proc_root: proc_root.clone(),
        // The region wins over the country.
        country: Some("DEU".into()),
        region: Some("aws:eu-west-3".into()),
        ..MeterConfig::default()
    };
    let mut meter = Meter::new(config).unwrap();
    meter.child_usage = fake_child_usage;
    assert_eq!(meter.country_label(), "aws:eu-west-3");
    assert_eq!(meter.carbon_intensity_g_per_kwh(), 105.0);
    assert_eq!(meter.pue(), (1.0, "default 1.0"));

    let run = meter.start(PID);
    write_proc(&proc_root, 1100, None, 0);
    let report = run.finish();
    assert_eq!(report.carbon_region, "aws:eu-west-3");
    assert_eq!(report.carbon_intensity_g_per_kwh, 105.0);
    assert_eq!(
        report.carbon_source.as_deref(),
        Some(
            "region aws:eu-west-3 (EU (Paris), Paris, FRA), CodeCarbon impact.csv: \
             https://www.sciencedirect.com/science/article/pii/S1361920916307933; \
             --country DEU not used"
        )
    );
    assert_eq!(
        (report.pue, report.pue_source.as_deref()),
        (1.0, Some("default 1.0"))
    );
    assert!((report.co2_kg - report.energy_kwh * 105.0 / 1000.0).abs() < 1e-15);
}

#[test]
fn unknown_region_fails_at_start_with_close_matches() {
    let config = MeterConfig {
        region: Some("gcp:europe-west99".into()),
        ..MeterConfig::default()
    };
    let message = Meter::new(config).unwrap_err().to_string();
    assert!(
        message.starts_with("carbon intensity: cloud region \"gcp:europe-west99\" is not known (did you mean gcp:europe-west9"),
        "{message}"
    );
    assert!(message.contains("worker --region list"), "{message}");
}
