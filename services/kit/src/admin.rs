//! The admin server (on `ADMIN_PORT`, never routed by the Ingress):
//! `GET /healthz` (the process is alive), `GET /readyz` (every dependency
//! answers) and `GET /metrics` (Prometheus text format).

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use storekeeper_contract::admin::{HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};

use crate::metrics::Metrics;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One named readiness check (e.g. `postgres`). A check is a function
/// returning a fresh future each time `/readyz` is scraped.
#[derive(Clone)]
pub struct Check {
    name: String,
    run: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// A check named `name`; `run` resolves to `Err(reason)` when the
    /// dependency is down.
    pub fn new<F, Fut>(name: impl Into<String>, run: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            run: Arc::new(move || Box::pin(run())),
        }
    }

    /// The check's name, as reported by `/readyz`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The set of checks `/readyz` runs, in parallel, each with a time limit.
#[derive(Debug, Clone)]
pub struct Readiness {
    checks: Vec<Check>,
    timeout: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            checks: Vec::new(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReadinessReport {
    /// `ready` or `unavailable`.
    pub status: String,
    /// Each check's outcome: `ok`, or why it failed.
    pub checks: BTreeMap<String, String>,
}

impl ReadinessReport {
    /// True when every check passed.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

impl Readiness {
    /// No checks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    #[must_use]
    pub fn with(mut self, check: Check) -> Self {
        self.add(check);
        self
    }

    /// Adds a check in place (the runner adds one per dependency opened).
    pub(crate) fn add(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Sets the per-check time limit (default 2 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs every check in parallel.
    pub async fn run(&self) -> ReadinessReport {
        let outcomes = futures::future::join_all(self.checks.iter().map(|check| async {
            let outcome = match tokio::time::timeout(self.timeout, (check.run)()).await {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(reason)) => format!("down: {reason}"),
                Err(_) => format!("down: no answer within {:?}", self.timeout),
            };
            (check.name.clone(), outcome)
        }))
        .await;
        let ready = outcomes.iter().all(|(_, outcome)| outcome == "ok");
        for (name, outcome) in outcomes.iter().filter(|(_, o)| o != "ok") {
            tracing::warn!(dependency = %name, %outcome, "readiness check failed");
        }
        ReadinessReport {
            status: if ready { "ready" } else { "unavailable" }.to_owned(),
            checks: outcomes.into_iter().collect(),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The admin router: `/healthz`, `/readyz`, `/metrics`.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .route(METRICS_PATH, get(metrics_text))
        .with_state(AdminState { metrics, readiness })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let report = state.readiness.run().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "could not encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
