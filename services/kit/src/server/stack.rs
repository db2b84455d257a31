//! The per-request middleware as one tower layer: request id, tracing span
//! (continuing the caller's W3C trace), the response log line, metrics,
//! timeout (503 problem) and panic guard (500 problem).
//!
//! One hand-written layer instead of `from_fn` middlewares and tower-http's
//! trace and catch-panic layers: each of those cost allocations on every
//! request (a boxed future, a boxed clone of the inner service, a re-boxed
//! response body), which together halved a trivial route's throughput
//! (docs/performance.md). Here a request costs one boxed future, and a timer
//! only when its handler waits.

use std::{
    any::Any,
    convert::Infallible,
    future::Future,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    response::{IntoResponse, Response},
};
use tokio::{task::futures::TaskLocalFuture, time::Sleep};
use tower::{Layer, Service};
use tracing::{Instrument as _, instrument::Instrumented};

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
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + Unpin + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Served<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let id = request
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(RequestId::from_header)
            .unwrap_or_else(RequestId::generate);
        let route = request.extensions().get::<MatchedPath>().cloned();
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
            request_id = id.as_str(),
        );
        continue_trace(&span, || telemetry::extract_http(request.headers()));
        let line = RequestLine {
            started,
            method: method_label(request.method()),
            route,
            echo: HeaderValue::from_str(id.as_str()).ok(),
        };
        // The service that was polled ready serves the request, called here
        // rather than cloned into the future (a clone of a boxed route costs
        // allocations). Its future, not this call, runs the handler, but a
        // panic while routing is answered all the same.
        let called = {
            let _entered = span.enter();
            panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request)))
        };
        // Answered inside the request id's scope and the span, so a timeout's
        // or a panic's problem carries the id and its log line the trace.
        let guarded = Guarded {
            called,
            limit: self.shared.timeout,
            deadline: started + self.shared.timeout,
            timer: None,
        };
        Served {
            work: Box::pin(id.within(guarded).instrument(span)),
            shared: Arc::clone(&self.shared),
            line,
        }
    }
}

/// Where no route matched (the fallbacks).
const UNMATCHED: &str = "unmatched";

/// What the response's log line and metrics need from the request.
struct RequestLine {
    started: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
    /// The id as the response's `x-request-id`.
    echo: Option<HeaderValue>,
}

/// A request being served: the guarded handler inside the request's span
/// and id, then its log line, metrics and `x-request-id`. A future of its
/// own rather than an `async fn`, whose state would hold the handler's
/// future twice (as argument and as awaited), past the allocator's
/// small-block sizes, and copy it on every move.
pub(super) struct Served<F> {
    work: Pin<Box<Scoped<F>>>,
    shared: Arc<Shared>,
    line: RequestLine,
}

/// The guarded handler inside the request's span and with its id.
type Scoped<F> = Instrumented<TaskLocalFuture<RequestId, Guarded<F>>>;

impl<F> Future for Served<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(self.work.as_mut().poll(cx));
        let this = &mut *self;
        let latency = this.line.started.elapsed();
        let status = response.status();
        this.work.span().in_scope(|| {
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
        let route = this
            .line
            .route
            .as_ref()
            .map_or(UNMATCHED, MatchedPath::as_str);
        this.shared.metrics.observe_http(
            this.line.method,
            route,
            status.as_u16(),
            latency.as_secs_f64(),
        );
        if let Some(echo) = this.line.echo.take() {
            response.headers_mut().insert(X_REQUEST_ID.clone(), echo);
        }
        Poll::Ready(Ok(response))
    }
}

/// The handler's future under the request timeout and the panic guard.
/// The timer is set only once the handler waits: one that answers at once
/// (a cached read) never needs it.
struct Guarded<F> {
    /// The handler's future, or the panic that routing to it raised.
    called: Result<F, Box<dyn Any + Send>>,
    limit: Duration,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = &mut *self;
        let future = match &mut this.called {
            Ok(future) => future,
            Err(panic) => return Poll::Ready(panic_response(&**panic)),
        };
        let polled = panic::catch_unwind(AssertUnwindSafe(|| Pin::new(future).poll(cx)));
        match polled {
            Ok(Poll::Ready(Ok(response))) => return Poll::Ready(response),
            Ok(Poll::Ready(Err(never))) => match never {},
            Ok(Poll::Pending) => {}
            Err(panic) => return Poll::Ready(panic_response(&*panic)),
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::warn!(limit = ?this.limit, "request timed out");
                Poll::Ready(ApiError::timeout().into_response())
            }
            Poll::Pending => Poll::Pending,
        }
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
