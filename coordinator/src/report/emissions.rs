//! `emissions.csv` in CodeCarbon's format: its 38 columns first, with the same names
//! and units (duration s, emissions kg, emissions_rate kg/s, powers W, energies kWh,
//! water L, RAM GB), one row per succeeded job; our own columns after them. Unknown
//! values are empty. A job metered under a cloud region (`carbon_region` `aws:eu-west-3`)
//! fills `cloud_provider`, `cloud_region` and `on_cloud` = `Y`, and its country from the
//! embedded region table.

use ecobench_shared::carbon;

use super::Report;
use super::render::{finish, opt, opt_int, write_record};

/// CodeCarbon's columns, in its order.
pub const CODECARBON_COLUMNS: [&str; 38] = [
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
];

/// Our columns after CodeCarbon's.
pub const OUR_COLUMNS: [&str; 14] = [
    "model",
    "config",
    "config_hash",
    "seed",
    "accuracy",
    "train_s",
    "method",
    "carbon_intensity_g_per_kwh",
    "carbon_region",
    "worker",
    "calibration_gflops",
    "dataset_sha256",
    "carbon_source",
    "pue_source",
];

/// Bytes in CodeCarbon's GB (it divides by 1024³).
const GB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Report {
    /// The CodeCarbon-compatible `emissions.csv`.
    pub fn emissions_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        write_record(
            &mut writer,
            CODECARBON_COLUMNS
                .iter()
                .chain(OUR_COLUMNS.iter())
                .map(|s| s.to_string()),
        );
        for r in self.jobs.iter().filter(|r| r.status == "succeeded") {
            let duration = r.duration_s.filter(|d| *d > 0.0);
            // kWh over seconds → W.
            let power = |kwh: Option<f64>| opt(kwh.zip(duration).map(|(e, d)| e * 3.6e6 / d));
            let grid = Grid::of(&r.carbon_region);
            let cpu_percent = r
                .cpu_time_s
                .zip(duration)
                .zip(r.logical_cores.filter(|n| *n > 0))
                .map(|((cpu, d), n)| 100.0 * cpu / d / f64::from(n));
            let ram_percent = r
                .peak_rss_bytes
                .zip(r.ram_bytes.filter(|n| *n > 0))
                .map(|(used, total)| 100.0 * used as f64 / total as f64);
            let fields = [
                r.completed_unix_ms.map_or(String::new(), iso8601),
                self.name.clone(),
                r.job_id.clone(),
                self.campaign_id.clone(),
                opt(r.duration_s),
                opt(r.co2_kg),
                opt(r.co2_kg.zip(duration).map(|(c, d)| c / d)),
                power(r.cpu_energy_kwh),
                "0".into(),
                power(r.ram_energy_kwh),
                opt(r.cpu_energy_kwh),
                "0".into(),
                opt(r.ram_energy_kwh),
                opt(r.energy_kwh),
                String::new(),
                grid.country_name,
                grid.iso3,
                String::new(),
                grid.cloud_provider,
                grid.cloud_region,
                r.os.clone(),
                String::new(),
                "ecobench-x".into(),
                opt_int(r.logical_cores),
                r.cpu_model.clone(),
                "0".into(),
                String::new(),
                String::new(),
                String::new(),
                opt(r.ram_bytes.map(|b| b as f64 / GB)),
                "process".into(),
                opt(cpu_percent),
                String::new(),
                opt(ram_percent),
                opt(r.peak_rss_bytes.map(|b| b as f64 / GB)),
                grid.on_cloud.into(),
                opt(r.pue),
                String::new(),
                // Ours.
                r.model.clone(),
                r.config.clone(),
                r.config_hash.clone(),
                r.seed.to_string(),
                opt(r.accuracy),
                opt(r.train_s),
                r.method.clone(),
                opt(r.carbon_intensity_g_per_kwh),
                r.carbon_region.clone(),
                r.worker.clone(),
                opt(r.calibration_gflops),
                r.dataset_sha256.clone(),
                r.carbon_source.clone(),
                r.pue_source.clone(),
            ];
            write_record(&mut writer, fields);
        }
        finish(writer)
    }
}

/// CodeCarbon's location columns of one result, from its `carbon_region` label.
#[derive(Debug, Default, PartialEq)]
struct Grid {
    /// `country_name`: the country's English name.
    country_name: String,
    /// `country_iso_code`: ISO-3166 alpha-3.
    iso3: String,
    /// `cloud_provider`: `aws`, `azure`, `gcp`.
    cloud_provider: String,
    /// `cloud_region`: the provider's region name.
    cloud_region: String,
    /// `on_cloud`: `Y` or `N`.
    on_cloud: &'static str,
}

impl Grid {
    /// An ISO3 code gives the country; `provider:region` the cloud columns and the
    /// region's country; `world`, `override` or an unknown label leave them empty.
    fn of(label: &str) -> Grid {
        let country_name = |iso3: &str| carbon::intensity(iso3).map_or(String::new(), |c| c.name);
        if let Some((provider, region)) = label.split_once(':') {
            let iso3 = carbon::region(label).map_or(String::new(), |r| r.iso3);
            return Grid {
                country_name: country_name(&iso3),
                iso3,
                cloud_provider: provider.to_string(),
                cloud_region: region.to_string(),
                on_cloud: "Y",
            };
        }
        let is_iso3 = label.len() == 3 && label.chars().all(|c| c.is_ascii_uppercase());
        let iso3 = if is_iso3 {
            label.to_string()
        } else {
            String::new()
        };
        Grid {
            country_name: country_name(&iso3),
            iso3,
            on_cloud: "N",
            ..Grid::default()
        }
    }
}

/// `2026-11-26T06:15:31` (UTC) of Unix milliseconds, as CodeCarbon writes timestamps.
pub fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
