//! The report's charts and its HTML page, fed from the one report model: the study's
//! three bar charts (accuracy, train time, CO₂e with 95 % whiskers), accuracy against
//! CO₂e with the Pareto front, and the per-epoch accuracy and cumulative energy curves.

use std::collections::BTreeMap;

use super::charts::{
    self, Bar, BarChart, ChartError, ChartSet, Estimate, LineChart, ScatterChart, ScatterPoint,
    Series,
};
use super::html::Page;
use super::{JobRow, Report, Stat, SummaryRow};

impl Report {
    /// The six charts of the report, one bar, point or curve per summary row.
    pub fn chart_set(&self) -> ChartSet {
        let several_machines = {
            let mut machines: Vec<&str> = self.summary.iter().map(|r| r.machine.as_str()).collect();
            machines.sort_unstable();
            machines.dedup();
            machines.len() > 1
        };
        let labels = chart_labels(&self.summary, several_machines);
        let rows = || self.summary.iter().zip(&labels);
        let bars = |figure: fn(&SummaryRow) -> &Stat| -> Vec<Bar> {
            rows()
                .map(|(row, label)| Bar {
                    label: label.clone(),
                    value: estimate(figure(row)),
                })
                .collect()
        };
        let points = rows()
            // A pretrain job's accuracy is on its source task: not comparable.
            .filter(|(row, _)| row.stage != "pretrain")
            .filter_map(|(row, label)| {
                Some(ScatterPoint {
                    label: label.clone(),
                    x: estimate(&row.co2_kg)?,
                    y: estimate(&row.accuracy)?,
                    pareto: row.on_pareto_front,
                })
            })
            .collect();
        let (mut accuracy_curves, mut energy_curves) = (Vec::new(), Vec::new());
        for (row, label) in rows() {
            let members: Vec<&JobRow> = self
                .jobs
                .iter()
                .filter(|job| {
                    job.status == "succeeded"
                        && job.model == row.model
                        && job.config_hash == row.config_hash
                        && job.machine == row.machine
                })
                .collect();
            let accuracy = mean_curve(&members, |_, epoch| Some(epoch.test_accuracy));
            let energy = mean_curve(&members, epoch_energy);
            if !accuracy.is_empty() {
                accuracy_curves.push(Series {
                    label: label.clone(),
                    points: accuracy,
                });
            }
            if !energy.is_empty() {
                energy_curves.push(Series {
                    label: label.clone(),
                    points: energy,
                });
            }
        }
        ChartSet {
            accuracy: BarChart::accuracy(bars(|r| &r.accuracy)),
            train_time: BarChart::train_time(bars(|r| &r.train_s)),
            co2: BarChart::co2(bars(|r| &r.co2_kg)),
            accuracy_vs_co2: ScatterChart::accuracy_vs_co2(points),
            accuracy_curves: LineChart::accuracy_curves(accuracy_curves),
            energy_curves: LineChart::energy_curves(energy_curves),
        }
    }

    /// The HTML page followed by every chart as PNG and SVG files (`accuracy.png`,
    /// `accuracy.svg`, …): each chart is drawn once, its SVG both a file and inline.
    pub fn html_files(&self) -> Result<Vec<(String, Vec<u8>)>, ChartError> {
        let set = self.chart_set();
        let charts = charts::all_charts(&set)?;
        let svgs = set.charts().map(|(stem, chart)| {
            let name = format!("{stem}.svg");
            let svg = charts
                .iter()
                .find(|(file, _)| *file == name)
                .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default();
            (chart.title().to_string(), svg)
        });
        let mut files = vec![("report.html".to_string(), self.page(&svgs).into_bytes())];
        files.extend(charts);
        Ok(files)
    }

    /// The report as one self-contained HTML page: the headline, the summary table and
    /// its notes, `charts` inline (caption and SVG of each), and the jobs.
    fn page(&self, charts: &[(String, String)]) -> String {
        let mut page = Page::new(format!("ecobench report: {}", self.name));
        page.paragraph(self.headline());
        page.heading("Summary");
        page.table(
            "Per model and configuration, over seeds: mean ± half the 95 % Student-t \
             interval (one run: its value; no successful run: –).",
            self.summary_header(),
            self.summary
                .iter()
                .map(|row| self.summary_cells(row))
                .collect(),
        );
        for note in self.notes() {
            page.note(note);
        }
        page.heading("Charts");
        for (caption, svg) in charts {
            page.chart(caption.clone(), svg);
        }
        if self
            .jobs
            .iter()
            .flat_map(|job| &job.epochs)
            .any(|epoch| epoch.energy_kwh.is_none())
        {
            page.note(
                "Where an epoch carries no meter reading (workers before epoch energy was \
                 recorded), its cumulative energy is estimated as the job's energy × the \
                 epoch's elapsed time / the job's duration.",
            );
        }
        page.heading("Jobs");
        let header = [
            "job",
            "model",
            "config",
            "seed",
            "status",
            "accuracy",
            "train s",
            "kWh",
            "kg CO₂e",
            "method",
            "worker",
        ]
        .map(String::from)
        .to_vec();
        let rows = self
            .jobs
            .iter()
            .map(|job| {
                vec![
                    job.job_id.clone(),
                    job.model.clone(),
                    job.config.clone(),
                    job.seed.to_string(),
                    job.status.clone(),
                    fixed(job.accuracy, 4),
                    fixed(job.train_s, 1),
                    sci(job.energy_kwh),
                    sci(job.co2_kg),
                    job.method.clone(),
                    job.worker.clone(),
                ]
            })
            .collect();
        page.table("One row per job.", header, rows);
        page.render()
    }
}

/// Short chart labels: the model and its stage (`vgg pretrain classes0-4`, `vgg
/// fine-tuned`), then the hyper-parameters only where two rows would read alike, then
/// the machine class where there are several. The tables keep the full labels.
fn chart_labels(summary: &[SummaryRow], several_machines: bool) -> Vec<String> {
    let parts: Vec<(String, String)> = summary
        .iter()
        .map(|row| {
            // The stage's words (`pretrain=D:S`, `pretrained=D:S`, `frozen`) apart from
            // the hyper-parameters; a source is named by what follows its dataset.
            let (mut source, mut frozen, mut params) = ("", false, Vec::new());
            for word in row.config.split(' ') {
                match word.split_once('=') {
                    Some(("pretrain" | "pretrained", value)) => {
                        source = value.split_once(':').map_or(value, |(_, s)| s);
                    }
                    _ if word == "frozen" => frozen = true,
                    _ => params.push(word),
                }
            }
            let frozen = if frozen { " frozen" } else { "" };
            let base = match row.stage.as_str() {
                "pretrain" => format!("{} pretrain {source}", row.model),
                "fine-tune" => format!("{} fine-tuned {source}{frozen}", row.model),
                _ => row.model.clone(),
            };
            (base, params.join(" "))
        })
        .collect();
    summary
        .iter()
        .zip(&parts)
        .map(|(row, (base, params))| {
            let alike = parts.iter().filter(|(b, _)| b == base).count() > 1;
            let mut label = if alike {
                format!("{base} {params}")
            } else {
                base.clone()
            };
            if several_machines && !row.machine.is_empty() {
                label = format!("{label} [{}]", row.machine);
            }
            label
        })
        .collect()
}

/// A statistic as a chart estimate: the mean and its interval, the value alone for one
/// run, nothing without a run.
fn estimate(stat: &Stat) -> Option<Estimate> {
    let mean = stat.mean?;
    Some(match (stat.ci_low, stat.ci_high) {
        (Some(low), Some(high)) => Estimate::new(mean, low, high),
        _ => Estimate::exact(mean),
    })
}

/// The mean over `jobs` of a per-epoch figure, by epoch number.
fn mean_curve(
    jobs: &[&JobRow],
    figure: fn(&JobRow, &ecobench_shared::EpochMetrics) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut by_epoch: BTreeMap<u32, (f64, usize)> = BTreeMap::new();
    for job in jobs {
        for epoch in &job.epochs {
            if let Some(value) = figure(job, epoch).filter(|v| v.is_finite()) {
                let entry = by_epoch.entry(epoch.epoch).or_default();
                entry.0 += value;
                entry.1 += 1;
            }
        }
    }
    by_epoch
        .into_iter()
        .map(|(epoch, (sum, n))| (f64::from(epoch), sum / n as f64))
        .collect()
}

/// An epoch's cumulative energy: the meter's reading, else the job's energy scaled by
/// the share of its duration elapsed.
fn epoch_energy(job: &JobRow, epoch: &ecobench_shared::EpochMetrics) -> Option<f64> {
    if let Some(kwh) = epoch.energy_kwh {
        return Some(kwh);
    }
    let (energy, duration) = (job.energy_kwh?, job.duration_s?);
    (duration > 0.0).then(|| energy * (epoch.elapsed_s / duration).min(1.0))
}

fn fixed(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(
        || super::render::NONE.to_string(),
        |v| format!("{v:.digits$}"),
    )
}

fn sci(value: Option<f64>) -> String {
    value.map_or_else(|| super::render::NONE.to_string(), |v| format!("{v:.3e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, config: &str, stage: &str) -> SummaryRow {
        SummaryRow {
            model: model.into(),
            config: config.into(),
            stage: stage.into(),
            machine: "cpu (2 threads)".into(),
            ..SummaryRow::default()
        }
    }

    /// Chart labels name the stage and source, and the hyper-parameters only where two
    /// rows would otherwise read alike.
    #[test]
    fn chart_labels_are_short_and_distinct() {
        let rows = [
            row("svm-linear", "c=1 solver=dcd", "scratch"),
            row("cnn", "epochs=5 lr=0.001", "scratch"),
            row("cnn", "epochs=5 lr=0.003", "scratch"),
            row(
                "vgg",
                "epochs=3 width=0.25 bn pretrain=fmnist:classes0-4",
                "pretrain",
            ),
            row(
                "vgg",
                "epochs=3 width=0.25 bn pretrained=fmnist:classes0-4",
                "fine-tune",
            ),
            row(
                "vgg",
                "epochs=3 width=0.25 bn pretrained=fmnist:classes0-4 frozen",
                "fine-tune",
            ),
        ];
        assert_eq!(
            chart_labels(&rows, false),
            [
                "svm-linear",
                "cnn epochs=5 lr=0.001",
                "cnn epochs=5 lr=0.003",
                "vgg pretrain classes0-4",
                "vgg fine-tuned classes0-4",
                "vgg fine-tuned classes0-4 frozen",
            ]
        );
        assert_eq!(
            chart_labels(&rows[..1], true),
            ["svm-linear [cpu (2 threads)]"]
        );
    }
}
