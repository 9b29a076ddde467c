//! CPU thermal design power (TDP) by model name, from an embedded table.
//!
//! The table (`worker/data/cpu_tdp.csv`, 4,892 Intel and AMD models) is derived from
//! CodeCarbon's `cpu_power.csv` (MIT license); see `worker/data/SOURCE.md`.

use std::sync::LazyLock;

/// Watts per physical core assumed for a CPU the table does not know.
pub const FALLBACK_W_PER_CORE: f64 = 10.0;

/// The embedded table as CSV text: `name,tdp_w`.
const TABLE_CSV: &str = include_str!("../../data/cpu_tdp.csv");

/// One table row with its name normalised for matching.
#[derive(Debug)]
struct TableEntry {
    name: &'static str,
    tokens: Vec<String>,
    tdp_w: f64,
}

static TABLE: LazyLock<Vec<TableEntry>> = LazyLock::new(|| {
    TABLE_CSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (name, tdp_w) = line.rsplit_once(',')?;
            let tdp_w: f64 = tdp_w.trim().parse().ok()?;
            let tokens = normalise(name);
            (!tokens.is_empty()).then_some(TableEntry {
                name,
                tokens,
                tdp_w,
            })
        })
        .collect()
});

/// Where a TDP figure came from.
#[derive(Debug, Clone, PartialEq)]
pub enum TdpSource {
    /// Given by the user (`cpu_tdp_w`).
    Override,
    /// The table row with this name.
    Table(String),
    /// Not in the table: physical cores × [`FALLBACK_W_PER_CORE`].
    CoresFallback,
}

/// The TDP the model uses and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Tdp {
    /// Thermal design power of the whole package(s).
    pub tdp_w: f64,
    /// Where `tdp_w` comes from.
    pub source: TdpSource,
}

impl Tdp {
    /// Chooses the TDP: the override, else the table, else cores × 10 W.
    pub fn resolve(cpu_model: &str, physical_cores: u32, override_w: Option<f64>) -> Tdp {
        if let Some(tdp_w) = override_w {
            return Tdp {
                tdp_w,
                source: TdpSource::Override,
            };
        }
        match lookup(cpu_model) {
            Some((name, tdp_w)) => Tdp {
                tdp_w,
                source: TdpSource::Table(name.to_string()),
            },
            None => Tdp {
                tdp_w: f64::from(physical_cores.max(1)) * FALLBACK_W_PER_CORE,
                source: TdpSource::CoresFallback,
            },
        }
    }

    /// A short note for descriptions: `table: Intel Xeon Gold 6248`, `override`, …
    pub fn note(&self) -> String {
        match &self.source {
            TdpSource::Override => "override".to_string(),
            TdpSource::Table(name) => format!("table: {name}"),
            TdpSource::CoresFallback => {
                format!("CPU not in table, assumed {FALLBACK_W_PER_CORE} W per physical core")
            }
        }
    }
}

/// Finds a CPU model in the table: the exact normalised name, else the longest table name
/// whose words appear consecutively in the model's. Returns the table name and its TDP.
pub fn lookup(cpu_model: &str) -> Option<(&'static str, f64)> {
    let tokens = normalise(cpu_model);
    if tokens.is_empty() {
        return None;
    }
    if let Some(entry) = TABLE.iter().find(|entry| entry.tokens == tokens) {
        return Some((entry.name, entry.tdp_w));
    }
    TABLE
        .iter()
        .filter(|entry| {
            entry.tokens.len() <= tokens.len()
                && tokens
                    .windows(entry.tokens.len())
                    .any(|window| window == entry.tokens.as_slice())
        })
        .max_by_key(|entry| {
            entry.tokens.iter().map(String::len).sum::<usize>() + entry.tokens.len()
        })
        .map(|entry| (entry.name, entry.tdp_w))
}

/// Lower-case words of a CPU name without trademarks, parenthesised notes, the clock
/// (`@ 2.40GHz`), and the words `CPU`, `Processor` and `N-Core`.
pub(crate) fn normalise(name: &str) -> Vec<String> {
    let mut text = name.to_lowercase().replace(['®', '™'], " ");
    if let Some(at) = text.find('@') {
        text.truncate(at);
    }
    // Drop parenthesised notes: (R), (TM), (OEM Only), (9M Cache, up to 4.00 GHz).
    let mut cleaned = String::with_capacity(text.len());
    let mut depth = 0usize;
    for ch in text.chars() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                cleaned.push(' ');
            }
            _ if depth == 0 => cleaned.push(ch),
            _ => {}
        }
    }
    cleaned
        .split_whitespace()
        .filter(|word| !matches!(*word, "cpu" | "processor" | "apu"))
        .filter(|word| !word.ends_with("-core"))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_kernel_model_names() {
        assert_eq!(
            normalise("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"),
            ["intel", "xeon", "gold", "6248"]
        );
        assert_eq!(
            normalise("AMD EPYC 7B13 64-Core Processor"),
            ["amd", "epyc", "7b13"]
        );
        assert_eq!(
            normalise("Intel® Core™ i7-8700  CPU"),
            ["intel", "core", "i7-8700"]
        );
    }

    #[test]
    fn known_intel_model_matches_exactly() {
        assert_eq!(
            lookup("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"),
            Some(("Intel Xeon Gold 6248", 150.0))
        );
        assert_eq!(
            lookup("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"),
            Some(("Intel Xeon Gold 6248R", 205.0))
        );
        assert_eq!(
            lookup("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz"),
            Some(("Intel Core i7-8700K", 95.0))
        );
    }

    #[test]
    fn longest_contained_name_wins() {
        // CodeCarbon lists the Ryzen without the "with Radeon Graphics" suffix.
        let (name, tdp_w) = lookup("AMD Ryzen 9 5950X 16-Core Processor with extras").unwrap();
        assert_eq!((name, tdp_w), ("AMD Ryzen 9 5950X", 105.0));
    }

    #[test]
    fn unknown_cpu_falls_back_to_cores() {
        assert_eq!(lookup("Imaginary Quantum 9000"), None);
        let tdp = Tdp::resolve("Imaginary Quantum 9000", 8, None);
        assert_eq!(
            tdp,
            Tdp {
                tdp_w: 80.0,
                source: TdpSource::CoresFallback
            }
        );
        assert!(tdp.note().contains("not in table"));
    }

    #[test]
    fn override_wins() {
        let tdp = Tdp::resolve("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 20, Some(99.0));
        assert_eq!(
            tdp,
            Tdp {
                tdp_w: 99.0,
                source: TdpSource::Override
            }
        );
    }

    #[test]
    fn table_is_complete() {
        assert_eq!(TABLE.len(), 4892);
    }
}
