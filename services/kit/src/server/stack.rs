//! The per-request middleware as one tower layer: request id, tracing span
//! (continuing the caller's W3C trace), the response log line, metrics,
//! timeout (503 problem) and panic guard (500 problem).
//!
//! One hand-written layer instead of `from_fn` middlewares and tower-http's
//! trace and catch-panic layers: each of those cost allocations on every
//! request (a boxed future, a boxed clone of the inner service, a re-boxed
//! response body), which together halved a trivial route's throughput
//! (docs/performance.md). Here a request costs one boxed future.

use std::{
    any::Any,
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    response::{IntoResponse, Response},
};
use futures::FutureExt as _;
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::{
    metrics::{Metrics, method_label},
    problem::ApiError,
    telemetry::{self, RequestId, X_REQUEST_ID, continue_trace},
};

/// Wraps every route in [`Stack`].
#[derive(Clone)]
pub(super) struct StackLayer {
    shared: Arc<Shared>,
}

struct Shared {
    metrics: Metrics,
    timeout: Duration,
}

impl StackLayer {
    /// Records into `metrics`; answers 503 after `timeout`.
    pub(super) fn new(metrics: &Metrics, timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics: metrics.clone(),
                timeout,
            }),
        }
    }
}

impl<S> Layer<S> for StackLayer {
    type Service = Stack<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Stack {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The middleware around one route (see the module docs).
#[derive(Clone)]
pub(super) struct Stack<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Stack<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service that was polled ready serves this request; the clone
        // stays for the next one (tower's rule for cloned services).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(serve(Arc::clone(&self.shared), ready, request))
    }
}

async fn serve<S>(
    shared: Arc<Shared>,
    mut inner: S,
    request: Request,
) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let started = Instant::now();
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(RequestId::from_header)
        .unwrap_or_else(RequestId::generate);
    let echo = HeaderValue::from_str(id.as_str()).ok();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id = id.as_str(),
    );
    continue_trace(&span, || telemetry::extract_http(request.headers()));

    // Answered inside the request id's scope and the span, so a timeout's
    // or a panic's problem carries the id and its log line the trace.
    let timeout = shared.timeout;
    let work = async move {
        let guarded = AssertUnwindSafe(tokio::time::timeout(timeout, inner.call(request)));
        match guarded.catch_unwind().await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(never))) => match never {},
            Ok(Err(_elapsed)) => {
                tracing::warn!(limit = ?timeout, "request timed out");
                ApiError::timeout().into_response()
            }
            Err(panic) => panic_response(&*panic),
        }
    };
    let mut response = RequestId::scope(Some(id), work)
        .instrument(span.clone())
        .await;

    let latency = started.elapsed();
    let status = response.status();
    span.in_scope(|| {
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms, "response failed");
        }
        tracing::info!(
            status = status.as_u16(),
            latency_ms,
            "finished processing request"
        );
    });
    shared
        .metrics
        .observe_http(method, route, status.as_u16(), latency.as_secs_f64());
    if let Some(echo) = echo {
        response.headers_mut().insert(X_REQUEST_ID.clone(), echo);
    }
    Ok(response)
}

fn panic_response(panic: &(dyn Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
