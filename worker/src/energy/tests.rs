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
        ..MeterConfig::default()
    };
    let meter = Meter::new(config).unwrap();
    assert_eq!(meter.method(), EnergyMethod::Model);
    assert_eq!(meter.tdp_w(), Some(150.0));
    assert_eq!(
        meter.describe(),
        "model: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz TDP 150 W (table: Intel Xeon Gold 6248)"
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
    let expected_cpu_j = model::cpu_energy_j(
        report.cpu_time_s,
        report.tdp_w.unwrap(),
        meter.cpu_info().logical_cores,
    );
    assert!((report.cpu_energy_kwh * model::J_PER_KWH - expected_cpu_j).abs() < 1e-9);
    assert_eq!(report.carbon_intensity_g_per_kwh, 475.0);
    assert!((report.co2_kg - report.energy_kwh * 475.0 / 1000.0).abs() < 1e-15);
    assert!(report.peak_rss_bytes > 0, "{report:?}");
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
