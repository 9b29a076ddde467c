//! Cloud regions (`aws:eu-west-3`) and the carbon intensity of their grid, from an
//! embedded table.
//!
//! The table (`shared/data/cloud_regions.csv`) is derived from CodeCarbon's `impact.csv`
//! (MIT license); see `shared/data/SOURCE.md`. Regions are keyed `provider:region`, lower
//! case, as the providers spell them.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The embedded table as CSV text: `provider,region,region_name,iso3,city,g_per_kwh,source`.
const TABLE_CSV: &str = include_str!("../../data/cloud_regions.csv");

/// How many close matches an unknown region's error suggests.
const N_SUGGESTIONS: usize = 3;

/// One cloud region and the carbon intensity of the grid that powers it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudRegion {
    /// `aws`, `azure` or `gcp`.
    pub provider: String,
    /// The provider's name of the region (`eu-west-3`, `francecentral`, `europe-west9`).
    pub region: String,
    /// The provider's display name (`EU (Paris)`), empty where the table has none.
    pub region_name: String,
    /// ISO-3166 alpha-3 code of the country it is in.
    pub iso3: String,
    /// City of the data centre.
    pub city: String,
    /// Grams of CO₂-equivalent per kWh.
    pub g_per_kwh: f64,
    /// Where CodeCarbon took the figure from (a URL or a name such as `eGRID`), empty
    /// where it gives none.
    pub source: String,
}

impl CloudRegion {
    /// `provider:region`, the key `--region` takes and results store.
    pub fn label(&self) -> String {
        format!("{}:{}", self.provider, self.region)
    }
}

/// The parsed table, keyed by `provider:region`.
static TABLE: LazyLock<BTreeMap<String, CloudRegion>> = LazyLock::new(|| parse_table(TABLE_CSV));

/// Parses the embedded regions table.
fn parse_table(text: &str) -> BTreeMap<String, CloudRegion> {
    let row = |fields: &[&str]| match fields {
        [provider, region, region_name, iso3, city, g_per_kwh, source] => {
            g_per_kwh.parse::<f64>().ok().map(|g_per_kwh| CloudRegion {
                provider: provider.to_ascii_lowercase(),
                region: region.to_ascii_lowercase(),
                region_name: (*region_name).to_string(),
                iso3: iso3.to_ascii_uppercase(),
                city: (*city).to_string(),
                g_per_kwh,
                source: (*source).to_string(),
            })
        }
        _ => None,
    };
    super::parse_embedded(
        "shared/data/cloud_regions.csv",
        text,
        row,
        CloudRegion::label,
    )
}

/// The region `provider:region` (case-insensitive, e.g. `aws:eu-west-3`), if the table has it.
pub fn region(label: &str) -> Option<CloudRegion> {
    TABLE.get(&label.trim().to_ascii_lowercase()).cloned()
}

/// Every region of the table, sorted by provider, then region.
pub fn regions() -> impl Iterator<Item = &'static CloudRegion> {
    TABLE.values()
}

/// How many regions the table holds.
pub fn n_regions() -> usize {
    TABLE.len()
}

/// The providers of the table, sorted (`aws, azure, gcp`).
pub fn providers() -> Vec<&'static str> {
    let mut providers: Vec<&str> = TABLE.values().map(|r| r.provider.as_str()).collect();
    providers.dedup();
    providers
}

/// Why `given` is not a known region, in words (`is not known` when its shape is right),
/// and the known labels closest to it, best first.
pub(super) fn diagnose(given: &str) -> (String, Vec<String>) {
    let given = given.trim().to_ascii_lowercase();
    let (provider, name) = match given.split_once(':') {
        Some((provider, name)) => (Some(provider), name),
        None => (None, given.as_str()),
    };
    let known_providers = providers();
    let hint = match provider {
        None => "has no provider: write provider:region".to_string(),
        Some(p) if !known_providers.contains(&p) => format!(
            "names an unknown provider {p:?} (known: {})",
            known_providers.join(", ")
        ),
        Some(_) => "is not known".to_string(),
    };
    // Compare the region part when the provider is missing or unknown, the whole label else.
    let distance = |r: &CloudRegion| match provider.filter(|p| known_providers.contains(p)) {
        Some(_) => strsim::levenshtein(&given, &r.label()),
        None => strsim::levenshtein(name, &r.region),
    };
    let limit = (name.len() / 3).max(2);
    let mut close: Vec<(usize, String)> = TABLE
        .values()
        .map(|r| (distance(r), r.label()))
        .filter(|(d, _)| *d <= limit)
        .collect();
    close.sort();
    let suggestions = close
        .into_iter()
        .take(N_SUGGESTIONS)
        .map(|(_, label)| label)
        .collect();
    (hint, suggestions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_and_every_provider_is_there() {
        assert_eq!(n_regions(), 94);
        assert_eq!(providers(), ["aws", "azure", "gcp"]);
        assert!(regions().all(|r| r.iso3.len() == 3 && r.g_per_kwh >= 0.0));
        assert!(region("gcp:me-central1").is_some(), "upstream typo fixed");
    }

    #[test]
    fn lookups_are_case_insensitive() {
        let paris = region(" AWS:EU-West-3 ").expect("aws:eu-west-3 is in the table");
        assert_eq!(paris.label(), "aws:eu-west-3");
        assert_eq!(paris.region_name, "EU (Paris)");
        assert_eq!(paris.iso3, "FRA");
        assert_eq!(paris.g_per_kwh, 105.0);
    }

    #[test]
    fn close_matches_of_a_typo() {
        let (hint, close) = diagnose("aws:eu-west-9");
        assert_eq!(hint, "is not known");
        assert_eq!(close.len(), N_SUGGESTIONS);
        assert!(
            close.iter().all(|label| label.starts_with("aws:eu-west-")),
            "{close:?}"
        );
        let (hint, close) = diagnose("eu-west-3");
        assert!(hint.contains("no provider"), "{hint}");
        assert_eq!(close[0], "aws:eu-west-3");
        let (hint, close) = diagnose("amazon:eu-west-3");
        assert!(hint.contains("unknown provider \"amazon\""), "{hint}");
        assert!(hint.contains("aws, azure, gcp"), "{hint}");
        assert_eq!(close[0], "aws:eu-west-3");
        assert!(diagnose("aws:zzzzzzzzzzzzzzzzzzzzzzzzzz").1.is_empty());
    }
}
