//! Rendering a report: the terminal table, `jobs.csv`, `summary.csv`, `report.json`.

use std::fmt::Write as _;

use super::{Debt, Report, SummaryRow};

/// The debt columns that `jobs.csv` and `summary.csv` end with.
const DEBT_COLUMNS: &str = "weights_sha256,pretrain_kwh,pretrain_co2_kg,pretrain_basis,pretrain_uses,\
                            debt_share_kwh,debt_share_co2_kg,total_with_share_kwh,total_with_share_co2_kg";

impl Report {
    /// The summary as an aligned terminal table.
    pub fn table(&self) -> String {
        let s = &self.status;
        let mut out = format!(
            "campaign {} ({}): {} jobs, {} succeeded, {} failed, {} running, {} pending\n",
            self.name, self.campaign_id, s.n_jobs, s.succeeded, s.failed, s.leased, s.pending
        );
        let header = [
            "model",
            "config",
            "n",
            "failed",
            "accuracy",
            "train s",
            "energy kWh",
            "kg CO2e",
            "method",
        ];
        let mut lines = vec![header.map(String::from).to_vec()];
        let mut notes = vec![None];
        for row in &self.summary {
            notes.push(debt_line(row));
            lines.push(vec![
                row.model.clone(),
                row.config.clone(),
                row.n_succeeded.to_string(),
                row.n_failed.to_string(),
                format!("{:.4} ± {:.4}", row.accuracy.mean, row.accuracy.std),
                format!("{:.1} ± {:.1}", row.train_s.mean, row.train_s.std),
                format!("{:.3e}", row.energy_kwh.mean),
                format!("{:.3e}", row.co2_kg.mean),
                row.methods.clone(),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|col| {
                lines
                    .iter()
                    .map(|l| l[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (line, note) in lines.into_iter().zip(notes) {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
            if let Some(note) = note {
                let _ = writeln!(out, "{note}");
            }
        }
        let digests = self.dataset_digests();
        if digests.len() > 1 {
            let short: Vec<&str> = digests.iter().map(|d| &d[..d.len().min(12)]).collect();
            let _ = writeln!(
                out,
                "warning: the jobs trained on {} different copies of the dataset (sha256 {}): \
                 give every worker the same files before comparing (see jobs.csv, dataset_sha256)",
                digests.len(),
                short.join(", ")
            );
        }
        for row in self.jobs.iter().filter(|r| r.status == "failed") {
            let _ = writeln!(out, "failed {}: {}", row.job_id, row.error);
        }
        for row in self.jobs.iter().filter(|r| r.status == "reused") {
            let _ = writeln!(out, "reused {}: {}", row.job_id, row.note);
        }
        // A pending job every worker declined waits for a worker with the right data.
        for row in self
            .jobs
            .iter()
            .filter(|r| r.status == "pending" && !r.error.is_empty())
        {
            let _ = writeln!(out, "pending {}: {}", row.job_id, row.error);
        }
        out
    }

    /// One CSV row per job, with provenance.
    pub fn jobs_csv(&self) -> String {
        let mut out = format!(
            "job_id,model,config,seed,status,attempts,accuracy,train_s,energy_kwh,co2_kg,method,worker,cpu_model,\
             carbon_intensity_g_per_kwh,carbon_region,n_train,n_test,solver,dataset_sha256,campaign_id,campaign,error,\
             stage,note,{DEBT_COLUMNS}\n",
        );
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
                r.n_train.map_or(String::new(), |n| n.to_string()),
                r.n_test.map_or(String::new(), |n| n.to_string()),
                r.solver.clone(),
                r.dataset_sha256.clone(),
                self.campaign_id.clone(),
                self.name.clone(),
                r.error.clone(),
                r.stage.clone(),
                r.note.clone(),
            ];
            fields.extend(debt_fields(&r.debt));
            push_csv_line(&mut out, &fields);
        }
        out
    }

    /// One CSV row per (model, configuration).
    pub fn summary_csv(&self) -> String {
        let mut out = format!(
            "model,config,n_succeeded,n_failed,accuracy_mean,accuracy_std,train_s_mean,train_s_std,\
             energy_kwh_mean,energy_kwh_std,co2_kg_mean,co2_kg_std,method,stage,n_reused,{DEBT_COLUMNS}\n",
        );
        for r in &self.summary {
            let mut fields = vec![
                r.model.clone(),
                r.config.clone(),
                r.n_succeeded.to_string(),
                r.n_failed.to_string(),
            ];
            for stat in [r.accuracy, r.train_s, r.energy_kwh, r.co2_kg] {
                fields.push(stat.mean.to_string());
                fields.push(stat.std.to_string());
            }
            fields.push(r.methods.clone());
            fields.push(r.stage.clone());
            fields.push(r.n_reused.to_string());
            fields.extend(debt_fields(&r.debt));
            push_csv_line(&mut out, &fields);
        }
        out
    }

    /// The whole report as JSON.
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
                }
                Format::Json => files.push(("report.json".into(), self.json().into_bytes())),
                // Rendered by the issue-7 work (Markdown, the HTML page and its charts).
                Format::Md | Format::Html => {}
            }
        }
        files
    }
}

/// A rendering of the report that `GetReport` can return and `report --format` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The terminal table, as `report.txt`.
    Table,
    /// `jobs.csv`, `summary.csv` (and the CodeCarbon-compatible `emissions.csv`).
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

fn opt(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

pub(super) fn push_csv_line(out: &mut String, fields: &[String]) {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    out.push_str(&quoted.join(","));
    out.push('\n');
}
