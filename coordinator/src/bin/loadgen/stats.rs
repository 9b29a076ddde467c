//! What the load generator measures: RPC latencies per kind, errors by code, and the
//! duplicate tracker shared by every simulated worker.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// The RPC kinds whose latencies are kept, in the order they are printed.
pub const KINDS: [&str; 5] = ["join", "lease", "heartbeat", "complete", "submit"];

/// Latencies (µs) and errors seen by one task; merged at the end.
#[derive(Debug)]
pub struct Stats {
    /// One histogram per entry of [`KINDS`], in microseconds.
    latencies_us: Vec<Histogram<u64>>,
    /// RPC errors by `kind: code`.
    pub errors: BTreeMap<String, u64>,
    /// LeaseJob calls that came back without a job within their wait.
    pub empty_leases: u64,
    /// Join calls refused by a rate limit (ResourceExhausted) and retried.
    pub join_throttled: u64,
}

impl Default for Stats {
    fn default() -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Stats {
            latencies_us: KINDS.iter().map(|_| histogram()).collect(),
            errors: BTreeMap::new(),
            empty_leases: 0,
            join_throttled: 0,
        }
    }
}

impl Stats {
    /// Records one successful call of `kind` that took `elapsed`.
    pub fn record(&mut self, kind: &str, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latencies_us[kind_idx(kind)].saturating_record(micros.max(1));
    }

    /// Records a failed call of `kind`.
    pub fn error(&mut self, kind: &str, status: &tonic::Status) {
        *self
            .errors
            .entry(format!("{kind}: {:?}", status.code()))
            .or_default() += 1;
    }

    /// Adds another task's figures to these.
    pub fn merge(&mut self, other: Stats) {
        for (mine, theirs) in self.latencies_us.iter_mut().zip(&other.latencies_us) {
            mine.add(theirs)
                .expect("histograms of the same bounds add up");
        }
        for (key, count) in other.errors {
            *self.errors.entry(key).or_default() += count;
        }
        self.empty_leases += other.empty_leases;
        self.join_throttled += other.join_throttled;
    }

    /// Total RPC errors.
    pub fn n_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `p50 1.2 ms p99 8.1 ms` for `kind`.
    pub fn percentiles(&self, kind: &str) -> String {
        let h = &self.latencies_us[kind_idx(kind)];
        if h.is_empty() {
            return "p50 - p99 -".to_string();
        }
        format!(
            "p50 {} p99 {}",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99))
        )
    }

    /// One line per RPC kind that was called: count, p50, p99, max.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (kind, h) in KINDS.iter().zip(&self.latencies_us) {
            if h.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "  {kind:<9} {:>8} calls, p50 {}, p99 {}, max {}",
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max())
            );
        }
        out
    }
}

fn kind_idx(kind: &str) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_else(|| panic!("unknown RPC kind {kind}"))
}

/// Microseconds as `1.2 ms`.
fn ms(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

/// Where one job stands, as the simulated workers saw it.
#[derive(Debug, Default)]
struct Track {
    /// The worker holding its lease now.
    holder: Option<u32>,
    /// Completions the coordinator acknowledged.
    acknowledged: u32,
}

/// Every job the simulated workers leased: catches a job leased to two workers at once, a
/// job leased again after its completion was acknowledged, and a job acknowledged twice.
#[derive(Debug, Default)]
pub struct Tracker {
    jobs: Mutex<HashMap<String, Track>>,
    /// Completions acknowledged (not duplicates).
    completed: AtomicU64,
    /// Duplicates seen, of any kind.
    duplicates: AtomicU64,
}

impl Tracker {
    /// Worker `worker` got a lease on `job_id`.
    pub fn leased(&self, job_id: &str, worker: u32) {
        let mut jobs = self.jobs.lock().expect("tracker lock");
        let track = jobs.entry(job_id.to_string()).or_default();
        if track.holder.is_some_and(|h| h != worker) || track.acknowledged > 0 {
            eprintln!(
                "loadgen: duplicate: job {job_id} leased to worker {worker} while held by {:?}, {} completion(s) acknowledged",
                track.holder, track.acknowledged
            );
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        track.holder = Some(worker);
    }

    /// The coordinator acknowledged worker `worker`'s completion of `job_id`;
    /// `flagged` is its own "duplicate" answer.
    pub fn acknowledged(&self, job_id: &str, flagged: bool) {
        let mut jobs = self.jobs.lock().expect("tracker lock");
        let track = jobs.entry(job_id.to_string()).or_default();
        track.holder = None;
        track.acknowledged += 1;
        if track.acknowledged > 1 || flagged {
            eprintln!(
                "loadgen: duplicate: completion of job {job_id} acknowledged {} time(s), flagged duplicate: {flagged}",
                track.acknowledged
            );
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The worker let go of `job_id` without a completion (an RPC error).
    pub fn released(&self, job_id: &str) {
        let mut jobs = self.jobs.lock().expect("tracker lock");
        if let Some(track) = jobs.get_mut(job_id) {
            track.holder = None;
        }
    }

    /// Completions acknowledged so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Duplicates seen so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
}

/// The coordinator process's peak resident set (VmHWM), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// CPU seconds (user + system) process `pid` has used so far (`self` for this one).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are the 14th and 15th fields of the line, 12th and 13th after it.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_s > 0).then(|| ticks as f64 / per_s as f64)
}
