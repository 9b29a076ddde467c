//! Carbon intensity of electricity per country and per cloud region, from embedded
//! tables, the choice between them, and the CO₂ formula.
//!
//! The country table (`shared/data/carbon_intensity.csv`) is derived from CodeCarbon's
//! `global_energy_mix.json` (MIT license, figures from Our World in Data); see
//! `shared/data/SOURCE.md`. Countries are keyed by ISO-3166 alpha-3 code. Cloud regions
//! are in [`region`].
//!
//! Precedence ([`resolve`]): `--carbon-intensity` over `--region` over `--country`, the
//! world average when none is given.

pub mod region;

use std::collections::BTreeMap;
use std::sync::LazyLock;

pub use region::{CloudRegion, region, regions};

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
    /// The cloud region is not in the embedded table.
    #[error(
        "cloud region {given:?} {hint}{}; run `worker --region list` to see all {n_known} \
         (provider:region, e.g. aws:eu-west-3, from CodeCarbon's impact.csv), or give \
         --country or --carbon-intensity in gCO2e/kWh",
        did_you_mean(.suggestions)
    )]
    UnknownRegion {
        /// The region as given.
        given: String,
        /// What is wrong with it: `is not known`, `has no provider: …`, `names an unknown provider …`.
        hint: String,
        /// The known regions closest to it, best first.
        suggestions: Vec<String>,
        /// How many regions the table holds.
        n_known: usize,
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

/// Parses an embedded CSV table (`file` names it in errors): the header skipped, blank
/// lines ignored, each row's fields turned into an entry by `row` and keyed by `key`. A
/// malformed row is a build-time data bug, so it panics with the file and the line.
pub(crate) fn parse_embedded<T>(
    file: &str,
    text: &str,
    row: impl Fn(&[&str]) -> Option<T>,
    key: impl Fn(&T) -> String,
) -> BTreeMap<String, T> {
    let mut table = BTreeMap::new();
    for (line_idx, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let entry = row(&fields)
            .unwrap_or_else(|| panic!("{file} line {}: malformed row {line:?}", line_idx + 1));
        table.insert(key(&entry), entry);
    }
    table
}

/// Parses the embedded per-country table.
fn parse_table(text: &str) -> BTreeMap<String, CountryIntensity> {
    let row = |fields: &[&str]| match fields {
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
    parse_embedded("shared/data/carbon_intensity.csv", text, row, |entry| {
        entry.iso3.clone()
    })
}

/// The intensity of a country by ISO-3166 alpha-3 code (case-insensitive), if the table has it.
pub fn intensity(iso3: &str) -> Option<CountryIntensity> {
    TABLE.get(&iso3.trim().to_ascii_uppercase()).cloned()
}

/// Every country of the table, sorted by code.
pub fn countries() -> impl Iterator<Item = &'static CountryIntensity> {
    TABLE.values()
}

/// The carbon intensity chosen for a worker, with where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Intensity {
    /// Grams of CO₂-equivalent per kWh.
    pub g_per_kwh: f64,
    /// What results store as `carbon_region`: an ISO3 code (`FRA`), a cloud region
    /// (`aws:eu-west-3`), `override` or `world`.
    pub label: String,
    /// Where the figure comes from, in words, as results store it in `carbon_source`:
    /// `country FRA (France), Our World in Data 2023 via CodeCarbon`.
    pub source: String,
}

/// What a worker was told about its electricity: `--country`, `--region`,
/// `--carbon-intensity`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GridChoice<'a> {
    /// ISO-3166 alpha-3 code of the country.
    pub country: Option<&'a str>,
    /// Cloud region, `provider:region`.
    pub region: Option<&'a str>,
    /// gCO₂e/kWh given outright.
    pub override_g_per_kwh: Option<f64>,
}

/// Chooses the intensity for a worker.
///
/// An override wins (label `override`); else a known cloud region gives its figure (label
/// `provider:region`); else a known country (label = its ISO3 code); else the world
/// average (label `world`). An unknown region or country is an error, unless an override
/// or (for a country) a region wins over it; the source names the flags that lost.
pub fn resolve(choice: GridChoice<'_>) -> Result<Intensity, CarbonError> {
    fn given(text: Option<&str>) -> Option<&str> {
        text.map(str::trim).filter(|text| !text.is_empty())
    }
    let (country, region_label) = (given(choice.country), given(choice.region));
    let unused = |flags: &[(&str, Option<&str>)]| -> String {
        flags
            .iter()
            .filter_map(|(flag, value)| value.map(|value| format!("; {flag} {value} not used")))
            .collect()
    };
    if let Some(g_per_kwh) = choice.override_g_per_kwh {
        if !g_per_kwh.is_finite() || g_per_kwh < 0.0 {
            return Err(CarbonError::InvalidOverride(g_per_kwh));
        }
        return Ok(Intensity {
            g_per_kwh,
            label: "override".to_string(),
            source: format!(
                "--carbon-intensity {g_per_kwh}{}",
                unused(&[("--region", region_label), ("--country", country)])
            ),
        });
    }
    if let Some(label) = region_label {
        let Some(entry) = region(label) else {
            let (hint, suggestions) = region::diagnose(label);
            return Err(CarbonError::UnknownRegion {
                given: label.to_string(),
                hint,
                suggestions,
                n_known: region::n_regions(),
            });
        };
        let place = [entry.region_name.as_str(), entry.city.as_str(), &entry.iso3]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        let origin = if entry.source.is_empty() {
            "no source given".to_string()
        } else {
            entry.source.clone()
        };
        return Ok(Intensity {
            g_per_kwh: entry.g_per_kwh,
            label: entry.label(),
            source: format!(
                "region {} ({place}), CodeCarbon impact.csv: {origin}{}",
                entry.label(),
                unused(&[("--country", country)])
            ),
        });
    }
    match country {
        None => Ok(Intensity {
            g_per_kwh: WORLD_AVERAGE_G_PER_KWH,
            label: "world".to_string(),
            source: "world average (IEA 2019, as CodeCarbon): no --country or --region given"
                .to_string(),
        }),
        Some(code) => match intensity(code) {
            Some(entry) => Ok(Intensity {
                g_per_kwh: entry.g_per_kwh,
                source: format!(
                    "country {} ({}), Our World in Data {} via CodeCarbon",
                    entry.iso3, entry.name, entry.year
                ),
                label: entry.iso3,
            }),
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

/// ` (did you mean a, b or c?)` for an error message; empty without suggestions.
fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!(" (did you mean {one}?)"),
        [init @ .., last] => format!(" (did you mean {} or {last}?)", init.join(", ")),
    }
}

/// kg CO₂e of `energy_kwh` drawn with power usage effectiveness `pue` at `g_per_kwh`.
pub fn co2_kg(energy_kwh: f64, pue: f64, g_per_kwh: f64) -> f64 {
    energy_kwh * pue * g_per_kwh / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(code: &str) -> GridChoice<'_> {
        GridChoice {
            country: Some(code),
            ..GridChoice::default()
        }
    }

    fn cloud(label: &str) -> GridChoice<'_> {
        GridChoice {
            region: Some(label),
            ..GridChoice::default()
        }
    }

    #[test]
    fn france_comes_from_the_table() {
        let fra = intensity("fra").expect("FRA is in the table");
        assert_eq!(fra.iso3, "FRA");
        assert_eq!(fra.name, "France");
        assert_eq!(fra.g_per_kwh, 56.039);
        assert_eq!(fra.year, 2023);
        assert_eq!(
            resolve(country("FRA")),
            Ok(Intensity {
                g_per_kwh: 56.039,
                label: "FRA".to_string(),
                source: "country FRA (France), Our World in Data 2023 via CodeCarbon".to_string(),
            })
        );
    }

    #[test]
    fn table_has_every_country() {
        assert_eq!(countries().count(), 213);
        assert!(countries().all(|c| c.iso3.len() == 3 && c.g_per_kwh >= 0.0));
    }

    #[test]
    fn unknown_code_is_an_error_naming_it() {
        let err = resolve(country("XYZ")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"XYZ\""), "{message}");
        assert!(message.contains("alpha-3"), "{message}");
        assert!(message.contains("213 countries"), "{message}");
        assert!(message.contains("FRA, DEU, USA"), "{message}");
        assert!(intensity("FR").is_none());
    }

    #[test]
    fn no_country_means_world_average() {
        let world = resolve(GridChoice::default()).unwrap();
        assert_eq!((world.g_per_kwh, world.label.as_str()), (475.0, "world"));
        assert!(
            world.source.starts_with("world average"),
            "{}",
            world.source
        );
        assert_eq!(resolve(country(" ")), Ok(world.clone()));
        assert_eq!(resolve(cloud("")), Ok(world));
    }

    #[test]
    fn regions_of_the_three_providers() {
        let paris = resolve(cloud("aws:eu-west-3")).unwrap();
        assert_eq!(paris.g_per_kwh, 105.0);
        assert_eq!(paris.label, "aws:eu-west-3");
        assert_eq!(
            paris.source,
            "region aws:eu-west-3 (EU (Paris), Paris, FRA), CodeCarbon impact.csv: \
             https://www.sciencedirect.com/science/article/pii/S1361920916307933"
        );
        let gcp = resolve(cloud("GCP:europe-west9")).unwrap();
        assert_eq!(
            (gcp.g_per_kwh, gcp.label.as_str()),
            (34.0, "gcp:europe-west9")
        );
        let azure = resolve(cloud("azure:francecentral")).unwrap();
        assert_eq!(azure.g_per_kwh, 105.0);
        assert!(
            azure.source.contains("France Central, Huriel, FRA"),
            "{}",
            azure.source
        );
        let no_source = resolve(cloud("azure:westcentralus")).unwrap();
        assert!(
            no_source.source.ends_with("no source given"),
            "{}",
            no_source.source
        );
    }

    #[test]
    fn unknown_region_names_it_and_its_close_matches() {
        let message = resolve(cloud("aws:eu-west-9")).unwrap_err().to_string();
        assert_eq!(
            message,
            "cloud region \"aws:eu-west-9\" is not known (did you mean aws:eu-west-1, \
             aws:eu-west-2 or aws:eu-west-3?); run `worker --region list` to see all 94 \
             (provider:region, e.g. aws:eu-west-3, from CodeCarbon's impact.csv), or give \
             --country or --carbon-intensity in gCO2e/kWh"
        );
        let message = resolve(cloud("francecentral")).unwrap_err().to_string();
        assert!(
            message.contains(
                "has no provider: write provider:region (did you mean azure:francecentral?)"
            ),
            "{message}"
        );
        let message = resolve(cloud("ibm:nowhere-at-all-1"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("unknown provider \"ibm\" (known: aws, azure, gcp);"),
            "{message}"
        );
        assert!(!message.contains("did you mean"), "{message}");
    }

    #[test]
    fn precedence_override_then_region_then_country() {
        let all = GridChoice {
            country: Some("DEU"),
            region: Some("aws:eu-west-3"),
            override_g_per_kwh: Some(12.5),
        };
        let chosen = resolve(all).unwrap();
        assert_eq!(
            (chosen.g_per_kwh, chosen.label.as_str()),
            (12.5, "override")
        );
        assert_eq!(
            chosen.source,
            "--carbon-intensity 12.5; --region aws:eu-west-3 not used; --country DEU not used"
        );
        let chosen = resolve(GridChoice {
            override_g_per_kwh: None,
            ..all
        })
        .unwrap();
        assert_eq!(
            (chosen.g_per_kwh, chosen.label.as_str()),
            (105.0, "aws:eu-west-3")
        );
        assert!(
            chosen.source.ends_with("; --country DEU not used"),
            "{}",
            chosen.source
        );
        // What loses is not checked: an override or a region makes a bad country harmless.
        let chosen = resolve(GridChoice {
            country: Some("XYZ"),
            ..all
        });
        assert_eq!(chosen.map(|c| c.g_per_kwh), Ok(12.5));
        let chosen = resolve(GridChoice {
            country: Some("XYZ"),
            override_g_per_kwh: None,
            ..all
        });
        assert_eq!(chosen.map(|c| c.g_per_kwh), Ok(105.0));
        assert!(matches!(
            resolve(GridChoice {
                override_g_per_kwh: Some(-1.0),
                ..GridChoice::default()
            }),
            Err(CarbonError::InvalidOverride(_))
        ));
    }

    #[test]
    fn co2_formula() {
        assert!((co2_kg(2.0, 1.5, 400.0) - 1.2).abs() < 1e-12);
        assert_eq!(co2_kg(0.0, 1.2, 475.0), 0.0);
    }
}
