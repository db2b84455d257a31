//! Prometheus metrics: the HTTP request count and latency every service
//! reports, plus a place for each service's own business counters.
//!
//! Every registry also carries the standard process metrics
//! ([`crate::process_metrics`]).
//!
//! Requests are labelled by the *route template* (`/api/products/{id}`),
//! never the raw path, so a scan of random ids cannot blow up the number of
//! time series.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry, Unit},
};

use crate::process_metrics::ProcessCollector;

/// Labels of the HTTP metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Request method (`GET`...; unusual methods are `OTHER`).
    pub method: &'static str,
    /// Matched route template, or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Shared handle to the service's metric registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<HttpLabels, Counter>,
    durations: Family<HttpLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~8 s, doubling.
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

impl Metrics {
    /// A registry holding the HTTP metrics.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<HttpLabels, Counter>::default();
        let durations = Family::<HttpLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_requests",
            "HTTP requests served, by method, route template and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency, by method, route template and status",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector::new()));
        Self {
            registry: Arc::new(Mutex::new(registry)),
            requests,
            durations,
        }
    }

    /// Registers a service metric and returns it (metrics are handles: keep
    /// the returned clone in the app state and update it there).
    /// Counters get `_total` appended by the exposition format.
    pub fn register<M: Metric + Clone>(&self, name: &str, help: &str, metric: M) -> M {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric.clone());
        metric
    }

    /// Registers and returns a plain counter.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        self.register(name, help, Counter::default())
    }

    /// Renders every metric in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }

    /// Records one served request.
    pub fn observe_request(&self, labels: &HttpLabels, seconds: f64) {
        self.requests.get_or_create(labels).inc();
        self.durations.get_or_create(labels).observe(seconds);
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware recording `http_requests_total` and
/// `http_request_duration_seconds`. Apply with `Router::layer` so the
/// [`MatchedPath`] is known.
pub async fn http_metrics_middleware(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe_request(
        &HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_counters_appear_in_the_output() {
        let metrics = Metrics::new();
        let logins = metrics.counter("logins_failed", "Failed logins");
        logins.inc();
        let labels = HttpLabels {
            method: "GET",
            route: "/x/{id}".into(),
            status: 200,
        };
        metrics.observe_request(&labels, 0.002);
        let text = metrics.encode().unwrap();
        assert!(text.contains("logins_failed_total 1"), "{text}");
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/x/{id}",status="200"} 1"#),
            "{text}"
        );
        if cfg!(target_os = "linux") {
            for name in [
                "# TYPE process_resident_memory_bytes gauge",
                "process_cpu_seconds_total ",
                "process_open_fds ",
                "process_start_time_seconds ",
            ] {
                assert!(text.contains(name), "{name} missing: {text}");
            }
        }
    }
}
