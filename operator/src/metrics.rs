//! Operator metrics (prometheus-client): reconciles, failures by reason, a
//! duration histogram (timed by a drop guard, as controller-rs does), and
//! Kubernetes API requests by verb (counted by a tower layer on the client).

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label naming why a reconcile failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `Error::metric_label`.
    pub reason: String,
}

/// Label naming an API verb.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    /// `get`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
}

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles started.
    pub reconciles: Counter,
    /// Reconciles failed, by reason.
    pub failures: Family<ReasonLabel, Counter>,
    /// Reconcile duration.
    pub duration: Histogram,
    /// API requests sent, by verb.
    pub api_requests: Family<VerbLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            api_requests: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `storekeeper` prefix.
    #[must_use]
    pub fn register(self, registry: &mut Registry) -> Self {
        let r = registry.sub_registry_with_prefix("storekeeper");
        r.register("reconciles", "Reconciles started", self.reconciles.clone());
        r.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            self.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time a reconcile took",
            self.duration.clone(),
        );
        r.register(
            "api_requests",
            "Kubernetes API requests, by verb",
            self.api_requests.clone(),
        );
        self
    }

    /// Counts a reconcile and times it until the guard drops.
    pub fn count_and_measure(&self) -> ReconcileTimer {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: self.duration.clone(),
        }
    }

    /// Counts a failed reconcile.
    pub fn failure(&self, reason: String) {
        self.failures.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts one API request.
    pub fn api_request(&self, method: &http::Method, uri: &http::Uri) {
        let verb = verb(method, uri.query().unwrap_or_default());
        self.api_requests
            .get_or_create(&VerbLabel {
                verb: verb.to_owned(),
            })
            .inc();
    }
}

/// The Kubernetes verb of an HTTP request (list and get share `GET`).
pub fn verb(method: &http::Method, query: &str) -> &'static str {
    match *method {
        http::Method::GET if query.contains("watch=true") => "watch",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_kubernetes_names() {
        assert_eq!(verb(&http::Method::GET, "labelSelector=a"), "get");
        assert_eq!(
            verb(&http::Method::GET, "watch=true&resourceVersion=1"),
            "watch"
        );
        assert_eq!(verb(&http::Method::PATCH, ""), "patch");
        assert_eq!(verb(&http::Method::POST, ""), "create");
        assert_eq!(verb(&http::Method::DELETE, ""), "delete");
    }

    #[test]
    fn api_requests_are_counted_by_verb() {
        let m = Metrics::default();
        let uri: http::Uri = "/api/v1/namespaces/shop/secrets?labelSelector=x"
            .parse()
            .unwrap();
        m.api_request(&http::Method::GET, &uri);
        m.api_request(&http::Method::GET, &uri);
        let got = m
            .api_requests
            .get_or_create(&VerbLabel { verb: "get".into() })
            .get();
        assert_eq!(got, 2);
    }
}
