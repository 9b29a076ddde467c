//! RAPL energy counters through the Linux powercap interface (`/sys/class/powercap`).
//!
//! Package zones (`intel-rapl:N`, named `package-N`) and their `dram` subzones
//! (`intel-rapl:N:M`) are kept; `core`, `uncore` and `psys` are skipped because the
//! package counter already contains them. Zones that mirror another one (same name, same
//! counter, as on multi-die AMD parts) are dropped. Counters are in microjoules and wrap
//! at `max_energy_range_uj`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Two same-named zones whose counters differ by at most this are one counter seen twice.
const MIRROR_TOLERANCE_UJ: u64 = 1_000_000;

/// What a zone measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneKind {
    /// A whole CPU package (cores, caches, uncore).
    Package,
    /// The memory attached to a package.
    Dram,
}

/// One RAPL counter the meter reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Name shown to users: `package-0`, `dram-0`.
    pub label: String,
    /// What the counter measures.
    pub kind: ZoneKind,
    /// The zone's directory (`…/intel-rapl:0`).
    pub dir: PathBuf,
    /// Value at which the counter wraps to zero.
    pub max_range_uj: u64,
    /// The open `perf_event` counter when the zone is read through the `power` PMU; `None`
    /// for powercap (`dir/energy_uj`).
    pub perf: Option<std::sync::Arc<super::perf::PerfCounter>>,
}

impl Zone {
    /// Reads the zone's counter (`energy_uj`, or the perf counter), in microjoules.
    pub fn read_uj(&self) -> io::Result<u64> {
        match &self.perf {
            Some(counter) => counter.read_uj(),
            None => read_u64(&self.dir.join("energy_uj")),
        }
    }

    /// The RAPL interface the zone is read through: `powercap` or `perf_event`.
    pub fn interface(&self) -> &'static str {
        if self.perf.is_some() {
            "perf_event"
        } else {
            "powercap"
        }
    }
}

/// What probing the powercap root found.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Readable counters, packages first.
    Counters(Vec<Zone>),
    /// No usable counter, and why (shown in the meter's description).
    Unavailable(String),
}

/// Energy between two readings of a counter that wraps to 0 after `max_range_uj`.
///
/// A reading below the previous one means the counter wrapped once (the caller polls often
/// enough that it cannot wrap twice). A previous reading above the range means the
/// counter was reset, so the new reading is all that is known.
pub fn counter_delta(prev_uj: u64, cur_uj: u64, max_range_uj: u64) -> u64 {
    if cur_uj >= prev_uj {
        cur_uj - prev_uj
    } else if prev_uj <= max_range_uj {
        (max_range_uj - prev_uj) + cur_uj + 1
    } else {
        cur_uj
    }
}

/// Finds the package and DRAM zones under `root` and checks that their counters are readable.
pub fn probe(root: &Path) -> Probe {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) => return Probe::Unavailable(format!("no powercap at {}: {err}", root.display())),
    };
    // Keyed by zone id (`intel-rapl:0:0`), so a subzone seen both at the top level (as the
    // kernel links it) and inside its package is counted once.
    let mut candidates: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if !is_rapl_zone_id(&id) {
            continue;
        }
        let dir = entry.path();
        if let Ok(children) = fs::read_dir(&dir) {
            for child in children.flatten() {
                let child_id = child.file_name().to_string_lossy().into_owned();
                if is_rapl_zone_id(&child_id) {
                    candidates
                        .entry(child_id)
                        .or_insert((child.path(), id.clone()));
                }
            }
        }
        candidates.entry(id.clone()).or_insert((dir, id));
    }

    let mut zones: Vec<(Zone, u64)> = Vec::new();
    let mut problems = Vec::new();
    for (id, (dir, _)) in &candidates {
        let Ok(name) = fs::read_to_string(dir.join("name")) else {
            continue;
        };
        let name = name.trim();
        let package_idx = id.split(':').nth(1).unwrap_or("0");
        let (kind, label) = if name.starts_with("package") {
            (ZoneKind::Package, name.to_string())
        } else if name == "dram" {
            (ZoneKind::Dram, format!("dram-{package_idx}"))
        } else {
            continue; // core, uncore and psys are not metered.
        };
        let reading = read_u64(&dir.join("energy_uj"));
        let max_range = read_u64(&dir.join("max_energy_range_uj"));
        match (reading, max_range) {
            (Ok(reading_uj), Ok(max_range_uj)) => {
                let zone = Zone {
                    label,
                    kind,
                    dir: dir.clone(),
                    max_range_uj,
                    perf: None,
                };
                let mirrored = zones.iter().any(|(other, other_uj)| {
                    other.label == zone.label
                        && other.max_range_uj == zone.max_range_uj
                        && other_uj.abs_diff(reading_uj) <= MIRROR_TOLERANCE_UJ
                });
                if mirrored {
                    tracing::debug!(zone = %dir.display(), "powercap zone mirrors another, skipped");
                } else {
                    zones.push((zone, reading_uj));
                }
            }
            (Err(err), _) | (_, Err(err)) if err.kind() == io::ErrorKind::PermissionDenied => {
                warn_permission_denied(&dir.join("energy_uj"));
                return Probe::Unavailable(format!(
                    "{} is not readable (permission denied): {}",
                    dir.join("energy_uj").display(),
                    PERMISSION_FIX
                ));
            }
            (Err(err), _) | (_, Err(err)) => problems.push(format!("{}: {err}", dir.display())),
        }
    }
    if !zones.iter().any(|(zone, _)| zone.kind == ZoneKind::Package) {
        let mut reason = format!("no readable RAPL package zone under {}", root.display());
        if !problems.is_empty() {
            reason.push_str(&format!(" ({})", problems.join("; ")));
        }
        return Probe::Unavailable(reason);
    }
    let mut zones: Vec<Zone> = zones.into_iter().map(|(zone, _)| zone).collect();
    zones.sort_by_key(|zone| (zone.kind == ZoneKind::Dram, zone.label.clone()));
    Probe::Counters(zones)
}

/// How to make the counters readable, said when they are not.
pub const PERMISSION_FIX: &str = "make the counters readable: `sudo chmod a+r \
    /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*/*/energy_uj` \
    (until reboot), or for good a udev rule in /etc/udev/rules.d/99-rapl.rules: \
    `SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"`, \
    or run the worker as root";

/// Says once per process that the counters exist but cannot be read, and how to fix it.
fn warn_permission_denied(path: &Path) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            path = %path.display(),
            "RAPL energy counters are not readable (permission denied); falling back to the TDP \
             model. To measure: `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj \
             /sys/class/powercap/intel-rapl:*/*/energy_uj` or run the worker as root"
        );
    });
}

/// True for `intel-rapl:N` and `intel-rapl:N:M` (not the `intel-rapl` control type itself).
fn is_rapl_zone_id(id: &str) -> bool {
    id.strip_prefix("intel-rapl:").is_some_and(|rest| {
        !rest.is_empty() && rest.split(':').all(|part| part.parse::<u32>().is_ok())
    })
}

/// Reads a file holding one unsigned integer.
fn read_u64(path: &Path) -> io::Result<u64> {
    let text = fs::read_to_string(path)?;
    text.trim().parse().map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {err}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn delta_without_wrap() {
        assert_eq!(counter_delta(10, 25, 100), 15);
        assert_eq!(counter_delta(7, 7, 100), 0);
    }

    #[test]
    fn delta_across_a_wrap() {
        // 95 → 100 is 5, 100 → 0 is 1, 0 → 4 is 4.
        assert_eq!(counter_delta(95, 4, 100), 10);
        assert_eq!(counter_delta(100, 0, 100), 1);
    }

    #[test]
    fn delta_after_a_reset_is_the_new_reading() {
        assert_eq!(counter_delta(500, 3, 100), 3);
    }

    #[test]
    fn delta_recovers_any_step_up_to_the_range() {
        let mut rng = rand::rng();
        for _ in 0..20_000 {
            let max_range_uj: u64 = match rng.random_range(0..3) {
                0 => rng.random_range(0..1_000),
                1 => 262_143_328_850, // A common Intel package range.
                _ => rng.random_range(0..=u64::MAX),
            };
            let prev_uj = rng.random_range(0..=max_range_uj);
            let step_uj = rng.random_range(0..=max_range_uj);
            let cur_uj = ((prev_uj as u128 + step_uj as u128) % (max_range_uj as u128 + 1)) as u64;
            assert_eq!(
                counter_delta(prev_uj, cur_uj, max_range_uj),
                step_uj,
                "prev {prev_uj} cur {cur_uj} max {max_range_uj}"
            );
        }
    }

    #[test]
    fn zone_ids() {
        assert!(is_rapl_zone_id("intel-rapl:0"));
        assert!(is_rapl_zone_id("intel-rapl:1:0"));
        assert!(!is_rapl_zone_id("intel-rapl"));
        assert!(!is_rapl_zone_id("intel-rapl-mmio:0"));
    }

    #[test]
    fn missing_root_is_unavailable() {
        let probe = probe(Path::new("/nonexistent/powercap"));
        assert!(matches!(probe, Probe::Unavailable(reason) if reason.contains("/nonexistent")));
    }
}
