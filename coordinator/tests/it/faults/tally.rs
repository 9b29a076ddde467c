//! Counting what the faults did: lines per job in the processes' logs, the suite's
//! checks, and the one summary line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// What a worker logs once it has stored a finished training's outcome in its outbox:
/// one line per training that ran to its end.
pub const TRAINED_MARKER: &str = "outcome kept in the outbox";

/// What a worker logs once the coordinator took a success (its delivery log); the
/// coordinator logs the same when it stores one.
pub const DELIVERED_MARKER: &str = "job succeeded";

/// What a worker logs when it drops an outcome the coordinator refused. Until workers
/// log [`TRAINED_MARKER`], a finished training is counted by one of this or
/// [`DELIVERED_MARKER`] (in this suite every outcome of the main campaign is a success).
pub const DROPPED_MARKER: &str = "did not take the outcome";

/// Lines holding `marker` per job (the `job=<id>` field of the line) in all `logs`.
pub fn lines_per_job(logs: &[PathBuf], marker: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines().map(strip_ansi) {
            if !line.contains(marker) {
                continue;
            }
            if let Some(job) = job_field(&line) {
                *counts.entry(job.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

/// Trainings that ran to their end, per job: [`TRAINED_MARKER`] lines when the workers
/// log them, else [`DELIVERED_MARKER`] and [`DROPPED_MARKER`] lines. Returns the counts
/// and what was counted.
pub fn trainings_per_job(logs: &[PathBuf]) -> (BTreeMap<String, usize>, &'static str) {
    let trained = lines_per_job(logs, TRAINED_MARKER);
    if !trained.is_empty() {
        return (trained, TRAINED_MARKER);
    }
    let mut counts = lines_per_job(logs, DELIVERED_MARKER);
    for (job, n) in lines_per_job(logs, DROPPED_MARKER) {
        *counts.entry(job).or_default() += n;
    }
    (counts, "job succeeded + did not take the outcome")
}

/// The value of the `job=` field of a log line (`job=<id>` or `job="<id>"`).
fn job_field(line: &str) -> Option<&str> {
    let start = line.find("job=")? + "job=".len();
    let value = line[start..].trim_start_matches('"');
    let end = value
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(value.len());
    (end > 0).then(|| &value[..end])
}

/// The line without terminal colour codes (in case a process ignores NO_COLOR).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The suite's checks: every one is run, the failed ones are listed at the end, so that
/// one run says everything that does not hold.
#[derive(Debug, Default)]
pub struct Checks {
    failed: Vec<String>,
    /// Faults injected so far.
    pub injected: usize,
}

impl Checks {
    /// Records one injected fault and says so on stderr.
    pub fn injected(&mut self, what: &str) {
        self.injected += 1;
        eprintln!("faults: #{} {what}", self.injected);
    }

    /// Records `what` as failed unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            eprintln!("faults: CHECK FAILED: {what}");
            self.failed.push(what);
        }
    }

    /// The failed checks.
    pub fn failed(&self) -> &[String] {
        &self.failed
    }
}

/// The end of the suite in figures.
#[derive(Debug)]
pub struct Summary {
    /// Faults injected.
    pub injected: usize,
    /// Jobs of the main campaign.
    pub n_jobs: usize,
    /// Its jobs that succeeded.
    pub succeeded: usize,
    /// Its jobs without a stored result.
    pub lost: usize,
    /// Its jobs whose training ran to its end more than once.
    pub trained_twice: usize,
    /// Its jobs with more than one result, report row or success event.
    pub duplicated: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "faults: {} injected, jobs: {}, succeeded {}, lost {}, trained twice {}, duplicated {}",
            self.injected,
            self.n_jobs,
            self.succeeded,
            self.lost,
            self.trained_twice,
            self.duplicated
        )
    }
}

/// The main campaign's outcome: its report rows (one per job), the trainings that ran
/// to their end and the successes the coordinator logged, per job.
pub fn summarise(
    rows: &[HashMap<String, String>],
    campaign: &str,
    trainings: &BTreeMap<String, usize>,
    successes: &BTreeMap<String, usize>,
    checks: &mut Checks,
) -> Summary {
    let prefix = format!("{campaign}-");
    let ours = |job: &&String| job.starts_with(&prefix);
    let mut rows_per_job = BTreeMap::<String, usize>::new();
    for row in rows {
        *rows_per_job.entry(row["job_id"].clone()).or_default() += 1;
    }
    let succeeded: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| r["job_id"].as_str())
        .collect();
    let not_succeeded: Vec<_> = rows.iter().filter(|r| r["status"] != "succeeded").collect();
    let what = format!("every job succeeded; these did not: {not_succeeded:?}");
    checks.check(not_succeeded.is_empty(), what);
    let more_than_once = |counts: &BTreeMap<String, usize>| -> BTreeSet<String> {
        counts
            .iter()
            .filter(|(job, n)| ours(job) && **n > 1)
            .map(|(job, _)| job.clone())
            .collect()
    };
    let twice = more_than_once(trainings);
    let mut duplicated = more_than_once(&rows_per_job);
    duplicated.extend(more_than_once(successes));
    checks.check(
        twice.is_empty(),
        format!("trained more than once: {twice:?}"),
    );
    let what = format!("more than one result, report row or success: {duplicated:?}");
    checks.check(duplicated.is_empty(), what);
    Summary {
        injected: checks.injected,
        n_jobs: rows.len(),
        succeeded: succeeded.len(),
        lost: rows.len() - succeeded.len(),
        trained_twice: twice.len(),
        duplicated: duplicated.len(),
    }
}

#[test]
fn job_fields_are_read_with_or_without_quotes_and_colours() {
    assert_eq!(
        job_field("INFO complete{job=00ab-3}: job succeeded accuracy=0.9"),
        Some("00ab-3")
    );
    assert_eq!(job_field("WARN job=\"00ab-12\" x"), Some("00ab-12"));
    assert_eq!(job_field("nothing here"), None);
    assert_eq!(
        strip_ansi("\u{1b}[3mjob\u{1b}[0m\u{1b}[2m=\u{1b}[0m00ab-3 done"),
        "job=00ab-3 done"
    );
}
