//! The live progress display of `status --watch` and `run`, fed by `WatchCampaign`:
//! on a terminal, `indicatif` bars (jobs done of all, one line per running job, an
//! ETA); otherwise plain one-line updates, without escape codes, for logs and tests.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ecobench_shared::Progress;
use ecobench_shared::events::{CampaignEvent, Snapshot};
use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_stream::StreamExt;

use crate::client::Client;

/// A job the display shows as running.
#[derive(Debug, Clone)]
struct Running {
    model: String,
    worker_id: String,
    progress: Option<Progress>,
    /// When this watcher saw it leased; `None` when it was already running at the start.
    started: Option<Instant>,
}

/// What a watcher knows of a campaign, from its snapshot and the events since.
#[derive(Debug, Clone, Default)]
pub struct WatchState {
    /// The campaign id.
    pub campaign_id: String,
    /// The campaign name.
    pub name: String,
    /// Jobs in all.
    pub n_jobs: u32,
    /// Jobs with a result.
    pub succeeded: u32,
    /// Jobs given up on.
    pub failed: u32,
    /// True once the campaign's end was received.
    pub finished: bool,
    running: BTreeMap<String, Running>,
    /// How long the jobs seen from lease to end took.
    durations: Vec<Duration>,
}

impl WatchState {
    /// Jobs ended, succeeded or failed.
    pub fn done(&self) -> u32 {
        self.succeeded + self.failed
    }

    /// Time left: the mean job duration so far, times the jobs left, over the jobs
    /// running side by side; `None` before a job ended and once none is left.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.n_jobs.saturating_sub(self.done());
        if self.durations.is_empty() || left == 0 {
            return None;
        }
        let mean = self.durations.iter().sum::<Duration>() / self.durations.len() as u32;
        let side_by_side = (self.running.len() as u32).max(1);
        Some(mean * left / side_by_side)
    }

    /// One line: done of all, the split, running jobs and the ETA.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}: {}/{} done, {} succeeded, {} failed, {} running",
            self.name,
            self.done(),
            self.n_jobs,
            self.succeeded,
            self.failed,
            self.running.len()
        );
        if let Some(eta) = self.eta().filter(|_| !self.finished) {
            line += &format!(", ETA {}", HumanDuration(eta));
        }
        line
    }

    fn job_line(job_id: &str, job: &Running) -> String {
        let mut line = format!("{job_id} {} on {}", job.model, job.worker_id);
        if let Some(p) = &job.progress {
            line += &format!(
                ": epoch {}/{}, loss {:.4}, accuracy {:.4}, {:.0} samples/s",
                p.epoch, p.n_epochs, p.loss, p.accuracy, p.samples_per_s
            );
        }
        line
    }

    fn reset(&mut self, snapshot: Snapshot) {
        let before = std::mem::take(&mut self.running);
        self.campaign_id = snapshot.campaign_id;
        self.name = snapshot.name;
        self.n_jobs = snapshot.n_jobs;
        self.succeeded = snapshot.succeeded;
        self.failed = snapshot.failed;
        for job in snapshot.running {
            let started = before.get(&job.job_id).and_then(|known| known.started);
            self.running.insert(
                job.job_id,
                Running {
                    model: job.model,
                    worker_id: job.worker_id,
                    progress: job.progress,
                    started,
                },
            );
        }
    }

    fn ended(&mut self, job_id: &str) {
        if let Some(started) = self.running.remove(job_id).and_then(|job| job.started) {
            self.durations.push(started.elapsed());
        }
    }

    /// Takes in an event; returns the line that tells it.
    pub fn apply(&mut self, event: CampaignEvent) -> String {
        match event {
            CampaignEvent::Snapshot(snapshot) => {
                self.reset(snapshot);
                self.summary()
            }
            CampaignEvent::JobLeased {
                job_id,
                model,
                worker_id,
                attempt,
            } => {
                let line = format!("{job_id} {model}: leased to {worker_id} (attempt {attempt})");
                self.running.insert(
                    job_id,
                    Running {
                        model,
                        worker_id,
                        progress: None,
                        started: Some(Instant::now()),
                    },
                );
                line
            }
            CampaignEvent::Progress { job_id, progress } => match self.running.get_mut(&job_id) {
                Some(job) => {
                    job.progress = Some(progress);
                    Self::job_line(&job_id, job)
                }
                None => format!(
                    "{job_id}: epoch {}/{}, {:.0} samples/s",
                    progress.epoch, progress.n_epochs, progress.samples_per_s
                ),
            },
            CampaignEvent::JobSucceeded {
                job_id,
                worker_id,
                accuracy,
                energy_kwh,
            } => {
                self.ended(&job_id);
                self.succeeded += 1;
                format!(
                    "{job_id} succeeded on {worker_id}: accuracy {accuracy:.4}, {energy_kwh:.3e} kWh; {}",
                    self.summary()
                )
            }
            CampaignEvent::JobFailed {
                job_id,
                reason,
                will_retry,
            } => {
                self.ended(&job_id);
                if !will_retry {
                    self.failed += 1;
                }
                let how = if will_retry { "will retry" } else { "for good" };
                format!("{job_id} failed ({how}): {reason}; {}", self.summary())
            }
            CampaignEvent::JobDeclined {
                job_id,
                worker_id,
                reason,
            } => {
                self.running.remove(&job_id);
                format!("{job_id} declined by {worker_id}: {reason}")
            }
            CampaignEvent::WorkerJoined {
                worker_id,
                hostname,
            } => format!("worker {worker_id} joined ({hostname})"),
            CampaignEvent::WorkerLost { worker_id, job_id } => {
                format!("worker {worker_id} lost: its lease on {job_id} expired")
            }
            CampaignEvent::CampaignFinished {
                campaign_id,
                name,
                n_jobs,
                succeeded,
                failed,
            } => {
                self.campaign_id = campaign_id;
                self.name = name;
                self.n_jobs = n_jobs;
                self.succeeded = succeeded;
                self.failed = failed;
                self.running.clear();
                self.finished = true;
                format!("campaign {}", self.summary())
            }
        }
    }
}

/// The terminal display: a bar of jobs done, one spinner line per running job.
struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    jobs: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} jobs done  {msg}")
                .expect("the template is valid"),
        );
        Bars {
            multi,
            total,
            jobs: BTreeMap::new(),
        }
    }

    fn show(&mut self, state: &WatchState, event_line: Option<&str>) {
        if let Some(line) = event_line {
            let _ = self.multi.println(line);
        }
        self.total.set_length(state.n_jobs.into());
        self.total.set_position(state.done().into());
        let eta = state
            .eta()
            .map_or(String::new(), |eta| format!("ETA {}", HumanDuration(eta)));
        self.total.set_message(format!("{}  {eta}", state.name));
        self.jobs.retain(|job_id, bar| {
            let keep = state.running.contains_key(job_id);
            if !keep {
                bar.finish_and_clear();
                self.multi.remove(bar);
            }
            keep
        });
        for (job_id, job) in &state.running {
            let bar = self.jobs.entry(job_id.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            bar.set_message(WatchState::job_line(job_id, job));
        }
    }

    /// Clears the bars: the last event's line (the campaign's end) stays above them.
    fn finish(self) {
        for bar in self.jobs.values() {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
    }
}

/// Watches a campaign (id or name) until its end, showing progress on stdout: bars on
/// a terminal, plain lines otherwise. Returns what the watcher knows at the end.
pub async fn watch(client: &mut Client, campaign: &str) -> Result<WatchState> {
    let mut events = std::pin::pin!(client.watch(campaign).await?);
    let mut state = WatchState::default();
    let mut bars = std::io::stdout().is_terminal().then(Bars::new);
    while let Some(event) = events.next().await {
        let event = event?;
        // Progress ticks stay in the bars; everything else is also said in a line.
        let quiet = matches!(event, CampaignEvent::Progress { .. }) && bars.is_some();
        let line = state.apply(event);
        match &mut bars {
            Some(bars) => bars.show(&state, (!quiet).then_some(line.as_str())),
            None => println!("{line}"),
        }
        if state.finished {
            break;
        }
    }
    if let Some(bars) = bars {
        bars.finish();
    }
    if !state.finished {
        bail!(
            "the coordinator ended the watch of {campaign} before the campaign's end: \
             see its log, and run `coordinator status {campaign}`"
        );
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecobench_shared::events::RunningJob;

    fn snapshot() -> Snapshot {
        Snapshot {
            campaign_id: "c".into(),
            name: "demo".into(),
            n_jobs: 4,
            pending: 2,
            leased: 1,
            succeeded: 1,
            failed: 0,
            running: vec![RunningJob {
                job_id: "c-1".into(),
                model: "cnn".into(),
                worker_id: "w".into(),
                attempt: 1,
                progress: None,
            }],
        }
    }

    #[test]
    fn counts_follow_the_events() {
        let mut state = WatchState::default();
        let line = state.apply(CampaignEvent::Snapshot(snapshot()));
        assert_eq!(line, "demo: 1/4 done, 1 succeeded, 0 failed, 1 running");
        state.apply(CampaignEvent::JobLeased {
            job_id: "c-2".into(),
            model: "svm".into(),
            worker_id: "v".into(),
            attempt: 1,
        });
        let line = state.apply(CampaignEvent::Progress {
            job_id: "c-1".into(),
            progress: Progress {
                epoch: 1,
                n_epochs: 2,
                loss: 0.5,
                accuracy: 0.25,
                samples_per_s: 99.6,
            },
        });
        assert_eq!(
            line,
            "c-1 cnn on w: epoch 1/2, loss 0.5000, accuracy 0.2500, 100 samples/s"
        );
        let line = state.apply(CampaignEvent::JobFailed {
            job_id: "c-2".into(),
            reason: "boom".into(),
            will_retry: true,
        });
        assert!(line.contains("(will retry)"), "{line}");
        assert_eq!((state.done(), state.running.len()), (1, 1));
        assert!(state.eta().is_some(), "c-2 was seen from lease to end");
        state.apply(CampaignEvent::JobFailed {
            job_id: "c-1".into(),
            reason: "boom".into(),
            will_retry: false,
        });
        assert_eq!((state.succeeded, state.failed), (1, 1));
        let line = state.apply(CampaignEvent::CampaignFinished {
            campaign_id: "c".into(),
            name: "demo".into(),
            n_jobs: 4,
            succeeded: 3,
            failed: 1,
        });
        assert!(state.finished);
        assert_eq!(
            line,
            "campaign demo: 4/4 done, 3 succeeded, 1 failed, 0 running"
        );
    }

    #[test]
    fn the_eta_is_the_mean_duration_times_the_jobs_left_over_those_running() {
        let mut state = WatchState {
            n_jobs: 10,
            succeeded: 2,
            durations: vec![Duration::from_secs(10), Duration::from_secs(30)],
            ..WatchState::default()
        };
        assert_eq!(state.eta(), Some(Duration::from_secs(160)));
        for idx in 0..2 {
            state.running.insert(
                format!("c-{idx}"),
                Running {
                    model: String::new(),
                    worker_id: String::new(),
                    progress: None,
                    started: None,
                },
            );
        }
        assert_eq!(state.eta(), Some(Duration::from_secs(80)));
        assert_eq!(WatchState::default().eta(), None);
    }
}
