//! The coordinator's Prometheus metrics (`coordinator serve --metrics ADDR`): gauges read
//! from the domain at each scrape, counters and RPC latency histograms updated as calls
//! happen. The names are listed in [`ecobench_shared::metrics::COORDINATOR_METRICS`].

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tracing::warn;

use crate::coordinator::Coordinator;

/// The `state` label of the jobs gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// The `outcome` label of the results counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The labels of one RPC's latency: the gRPC path without its slash
/// (`ecobench.v1.WorkerService/LeaseJob`) and the status code's name (`Ok`, `NotFound`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: String,
}

/// How a job's attempt was reported, for the results counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    /// `CompleteJob` took a new result.
    Succeeded,
    /// `FailJob` reported a failure.
    Failed,
    /// `FailJob` declined the job (the worker's dataset is not the campaign's).
    Declined,
    /// `FailJob` handed the job back (its worker stopped).
    HandedBack,
}

impl ResultOutcome {
    fn label(self) -> &'static str {
        match self {
            ResultOutcome::Succeeded => "succeeded",
            ResultOutcome::Failed => "failed",
            ResultOutcome::Declined => "declined",
            ResultOutcome::HandedBack => "handed_back",
        }
    }
}

/// RPC latency buckets: 0.5 ms to ~33 s (long polls wait up to 20 s).
fn rpc_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// The coordinator's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<StateLabel, Gauge>,
    workers_alive: Gauge,
    oldest_lease_age_s: Gauge<f64, AtomicU64>,
    results: Family<OutcomeLabel, Counter>,
    rpc: Family<RpcLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ecobench_coordinator");
        let metrics = Metrics {
            jobs: Family::default(),
            workers_alive: Gauge::default(),
            oldest_lease_age_s: Gauge::default(),
            results: Family::default(),
            rpc: Family::new_with_constructor(rpc_histogram),
            registry: Registry::default(),
        };
        registry.register(
            "jobs",
            "Jobs of every campaign in each state",
            metrics.jobs.clone(),
        );
        registry.register(
            "workers_alive",
            "Workers that called within a lease's lifetime plus one long poll",
            metrics.workers_alive.clone(),
        );
        registry.register_with_unit(
            "oldest_lease_age",
            "Seconds since the least recently renewed live lease was granted or heartbeated (0 without leases)",
            Unit::Seconds,
            metrics.oldest_lease_age_s.clone(),
        );
        registry.register(
            "results",
            "Attempts reported by workers, by outcome (rate() gives results per second)",
            metrics.results.clone(),
        );
        registry.register_with_unit(
            "rpc_duration",
            "gRPC call latency until the response headers, by method and status code",
            Unit::Seconds,
            metrics.rpc.clone(),
        );
        for outcome in [ResultOutcome::Succeeded, ResultOutcome::Failed] {
            let _ = metrics.results.get_or_create(&OutcomeLabel {
                outcome: outcome.label().into(),
            });
        }
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts one attempt reported as `outcome`.
    pub fn result(&self, outcome: ResultOutcome) {
        self.results
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label().into(),
            })
            .inc();
    }

    /// Records one gRPC call of `method` that ended with `code` after `seconds`.
    pub fn rpc(&self, method: &str, code: &str, seconds: f64) {
        self.rpc
            .get_or_create(&RpcLabels {
                method: method.into(),
                code: code.into(),
            })
            .observe(seconds);
    }

    /// The OpenMetrics text, with the gauges read from `coordinator` now.
    pub fn render(&self, coordinator: &Coordinator) -> String {
        match coordinator.gauges() {
            Ok(gauges) => {
                for (state, n) in gauges.jobs_by_state {
                    self.jobs
                        .get_or_create(&StateLabel {
                            state: state.into(),
                        })
                        .set(n as i64);
                }
                self.workers_alive.set(gauges.workers_alive as i64);
                self.oldest_lease_age_s.set(gauges.oldest_lease_age_s);
            }
            Err(err) => warn!(error = %err, "cannot read the gauges for /metrics"),
        }
        ecobench_shared::metrics::encode(&self.registry)
    }
}
