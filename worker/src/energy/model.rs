//! The energy model used when no counter exists: CPU power from the TDP, memory power from
//! the resident set.
//!
//! CPU. The package's power follows a linear load curve with an idle floor:
//! `P(load) = TDP × (IDLE_FRACTION + (1 − IDLE_FRACTION) × load)`, where `load` is the
//! busy fraction of all logical cores. The floor is paid whether or not a job runs, so it is
//! not charged to the process; the process gets the active part in proportion to its CPU
//! time: one core-second of CPU time costs `TDP × (1 − IDLE_FRACTION) / logical_cores`
//! joules. The TDP is a design limit, not a measurement, hence the wide uncertainty.
//!
//! Memory. 0.375 W per GiB of the process's mean resident set (3 W per 8 GiB, CodeCarbon's
//! figure) over the process's wall time.

/// Share of the TDP drawn by an idle package (typical of servers, 5–15 %).
pub const IDLE_FRACTION: f64 = 0.1;

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

/// Relative uncertainty of the memory estimate.
pub const RAM_UNCERTAINTY: f64 = 0.5;

/// Relative uncertainty of RAPL energy attributed by CPU-time share.
pub const RAPL_UNCERTAINTY: f64 = 0.15;

/// Joules per kWh.
pub const J_PER_KWH: f64 = 3.6e6;

const BYTES_PER_GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Package power at a machine load in [0, 1].
pub fn package_power_w(tdp_w: f64, load: f64) -> f64 {
    tdp_w * (IDLE_FRACTION + (1.0 - IDLE_FRACTION) * load.clamp(0.0, 1.0))
}

/// CPU energy attributed to a process that used `cpu_time_s` of CPU time.
pub fn cpu_energy_j(cpu_time_s: f64, tdp_w: f64, logical_cores: u32) -> f64 {
    cpu_time_s.max(0.0) * tdp_w * (1.0 - IDLE_FRACTION) / f64::from(logical_cores.max(1))
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
    fn load_curve_has_an_idle_floor() {
        assert!((package_power_w(150.0, 0.0) - 15.0).abs() < 1e-12);
        assert!((package_power_w(150.0, 0.5) - 82.5).abs() < 1e-12);
        assert!((package_power_w(150.0, 1.0) - 150.0).abs() < 1e-12);
    }

    #[test]
    fn cpu_energy_is_the_active_share_of_its_cores() {
        // 40 core-seconds on a 150 W, 40-thread CPU: 40 × 150 × 0.9 / 40 = 135 J.
        assert!((cpu_energy_j(40.0, 150.0, 40) - 135.0).abs() < 1e-9);
        // Saturating every core for 10 s costs the active part of the curve at full load.
        let all_cores_j = cpu_energy_j(10.0 * 8.0, 80.0, 8);
        let curve_j = (package_power_w(80.0, 1.0) - package_power_w(80.0, 0.0)) * 10.0;
        assert!((all_cores_j - curve_j).abs() < 1e-9);
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
