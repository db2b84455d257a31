//! Serving: the common middleware stack, both listeners, graceful shutdown,
//! and the HTTP client for service-to-service calls.
//!
//! Layers, outermost first: request id, tracing span, metrics, timeout
//! (503 problem), body limit (413 problem through the extractors),
//! catch-panic (innermost, so a panic becomes a problem+json 500 that is
//! still logged, counted and tagged with the request id).
//! Unknown routes and wrong methods answer 404/405 problem+json.

use std::{any::Any, net::SocketAddr, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    catch_panic::CatchPanicLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    config::ServiceConfig,
    metrics::{Metrics, http_metrics_middleware},
    problem::{self, ApiError},
    telemetry::{RequestId, request_id_middleware},
};

/// The settings the middleware stack needs.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// Longest a request may run.
    pub request_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: crate::config::DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(15),
        }
    }
}

impl From<&ServiceConfig> for HttpSettings {
    fn from(config: &ServiceConfig) -> Self {
        Self {
            body_limit: config.body_limit,
            request_timeout: config.request_timeout,
        }
    }
}

/// Why serving stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Wraps an API router in the common stack (fallbacks and layers).
/// [`serve_until`] calls it; tests get it through `testing::TestApp`, so
/// they exercise exactly what production runs.
pub fn layers(router: Router, settings: HttpSettings, metrics: &Metrics) -> Router {
    let timeout = settings.request_timeout;
    router
        .fallback(problem::not_found_fallback)
        .method_not_allowed_fallback(problem::method_not_allowed_fallback)
        .layer(CatchPanicLayer::custom(|panic: Box<dyn Any + Send>| {
            panic_response(&*panic)
        }))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            timeout_middleware(timeout, request, next)
        }))
        .layer(middleware::from_fn_with_state(
            metrics.clone(),
            http_metrics_middleware,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    let request_id = request
                        .extensions()
                        .get::<RequestId>()
                        .map_or("", RequestId::as_str);
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        route,
                        request_id,
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(middleware::from_fn(request_id_middleware))
}

async fn timeout_middleware(limit: Duration, request: Request, next: Next) -> Response {
    if let Ok(response) = tokio::time::timeout(limit, next.run(request)).await {
        response
    } else {
        tracing::warn!(?limit, "request timed out");
        ApiError::timeout().into_response()
    }
}

fn panic_response(panic: &(dyn Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// Serves `app` on `PORT` (with [`layers`]) and `admin` on `ADMIN_PORT`
/// until `shutdown` is cancelled (the runner cancels it on SIGTERM or
/// Ctrl-C); then stops accepting, lets in-flight requests finish (up to
/// `SHUTDOWN_TIMEOUT_SECS`) and returns `Ok`.
pub async fn serve_until(
    app: Router,
    admin: Router,
    config: &ServiceConfig,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let app = layers(app, HttpSettings::from(config), metrics);
    let api_listener = bind(SocketAddr::new(config.host, config.port)).await?;
    let admin_listener = bind(SocketAddr::new(config.host, config.admin_port)).await?;
    tracing::info!(
        service = config.name,
        port = config.port,
        admin_port = config.admin_port,
        "listening"
    );
    let api = axum::serve(
        api_listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let admin = axum::serve(admin_listener, admin)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let servers = async { tokio::try_join!(api.into_future(), admin.into_future()) };
    let grace = config.shutdown_timeout;
    let deadline = async {
        shutdown.cancelled().await;
        tracing::info!(?grace, "shutting down: draining in-flight requests");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = servers => { result?; }
        () = deadline => {
            tracing::warn!("in-flight requests did not finish in time; stopping anyway");
        }
    }
    tracing::info!("server stopped");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C (a terminal).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

/// Turns a run's result into the exit status, printing a failure as one
/// line (`error: missing required environment variable TOKEN_PRIVATE_KEY`)
/// with its context chain, never a backtrace, whatever `RUST_BACKTRACE` says.
pub(crate) fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "fatal");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// An HTTP client for service-to-service calls: short connect timeout, an
/// overall limit below the server's own request timeout, pooled connections.
/// Add `.with_request_id()` (from `telemetry::RequestBuilderExt`) to calls.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_mins(1))
        .user_agent(concat!("storekeeper/", env!("CARGO_PKG_VERSION")))
        .build()
}
