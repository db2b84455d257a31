//! Serving: the common middleware stack, both listeners, graceful shutdown,
//! and the HTTP client for service-to-service calls.
//!
//! Layers, outermost first: [`stack`] (request id, tracing span continuing
//! the caller's W3C trace from `traceparent` or starting one, the response
//! log line, metrics, timeout as a 503 problem, and a panic guard that turns
//! a panic into a problem+json 500 still logged, counted and tagged with
//! the request id), then the body limit (413 problem through the
//! extractors). Unknown routes and wrong methods answer 404/405
//! problem+json.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, extract::DefaultBodyLimit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::{config::ServiceConfig, metrics::Metrics, problem};

mod stack;

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
    router
        .fallback(problem::not_found_fallback)
        .method_not_allowed_fallback(problem::method_not_allowed_fallback)
        // One `layer` call: axum boxes every layered route again, and each
        // boxing costs a clone and a boxed future per request.
        .layer(
            ServiceBuilder::new()
                .layer(stack::StackLayer::new(metrics, settings.request_timeout))
                .layer(DefaultBodyLimit::max(settings.body_limit)),
        )
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
/// Add `.with_request_id()` (from `telemetry::RequestBuilderExt`) to calls:
/// it forwards the request id and the trace context.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_mins(1))
        .user_agent(concat!("storekeeper/", env!("CARGO_PKG_VERSION")))
        .build()
}
