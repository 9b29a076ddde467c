//! CPU specifications by model name (TDP, cores and threads per package, microarchitecture),
//! from an embedded table.
//!
//! The table (`worker/data/cpu_specs.csv`, 1,807 models) is the factual columns of the
//! Boavizta project's crowd-sourced CPU table, figures mostly from TechPowerUp's CPU
//! database; see `worker/data/SOURCE.md`. It tells how many threads share one package's
//! TDP, which a VM's vCPU count cannot. The TDP falls back to the CodeCarbon table
//! ([`super::tdp`]) when this one lacks it.

use std::sync::LazyLock;

use super::machine::Microarch;
use super::tdp;

/// The embedded table as CSV text:
/// `name,manufacturer,code_name,release_date,tdp_w,cores,threads`.
const TABLE_CSV: &str = include_str!("../../data/cpu_specs.csv");

/// Cloud-custom parts the table lacks or gets wrong, mapped to the nearest listed row:
/// (a word of the model name, the row used, why).
const ALIASES: [(&str, &str, &str); 1] = [(
    "7b13",
    "AMD EPYC 7763",
    "the EPYC 7B13 is a Google-custom Milan part (64 cores, 128 threads) not in the table; \
     nearest listed row: AMD EPYC 7763",
)];

/// One CPU model of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuSpec {
    /// The table's name (`Intel Xeon Platinum 8375C`).
    pub name: &'static str,
    /// Its microarchitecture, from the `code_name` column.
    pub microarch: Option<Microarch>,
    /// TDP of one package in watts: this table's, else CodeCarbon's.
    pub tdp_w: Option<f64>,
    /// Physical cores per package.
    pub cores: Option<u32>,
    /// Hardware threads per package.
    pub threads: Option<u32>,
    /// How the model name was matched (`exact`, `contains`, or an alias note).
    pub matched: String,
}

#[derive(Debug)]
struct Row {
    name: &'static str,
    tokens: Vec<String>,
    code_name: &'static str,
    tdp_w: Option<f64>,
    cores: Option<u32>,
    threads: Option<u32>,
}

static TABLE: LazyLock<Vec<Row>> = LazyLock::new(|| {
    TABLE_CSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&'static str> = line.split(',').collect();
            let [name, _maker, code_name, _date, tdp_w, cores, threads] = fields[..] else {
                return None;
            };
            let positive = |text: &str| text.parse::<f64>().ok().filter(|v| *v > 0.0);
            let tokens = tdp::normalise(name);
            (!tokens.is_empty()).then(|| Row {
                name,
                tokens,
                code_name,
                tdp_w: positive(tdp_w),
                cores: positive(cores).map(|v| v as u32),
                threads: positive(threads).map(|v| v as u32),
            })
        })
        .collect()
});

/// The specifications of a CPU model string as `/proc/cpuinfo` gives it: an alias for a
/// cloud-custom part, else the exact normalised name, else the longest table name whose
/// words appear consecutively in it. A name without a model number (`Intel(R) Xeon(R)
/// Processor`, `Common KVM processor`) matches nothing.
pub fn lookup(cpu_model: &str) -> Option<CpuSpec> {
    let tokens = tdp::normalise(cpu_model);
    if !tokens
        .iter()
        .any(|word| word.chars().any(|c| c.is_ascii_digit()))
    {
        return None;
    }
    if let Some((_, row_name, note)) = ALIASES
        .iter()
        .find(|(word, _, _)| tokens.iter().any(|token| token.as_str() == *word))
    {
        let row = TABLE.iter().find(|row| row.name == *row_name)?;
        return Some(spec(row, (*note).to_string()));
    }
    if let Some(row) = TABLE.iter().find(|row| row.tokens == tokens) {
        return Some(spec(row, "exact".to_string()));
    }
    TABLE
        .iter()
        .filter(|row| {
            row.tokens
                .iter()
                .any(|w| w.chars().any(|c| c.is_ascii_digit()))
                && row.tokens.len() <= tokens.len()
                && tokens
                    .windows(row.tokens.len())
                    .any(|window| window == row.tokens.as_slice())
        })
        .max_by_key(|row| row.tokens.iter().map(String::len).sum::<usize>() + row.tokens.len())
        .map(|row| spec(row, "contains".to_string()))
}

fn spec(row: &Row, matched: String) -> CpuSpec {
    CpuSpec {
        name: row.name,
        microarch: Microarch::from_code_name(row.code_name),
        tdp_w: row
            .tdp_w
            .or_else(|| tdp::lookup(row.name).map(|(_, tdp_w)| tdp_w)),
        cores: row.cores,
        threads: row.threads,
        matched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_strings_resolve() {
        let spec = lookup("Intel(R) Xeon(R) CPU E5-2620 v3 @ 2.40GHz").unwrap();
        assert_eq!(spec.name, "Intel Xeon E5-2620 V3");
        // The Boavizta row lacks the TDP: CodeCarbon's 85 W.
        assert_eq!((spec.tdp_w, spec.threads), (Some(85.0), Some(12)));
        assert_eq!(spec.microarch, Some(Microarch::Haswell));

        let spec = lookup("AMD EPYC 7B13 64-Core Processor").unwrap();
        assert_eq!(spec.name, "AMD EPYC 7763");
        assert!(spec.matched.contains("Google-custom"), "{spec:?}");
        assert_eq!(
            (spec.tdp_w, spec.cores, spec.threads),
            (Some(280.0), Some(64), Some(128))
        );
        assert_eq!(spec.microarch, Some(Microarch::Zen3));

        let spec = lookup("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz").unwrap();
        assert_eq!(spec.name, "Intel Xeon Platinum 8375C");
        assert_eq!(
            (spec.tdp_w, spec.cores, spec.threads),
            (Some(300.0), Some(32), Some(64))
        );
        assert_eq!(spec.microarch, Some(Microarch::IceLake));
    }

    #[test]
    fn hidden_models_match_nothing() {
        assert_eq!(lookup("Intel(R) Xeon(R) Processor"), None);
        assert_eq!(lookup("Common KVM processor"), None);
        assert_eq!(lookup("AMD EPYC Processor (with IBPB)"), None);
    }

    #[test]
    fn table_is_complete() {
        assert_eq!(TABLE.len(), 1807);
    }
}
