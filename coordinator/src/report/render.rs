//! Rendering the report model: the terminal table (comfy-table), `jobs.csv` and
//! `summary.csv` (csv), `emissions.csv` (see `emissions.rs`), `report.json` and
//! `report.md`.

use std::fmt::Write as _;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use super::{Debt, Report, Stat, SummaryRow};

/// The debt columns that `jobs.csv` and `summary.csv` end with.
const DEBT_COLUMNS: [&str; 9] = [
    "weights_sha256",
    "pretrain_kwh",
    "pretrain_co2_kg",
    "pretrain_basis",
    "pretrain_uses",
    "debt_share_kwh",
    "debt_share_co2_kg",
    "total_with_share_kwh",
    "total_with_share_co2_kg",
];

/// What a table cell shows for a group without a value.
pub const NONE: &str = "–";

impl Report {
    /// The first line of the table and of the Markdown: the job counts.
    pub(super) fn headline(&self) -> String {
        let s = &self.status;
        format!(
            "campaign {} ({}): {} jobs, {} succeeded, {} failed, {} running, {} pending",
            self.name, self.campaign_id, s.n_jobs, s.succeeded, s.failed, s.leased, s.pending
        )
    }

    /// The summary's column names, as the table and the Markdown show them.
    pub(super) fn summary_header(&self) -> Vec<String> {
        let mut header: Vec<String> = [
            "model",
            "config",
            "machine",
            "n",
            "failed",
            "accuracy",
            "train s",
            "energy kWh",
            "kg CO2e",
            "avg W",
            "acc/Wh",
        ]
        .map(String::from)
        .to_vec();
        if let Some(target) = self.target_accuracy {
            header.push(format!("to {target} (s, kWh)"));
        }
        header.push("front".into());
        header
    }

    /// One summary row's cells: means ± the 95 % interval's half-width, `–` where no
    /// run succeeded.
    pub(super) fn summary_cells(&self, row: &SummaryRow) -> Vec<String> {
        let mut cells = vec![
            row.model.clone(),
            row.config.clone(),
            if row.machine.is_empty() {
                NONE.into()
            } else {
                row.machine.clone()
            },
            row.n_succeeded.to_string(),
            row.n_failed.to_string(),
            stat_cell(&row.accuracy, |v| format!("{v:.4}")),
            stat_cell(&row.train_s, |v| format!("{v:.1}")),
            stat_cell(&row.energy_kwh, |v| format!("{v:.3e}")),
            stat_cell(&row.co2_kg, |v| format!("{v:.3e}")),
            stat_cell(&row.avg_power_w, |v| format!("{v:.1}")),
            row.accuracy_per_wh
                .map_or(NONE.into(), |v| format!("{v:.3}")),
        ];
        if self.target_accuracy.is_some() {
            cells.push(match &row.to_target {
                Some(t) if t.n_reached > 0 => format!(
                    "{} s, {}{} kWh ({}/{})",
                    t.time_s.mean.map_or(NONE.into(), |v| format!("{v:.1}")),
                    t.energy_kwh
                        .mean
                        .map_or(NONE.into(), |v| format!("{v:.3e}")),
                    if t.energy_estimated { " est." } else { "" },
                    t.n_reached,
                    t.n_reached + t.n_not_reached
                ),
                Some(t) if t.n_not_reached > 0 => "not reached".into(),
                _ => NONE.into(),
            });
        }
        cells.push(if row.on_pareto_front {
            "*".into()
        } else {
            String::new()
        });
        cells
    }

    /// The lines under the table: debts, normalizations, what cannot be told apart,
    /// totals with the waste apart, dataset warnings, failures.
    pub(super) fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        notes.push(
            "accuracy, train s, energy, CO2e and W: mean ± half the 95 % Student-t interval over seeds \
             (a single run has no interval); front: * on the accuracy-vs-CO2e Pareto front"
                .to_string(),
        );
        for row in &self.summary {
            if let Some(line) = debt_line(row) {
                notes.push(format!("{}:\n{line}", row.name()));
            }
            if let Some(n) = &row.normalized {
                notes.push(format!(
                    "{}: normalized to {} (calibration ×{:.3}): train {} s, {} kWh",
                    row.name(),
                    n.reference,
                    n.factor,
                    stat_cell(&n.train_s, |v| format!("{v:.1}")),
                    stat_cell(&n.energy_kwh, |v| format!("{v:.3e}")),
                ));
            }
            if !row.normalization_note.is_empty() {
                notes.push(format!("{}: {}", row.name(), row.normalization_note));
            }
        }
        for [a, b] in &self.indistinguishable {
            notes.push(format!(
                "not distinguishable (accuracy and CO2e intervals overlap): {a} | {b}"
            ));
        }
        let t = &self.totals;
        notes.push(format!(
            "total: {:.3e} kWh, {:.3e} kg CO2e in results; waste (attempts without a result): \
             {:.3e} kWh, {:.3e} kg CO2e over {} attempt{}",
            t.energy_kwh,
            t.co2_kg,
            t.waste_kwh,
            t.waste_co2_kg,
            t.wasted_attempts,
            if t.wasted_attempts == 1 { "" } else { "s" }
        ));
        let digests = self.dataset_digests();
        if digests.len() > 1 {
            let short: Vec<&str> = digests.iter().map(|d| &d[..d.len().min(12)]).collect();
            notes.push(format!(
                "warning: the jobs trained on {} different copies of the dataset (sha256 {}): \
                 give every worker the same files before comparing (see jobs.csv, dataset_sha256)",
                digests.len(),
                short.join(", ")
            ));
        }
        for row in self.jobs.iter().filter(|r| r.status == "failed") {
            notes.push(format!("failed {}: {}", row.job_id, row.error));
        }
        for row in self.jobs.iter().filter(|r| r.status == "reused") {
            notes.push(format!("reused {}: {}", row.job_id, row.note));
        }
        // A pending job every worker declined waits for a worker with the right data.
        for row in self
            .jobs
            .iter()
            .filter(|r| r.status == "pending" && !r.error.is_empty())
        {
            notes.push(format!("pending {}: {}", row.job_id, row.error));
        }
        notes
    }

    /// The summary as a terminal table, then the notes.
    pub fn table(&self) -> String {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.summary_header());
        for row in &self.summary {
            table.add_row(self.summary_cells(row));
        }
        let mut out = format!("{}\n{table}\n", self.headline());
        for note in self.notes() {
            let _ = writeln!(out, "{note}");
        }
        out
    }

    /// The report as Markdown: the headline, the summary table, the notes.
    pub fn markdown(&self) -> String {
        let cell = |c: &str| c.replace('|', "\\|");
        let header = self.summary_header();
        let mut out = format!("# Report: {}\n\n{}\n\n", self.name, self.headline());
        let _ = writeln!(
            out,
            "| {} |",
            header
                .iter()
                .map(|c| cell(c))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in &self.summary {
            let cells: Vec<String> = self.summary_cells(row).iter().map(|c| cell(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
        for note in self.notes() {
            let _ = writeln!(out, "- {}", note);
        }
        out
    }

    /// One CSV row per job, with full provenance.
    pub fn jobs_csv(&self) -> String {
        let mut header: Vec<&str> = vec![
            "job_id",
            "model",
            "config",
            "seed",
            "status",
            "attempts",
            "accuracy",
            "train_s",
            "energy_kwh",
            "co2_kg",
            "method",
            "worker",
            "cpu_model",
            "carbon_intensity_g_per_kwh",
            "carbon_region",
            "n_train",
            "n_test",
            "solver",
            "dataset_sha256",
            "campaign_id",
            "campaign",
            "error",
            "stage",
            "note",
            "config_hash",
            "machine",
            "logical_cores",
            "physical_cores",
            "ram_bytes",
            "hostname",
            "os",
            "kernel",
            "energy_source",
            "worker_version",
            "calibration_gflops",
            "pue",
            "duration_s",
            "cpu_time_s",
            "cpu_energy_kwh",
            "ram_energy_kwh",
            "avg_power_w",
            "samples_per_s",
            "peak_rss_bytes",
            "completed_unix_ms",
            "spent_kwh",
            "spent_co2_kg",
            "spent_attempts",
            "carbon_source",
            "pue_source",
            "machine_cpu_kwh",
            "idle_cpu_kwh",
            "machine_ram_kwh",
            "idle_ram_kwh",
            "rapl_interface",
            "fallback_reason",
        ];
        header.extend(DEBT_COLUMNS);
        let mut writer = csv::Writer::from_writer(Vec::new());
        write_record(&mut writer, header.iter().map(|s| s.to_string()));
        for r in &self.jobs {
            let mut fields = vec![
                r.job_id.clone(),
                r.model.clone(),
                r.config.clone(),
                r.seed.to_string(),
                r.status.clone(),
                r.attempts.to_string(),
                opt(r.accuracy),
                opt(r.train_s),
                opt(r.energy_kwh),
                opt(r.co2_kg),
                r.method.clone(),
                r.worker.clone(),
                r.cpu_model.clone(),
                opt(r.carbon_intensity_g_per_kwh),
                r.carbon_region.clone(),
                opt_int(r.n_train),
                opt_int(r.n_test),
                r.solver.clone(),
                r.dataset_sha256.clone(),
                self.campaign_id.clone(),
                self.name.clone(),
                r.error.clone(),
                r.stage.clone(),
                r.note.clone(),
                r.config_hash.clone(),
                r.machine.clone(),
                opt_int(r.logical_cores),
                opt_int(r.physical_cores),
                opt_int(r.ram_bytes),
                r.hostname.clone(),
                r.os.clone(),
                r.kernel.clone(),
                r.energy_source.clone(),
                r.worker_version.clone(),
                opt(r.calibration_gflops),
                opt(r.pue),
                opt(r.duration_s),
                opt(r.cpu_time_s),
                opt(r.cpu_energy_kwh),
                opt(r.ram_energy_kwh),
                opt(r.avg_power_w),
                opt(r.samples_per_s),
                opt_int(r.peak_rss_bytes),
                opt_int(r.completed_unix_ms),
                r.spent_kwh.to_string(),
                r.spent_co2_kg.to_string(),
                r.spent_attempts.to_string(),
                r.carbon_source.clone(),
                r.pue_source.clone(),
                opt(r.machine_cpu_kwh),
                opt(r.idle_cpu_kwh),
                opt(r.machine_ram_kwh),
                opt(r.idle_ram_kwh),
                r.rapl_interface.clone(),
                r.fallback_reason.clone(),
            ];
            fields.extend(debt_fields(&r.debt));
            write_record(&mut writer, fields);
        }
        finish(writer)
    }

    /// One CSV row per (model, configuration, machine class): every statistic of
    /// every figure (empty where there is none).
    pub fn summary_csv(&self) -> String {
        const FIGURES: [&str; 8] = [
            "accuracy",
            "train_s",
            "cpu_energy_kwh",
            "ram_energy_kwh",
            "energy_kwh",
            "co2_kg",
            "avg_power_w",
            "samples_per_s",
        ];
        const PARTS: [&str; 7] = [
            "mean",
            "std",
            "ci_low",
            "ci_high",
            "min",
            "max",
            "trimmed_mean",
        ];
        let mut header: Vec<String> = [
            "model",
            "config",
            "config_hash",
            "stage",
            "machine",
            "calibration_gflops",
            "n_succeeded",
            "n_failed",
            "n_reused",
        ]
        .map(String::from)
        .to_vec();
        for figure in FIGURES {
            header.extend(PARTS.map(|p| format!("{figure}_{p}")));
        }
        header.extend(
            [
                "accuracy_per_wh",
                "target_accuracy",
                "target_n_reached",
                "target_n_not_reached",
                "target_time_s_mean",
                "target_energy_kwh_mean",
                "target_energy_estimated",
                "normalized_to",
                "normalization_factor",
                "normalized_train_s_mean",
                "normalized_energy_kwh_mean",
                "normalization_note",
                "on_pareto_front",
                "method",
            ]
            .map(String::from),
        );
        header.extend(DEBT_COLUMNS.map(String::from));
        let mut writer = csv::Writer::from_writer(Vec::new());
        write_record(&mut writer, header);
        for r in &self.summary {
            let mut fields = vec![
                r.model.clone(),
                r.config.clone(),
                r.config_hash.clone(),
                r.stage.clone(),
                r.machine.clone(),
                opt(r.calibration_gflops),
                r.n_succeeded.to_string(),
                r.n_failed.to_string(),
                r.n_reused.to_string(),
            ];
            for stat in [
                r.accuracy,
                r.train_s,
                r.cpu_energy_kwh,
                r.ram_energy_kwh,
                r.energy_kwh,
                r.co2_kg,
                r.avg_power_w,
                r.samples_per_s,
            ] {
                fields.extend(
                    [
                        stat.mean,
                        stat.std,
                        stat.ci_low,
                        stat.ci_high,
                        stat.min,
                        stat.max,
                        stat.trimmed_mean,
                    ]
                    .map(opt),
                );
            }
            let t = r.to_target.as_ref();
            let n = r.normalized.as_ref();
            fields.extend([
                opt(r.accuracy_per_wh),
                opt(t.map(|t| t.target)),
                opt_int(t.map(|t| t.n_reached)),
                opt_int(t.map(|t| t.n_not_reached)),
                opt(t.and_then(|t| t.time_s.mean)),
                opt(t.and_then(|t| t.energy_kwh.mean)),
                t.map_or(String::new(), |t| t.energy_estimated.to_string()),
                n.map_or(String::new(), |n| n.reference.clone()),
                opt(n.map(|n| n.factor)),
                opt(n.and_then(|n| n.train_s.mean)),
                opt(n.and_then(|n| n.energy_kwh.mean)),
                r.normalization_note.clone(),
                r.on_pareto_front.to_string(),
                r.methods.clone(),
            ]);
            fields.extend(debt_fields(&r.debt));
            write_record(&mut writer, fields);
        }
        finish(writer)
    }

    /// The whole report as JSON ([`Report::from_json`] reads it back).
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// The files of `formats` a client writes: name and content, each format once, in
    /// the order of [`Format::ALL`].
    pub fn files(&self, formats: &[Format]) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for format in Format::ALL.into_iter().filter(|f| formats.contains(f)) {
            match format {
                Format::Table => files.push(("report.txt".into(), self.table().into_bytes())),
                Format::Csv => {
                    files.push(("jobs.csv".into(), self.jobs_csv().into_bytes()));
                    files.push(("summary.csv".into(), self.summary_csv().into_bytes()));
                    files.push(("emissions.csv".into(), self.emissions_csv().into_bytes()));
                }
                Format::Json => files.push(("report.json".into(), self.json().into_bytes())),
                Format::Md => files.push(("report.md".into(), self.markdown().into_bytes())),
                // The page and every chart as PNG and SVG beside it. A chart that
                // cannot be drawn (a bug: inputs are checked) is reported in place of
                // the page rather than failing the other formats.
                Format::Html => match self.html_files() {
                    Ok(page_and_charts) => files.extend(page_and_charts),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot draw the report's charts");
                        files.push((
                            "report-html-error.txt".into(),
                            format!("the HTML report could not be drawn: {err}\n").into_bytes(),
                        ));
                    }
                },
            }
        }
        files
    }
}

/// `mean ± half-width` (`mean` alone for one run, `–` for none).
pub fn stat_cell(stat: &Stat, f: impl Fn(f64) -> String) -> String {
    match (stat.mean, stat.half_width()) {
        (None, _) => NONE.into(),
        (Some(mean), None) => f(mean),
        (Some(mean), Some(half)) => format!("{} ± {}", f(mean), f(half)),
    }
}

/// A rendering of the report that `GetReport` can return and `report --format` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The terminal table, as `report.txt`.
    Table,
    /// `jobs.csv`, `summary.csv` and the CodeCarbon-compatible `emissions.csv`.
    Csv,
    /// `report.json`.
    Json,
    /// `report.md`.
    Md,
    /// `report.html` with its charts inline (and the charts as PNG and SVG files).
    Html,
}

impl Format {
    /// Every format, in the order files are returned.
    pub const ALL: [Format; 5] = [
        Format::Table,
        Format::Csv,
        Format::Json,
        Format::Md,
        Format::Html,
    ];

    /// The format's name on the command line and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Md => "md",
            Format::Html => "html",
        }
    }

    /// Parses names such as `table`, `csv`, `json`, `md`, `html` or `all`; an empty list
    /// means every format. An unknown name is an error that lists the valid ones.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Format>, String> {
        let mut formats = Vec::new();
        for name in names {
            let name = name.as_ref().trim();
            if name == "all" {
                return Ok(Format::ALL.to_vec());
            }
            let Some(format) = Format::ALL.into_iter().find(|f| f.name() == name) else {
                return Err(format!(
                    "unknown report format {name:?}: use table, csv, json, md, html or all"
                ));
            };
            if !formats.contains(&format) {
                formats.push(format);
            }
        }
        if formats.is_empty() {
            return Ok(Format::ALL.to_vec());
        }
        Ok(formats)
    }
}

/// The table's line under a fine-tune group: what its weights cost and its share.
fn debt_line(row: &SummaryRow) -> Option<String> {
    let d = &row.debt;
    if d.pretrain_basis.is_empty() {
        return None;
    }
    if d.pretrain_kwh.is_none() && d.pretrain_co2_kg.is_none() {
        return Some(format!(
            "  pretraining: cost unknown (its pretrain job has not finished, or the weights \
             came with no declared cost){}",
            d.pretrain_uses
                .map_or(String::new(), |n| format!(", {n} uses so far"))
        ));
    }
    let mut line = format!(
        "  pretraining: {} {}",
        amount(d.pretrain_kwh, d.pretrain_co2_kg),
        d.pretrain_basis
    );
    match d.pretrain_uses {
        Some(n) if n > 0 => {
            let _ = write!(
                line,
                ", shared by {n} use{} → {} per job",
                if n == 1 { "" } else { "s" },
                amount(d.debt_share_kwh, d.debt_share_co2_kg)
            );
            if d.total_with_share_kwh.is_some() || d.total_with_share_co2_kg.is_some() {
                let _ = write!(
                    line,
                    "; with the share {} per run",
                    amount(d.total_with_share_kwh, d.total_with_share_co2_kg)
                );
            }
        }
        _ => line.push_str(", no use has succeeded yet"),
    }
    Some(line)
}

/// `3.100e-5 kWh, 1.473e-5 kg CO2e`, with `?` for an unknown figure.
fn amount(kwh: Option<f64>, co2_kg: Option<f64>) -> String {
    let figure = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.3e}"));
    format!("{} kWh, {} kg CO2e", figure(kwh), figure(co2_kg))
}

pub(super) fn write_record<I: IntoIterator<Item = String>>(
    writer: &mut csv::Writer<Vec<u8>>,
    fields: I,
) {
    writer
        .write_record(fields)
        .expect("writing CSV to memory cannot fail");
}

pub(super) fn finish(writer: csv::Writer<Vec<u8>>) -> String {
    let bytes = writer
        .into_inner()
        .expect("flushing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("CSV of strings is UTF-8")
}

pub(super) fn opt_int<T: ToString>(value: Option<T>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

fn debt_fields(d: &Debt) -> [String; 9] {
    [
        d.weights_sha256.clone(),
        opt(d.pretrain_kwh),
        opt(d.pretrain_co2_kg),
        d.pretrain_basis.clone(),
        d.pretrain_uses.map_or(String::new(), |n| n.to_string()),
        opt(d.debt_share_kwh),
        opt(d.debt_share_co2_kg),
        opt(d.total_with_share_kwh),
        opt(d.total_with_share_co2_kg),
    ]
}

pub(super) fn opt(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}
