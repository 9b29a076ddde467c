//! Per-country carbon intensity of electricity, from an embedded table, and the CO₂ formula.
//!
//! The table (`shared/data/carbon_intensity.csv`) is derived from CodeCarbon's
//! `global_energy_mix.json` (MIT license, figures from Our World in Data); see
//! `shared/data/SOURCE.md`. Countries are keyed by ISO-3166 alpha-3 code.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Carbon intensity used when no country is configured: 475 gCO₂e/kWh (IEA 2019, as in CodeCarbon).
pub const WORLD_AVERAGE_G_PER_KWH: f64 = 475.0;

/// The embedded table as CSV text: `iso3,country_name,g_per_kwh,year`.
const TABLE_CSV: &str = include_str!("../data/carbon_intensity.csv");

/// The carbon intensity of one country's electricity.
#[derive(Debug, Clone, PartialEq)]
pub struct CountryIntensity {
    /// ISO-3166 alpha-3 code, upper case (`FRA`).
    pub iso3: String,
    /// Country name in English.
    pub name: String,
    /// Grams of CO₂-equivalent per kWh generated.
    pub g_per_kwh: f64,
    /// Year the figure refers to.
    pub year: u32,
}

/// Why a carbon intensity could not be chosen.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CarbonError {
    /// The country code is not in the embedded table.
    #[error(
        "unknown country code {code:?}: expected an ISO-3166 alpha-3 code such as FRA, DEU or USA \
         ({n_known} countries are known, e.g. {examples}); fix --country, or give \
         --carbon-intensity in gCO2e/kWh"
    )]
    UnknownCountry {
        /// The code as given.
        code: String,
        /// How many countries the table holds.
        n_known: usize,
        /// A few known codes, comma-separated.
        examples: String,
    },
    /// The override is negative, infinite or not a number.
    #[error(
        "carbon intensity override {0} gCO2e/kWh is not a finite number >= 0: give a value such as 56 or 350"
    )]
    InvalidOverride(f64),
}

/// The parsed table, keyed by upper-case ISO3 code.
static TABLE: LazyLock<BTreeMap<String, CountryIntensity>> =
    LazyLock::new(|| parse_table(TABLE_CSV));

/// Parses the embedded CSV; a malformed row is a build-time data bug, so it panics with the line.
fn parse_table(text: &str) -> BTreeMap<String, CountryIntensity> {
    let mut table = BTreeMap::new();
    for (line_idx, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let parsed = match fields.as_slice() {
            [iso3, name, g_per_kwh, year] => g_per_kwh
                .parse::<f64>()
                .ok()
                .zip(year.parse::<u32>().ok())
                .map(|(g_per_kwh, year)| CountryIntensity {
                    iso3: iso3.to_ascii_uppercase(),
                    name: (*name).to_string(),
                    g_per_kwh,
                    year,
                }),
            _ => None,
        };
        let entry = parsed.unwrap_or_else(|| {
            panic!(
                "shared/data/carbon_intensity.csv line {}: malformed row {line:?}",
                line_idx + 1
            )
        });
        table.insert(entry.iso3.clone(), entry);
    }
    table
}

/// The intensity of a country by ISO-3166 alpha-3 code (case-insensitive), if the table has it.
pub fn intensity(iso3: &str) -> Option<CountryIntensity> {
    TABLE.get(&iso3.trim().to_ascii_uppercase()).cloned()
}

/// Every country of the table, sorted by code.
pub fn countries() -> impl Iterator<Item = &'static CountryIntensity> {
    TABLE.values()
}

/// Chooses the intensity for a worker: returns `(g_per_kwh, region_label)`.
///
/// An override wins (label `override`); a known country gives its figure (label = its ISO3
/// code); no country gives the world average (label `world`); an unknown code is an error.
pub fn resolve(
    country: Option<&str>,
    override_g_per_kwh: Option<f64>,
) -> Result<(f64, String), CarbonError> {
    if let Some(g_per_kwh) = override_g_per_kwh {
        if !g_per_kwh.is_finite() || g_per_kwh < 0.0 {
            return Err(CarbonError::InvalidOverride(g_per_kwh));
        }
        return Ok((g_per_kwh, "override".to_string()));
    }
    match country.map(str::trim).filter(|code| !code.is_empty()) {
        None => Ok((WORLD_AVERAGE_G_PER_KWH, "world".to_string())),
        Some(code) => match intensity(code) {
            Some(entry) => Ok((entry.g_per_kwh, entry.iso3)),
            None => Err(CarbonError::UnknownCountry {
                code: code.to_string(),
                n_known: TABLE.len(),
                examples: ["FRA", "DEU", "USA", "GBR", "CHN", "IND", "BRA"]
                    .iter()
                    .filter(|code| TABLE.contains_key(**code))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        },
    }
}

/// kg CO₂e of `energy_kwh` drawn with power usage effectiveness `pue` at `g_per_kwh`.
pub fn co2_kg(energy_kwh: f64, pue: f64, g_per_kwh: f64) -> f64 {
    energy_kwh * pue * g_per_kwh / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn france_comes_from_the_table() {
        let fra = intensity("fra").expect("FRA is in the table");
        assert_eq!(fra.iso3, "FRA");
        assert_eq!(fra.name, "France");
        assert_eq!(fra.g_per_kwh, 56.039);
        assert_eq!(fra.year, 2023);
        assert_eq!(resolve(Some("FRA"), None), Ok((56.039, "FRA".to_string())));
    }

    #[test]
    fn table_has_every_country() {
        assert_eq!(countries().count(), 213);
        assert!(countries().all(|c| c.iso3.len() == 3 && c.g_per_kwh >= 0.0));
    }

    #[test]
    fn unknown_code_is_an_error_naming_it() {
        let err = resolve(Some("XYZ"), None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"XYZ\""), "{message}");
        assert!(message.contains("alpha-3"), "{message}");
        assert!(message.contains("213 countries"), "{message}");
        assert!(message.contains("FRA, DEU, USA"), "{message}");
        assert!(intensity("FR").is_none());
    }

    #[test]
    fn no_country_means_world_average() {
        assert_eq!(resolve(None, None), Ok((475.0, "world".to_string())));
        assert_eq!(resolve(Some(" "), None), Ok((475.0, "world".to_string())));
    }

    #[test]
    fn override_wins() {
        assert_eq!(
            resolve(Some("FRA"), Some(12.5)),
            Ok((12.5, "override".to_string()))
        );
        assert_eq!(
            resolve(Some("XYZ"), Some(12.5)),
            Ok((12.5, "override".to_string()))
        );
        assert!(matches!(
            resolve(None, Some(-1.0)),
            Err(CarbonError::InvalidOverride(_))
        ));
    }

    #[test]
    fn co2_formula() {
        assert!((co2_kg(2.0, 1.5, 400.0) - 1.2).abs() < 1e-12);
        assert_eq!(co2_kg(0.0, 1.2, 475.0), 0.0);
    }
}
