//! Rendering a report: the terminal table, `jobs.csv`, `summary.csv`, `report.json`.

use std::fmt::Write as _;

use super::Report;

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
        for row in &self.summary {
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
        for line in lines {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
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
        let mut out = String::from(
            "job_id,model,config,seed,status,attempts,accuracy,train_s,energy_kwh,co2_kg,method,worker,cpu_model,\
             carbon_intensity_g_per_kwh,carbon_region,n_train,n_test,solver,dataset_sha256,campaign_id,campaign,error\n",
        );
        for r in &self.jobs {
            let fields = [
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
            ];
            push_csv_line(&mut out, &fields);
        }
        out
    }

    /// One CSV row per (model, configuration).
    pub fn summary_csv(&self) -> String {
        let mut out = String::from(
            "model,config,n_succeeded,n_failed,accuracy_mean,accuracy_std,train_s_mean,train_s_std,\
             energy_kwh_mean,energy_kwh_std,co2_kg_mean,co2_kg_std,method\n",
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
            push_csv_line(&mut out, &fields);
        }
        out
    }

    /// The whole report as JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// The files a client writes: name and content.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            ("jobs.csv".into(), self.jobs_csv().into_bytes()),
            ("summary.csv".into(), self.summary_csv().into_bytes()),
            ("report.json".into(), self.json().into_bytes()),
        ]
    }
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
