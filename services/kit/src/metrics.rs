//! Prometheus metrics: the HTTP request count and latency every service
//! reports, plus a place for each service's own business counters.
//!
//! Every registry also carries the standard process metrics
//! ([`crate::process_metrics`]).
//!
//! Requests are labelled by the *route template* (`/api/products/{id}`),
//! never the raw path, so a scan of random ids cannot blow up the number of
//! time series. The server middleware records them
//! ([`Metrics::observe_http`]) through handles kept per route, so a request
//! builds no label set and looks nothing up in the metric families.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use axum::http::Method;
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
    /// Route template → the series of that route seen so far.
    series: Arc<RwLock<HashMap<Box<str>, Vec<HttpSeries>>>>,
}

/// The two metrics of one (method, route, status), as handles into the families.
struct HttpSeries {
    method: &'static str,
    status: u16,
    requests: Counter,
    duration: Histogram,
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
            series: Arc::default(),
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
        self.observe_http(labels.method, &labels.route, labels.status, seconds);
    }

    /// Records one served request from its parts (`method` from
    /// [`method_label`], `route` a template or `unmatched`).
    pub fn observe_http(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = series.get(route).and_then(|list| {
                list.iter()
                    .find(|s| s.method == method && s.status == status)
            }) {
                found.requests.inc();
                found.duration.observe(seconds);
                return;
            }
        }
        let labels = HttpLabels {
            method,
            route: route.to_owned(),
            status,
        };
        let found = HttpSeries {
            method,
            status,
            requests: self.requests.get_or_create_owned(&labels),
            duration: self.durations.get_or_create_owned(&labels),
        };
        found.requests.inc();
        found.duration.observe(seconds);
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let list = series.entry(route.into()).or_default();
        if !list
            .iter()
            .any(|s| s.method == method && s.status == status)
        {
            list.push(found);
        }
    }
}

/// The `method` label of a request method (unusual methods are `OTHER`).
pub fn method_label(method: &Method) -> &'static str {
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
        metrics.observe_http("GET", "/x/{id}", 200, 0.003);
        metrics.observe_http("GET", "/x/{id}", 404, 0.003);
        let text = metrics.encode().unwrap();
        assert!(text.contains("logins_failed_total 1"), "{text}");
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/x/{id}",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/x/{id}",status="404"} 1"#),
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
