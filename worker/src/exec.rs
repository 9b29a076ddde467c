//! One job in a child process of its own (`worker exec`): the parent feeds it
//! the job on stdin, reads JSON-line events from its stdout, meters it,
//! forwards progress in heartbeats, and kills it when asked to cancel.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use ecobench_shared::{EnergyReport, EpochMetrics, JobResult, JobSpec, Progress, TrainReport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::client::{Client, LeasedJob};
use crate::energy::{Meter, SAMPLE_INTERVAL};

/// Lines of the child's stderr kept for failure reports.
const STDERR_TAIL_LINES: usize = 30;

/// What the parent sends the child on stdin.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildInput {
    /// The job to train.
    pub spec: JobSpec,
    /// Where datasets are looked up, in priority order.
    pub data_dirs: Vec<PathBuf>,
    /// The weights files of a pretrain job or a fine-tune.
    #[serde(default)]
    pub weights: crate::train::JobWeights,
}

/// What the child prints on stdout, one JSON object a line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChildEvent {
    /// An epoch finished.
    Epoch {
        /// Its metrics.
        metrics: EpochMetrics,
    },
    /// Training finished.
    Result {
        /// What it produced.
        report: TrainReport,
    },
    /// Training failed.
    Error {
        /// Why, for the user.
        message: String,
        /// Whether another attempt may succeed.
        retryable: bool,
        /// Whether the job is declined rather than failed (this worker's dataset copy
        /// is not the campaign's); absent in the events of older children.
        #[serde(default)]
        declined: bool,
    },
}

/// How jobs are run on this worker.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// The `worker` executable (run as `worker exec`).
    pub exe: PathBuf,
    /// Dataset folders, in priority order.
    pub data_dirs: Vec<PathBuf>,
    /// Threads for jobs that ask for 0 (all cores); 0 leaves the default.
    pub threads: u32,
    /// Where the running job's power, energy and progress are shown (`--metrics`).
    pub metrics: crate::metrics::WorkerMetrics,
}

/// How a job ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    /// It trained; here are the figures.
    Succeeded(Box<JobResult>),
    /// It failed.
    Failed {
        /// Why.
        reason: String,
        /// Whether another attempt may succeed.
        retryable: bool,
        /// What the meter measured when the attempt ran (a training process was started):
        /// the attempt's waste. Absent when nothing ran, and in outcomes stored by older
        /// workers.
        #[serde(default)]
        energy: Option<Box<EnergyReport>>,
    },
    /// This worker cannot run it as the campaign requires (its copy of the dataset has
    /// another fingerprint): the job goes to another worker without spending an attempt.
    Declined {
        /// Why, naming both fingerprints and where this worker's copy came from.
        reason: String,
        /// What the meter measured until the child declined (it loaded the data).
        #[serde(default)]
        energy: Option<Box<EnergyReport>>,
    },
    /// The worker is stopping (SIGTERM): the job goes back to pending without counting
    /// as a failed attempt.
    HandedBack {
        /// What the meter measured until the job was stopped.
        #[serde(default)]
        energy: Option<Box<EnergyReport>>,
    },
    /// The coordinator asked to stop it (the lease is gone): report nothing.
    Cancelled,
}

/// The body of `worker exec`: reads a [`ChildInput`] on stdin, trains, prints events.
/// Returns the process exit code.
pub fn child_main() -> i32 {
    let input: ChildInput = match serde_json::from_reader(std::io::stdin().lock()) {
        Ok(input) => input,
        Err(err) => {
            emit(&ChildEvent::Error {
                message: format!("bad job on stdin: {err}"),
                retryable: false,
                declined: false,
            });
            return 2;
        }
    };
    let mut on_epoch = |metrics: &EpochMetrics| {
        emit(&ChildEvent::Epoch {
            metrics: metrics.clone(),
        })
    };
    match crate::train::train_job(&input.spec, &input.data_dirs, &input.weights, &mut on_epoch) {
        Ok(report) => {
            emit(&ChildEvent::Result { report });
            0
        }
        Err(err) => {
            emit(&ChildEvent::Error {
                message: err.to_string(),
                retryable: err.is_retryable(),
                declined: err.is_decline(),
            });
            2
        }
    }
}

fn emit(event: &ChildEvent) {
    use std::io::Write as _;
    let line = serde_json::to_string(event).expect("events serialise");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Runs a leased job to its end in a metered child process.
pub async fn run_job(
    job: &LeasedJob,
    config: &ExecConfig,
    weights: &crate::train::JobWeights,
    meter: &Meter,
    client: &mut Client,
    heartbeat_every: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Outcome {
    let threads = if job.spec.threads > 0 {
        job.spec.threads
    } else {
        config.threads
    };
    let mut command = Command::new(&config.exe);
    command
        .arg("exec")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if threads > 0 {
        command.env("RAYON_NUM_THREADS", threads.to_string());
    }
    // The job's ops split their work over its own pool of `threads`; candle's pool would
    // only add threads that spin while those work (PITFALLS.md, candle 3).
    command.env("CANDLE_NUM_THREADS", "1");
    die_with_parent(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            return Outcome::Failed {
                reason: format!("cannot start {}: {err}", config.exe.display()),
                retryable: true,
                energy: None,
            };
        }
    };
    let pid = child.id().expect("a just-spawned child has a pid");
    let mut metering = meter.start(pid);
    let mut live = config
        .metrics
        .job_started(&job.spec.job_id(), job.spec.model.kind());
    info!(job = %job.spec.job_id(), pid, threads, "job started");
    let input = ChildInput {
        spec: job.spec.clone(),
        data_dirs: config.data_dirs.clone(),
        weights: weights.clone(),
    };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let payload = serde_json::to_vec(&input).expect("inputs serialise");
    tokio::spawn(async move {
        let _ = stdin.write_all(&payload).await;
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let stderr = tokio::spawn(tail(child.stderr.take().expect("stderr is piped")));

    let mut events = Events::default();
    events.progress.n_epochs = job.spec.model.net().map_or(1, |net| net.n_epochs);
    let mut sample = tokio::time::interval(SAMPLE_INTERVAL);
    let mut beat = tokio::time::interval(heartbeat_every);
    let (mut cancelled, mut stopping, mut stdout_open) = (false, false, true);
    let status = loop {
        tokio::select! {
            line = lines.next_line(), if stdout_open => match line {
                Ok(Some(line)) => {
                    let epoch = events.progress.epoch;
                    events.take(&line, &mut metering);
                    if events.progress.epoch != epoch {
                        live.progress(&events.progress);
                        // An epoch ended: tell the coordinator now, for its watchers.
                        beat.reset_immediately();
                    }
                }
                _ => stdout_open = false,
            },
            _ = sample.tick() => {
                metering.sample();
                live.sampled(metering.live_joules());
            }
            _ = beat.tick() => match client.heartbeat(job, events.progress.clone()).await {
                Ok(true) => {
                    warn!(job = %job.spec.job_id(), "the coordinator cancelled the job; stopping it");
                    cancelled = true;
                    kill(pid);
                }
                Ok(false) => {}
                Err(err) => warn!(error = %err, "heartbeat failed; the job goes on"),
            },
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                kill(pid);
            }
            status = child.wait() => break status,
        }
    };
    while let Ok(Some(line)) = lines.next_line().await {
        events.take(&line, &mut metering);
    }
    let energy = metering.finish();
    live.finished(
        Some(&energy),
        live_outcome(&events, &status, cancelled, stopping),
    );
    if let Some(report) = &mut events.report {
        attach_epoch_energy(report, &events.epoch_energy, energy.energy_kwh);
    }
    let stderr_tail = stderr.await.unwrap_or_default();
    if cancelled {
        return Outcome::Cancelled;
    }
    if stopping {
        return Outcome::HandedBack {
            energy: Some(Box::new(energy)),
        };
    }
    if let (true, Some((reason, _))) = (events.declined, &events.error) {
        return Outcome::Declined {
            reason: reason.clone(),
            energy: Some(Box::new(energy)),
        };
    }
    match (events.report, events.error, status) {
        (Some(report), _, Ok(status)) if status.success() => {
            Outcome::Succeeded(Box::new(JobResult {
                train: report,
                energy,
                artifact_sha256: None,
            }))
        }
        (_, Some((message, retryable)), _) => Outcome::Failed {
            reason: message,
            retryable,
            energy: Some(Box::new(energy)),
        },
        (_, None, status) => {
            let how = status.map_or_else(|err| err.to_string(), |s| s.to_string());
            Outcome::Failed {
                reason: format!(
                    "training process ended without a result ({how}); its stderr:\n{stderr_tail}"
                ),
                retryable: true,
                energy: Some(Box::new(energy)),
            }
        }
    }
}

/// How the job ended, for the worker's metrics (`succeeded`, `failed`, `declined`,
/// `handed_back`, `cancelled`).
fn live_outcome(
    events: &Events,
    status: &std::io::Result<std::process::ExitStatus>,
    cancelled: bool,
    stopping: bool,
) -> &'static str {
    let exited_ok = status.as_ref().is_ok_and(|s| s.success());
    match () {
        () if cancelled => "cancelled",
        () if stopping => "handed_back",
        () if events.declined => "declined",
        () if events.report.is_some() && exited_ok => "succeeded",
        () => "failed",
    }
}

/// Events read from the child so far.
#[derive(Debug, Default)]
struct Events {
    progress: Progress,
    report: Option<TrainReport>,
    error: Option<(String, bool)>,
    declined: bool,
    /// The meter's energy so far when each epoch line arrived: (epoch, kWh).
    epoch_energy: Vec<(u32, f64)>,
}

impl Events {
    fn take(&mut self, line: &str, metering: &mut crate::energy::MeterRun) {
        match serde_json::from_str::<ChildEvent>(line) {
            Ok(ChildEvent::Epoch { metrics }) => {
                self.epoch_energy
                    .push((metrics.epoch, metering.energy_so_far_kwh()));
                info!(
                    epoch = metrics.epoch,
                    loss = metrics.loss,
                    accuracy = metrics.test_accuracy,
                    "epoch done"
                );
                self.progress = Progress {
                    epoch: metrics.epoch,
                    n_epochs: self.progress.n_epochs,
                    loss: metrics.loss,
                    accuracy: metrics.test_accuracy,
                    samples_per_s: metrics.samples_per_s,
                };
            }
            Ok(ChildEvent::Result { report }) => self.report = Some(report),
            Ok(ChildEvent::Error {
                message,
                retryable,
                declined,
            }) => {
                self.error = Some((message, retryable));
                self.declined = declined;
            }
            Err(_) => warn!(line, "unexpected output from the training process"),
        }
    }
}

/// Fills each epoch's `energy_kwh` of the final report with the meter's reading taken when
/// its line arrived, made non-decreasing and capped by the job's `total_kwh` (the reading
/// counts only sampled CPU time; the total adds the exact remainder after the child ended).
/// Epochs without a reading keep theirs.
pub fn attach_epoch_energy(report: &mut TrainReport, readings: &[(u32, f64)], total_kwh: f64) {
    let mut floor = 0.0f64;
    for metrics in &mut report.epochs {
        let Some(&(_, kwh)) = readings.iter().rev().find(|(e, _)| *e == metrics.epoch) else {
            continue;
        };
        floor = floor.max(kwh).min(total_kwh);
        metrics.energy_kwh = Some(floor);
    }
}

/// Makes the child die when the worker dies (even by kill -9), so that no
/// orphaned training keeps burning energy.
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn kill(pid: u32) {
    // SAFETY: kill(2) on our own child, which has not been reaped yet.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// The last lines of a stream.
async fn tail(stream: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut lines = BufReader::new(stream).lines();
    let mut kept = VecDeque::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if kept.len() == STDERR_TAIL_LINES {
            kept.pop_front();
        }
        kept.push_back(line);
    }
    Vec::from(kept).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(n_epochs: u32) -> TrainReport {
        TrainReport {
            accuracy: 0.5,
            train_s: 1.0,
            eval_s: 0.1,
            samples_per_s: 10.0,
            n_train: 10,
            n_test: 10,
            solver: "adamw".into(),
            dataset_sha256: String::new(),
            epochs: (1..=n_epochs)
                .map(|epoch| EpochMetrics {
                    epoch,
                    loss: 1.0,
                    test_accuracy: 0.5,
                    samples_per_s: 10.0,
                    elapsed_s: f64::from(epoch),
                    energy_kwh: None,
                })
                .collect(),
        }
    }

    fn energies(report: &TrainReport) -> Vec<Option<f64>> {
        report.epochs.iter().map(|e| e.energy_kwh).collect()
    }

    #[test]
    fn epoch_energies_are_cumulative_and_capped_by_the_total() {
        let mut plain = report(3);
        attach_epoch_energy(&mut plain, &[(1, 0.1), (2, 0.2), (3, 0.3)], 0.4);
        assert_eq!(energies(&plain), vec![Some(0.1), Some(0.2), Some(0.3)]);

        let mut odd = report(3);
        attach_epoch_energy(&mut odd, &[(1, 0.2), (2, 0.15), (3, 0.5)], 0.4);
        assert_eq!(
            energies(&odd),
            vec![Some(0.2), Some(0.2), Some(0.4)],
            "never decreasing, never above the job's total"
        );

        let mut missing = report(2);
        attach_epoch_energy(&mut missing, &[(2, 0.3)], 1.0);
        assert_eq!(energies(&missing), vec![None, Some(0.3)]);
    }

    #[test]
    fn outcomes_stored_before_failures_carried_energy_still_read() {
        let old = r#"{"Failed":{"reason":"boom","retryable":true}}"#;
        let outcome: Outcome = serde_json::from_str(old).unwrap();
        assert!(matches!(outcome, Outcome::Failed { energy: None, .. }));
    }
}
