//! The energy model used when no counter exists: CPU power from the TDP through a load
//! curve (or per-vCPU coefficients, see [`super::power`]), memory power from the resident
//! set.
//!
//! CPU. A package's power is not linear in load: Teads measured it (and Boavizta fitted
//! it) at 12 / 32 / 75 / 102 % of the TDP at 0 / 10 / 50 / 100 % load
//! ([`TEADS_CURVE`]); between the points power is interpolated linearly. The idle floor
//! (12 %) is paid whether or not a job runs, so it is not charged to the process; the
//! process gets the active part above it in proportion to its share of the busy CPU time.
//! The TDP is a design limit, not a measurement, hence the wide uncertainty.
//!
//! Memory. 0.375 W per GiB of the process's mean resident set (3 W per 8 GiB, CodeCarbon's
//! figure) over the process's wall time.

/// Package power as a fraction of the TDP at a load in [0, 1]: (load, fraction) points
/// measured by Teads on servers and published by Boavizta (BoaviztAPI's default CPU
/// consumption profile, "Building an AWS EC2 carbon emissions dataset", Teads
/// Engineering, 2021).
pub const TEADS_CURVE: [(f64, f64); 4] = [(0.0, 0.12), (0.1, 0.32), (0.5, 0.75), (1.0, 1.02)];

/// Share of the TDP drawn by an idle package (the curve at load 0).
pub const IDLE_FRACTION: f64 = TEADS_CURVE[0].1;

/// Share of the DRAM power drawn by idle memory (background and refresh; Micron's DDR4
/// power calculator puts it at 40–60 % of a loaded module's power). Used only to split a
/// measured DRAM counter into its idle part.
pub const DRAM_IDLE_FRACTION: f64 = 0.5;

/// Memory power per GiB resident.
pub const RAM_W_PER_GIB: f64 = 0.375;

/// Relative uncertainty of the CPU estimate when the TDP is known (table or user).
pub const CPU_UNCERTAINTY_KNOWN_TDP: f64 = 0.4;

/// Relative uncertainty of the CPU estimate when the TDP is guessed from the core count.
pub const CPU_UNCERTAINTY_FALLBACK_TDP: f64 = 0.6;

/// Relative uncertainty of a VM's CPU estimate from the host part's TDP ÷ its threads.
pub const CPU_UNCERTAINTY_VCPU_SHARE: f64 = 0.5;

/// Relative uncertainty of a VM's CPU estimate from a microarchitecture's per-vCPU
/// coefficients.
pub const CPU_UNCERTAINTY_MICROARCH: f64 = 0.5;

/// Relative uncertainty of a VM's CPU estimate from the cloud-wide average coefficients.
pub const CPU_UNCERTAINTY_CLOUD_AVERAGE: f64 = 0.7;

/// Relative uncertainty of the CPU estimate from a user-given per-vCPU figure.
pub const CPU_UNCERTAINTY_OVERRIDE_W_PER_VCPU: f64 = 0.3;

/// Relative uncertainty of the memory estimate.
pub const RAM_UNCERTAINTY: f64 = 0.5;

/// Relative uncertainty of RAPL energy attributed by CPU-time share.
pub const RAPL_UNCERTAINTY: f64 = 0.15;

/// Joules per kWh.
pub const J_PER_KWH: f64 = 3.6e6;

const BYTES_PER_GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Package power as a fraction of the TDP at a load in [0, 1], on [`TEADS_CURVE`].
pub fn tdp_fraction(load: f64) -> f64 {
    let load = if load.is_nan() {
        0.0
    } else {
        load.clamp(0.0, 1.0)
    };
    TEADS_CURVE
        .windows(2)
        .find(|pair| load <= pair[1].0)
        .map(|pair| {
            let ((l0, f0), (l1, f1)) = (pair[0], pair[1]);
            f0 + (f1 - f0) * (load - l0) / (l1 - l0)
        })
        .unwrap_or(TEADS_CURVE[3].1)
}

/// Package power at a machine load in [0, 1].
pub fn package_power_w(tdp_w: f64, load: f64) -> f64 {
    tdp_w * tdp_fraction(load)
}

/// The part of a package's energy at machine load `load` that an idle package would
/// have drawn anyway: the curve's floor over its value at that load.
pub fn package_idle_share(load: f64) -> f64 {
    IDLE_FRACTION / tdp_fraction(load)
}

/// Memory energy of a process holding `mean_rss_bytes` for `duration_s`.
pub fn ram_energy_j(mean_rss_bytes: f64, duration_s: f64) -> f64 {
    RAM_W_PER_GIB * (mean_rss_bytes.max(0.0) / BYTES_PER_GIB) * duration_s.max(0.0)
}

/// Relative uncertainty of a sum, weighting each part's uncertainty by its energy.
pub fn combined_uncertainty(parts: &[(f64, f64)]) -> f64 {
    let total: f64 = parts.iter().map(|(energy, _)| energy).sum();
    if total <= 0.0 {
        return parts.iter().map(|(_, u)| *u).fold(0.0, f64::max);
    }
    parts.iter().map(|(energy, u)| energy * u).sum::<f64>() / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_curve_goes_through_the_teads_points() {
        for (load, fraction) in TEADS_CURVE {
            assert!((package_power_w(150.0, load) - 150.0 * fraction).abs() < 1e-9);
        }
        assert!((package_power_w(150.0, 0.0) - 18.0).abs() < 1e-9);
        assert!((package_power_w(150.0, 1.0) - 153.0).abs() < 1e-9);
        // Halfway between 10 % and 50 %: halfway between 32 % and 75 %.
        assert!((tdp_fraction(0.3) - 0.535).abs() < 1e-12);
        // Out of range clamps.
        assert_eq!(tdp_fraction(-1.0), 0.12);
        assert_eq!(tdp_fraction(2.0), 1.02);
        // Concave: the first 10 % of load costs more than any later 10 %.
        assert!(tdp_fraction(0.1) - tdp_fraction(0.0) > tdp_fraction(0.6) - tdp_fraction(0.5));
    }

    #[test]
    fn ram_energy_per_gib() {
        // 2 GiB for 100 s at 0.375 W/GiB = 75 J.
        assert!((ram_energy_j(2.0 * BYTES_PER_GIB, 100.0) - 75.0).abs() < 1e-9);
    }

    #[test]
    fn uncertainty_is_energy_weighted() {
        assert!((combined_uncertainty(&[(3.0, 0.4), (1.0, 0.8)]) - 0.5).abs() < 1e-12);
        assert_eq!(combined_uncertainty(&[(0.0, 0.4), (0.0, 0.5)]), 0.5);
    }
}
