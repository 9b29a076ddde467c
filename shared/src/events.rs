//! What happens in a campaign while it runs, as the coordinator publishes it to
//! watchers (`WatchCampaign`): leases, epoch progress, job ends, workers coming and
//! going, and the campaign's end.

use crate::Progress;

/// A job being run, as a late watcher first sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunningJob {
    /// `<campaign>-<index>`.
    pub job_id: String,
    /// The model's kind and configuration, e.g. `cnn epochs=2 batch=16 lr=0.003`.
    pub model: String,
    /// The worker holding its lease.
    pub worker_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Its latest heartbeat's progress; `None` before the first.
    pub progress: Option<Progress>,
}

/// A campaign's state at one moment: its job counts and its running jobs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// The campaign id.
    pub campaign_id: String,
    /// The campaign name.
    pub name: String,
    /// Jobs in all.
    pub n_jobs: u32,
    /// Waiting for a worker.
    pub pending: u32,
    /// Running.
    pub leased: u32,
    /// Done with a result.
    pub succeeded: u32,
    /// Given up on.
    pub failed: u32,
    /// The running jobs.
    pub running: Vec<RunningJob>,
}

impl Snapshot {
    /// True when every job has ended (succeeded or failed).
    pub fn finished(&self) -> bool {
        self.pending + self.leased == 0
    }

    /// The end event this snapshot amounts to.
    pub fn finished_event(&self) -> CampaignEvent {
        CampaignEvent::CampaignFinished {
            campaign_id: self.campaign_id.clone(),
            name: self.name.clone(),
            n_jobs: self.n_jobs,
            succeeded: self.succeeded,
            failed: self.failed,
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignEvent {
    /// Where the campaign stands: the first event of a watch, and again after a
    /// watcher fell behind and missed events.
    Snapshot(Snapshot),
    /// A worker took a job.
    JobLeased {
        /// The job.
        job_id: String,
        /// Its model's kind and configuration.
        model: String,
        /// The worker.
        worker_id: String,
        /// 1-based attempt number.
        attempt: u32,
    },
    /// A heartbeat carried new progress (epochs done, loss, accuracy, throughput).
    Progress {
        /// The job.
        job_id: String,
        /// Its progress.
        progress: Progress,
    },
    /// A job's result was stored.
    JobSucceeded {
        /// The job.
        job_id: String,
        /// The worker that trained it.
        worker_id: String,
        /// Its final test accuracy.
        accuracy: f64,
        /// Energy it used, in kWh.
        energy_kwh: f64,
    },
    /// An attempt at a job failed (or the job could not run at all).
    JobFailed {
        /// The job.
        job_id: String,
        /// Why.
        reason: String,
        /// True when the job goes back to pending for another attempt.
        will_retry: bool,
    },
    /// A worker gave a job back because it cannot run it; another worker will.
    JobDeclined {
        /// The job.
        job_id: String,
        /// The worker that declined.
        worker_id: String,
        /// Why.
        reason: String,
    },
    /// A worker joined (or rejoined after a reconnect).
    WorkerJoined {
        /// The worker.
        worker_id: String,
        /// Its host name.
        hostname: String,
    },
    /// A worker stopped answering: its lease on a job expired.
    WorkerLost {
        /// The worker.
        worker_id: String,
        /// The job whose lease expired.
        job_id: String,
    },
    /// Every job of the campaign has ended: the last event of a watch.
    CampaignFinished {
        /// The campaign id.
        campaign_id: String,
        /// The campaign name.
        name: String,
        /// Jobs in all.
        n_jobs: u32,
        /// Jobs with a result.
        succeeded: u32,
        /// Jobs given up on.
        failed: u32,
    },
}

/// The campaign id of a job id (`<campaign>-<index>`).
pub fn campaign_of(job_id: &str) -> &str {
    job_id
        .split_once('-')
        .map_or(job_id, |(campaign, _)| campaign)
}

impl CampaignEvent {
    /// The campaign the event is about; `None` for worker events, which concern every
    /// watcher.
    pub fn campaign_id(&self) -> Option<&str> {
        match self {
            CampaignEvent::Snapshot(snapshot) => Some(&snapshot.campaign_id),
            CampaignEvent::CampaignFinished { campaign_id, .. } => Some(campaign_id),
            CampaignEvent::JobLeased { job_id, .. }
            | CampaignEvent::Progress { job_id, .. }
            | CampaignEvent::JobSucceeded { job_id, .. }
            | CampaignEvent::JobFailed { job_id, .. }
            | CampaignEvent::JobDeclined { job_id, .. } => Some(campaign_of(job_id)),
            CampaignEvent::WorkerJoined { .. } | CampaignEvent::WorkerLost { .. } => None,
        }
    }

    /// Whether a watcher of `campaign_id` receives it.
    pub fn concerns(&self, campaign_id: &str) -> bool {
        self.campaign_id().is_none_or(|id| id == campaign_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_get_their_campaign_and_every_worker_event() {
        let leased = CampaignEvent::JobLeased {
            job_id: "abc123-4".into(),
            model: "cnn".into(),
            worker_id: "w".into(),
            attempt: 1,
        };
        assert!(leased.concerns("abc123"));
        assert!(!leased.concerns("abc12"));
        let joined = CampaignEvent::WorkerJoined {
            worker_id: "w".into(),
            hostname: "h".into(),
        };
        assert!(joined.concerns("anything"));
    }

    #[test]
    fn a_snapshot_without_pending_or_running_jobs_is_the_end() {
        let mut snapshot = Snapshot {
            n_jobs: 2,
            succeeded: 1,
            leased: 1,
            ..Snapshot::default()
        };
        assert!(!snapshot.finished());
        snapshot.leased = 0;
        snapshot.failed = 1;
        assert!(snapshot.finished());
    }
}
