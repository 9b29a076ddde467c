//! The worker's hardware fingerprint, sent when it joins.

use std::path::Path;

use ecobench_shared::HardwareFingerprint;

use crate::energy::Meter;

/// Collects host, CPU, memory, OS and energy-source facts, and runs the calibration
/// benchmark ([`crate::calibrate`]) for the score.
pub fn collect(meter: &Meter) -> HardwareFingerprint {
    let cpu = meter.cpu_info();
    let proc_root = meter.proc_root();
    HardwareFingerprint {
        hostname: hostname(),
        cpu_model: cpu.model.clone(),
        physical_cores: cpu.physical_cores,
        logical_cores: cpu.logical_cores,
        ram_bytes: mem_total_bytes(proc_root).unwrap_or(0),
        os: os_name().unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: read_trimmed(&proc_root.join("sys/kernel/osrelease")).unwrap_or_default(),
        energy_source: meter.describe(),
        tdp_w: meter.tdp_w(),
        country: meter.country_label(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        calibration_gflops: Some(crate::calibrate::run().gflops),
    }
}

/// The host name, or `unknown-host`.
pub fn hostname() -> String {
    read_trimmed(Path::new("/proc/sys/kernel/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
}

fn mem_total_bytes(proc_root: &Path) -> Option<u64> {
    let meminfo = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn os_name() -> Option<String> {
    let release = std::fs::read_to_string("/etc/os-release").ok()?;
    let line = release
        .lines()
        .find(|line| line.starts_with("PRETTY_NAME="))?;
    Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_string())
}
