//! Range checks of every float a worker sends (fingerprint, progress, result, energy),
//! so that a NaN or a negative duration is refused at the door with the field's name
//! instead of being stored and breaking every later report.

use crate::job::{EnergyReport, HardwareFingerprint, Progress, TrainReport};

/// Checks that `value` is finite and within `[min, max]`; the error names the field.
fn within(field: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
    if !value.is_finite() {
        return Err(format!("{field} = {value} is not a finite number"));
    }
    if value < min || value > max {
        return Err(format!("{field} = {value} is outside [{min}, {max}]"));
    }
    Ok(())
}

fn non_negative(field: &str, value: f64) -> Result<(), String> {
    within(field, value, 0.0, f64::MAX)
}

fn optional(field: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), String> {
    value.map_or(Ok(()), |v| within(field, v, min, max))
}

/// A heartbeat's progress: loss ≥ 0, accuracy in [0, 1], throughput ≥ 0.
pub fn progress(p: &Progress) -> Result<(), String> {
    non_negative("progress.loss", p.loss)?;
    within("progress.accuracy", p.accuracy, 0.0, 1.0)?;
    non_negative("progress.samples_per_s", p.samples_per_s)
}

/// A training report, its epochs included.
pub fn train(t: &TrainReport) -> Result<(), String> {
    within("train.accuracy", t.accuracy, 0.0, 1.0)?;
    non_negative("train.train_s", t.train_s)?;
    non_negative("train.eval_s", t.eval_s)?;
    non_negative("train.samples_per_s", t.samples_per_s)?;
    for (i, e) in t.epochs.iter().enumerate() {
        let at = |name: &str| format!("train.epochs[{i}].{name}");
        non_negative(&at("loss"), e.loss)?;
        within(&at("test_accuracy"), e.test_accuracy, 0.0, 1.0)?;
        non_negative(&at("samples_per_s"), e.samples_per_s)?;
        non_negative(&at("elapsed_s"), e.elapsed_s)?;
        optional(&at("energy_kwh"), e.energy_kwh, 0.0, f64::MAX)?;
    }
    Ok(())
}

/// An energy report: durations, energies, power and CO₂ ≥ 0; PUE in [1, 10]; carbon
/// intensity in [0, 5000] g/kWh; TDP in (0, 10000] W.
pub fn energy(e: &EnergyReport) -> Result<(), String> {
    non_negative("energy.duration_s", e.duration_s)?;
    non_negative("energy.cpu_time_s", e.cpu_time_s)?;
    non_negative("energy.cpu_energy_kwh", e.cpu_energy_kwh)?;
    non_negative("energy.ram_energy_kwh", e.ram_energy_kwh)?;
    non_negative("energy.energy_kwh", e.energy_kwh)?;
    optional(
        "energy.machine_energy_kwh",
        e.machine_energy_kwh,
        0.0,
        f64::MAX,
    )?;
    non_negative("energy.avg_power_w", e.avg_power_w)?;
    within(
        "energy.carbon_intensity_g_per_kwh",
        e.carbon_intensity_g_per_kwh,
        0.0,
        5000.0,
    )?;
    within("energy.pue", e.pue, 1.0, 10.0)?;
    non_negative("energy.co2_kg", e.co2_kg)?;
    optional("energy.tdp_w", e.tdp_w, f64::MIN_POSITIVE, 10_000.0)?;
    non_negative("energy.uncertainty", e.uncertainty)?;
    non_negative("energy.sample_interval_s", e.sample_interval_s)
}

/// A worker's hardware: TDP in (0, 10000] W, calibration in (0, 1e9] GFLOP/s.
pub fn fingerprint(f: &HardwareFingerprint) -> Result<(), String> {
    optional("fingerprint.tdp_w", f.tdp_w, f64::MIN_POSITIVE, 10_000.0)?;
    optional(
        "fingerprint.calibration_gflops",
        f.calibration_gflops,
        f64::MIN_POSITIVE,
        1e9,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_and_out_of_range_figures_are_named() {
        let mut p = Progress {
            loss: f64::NAN,
            ..Progress::default()
        };
        assert_eq!(
            progress(&p).unwrap_err(),
            "progress.loss = NaN is not a finite number"
        );
        p.loss = 0.5;
        assert!(progress(&p).is_ok());
        p.accuracy = 1.5;
        assert_eq!(
            progress(&p).unwrap_err(),
            "progress.accuracy = 1.5 is outside [0, 1]"
        );
        p.accuracy = 0.9;
        p.samples_per_s = f64::INFINITY;
        assert!(progress(&p).unwrap_err().contains("samples_per_s = inf"));
        let f = HardwareFingerprint {
            calibration_gflops: Some(-1.0),
            ..HardwareFingerprint::default()
        };
        assert!(fingerprint(&f).unwrap_err().contains("calibration_gflops"));
        assert!(fingerprint(&HardwareFingerprint::default()).is_ok());
    }
}
