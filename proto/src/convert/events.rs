//! Campaign events (`WatchCampaign`) to and from the wire.

use ecobench_shared::events::{CampaignEvent, RunningJob, Snapshot};

use super::{WireError, missing};
use crate::pb;
use crate::pb::campaign_event::Event;

fn counts(status: pb::CampaignStatus) -> Snapshot {
    Snapshot {
        campaign_id: status.campaign_id,
        name: status.name,
        n_jobs: status.n_jobs,
        pending: status.pending,
        leased: status.leased,
        succeeded: status.succeeded,
        failed: status.failed,
        running: Vec::new(),
    }
}

impl From<RunningJob> for pb::RunningJob {
    fn from(job: RunningJob) -> Self {
        pb::RunningJob {
            job_id: job.job_id,
            model: job.model,
            worker_id: job.worker_id,
            attempt: job.attempt,
            progress: job.progress.map(Into::into),
        }
    }
}

impl From<pb::RunningJob> for RunningJob {
    fn from(job: pb::RunningJob) -> Self {
        RunningJob {
            job_id: job.job_id,
            model: job.model,
            worker_id: job.worker_id,
            attempt: job.attempt,
            progress: job.progress.map(Into::into),
        }
    }
}

impl From<CampaignEvent> for pb::CampaignEvent {
    fn from(event: CampaignEvent) -> Self {
        let event = match event {
            CampaignEvent::Snapshot(snapshot) => Event::Snapshot(pb::CampaignSnapshot {
                status: Some(pb::CampaignStatus {
                    campaign_id: snapshot.campaign_id,
                    name: snapshot.name,
                    n_jobs: snapshot.n_jobs,
                    pending: snapshot.pending,
                    leased: snapshot.leased,
                    succeeded: snapshot.succeeded,
                    failed: snapshot.failed,
                }),
                running: snapshot.running.into_iter().map(Into::into).collect(),
            }),
            CampaignEvent::JobLeased {
                job_id,
                model,
                worker_id,
                attempt,
            } => Event::JobLeased(pb::JobLeasedEvent {
                job_id,
                model,
                worker_id,
                attempt,
            }),
            CampaignEvent::Progress { job_id, progress } => Event::Progress(pb::JobProgressEvent {
                job_id,
                progress: Some(progress.into()),
            }),
            CampaignEvent::JobSucceeded {
                job_id,
                worker_id,
                accuracy,
                energy_kwh,
            } => Event::JobSucceeded(pb::JobSucceededEvent {
                job_id,
                worker_id,
                accuracy,
                energy_kwh,
            }),
            CampaignEvent::JobFailed {
                job_id,
                reason,
                will_retry,
            } => Event::JobFailed(pb::JobFailedEvent {
                job_id,
                reason,
                will_retry,
            }),
            CampaignEvent::JobDeclined {
                job_id,
                worker_id,
                reason,
            } => Event::JobDeclined(pb::JobDeclinedEvent {
                job_id,
                worker_id,
                reason,
            }),
            CampaignEvent::WorkerJoined {
                worker_id,
                hostname,
            } => Event::WorkerJoined(pb::WorkerJoinedEvent {
                worker_id,
                hostname,
            }),
            CampaignEvent::WorkerLost { worker_id, job_id } => {
                Event::WorkerLost(pb::WorkerLostEvent { worker_id, job_id })
            }
            CampaignEvent::CampaignFinished {
                campaign_id,
                name,
                n_jobs,
                succeeded,
                failed,
            } => Event::CampaignFinished(pb::CampaignFinishedEvent {
                status: Some(pb::CampaignStatus {
                    campaign_id,
                    name,
                    n_jobs,
                    pending: 0,
                    leased: 0,
                    succeeded,
                    failed,
                }),
            }),
        };
        pb::CampaignEvent { event: Some(event) }
    }
}

impl TryFrom<pb::CampaignEvent> for CampaignEvent {
    type Error = WireError;

    fn try_from(event: pb::CampaignEvent) -> Result<Self, WireError> {
        const MESSAGE: &str = "CampaignEvent";
        let event = event
            .event
            .ok_or_else(|| missing(MESSAGE, "no event is set"))?;
        Ok(match event {
            Event::Snapshot(snapshot) => {
                let status = snapshot
                    .status
                    .ok_or_else(|| missing(MESSAGE, "a snapshot without its status"))?;
                CampaignEvent::Snapshot(Snapshot {
                    running: snapshot.running.into_iter().map(Into::into).collect(),
                    ..counts(status)
                })
            }
            Event::JobLeased(e) => CampaignEvent::JobLeased {
                job_id: e.job_id,
                model: e.model,
                worker_id: e.worker_id,
                attempt: e.attempt,
            },
            Event::Progress(e) => CampaignEvent::Progress {
                job_id: e.job_id,
                progress: e
                    .progress
                    .ok_or_else(|| missing(MESSAGE, "a progress event without its progress"))?
                    .into(),
            },
            Event::JobSucceeded(e) => CampaignEvent::JobSucceeded {
                job_id: e.job_id,
                worker_id: e.worker_id,
                accuracy: e.accuracy,
                energy_kwh: e.energy_kwh,
            },
            Event::JobFailed(e) => CampaignEvent::JobFailed {
                job_id: e.job_id,
                reason: e.reason,
                will_retry: e.will_retry,
            },
            Event::JobDeclined(e) => CampaignEvent::JobDeclined {
                job_id: e.job_id,
                worker_id: e.worker_id,
                reason: e.reason,
            },
            Event::WorkerJoined(e) => CampaignEvent::WorkerJoined {
                worker_id: e.worker_id,
                hostname: e.hostname,
            },
            Event::WorkerLost(e) => CampaignEvent::WorkerLost {
                worker_id: e.worker_id,
                job_id: e.job_id,
            },
            Event::CampaignFinished(e) => {
                let status = e
                    .status
                    .ok_or_else(|| missing(MESSAGE, "a finished event without its status"))?;
                CampaignEvent::CampaignFinished {
                    campaign_id: status.campaign_id,
                    name: status.name,
                    n_jobs: status.n_jobs,
                    succeeded: status.succeeded,
                    failed: status.failed,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use ecobench_shared::Progress;

    use super::*;

    #[test]
    fn every_event_survives_the_wire() {
        let progress = Progress {
            epoch: 1,
            n_epochs: 2,
            loss: 0.5,
            accuracy: 0.75,
            samples_per_s: 1200.0,
        };
        let events = vec![
            CampaignEvent::Snapshot(Snapshot {
                campaign_id: "c".into(),
                name: "n".into(),
                n_jobs: 3,
                pending: 1,
                leased: 1,
                succeeded: 1,
                failed: 0,
                running: vec![RunningJob {
                    job_id: "c-1".into(),
                    model: "cnn".into(),
                    worker_id: "w".into(),
                    attempt: 2,
                    progress: Some(progress.clone()),
                }],
            }),
            CampaignEvent::JobLeased {
                job_id: "c-0".into(),
                model: "cnn".into(),
                worker_id: "w".into(),
                attempt: 1,
            },
            CampaignEvent::Progress {
                job_id: "c-0".into(),
                progress,
            },
            CampaignEvent::JobSucceeded {
                job_id: "c-0".into(),
                worker_id: "w".into(),
                accuracy: 0.9,
                energy_kwh: 1e-6,
            },
            CampaignEvent::JobFailed {
                job_id: "c-0".into(),
                reason: "r".into(),
                will_retry: true,
            },
            CampaignEvent::JobDeclined {
                job_id: "c-0".into(),
                worker_id: "w".into(),
                reason: "r".into(),
            },
            CampaignEvent::WorkerJoined {
                worker_id: "w".into(),
                hostname: "h".into(),
            },
            CampaignEvent::WorkerLost {
                worker_id: "w".into(),
                job_id: "c-0".into(),
            },
            CampaignEvent::CampaignFinished {
                campaign_id: "c".into(),
                name: "n".into(),
                n_jobs: 3,
                succeeded: 2,
                failed: 1,
            },
        ];
        for event in events {
            let wire = pb::CampaignEvent::from(event.clone());
            assert_eq!(CampaignEvent::try_from(wire), Ok(event));
        }
    }

    #[test]
    fn an_empty_event_is_refused() {
        let err = CampaignEvent::try_from(pb::CampaignEvent { event: None }).unwrap_err();
        assert_eq!(err.problem, "no event is set");
    }
}
