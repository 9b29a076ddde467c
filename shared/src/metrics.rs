//! Prometheus metrics: the names both binaries export (one list, which the Grafana
//! dashboard's test checks against) and the small HTTP server of `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The metric names `coordinator serve --metrics` exports, as they appear in samples;
/// a histogram by its base name (its samples add `_bucket`, `_sum`, `_count`).
pub const COORDINATOR_METRICS: &[&str] = &[
    "ecobench_coordinator_jobs",
    "ecobench_coordinator_workers_alive",
    "ecobench_coordinator_oldest_lease_age_seconds",
    "ecobench_coordinator_results_total",
    "ecobench_coordinator_rpc_duration_seconds",
];

/// The metric names `worker --metrics` exports, as [`COORDINATOR_METRICS`].
pub const WORKER_METRICS: &[&str] = &[
    "ecobench_worker_power_watts",
    "ecobench_worker_energy_joules_total",
    "ecobench_worker_job_progress_ratio",
    "ecobench_worker_job_epoch",
    "ecobench_worker_job_info",
    "ecobench_worker_samples_per_second",
    "ecobench_worker_jobs_total",
];

/// The histograms among the names above.
pub const HISTOGRAMS: &[&str] = &["ecobench_coordinator_rpc_duration_seconds"];

/// Whether `name`, as a query or a sample names it, is one the binaries export: listed,
/// or a listed histogram's `_bucket`, `_sum` or `_count`.
pub fn is_exported(name: &str) -> bool {
    let listed = |n: &str| COORDINATOR_METRICS.contains(&n) || WORKER_METRICS.contains(&n);
    listed(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| HISTOGRAMS.contains(&base))
        })
}

/// A listener bound for `/metrics` before the server starts (so that the binary can print
/// the address and fail early on a taken port); cheap to clone, so configs stay `Clone`.
#[derive(Debug, Clone)]
pub struct MetricsListener(Arc<std::net::TcpListener>);

impl MetricsListener {
    /// Binds `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr) -> std::io::Result<MetricsListener> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsListener(Arc::new(listener)))
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// A tokio listener on the same socket (call it inside a runtime).
    fn to_tokio(&self) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::from_std(self.0.try_clone()?)
    }
}

/// What renders the metrics text at each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The content type of the OpenMetrics text that `prometheus-client` encodes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `render()` at `GET /metrics` over HTTP/1 until `shutdown` completes.
pub async fn serve(
    listener: &MetricsListener,
    render: Render,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let listener = listener.to_tokio()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], render()) }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Encodes `registry` as OpenMetrics text.
pub fn encode(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_series_and_listed_names_are_exported_and_others_not() {
        assert!(is_exported("ecobench_coordinator_jobs"));
        assert!(is_exported(
            "ecobench_coordinator_rpc_duration_seconds_bucket"
        ));
        assert!(is_exported("ecobench_worker_energy_joules_total"));
        assert!(!is_exported("ecobench_coordinator_jobs_bucket"));
        assert!(!is_exported("ecobench_worker_energy_joules"));
    }

    /// The dashboard's queries name only metrics the binaries export.
    #[test]
    fn the_grafana_dashboard_uses_only_exported_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/ecobench.json"
        );
        let text = std::fs::read_to_string(path).expect("deploy/grafana/ecobench.json");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(exprs.len() >= 8, "only {} queries found", exprs.len());
        let mut used = std::collections::BTreeSet::new();
        for expr in &exprs {
            for name in metric_names(expr) {
                assert!(
                    is_exported(&name),
                    "deploy/grafana/ecobench.json queries {name:?} (in `{expr}`), which no binary exports"
                );
                used.insert(name);
            }
        }
        for name in COORDINATOR_METRICS.iter().chain(WORKER_METRICS) {
            let shown = used
                .iter()
                .any(|u| u == name || u.strip_prefix(name).is_some_and(|s| s.starts_with('_')));
            assert!(shown, "the dashboard shows no panel of {name}");
        }
    }

    /// Every `expr` string in a JSON tree.
    fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => collect_exprs(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
            _ => {}
        }
    }

    /// The `ecobench_…` identifiers of a PromQL expression.
    fn metric_names(expr: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = expr;
        while let Some(start) = rest.find("ecobench_") {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
        names
    }
}
