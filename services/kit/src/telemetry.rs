//! Logging, traces, and the request id that ties one request's log lines
//! together, across services.
//!
//! In a cluster logs are one JSON object per line (Loki reads them as they
//! are); locally they are human-readable. Every request gets an id — the
//! caller's `x-request-id` when it sent a sane one, a fresh UUID otherwise —
//! which is recorded on the request's tracing span, returned on the response,
//! and forwarded on outgoing service calls via [`RequestBuilderExt`].
//!
//! Traces follow the W3C trace context (`traceparent`, `tracestate`): the
//! server middleware continues the caller's trace (or starts one), outgoing
//! calls carry it ([`RequestBuilderExt`]), and events carry it through the
//! outbox and RabbitMQ headers to their consumers. Every JSON log line
//! inside a request or an event carries `trace_id` and `span_id`. Spans are
//! exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//! the new traces among them sampled per `OTEL_TRACES_SAMPLER_ARG`
//! ([`SampleRatio`]); log records too when `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`
//! is ([`logs`]).

use std::{collections::BTreeMap, fmt, str::FromStr};

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderName, HeaderValue, request::Parts},
};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt, TracerProvider as _},
};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::{
    logs::SdkLoggerProvider, propagation::TraceContextPropagator, trace::SdkTracerProvider,
};
use prometheus_client::metrics::counter::Counter;
use tokio::task::futures::TaskLocalFuture;
use tracing::{Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    fmt::{format::FmtSpan, writer::MakeWriter},
    layer::SubscriberExt,
    registry::LookupSpan as _,
    util::SubscriberInitExt,
};
use url::Url;

mod json;
pub mod logs;
mod resource;
mod sampling;

pub use resource::ResourceAttributes;
pub use sampling::SampleRatio;

/// The header carrying the request id.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (clusters).
    Json,
    /// Coloured, multi-field human output (local development).
    #[default]
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            _ => Err("expected `json` or `pretty`".to_owned()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
        })
    }
}

/// Why an OTLP exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The span exporter.
    #[error("cannot export traces to OTEL_EXPORTER_OTLP_ENDPOINT: {0}")]
    Traces(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The log record exporter.
    #[error("cannot export logs to OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: {0}")]
    Logs(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// How a service logs and traces; the runner takes it from the
/// [`ServiceConfig`](crate::ServiceConfig).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `service.name` of spans and log records.
    pub service_name: String,
    /// Standard output's format.
    pub format: LogFormat,
    /// OTLP/HTTP base URL spans go to (`/v1/traces` appended); none: kept in-process.
    pub traces_endpoint: Option<Url>,
    /// Full OTLP/HTTP URL log records also go to; none: standard output only.
    pub logs_endpoint: Option<Url>,
    /// Fraction of new traces sampled.
    pub sample_ratio: SampleRatio,
    /// Added to the resource of exported spans and log records.
    pub resource_attributes: ResourceAttributes,
    /// Log records held for export at most (see [`logs::QUEUE_CAPACITY`]).
    pub log_queue_capacity: usize,
}

impl Settings {
    /// `service_name` logging `format` to standard output only, every trace sampled.
    pub fn new(service_name: &str, format: LogFormat) -> Self {
        Self {
            service_name: service_name.to_owned(),
            format,
            traces_endpoint: None,
            logs_endpoint: None,
            sample_ratio: SampleRatio::ALL,
            resource_attributes: ResourceAttributes::default(),
            log_queue_capacity: logs::QUEUE_CAPACITY,
        }
    }
}

/// Keeps the tracer and logger providers alive while the service runs;
/// [`Tracing::shutdown`] flushes what is not exported yet when it stops.
#[derive(Debug)]
pub struct Tracing {
    service_name: String,
    format: LogFormat,
    tracer: SdkTracerProvider,
    logger: Option<SdkLoggerProvider>,
    dropped_log_records: Counter,
}

impl Tracing {
    /// The providers `settings` ask for: spans get real trace and span ids
    /// whether or not they leave the process, sampled per
    /// [`Settings::sample_ratio`], and go to the OTLP/HTTP endpoint in
    /// batches when one is given; log records are exported only with a
    /// logs endpoint.
    pub fn new(settings: &Settings) -> Result<Self, TracingError> {
        let resource = resource::resource(&settings.service_name, &settings.resource_attributes);
        let tracer = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(settings.sample_ratio.sampler());
        let tracer = match &settings.traces_endpoint {
            Some(endpoint) => {
                use opentelemetry_otlp::WithExportConfig as _;
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(format!(
                        "{}/v1/traces",
                        endpoint.as_str().trim_end_matches('/')
                    ))
                    .build()
                    .map_err(TracingError::Traces)?;
                tracer.with_batch_exporter(exporter)
            }
            None => tracer,
        }
        .build();
        let dropped_log_records = Counter::default();
        let logger = settings
            .logs_endpoint
            .as_ref()
            .map(|endpoint| {
                logs::provider(
                    resource,
                    endpoint,
                    settings.log_queue_capacity,
                    dropped_log_records.clone(),
                )
            })
            .transpose()
            .map_err(TracingError::Logs)?;
        Ok(Self {
            service_name: settings.service_name.clone(),
            format: settings.format,
            tracer,
            logger,
            dropped_log_records,
        })
    }

    /// The subscriber logging through these providers to `writer` (see
    /// [`subscriber`]); [`init`] installs it writing to standard output,
    /// tests install it with `tracing::subscriber::set_default`.
    pub fn subscriber<W>(&self, writer: W) -> impl Subscriber + Send + Sync + 'static + use<W>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        subscriber(
            &self.service_name,
            self.format,
            writer,
            &self.tracer,
            self.logger.as_ref(),
        )
    }

    /// Log records dropped because the export queue was full (the endpoint
    /// down or slower than the service logs); the runner registers it as
    /// `storekeeper_log_records_dropped_total`.
    pub fn dropped_log_records(&self) -> Counter {
        self.dropped_log_records.clone()
    }

    /// Exports what is still buffered and stops the exporters (blocks up to
    /// the exporters' timeout; a no-op without OTLP endpoints).
    pub fn shutdown(self) {
        if let Err(err) = self.tracer.shutdown() {
            tracing::warn!(error = %err, "flushing traces failed");
        }
        if let Some(logger) = self.logger
            && let Err(err) = logger.shutdown()
        {
            tracing::warn!(error = %err, "flushing logs failed");
        }
    }
}

/// The subscriber every service logs through, writing to `writer`:
/// `RUST_LOG` filters (default `info`), spans carry OpenTelemetry context
/// from `tracer`, JSON lines carry the trace ids, and with a `logger` every
/// event also becomes an OpenTelemetry log record (with the same ids).
fn subscriber<W>(
    service_name: &str,
    format: LogFormat,
    writer: W,
    tracer: &SdkTracerProvider,
    logger: Option<&SdkLoggerProvider>,
) -> impl Subscriber + Send + Sync + 'static + use<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // No thread name (a string copied per span) and no busy/idle times (two
    // clock reads per poll of every request): neither answers a question
    // the trace does not already.
    let otel = tracing_opentelemetry::layer()
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_tracer(tracer.tracer(service_name.to_owned()));
    let records = logger.map(OpenTelemetryTracingBridge::new);
    let output = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(json::JsonFields)
            .event_format(json::JsonLines)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_span_events(FmtSpan::NONE)
            .with_writer(writer)
            .boxed(),
    };
    Registry::default()
        .with(filter)
        .with(otel)
        .with(records)
        .with(output)
}

/// Installs the global tracing subscriber (see [`subscriber`]) and returns
/// the providers to flush at shutdown. Calling it twice is harmless (the
/// second call installs nothing), which keeps tests simple.
pub fn init(settings: &Settings) -> Result<Tracing, TracingError> {
    let tracing = Tracing::new(settings)?;
    let installed = tracing.subscriber(std::io::stdout).try_init().is_ok();
    if installed {
        tracing::info!(
            service = settings.service_name,
            log_format = %settings.format,
            traces_exported = settings.traces_endpoint.is_some(),
            logs_exported = settings.logs_endpoint.is_some(),
            trace_sample_ratio = %settings.sample_ratio,
            "logging initialised"
        );
    }
    Ok(tracing)
}

/// The subscriber of [`init`] writing JSON to `writer` with its own tracer
/// provider (no export), for tests that read log lines or trace ids back
/// (install it with `tracing::subscriber::set_default`).
#[cfg(any(test, feature = "testing"))]
pub fn test_subscriber<W>(writer: W) -> impl Subscriber + Send + Sync + 'static + use<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let provider = SdkTracerProvider::builder().build();
    subscriber("test", LogFormat::Json, writer, &provider, None)
}

/// Installs [`test_subscriber`] as the process's global subscriber, for
/// tests whose spans run on several threads; false when one already is.
#[cfg(any(test, feature = "testing"))]
pub fn init_for_tests<W>(writer: W) -> bool
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing::subscriber::set_global_default(test_subscriber(writer)).is_ok()
}

/// The trace and span ids a kit span (a request, an event) puts on every log
/// line written inside it, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceIds {
    /// 32 hex digits, shared by every span of the trace.
    pub trace_id: String,
    /// 16 hex digits, this span's.
    pub span_id: String,
}

impl TraceIds {
    fn of(context: &SpanContext) -> Option<Self> {
        context.is_valid().then(|| Self {
            trace_id: context.trace_id().to_string(),
            span_id: context.span_id().to_string(),
        })
    }

    /// The ids of `span` (none without an OpenTelemetry subscriber).
    pub fn of_span(span: &Span) -> Option<Self> {
        Self::of(span.context().span().span_context())
    }
}

/// Makes `span` a child of the remote trace `parent` works out (a new
/// trace when it carries none) and stamps its ids on the span, so log lines
/// inside it carry `trace_id` and `span_id`. Call it before entering the
/// span. A disabled span (its level filtered out) has no trace to continue,
/// so `parent` is not even called: parsing the caller's `traceparent` for
/// every request and event was wasted work at `RUST_LOG=warn`.
pub fn continue_trace(span: &Span, parent: impl FnOnce() -> Context) {
    if span.is_disabled() {
        return;
    }
    let parent = parent();
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled or already started; either
        // way there is nothing to continue.
        let _ = span.set_parent(parent);
    }
    let Some(ids) = TraceIds::of_span(span) else {
        return;
    };
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<Registry>()
            && let Some(data) = registry.span(id)
        {
            data.extensions_mut().insert(ids);
        }
    });
}

/// The W3C propagator (`traceparent`, `tracestate`).
fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// The trace context a caller sent in `traceparent`/`tracestate` (an empty
/// context when none or a malformed one came).
pub fn extract_http(headers: &HeaderMap) -> Context {
    propagator().extract(&HeaderExtractor(headers))
}

/// The current span's trace context as `traceparent` (and `tracestate`)
/// entries: what outgoing calls and events carry. Empty outside a trace.
pub fn current_trace_context() -> BTreeMap<String, String> {
    let mut carrier = BTreeMap::new();
    let context = Span::current().context();
    if context.span().span_context().is_valid() {
        propagator().inject_context(&context, &mut MapCarrier(&mut carrier));
    }
    carrier
}

/// The context that `carrier` (from [`current_trace_context`], e.g. an
/// event's AMQP headers) describes.
pub fn extract_map(carrier: &BTreeMap<String, String>) -> Context {
    let mut copy = carrier.clone();
    propagator().extract(&MapCarrier(&mut copy))
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct MapCarrier<'a>(&'a mut BTreeMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl Extractor for MapCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

tokio::task_local! {
    static CURRENT_REQUEST_ID: RequestId;
}

/// The id of the request being served. Extract it in a handler, or read it
/// anywhere inside the request's task with [`RequestId::current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The request id of the request this task is serving, if any.
    /// (Tasks spawned from a handler do not inherit it.)
    pub fn current() -> Option<Self> {
        CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
    }

    /// Runs `work` with `id` as the current request id (a consumer runs an
    /// event's handler under the id of the request that started the flow,
    /// so the events it writes carry it on).
    pub async fn scope<F: Future>(id: Option<Self>, work: F) -> F::Output {
        match id {
            Some(id) => CURRENT_REQUEST_ID.scope(id, work).await,
            None => work.await,
        }
    }

    /// `work` with this id as the current request id: [`RequestId::scope`]
    /// for a future built once per request, without an `async` wrapper's
    /// copy of it.
    pub(crate) fn within<F: Future>(self, work: F) -> TaskLocalFuture<Self, F> {
        CURRENT_REQUEST_ID.scope(self, work)
    }

    /// A fresh random id (a UUID v4). Its bytes come from the thread's
    /// seeded generator, not `Uuid::new_v4`, which asks the kernel on every
    /// call: a `getrandom` system call per request was 4 % of a cached
    /// product read's CPU (docs/performance.md).
    pub fn generate() -> Self {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        Self(
            id.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
        )
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes a caller's id only when it is short printable ASCII, so a hostile
    /// header cannot flood or forge log lines (kit's server middleware
    /// falls back to [`RequestId::generate`]).
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let sane = (1..=128).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        sane.then(|| Self(text.to_owned()))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    /// The id kit's middleware serves the request under (a fresh one
    /// without that middleware). It is read from the task, not the
    /// request's extensions: inserting it there cost every request an
    /// allocation that almost no handler used.
    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::current().unwrap_or_else(Self::generate))
    }
}

/// Forwards the current request id and trace context on outgoing service
/// calls.
pub trait RequestBuilderExt {
    /// Adds `x-request-id` from the request being served, when there is one,
    /// and `traceparent`/`tracestate` of the current span, so the callee's
    /// spans join the caller's trace.
    #[must_use]
    fn with_request_id(self) -> Self;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn with_request_id(self) -> Self {
        let builder = current_trace_context()
            .into_iter()
            .fold(self, |builder, (name, value)| builder.header(name, value));
        match RequestId::current() {
            Some(id) => builder.header(X_REQUEST_ID.as_str(), id.0),
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{Router, body::Bytes, routing::post};
    use opentelemetry::trace::{Span as _, Tracer as _};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_are_exported_over_otlp_http_when_an_endpoint_is_set() {
        let received: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
        let sink = received.clone();
        let collector = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push((content_type, body.len()));
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, collector).await });

        let tracing = Tracing::new(&Settings {
            traces_endpoint: Some(endpoint.parse().unwrap()),
            ..Settings::new("test-service", LogFormat::Json)
        })
        .unwrap();
        let mut span = tracing.tracer.tracer("test").start("checkout");
        span.end();
        tokio::task::spawn_blocking(move || tracing.shutdown())
            .await
            .unwrap();
        let received = received.lock().unwrap().clone();
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0].0, "application/x-protobuf");
        assert!(received[0].1 > 0);
    }

    #[test]
    fn without_an_endpoint_spans_still_get_ids() {
        let tracing = Tracing::new(&Settings::new("test-service", LogFormat::Json)).unwrap();
        let span = tracing.tracer.tracer("test").start("checkout");
        assert!(span.span_context().is_valid());
    }

    #[test]
    fn caller_ids_are_kept_only_when_sane() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(
            RequestId::from_header(&ok).unwrap().as_str(),
            "abc-123_x.y:z"
        );
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert!(RequestId::from_header(&value).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_disabled_span_does_not_work_out_its_parent() {
        let subscriber = tracing_subscriber::registry().with(EnvFilter::new("warn"));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            assert!(span.is_disabled());
            continue_trace(&span, || panic!("the caller's trace context was parsed"));
        });
    }

    #[test]
    fn generated_ids_are_distinct_random_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| RequestId::generate().0).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
    }

    #[test]
    fn log_format_parses() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[tokio::test]
    async fn current_id_is_scoped_to_the_task() {
        assert!(RequestId::current().is_none());
        let id = RequestId("r-1".into());
        let seen = CURRENT_REQUEST_ID
            .scope(id.clone(), async { RequestId::current() })
            .await;
        assert_eq!(seen, Some(id));
    }
}
