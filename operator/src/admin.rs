//! The operator's own admin port: `/healthz` (process alive), `/readyz`
//! (connected to the API server; true on standbys too, so a rolling update
//! of the operator proceeds), `/metrics` (Prometheus text). A Store's own
//! Prometheus asks `/metrics?namespace=<ns>&store=<name>` and gets only
//! that Store's series.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use storekeeper_contract::admin::{HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};

/// The `/metrics` parameter naming a Store's namespace.
pub const NAMESPACE_PARAM: &str = "namespace";
/// The `/metrics` parameter naming a Store.
pub const STORE_PARAM: &str = "store";

/// What the admin endpoints read.
pub struct AdminState {
    /// Metrics to export.
    pub registry: Registry,
    /// Set once the operator reached the API server.
    pub ready: AtomicBool,
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route(HEALTHZ_PATH, get(|| async { "ok" }))
        .route(READYZ_PATH, get(readyz))
        .route(METRICS_PATH, get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// `/metrics`' optional filter: both parameters or neither.
#[derive(Debug, Default, Deserialize)]
struct StoreFilter {
    namespace: Option<String>,
    store: Option<String>,
}

async fn metrics(
    State(state): State<Arc<AdminState>>,
    Query(filter): Query<StoreFilter>,
) -> impl IntoResponse {
    let store = match (filter.namespace, filter.store) {
        (None, None) => None,
        (Some(namespace), Some(store)) => Some((namespace, store)),
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("give both `{NAMESPACE_PARAM}` and `{STORE_PARAM}`, or neither"),
            );
        }
    };
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &state.registry).is_err() {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed".to_owned(),
        );
    }
    if let Some((namespace, store)) = store {
        body = only_store(&body, &namespace, &store);
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

fn text(
    status: StatusCode,
    body: String,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], String) {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

/// The samples labelled with this Store's `namespace` and `store`, each
/// family's metadata before its first kept sample, and the closing `# EOF`.
/// Kubernetes names need no escaping, so a label is matched as written.
fn only_store(exposition: &str, namespace: &str, store: &str) -> String {
    let wanted = [
        format!("{NAMESPACE_PARAM}=\"{namespace}\""),
        format!("{STORE_PARAM}=\"{store}\""),
    ];
    let labelled = |sample: &str, label: &str| {
        let labels = sample
            .split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'))
            .map_or("", |(labels, _)| labels);
        labels.split(',').any(|pair| pair == label)
    };
    let mut out = String::new();
    let mut metadata: Vec<&str> = Vec::new();
    for line in exposition.lines() {
        if line == "# EOF" {
            out.push_str(line);
            out.push('\n');
        } else if line.starts_with('#') {
            // A family opens with its `# HELP`, then `# TYPE` and `# UNIT`.
            if line.starts_with("# HELP ") {
                metadata.clear();
            }
            metadata.push(line);
        } else if wanted.iter().all(|label| labelled(line, label)) {
            for kept in metadata.drain(..) {
                out.push_str(kept);
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Phase, StoreStatus};
    use crate::metrics::{Metrics, StoreLabel};
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(state: &Arc<AdminState>, path: &str) -> (StatusCode, String) {
        let res = router(Arc::clone(state))
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let mut registry = Registry::default();
        let metrics = Metrics::default().register(&mut registry);
        metrics.failure("api_500".into());
        let state = Arc::new(AdminState {
            registry,
            ready: false.into(),
        });
        assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(&state, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
        let (status, body) = get(&state, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("storekeeper_reconcile_failures_total{reason=\"api_500\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("storekeeper_reconcile_duration_seconds"),
            "{body}"
        );
    }

    fn state_with_two_stores() -> Arc<AdminState> {
        let mut registry = Registry::default();
        let metrics = Metrics::default().register(&mut registry);
        metrics.failure("api_500".into());
        for (namespace, store) in [("shop", "shop"), ("shop", "outlet"), ("other", "shop")] {
            let label = StoreLabel {
                namespace: namespace.into(),
                store: store.into(),
            };
            metrics.store_status(&label, &status_ready());
        }
        Arc::new(AdminState {
            registry,
            ready: true.into(),
        })
    }

    fn status_ready() -> StoreStatus {
        StoreStatus {
            phase: Some(Phase::Ready),
            ..StoreStatus::default()
        }
    }

    #[tokio::test]
    async fn a_stores_prometheus_gets_that_stores_series_only() {
        let state = state_with_two_stores();
        let (status, body) = get(&state, "/metrics?namespace=shop&store=shop").await;
        assert_eq!(status, StatusCode::OK);
        let samples: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!samples.is_empty(), "{body}");
        for sample in &samples {
            assert!(
                sample.contains("namespace=\"shop\"") && sample.contains("store=\"shop\""),
                "another Store's or the operator's own series leaked: {sample}"
            );
        }
        assert!(
            body.contains("storekeeper_store_phase{"),
            "the phase gauge is kept: {body}"
        );
        assert!(!body.contains("outlet"), "{body}");
        assert!(!body.contains("reconcile_failures"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");
        // Each kept family keeps its metadata, right before its samples.
        let help = body
            .lines()
            .position(|l| l.starts_with("# HELP storekeeper_store_phase"))
            .unwrap();
        let first = body
            .lines()
            .position(|l| l.starts_with("storekeeper_store_phase{"))
            .unwrap();
        assert!(help < first, "{body}");
    }

    #[tokio::test]
    async fn half_a_filter_is_refused() {
        let state = state_with_two_stores();
        let (status, body) = get(&state, "/metrics?store=shop").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("both `namespace` and `store`"), "{body}");
    }
}
