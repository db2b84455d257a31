//! The admin server (on `ADMIN_PORT`, never routed by the Ingress):
//! `GET /healthz` (the process is alive), `GET /readyz` (the service can
//! serve) and `GET /metrics` (Prometheus text format).
//!
//! Readiness means "cannot serve without it". A [`Check`] is either
//! required (the service's own database: without it no request can be
//! answered, so the pod leaves the Service's endpoints) or optional (Redis,
//! the broker: the service degrades, cache reads go to PostgreSQL and events
//! wait in the outbox, so taking the pod out of rotation would turn a blip
//! into an outage). `/readyz` answers 503 only when a required check fails;
//! a failing optional one makes it 200 `degraded`, names it in the body and
//! sets `dependency_up{dependency, required}` to 0.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
};

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
    required: bool,
    run: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// A required check named `name`: the service cannot serve while it
    /// fails. `run` resolves to `Err(reason)` when the dependency is down.
    pub fn new<F, Fut>(name: impl Into<String>, run: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            required: true,
            run: Arc::new(move || Box::pin(run())),
        }
    }

    /// Makes the check optional: while it fails the service serves
    /// degraded and stays ready.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// Whether the service cannot serve while this check fails.
    pub fn is_required(&self) -> bool {
        self.required
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

/// `/readyz`'s status when every check passes.
pub const READY: &str = "ready";
/// `/readyz`'s status when only optional checks fail: still ready (200).
pub const DEGRADED: &str = "degraded";
/// `/readyz`'s status when a required check fails (503).
pub const UNAVAILABLE: &str = "unavailable";

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReadinessReport {
    /// [`READY`], [`DEGRADED`] or [`UNAVAILABLE`].
    pub status: String,
    /// Each check's outcome: `ok`, or why it failed.
    pub checks: BTreeMap<String, String>,
    /// The optional checks that failed: what the service does without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

impl ReadinessReport {
    /// True when the service can serve (every required check passed),
    /// degraded or not.
    pub fn is_ready(&self) -> bool {
        self.status != UNAVAILABLE
    }
}

/// Labels of `dependency_up`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: String,
    required: &'static str,
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
        self.run_recording(None).await
    }

    /// Runs every check and records each outcome in `dependency_up`.
    async fn run_recording(&self, up: Option<&Family<DependencyLabels, Gauge>>) -> ReadinessReport {
        let timeout = self.timeout;
        let outcomes = futures::future::join_all(self.checks.iter().map(|check| async move {
            let outcome = match tokio::time::timeout(timeout, (check.run)()).await {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(reason)) => format!("down: {reason}"),
                Err(_) => format!("down: no answer within {timeout:?}"),
            };
            (check, outcome)
        }))
        .await;
        let mut unavailable = false;
        let mut degraded = Vec::new();
        for (check, outcome) in &outcomes {
            let ok = outcome == "ok";
            if let Some(up) = up {
                up.get_or_create(&DependencyLabels {
                    dependency: check.name.clone(),
                    required: if check.required { "true" } else { "false" },
                })
                .set(i64::from(ok));
            }
            if ok {
                continue;
            }
            if check.required {
                unavailable = true;
                tracing::warn!(dependency = %check.name, %outcome, "required dependency down; not ready");
            } else {
                degraded.push(check.name.clone());
                tracing::warn!(dependency = %check.name, %outcome, "optional dependency down; serving degraded");
            }
        }
        let status = if unavailable {
            UNAVAILABLE
        } else if degraded.is_empty() {
            READY
        } else {
            DEGRADED
        };
        ReadinessReport {
            status: status.to_owned(),
            checks: outcomes
                .into_iter()
                .map(|(check, outcome)| (check.name.clone(), outcome))
                .collect(),
            degraded,
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
    up: Family<DependencyLabels, Gauge>,
}

/// The admin router: `/healthz`, `/readyz`, `/metrics`. Registers
/// `dependency_up`, which each `/readyz` (the kubelet's probe) refreshes.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    let up = metrics.register(
        "dependency_up",
        "Whether a dependency answered the last readiness probe (1) or not (0); \
         required=\"false\" ones only degrade the service",
        Family::default(),
    );
    Router::new()
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .route(METRICS_PATH, get(metrics_text))
        .with_state(AdminState {
            metrics,
            readiness,
            up,
        })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let report = state.readiness.run_recording(Some(&state.up)).await;
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
