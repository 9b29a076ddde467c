//! `worker meter …`: the energy meter on its own, outside the cluster.
//!
//! - `probe`: which RAPL interface the meter uses, the zones it found, and why it passed
//!   over the others (with the fix).
//! - `run -- <command>`: a `perf stat` for energy and carbon: runs the command, meters its
//!   process tree at [`SAMPLE_INTERVAL`], prints the report on stderr (the command keeps
//!   stdout) and exits with the command's status.
//! - `overhead`: the meter's own CPU time against a busy child's, at 1 Hz.

use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ecobench_shared::EnergyReport;

use crate::energy::{Meter, MeterConfig, SAMPLE_INTERVAL, procfs};

/// `worker meter probe`: prints the source used, the zones, and why not the others.
pub fn probe(config: MeterConfig, json: bool) -> Result<()> {
    let meter = Meter::new(config)?;
    let zones: Vec<serde_json::Value> = meter
        .zones()
        .iter()
        .map(|zone| {
            serde_json::json!({
                "label": zone.label,
                "interface": zone.interface(),
                "path": zone.dir.display().to_string(),
            })
        })
        .collect();
    let passed_over: Vec<serde_json::Value> = meter
        .passed_over()
        .iter()
        .map(|(interface, why)| serde_json::json!({"interface": interface, "why": why}))
        .collect();
    if json {
        let object = serde_json::json!({
            "method": meter.method().as_str(),
            "source": meter.describe(),
            "rapl_interface": meter.rapl_interface(),
            "zones": zones,
            "passed_over": passed_over,
            "tdp_w": meter.tdp_w(),
            "cpu_model": meter.cpu_info().model,
            "logical_cores": meter.cpu_info().logical_cores,
        });
        println!("{object}");
        return Ok(());
    }
    println!("method: {}", meter.method().as_str());
    println!("source: {}", meter.describe());
    match meter.rapl_interface() {
        Some(interface) => {
            println!("interface: {interface}");
            for zone in meter.zones() {
                println!("  zone {} ({})", zone.label, zone.dir.display());
            }
        }
        None => println!("interface: none (no readable RAPL counter)"),
    }
    for (interface, why) in meter.passed_over() {
        println!("not {interface}: {why}");
    }
    Ok(())
}

/// The figures of one metered command, as `worker meter run` prints them.
pub fn run_summary(report: &EnergyReport, source: &str, exit: Option<i32>) -> serde_json::Value {
    let cpu_watts = if report.duration_s > 0.0 {
        report.cpu_energy_kwh * 3.6e6 / report.duration_s
    } else {
        0.0
    };
    serde_json::json!({
        "method": report.method.as_str(),
        "source": source,
        "rapl_interface": report.rapl_interface,
        "fallback_reason": report.fallback_reason,
        "duration_s": report.duration_s,
        "cpu_time_s": report.cpu_time_s,
        "cpu_kwh": report.cpu_energy_kwh,
        "ram_kwh": report.ram_energy_kwh,
        "total_kwh": report.energy_kwh,
        "machine_cpu_kwh": report.machine_cpu_kwh,
        "idle_cpu_kwh": report.idle_cpu_kwh,
        "machine_ram_kwh": report.machine_ram_kwh,
        "idle_ram_kwh": report.idle_ram_kwh,
        "cpu_watts": cpu_watts,
        "avg_watts": report.avg_power_w,
        "co2_kg": report.co2_kg,
        "carbon_intensity_g_per_kwh": report.carbon_intensity_g_per_kwh,
        "carbon_region": report.carbon_region,
        "carbon_source": report.carbon_source,
        "pue": report.pue,
        "pue_source": report.pue_source,
        "uncertainty": report.uncertainty,
        "n_samples": report.n_samples,
        "exit_code": exit,
    })
}

/// Runs `command` metered; returns its report and exit status.
pub fn meter_command(meter: &Meter, command: &[String]) -> Result<(EnergyReport, ExitStatus)> {
    let Some((program, args)) = command.split_first() else {
        bail!("say which command to meter: worker meter run -- <command> [args…]");
    };
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .with_context(|| format!("cannot run {program:?} (is it on PATH?)"))?;
    let mut run = meter.start(child.id());
    // A thread reaps the child so that this one samples on time, without polling.
    let (done, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let mut next = Instant::now() + SAMPLE_INTERVAL;
    let status = loop {
        match exited.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(status) => break status.context("cannot wait for the metered command")?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                run.sample();
                next += SAMPLE_INTERVAL;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the reaping thread died"),
        }
    };
    Ok((run.finish(), status))
}

/// `worker meter run`: meters the command, prints the figures, returns its exit code.
pub fn run(config: MeterConfig, command: &[String], json: bool) -> Result<i32> {
    let meter = Meter::new(config)?;
    let (report, status) = meter_command(&meter, command)?;
    let code = status.code();
    let summary = run_summary(&report, &meter.describe(), code);
    if json {
        eprintln!("{summary}");
    } else {
        let kwh = |v: f64| format!("{v:.3e} kWh");
        eprintln!(
            "\n energy of `{}` ({}):",
            command.join(" "),
            meter.describe()
        );
        eprintln!("  duration      {:>12.3} s", report.duration_s);
        eprintln!("  cpu time      {:>12.3} s", report.cpu_time_s);
        eprintln!("  cpu energy    {:>16}", kwh(report.cpu_energy_kwh));
        eprintln!("  ram energy    {:>16}", kwh(report.ram_energy_kwh));
        eprintln!("  total         {:>16}", kwh(report.energy_kwh));
        if let (Some(machine), Some(idle)) = (report.machine_cpu_kwh, report.idle_cpu_kwh) {
            eprintln!(
                "  machine cpu   {:>16}  (idle part {})",
                kwh(machine),
                kwh(idle)
            );
        }
        eprintln!("  average power {:>12.3} W", report.avg_power_w);
        eprintln!(
            "  CO2           {:>12.3e} kg  ({} g/kWh, {}, PUE {})",
            report.co2_kg, report.carbon_intensity_g_per_kwh, report.carbon_region, report.pue
        );
        eprintln!(
            "  method        {}{}",
            report.method.as_str(),
            report
                .fallback_reason
                .as_deref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        );
    }
    Ok(code.unwrap_or(1))
}

/// The overhead benchmark's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Overhead {
    /// Wall seconds the busy child ran.
    pub duration_s: f64,
    /// CPU seconds of the busy child (the "training process").
    pub child_cpu_s: f64,
    /// CPU seconds of this process (the meter: samples and the reaping thread).
    pub meter_cpu_s: f64,
    /// `meter_cpu_s / child_cpu_s`, in percent.
    pub overhead_pct: f64,
    /// Samples taken.
    pub n_samples: u32,
    /// CPU microseconds of one sample, from a tight loop of samples.
    pub sample_cpu_us: f64,
    /// What the meter read (its description).
    pub source: String,
}

/// `worker meter overhead`: meters a child that keeps `threads` cores busy for `seconds`
/// at 1 Hz, and compares this process's CPU time to the child's; then times samples in a
/// tight loop for the cost of one.
pub fn overhead(
    config: MeterConfig,
    exe: &std::path::Path,
    seconds: f64,
    threads: u32,
) -> Result<Overhead> {
    let meter = Meter::new(config)?;
    let self_before = procfs::rusage_self();
    let command = vec![
        exe.display().to_string(),
        "meter".into(),
        "spin".into(),
        "--seconds".into(),
        seconds.to_string(),
        "--threads".into(),
        threads.to_string(),
    ];
    let (report, status) = meter_command(&meter, &command)?;
    let meter_cpu_s = procfs::rusage_self().cpu_time_s - self_before.cpu_time_s;
    if !status.success() {
        bail!("the busy child failed: {status}");
    }
    // The per-sample cost: a tight loop against this process itself.
    const N: u32 = 2000;
    let mut run = meter.start(std::process::id());
    let before = procfs::rusage_self().cpu_time_s;
    for _ in 0..N {
        run.sample();
    }
    let sample_cpu_us = (procfs::rusage_self().cpu_time_s - before) / f64::from(N) * 1e6;
    Ok(Overhead {
        duration_s: report.duration_s,
        child_cpu_s: report.cpu_time_s,
        meter_cpu_s,
        overhead_pct: 100.0 * meter_cpu_s / report.cpu_time_s.max(1e-9),
        n_samples: report.n_samples,
        sample_cpu_us,
        source: meter.describe(),
    })
}

/// `worker meter spin`: keeps `threads` cores busy for `seconds` (the overhead benchmark's
/// stand-in for a training process).
pub fn spin(seconds: f64, threads: u32) {
    let end = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            std::thread::spawn(move || {
                let mut x = 1u64;
                while Instant::now() < end {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
                x
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}
