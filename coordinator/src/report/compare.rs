//! Comparing two campaigns' reports (pure): per model and configuration, the change
//! in accuracy, time and energy from A to B, and whether it is beyond the intervals.

use std::fmt::Write as _;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};

use super::render::NONE;
use super::{Report, Stat, SummaryRow};

/// One figure in A and in B.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Delta {
    /// Mean in A.
    pub a: Option<f64>,
    /// Mean in B.
    pub b: Option<f64>,
    /// `b − a`.
    pub change: Option<f64>,
    /// `change / a`.
    pub relative: Option<f64>,
    /// True when the intervals (a single run's value as a point) do not overlap;
    /// `None` when neither side has an interval or a side has no value.
    pub beyond_intervals: Option<bool>,
}

impl Delta {
    /// The change from `a` to `b`.
    pub fn of(a: &Stat, b: &Stat) -> Delta {
        let change = a.mean.zip(b.mean).map(|(a, b)| b - a);
        let beyond = match (a.bounds(), b.bounds()) {
            (Some(x), Some(y)) if a.half_width().is_some() || b.half_width().is_some() => {
                Some(x.1 < y.0 || y.1 < x.0)
            }
            _ => None,
        };
        Delta {
            a: a.mean,
            b: b.mean,
            change,
            relative: change
                .zip(a.mean)
                .and_then(|(c, a)| (a != 0.0).then_some(c / a)),
            beyond_intervals: beyond,
        }
    }
}

/// The change of one (model, configuration[, machine]) from A to B.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RowChange {
    /// Model kind.
    pub model: String,
    /// The configuration's label in A.
    pub config: String,
    /// The configuration's hash (equal in both).
    pub config_hash: String,
    /// Machine class in A.
    pub machine_a: String,
    /// Machine class in B.
    pub machine_b: String,
    /// Test accuracy.
    pub accuracy: Delta,
    /// Fitting seconds.
    pub train_s: Delta,
    /// Energy per run.
    pub energy_kwh: Delta,
}

/// Two reports compared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Comparison {
    /// Campaign A (`name (id)`).
    pub a: String,
    /// Campaign B.
    pub b: String,
    /// Rows present in both.
    pub changes: Vec<RowChange>,
    /// Rows only in A, by name.
    pub only_in_a: Vec<String>,
    /// Rows only in B, by name.
    pub only_in_b: Vec<String>,
}

/// Compares `b` with `a`: rows match on model and configuration hash, and on the
/// machine class when either side has several for that configuration.
pub fn compare(a: &Report, b: &Report) -> Comparison {
    let same_config =
        |x: &SummaryRow, y: &SummaryRow| x.model == y.model && x.config_hash == y.config_hash;
    let mut used = vec![false; b.summary.len()];
    let mut changes = Vec::new();
    let mut only_in_a = Vec::new();
    for row in &a.summary {
        let candidates: Vec<usize> = (0..b.summary.len())
            .filter(|&j| !used[j] && same_config(row, &b.summary[j]))
            .collect();
        let a_classes = a.summary.iter().filter(|r| same_config(r, row)).count();
        let pick = candidates
            .iter()
            .copied()
            .find(|&j| b.summary[j].machine == row.machine)
            .or_else(|| (a_classes == 1 && candidates.len() == 1).then(|| candidates[0]));
        match pick {
            Some(j) => {
                used[j] = true;
                let other = &b.summary[j];
                changes.push(RowChange {
                    model: row.model.clone(),
                    config: row.config.clone(),
                    config_hash: row.config_hash.clone(),
                    machine_a: row.machine.clone(),
                    machine_b: other.machine.clone(),
                    accuracy: Delta::of(&row.accuracy, &other.accuracy),
                    train_s: Delta::of(&row.train_s, &other.train_s),
                    energy_kwh: Delta::of(&row.energy_kwh, &other.energy_kwh),
                });
            }
            None => only_in_a.push(row.name()),
        }
    }
    Comparison {
        a: format!("{} ({})", a.name, a.campaign_id),
        b: format!("{} ({})", b.name, b.campaign_id),
        changes,
        only_in_a,
        only_in_b: (0..b.summary.len())
            .filter(|&j| !used[j])
            .map(|j| b.summary[j].name())
            .collect(),
    }
}

impl Comparison {
    /// The comparison as a terminal table: per figure `A → B (±change, %)` and
    /// `beyond` when the intervals do not overlap.
    pub fn table(&self) -> String {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header([
                "model",
                "config",
                "machine",
                "accuracy",
                "train s",
                "energy kWh",
            ]);
        for c in &self.changes {
            let class = |m: &str| {
                if m.is_empty() {
                    NONE.to_string()
                } else {
                    m.to_string()
                }
            };
            let machine = if c.machine_a == c.machine_b {
                class(&c.machine_a)
            } else {
                format!("{} → {}", class(&c.machine_a), class(&c.machine_b))
            };
            table.add_row([
                c.model.clone(),
                c.config.clone(),
                machine,
                delta_cell(&c.accuracy, |v| format!("{v:.4}")),
                delta_cell(&c.train_s, |v| format!("{v:.1}")),
                delta_cell(&c.energy_kwh, |v| format!("{v:.3e}")),
            ]);
        }
        let mut out = format!("A = {}\nB = {}\n{table}\n", self.a, self.b);
        out.push_str(
            "each cell: A → B (change, relative); beyond: the 95 % intervals do not overlap; \
             within: they do (not a real difference); no interval: neither side has two runs\n",
        );
        for name in &self.only_in_a {
            let _ = writeln!(out, "only in A: {name}");
        }
        for name in &self.only_in_b {
            let _ = writeln!(out, "only in B: {name}");
        }
        out
    }
}

fn delta_cell(d: &Delta, f: impl Fn(f64) -> String) -> String {
    let side = |v: Option<f64>| v.map_or(NONE.to_string(), &f);
    let mut cell = format!("{} → {}", side(d.a), side(d.b));
    if let Some(change) = d.change {
        let sign = if change >= 0.0 { "+" } else { "-" };
        let _ = write!(cell, " ({sign}{}", f(change.abs()));
        if let Some(rel) = d.relative {
            let _ = write!(cell, ", {:+.1} %", rel * 100.0);
        }
        cell.push(')');
        cell.push_str(match d.beyond_intervals {
            Some(true) => " beyond",
            Some(false) => " within",
            None => " no interval",
        });
    }
    cell
}
