//! Log records over OTLP/HTTP (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`) against
//! a real HTTP receiver decoding the protobuf body, as Loki's OTLP endpoint
//! does: a line logged while serving a request arrives with the Store's
//! resource attributes and the request's trace id; an endpoint that never
//! answers neither slows requests down nor makes the service hold more
//! than its queue's worth of records (the rest are dropped and counted).

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    http::StatusCode,
    routing::{get, post},
};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest, common::v1::any_value::Value,
    logs::v1::LogRecord, resource::v1::Resource,
};
use prost::Message as _;
use storekeeper_kit::{
    Metrics,
    telemetry::{LogFormat, Settings, Tracing},
    testing::TestApp,
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const MESSAGE: &str = "reserving stock";

/// A service route that logs one line.
fn app(metrics: Metrics) -> TestApp {
    let router = Router::new().route(
        "/work",
        get(|| async {
            tracing::info!(items = 3, "{MESSAGE}");
            "done"
        }),
    );
    TestApp::with_metrics(router, metrics)
}

/// What the receiver decoded, one entry per POST.
type Received = Arc<Mutex<Vec<ExportLogsServiceRequest>>>;

/// An OTLP/HTTP logs receiver on a free port: its URL and what it got.
async fn receiver() -> (url::Url, Received) {
    let received = Received::default();
    let sink = received.clone();
    let router = Router::new().route(
        "/otlp/v1/logs",
        post(move |body: Bytes| async move {
            let request = ExportLogsServiceRequest::decode(body).expect("an OTLP protobuf body");
            sink.lock().unwrap().push(request);
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/otlp/v1/logs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url.parse().unwrap(), received)
}

/// The string attributes of `resource`.
fn attributes(resource: &Resource) -> Vec<(String, String)> {
    resource
        .attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(value) => Some((kv.key.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

fn body(record: &LogRecord) -> Option<&str> {
    match record.body.as_ref()?.value.as_ref()? {
        Value::StringValue(text) => Some(text),
        _ => None,
    }
}

/// The records with [`MESSAGE`] received so far, with their resource.
fn messages(received: &Received) -> Vec<(Vec<(String, String)>, LogRecord)> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|request| &request.resource_logs)
        .flat_map(|logs| {
            let resource = logs.resource.as_ref().map(attributes).unwrap_or_default();
            logs.scope_logs
                .iter()
                .flat_map(|scope| &scope.log_records)
                .filter(|record| body(record) == Some(MESSAGE))
                .map(move |record| (resource.clone(), record.clone()))
        })
        .collect()
}

fn trace_id(record: &LogRecord) -> String {
    TraceId::from_bytes(record.trace_id.clone().try_into().unwrap()).to_string()
}

fn span_id(record: &LogRecord) -> String {
    SpanId::from_bytes(record.span_id.clone().try_into().unwrap()).to_string()
}

#[tokio::test]
async fn a_logged_line_arrives_with_the_resource_and_the_requests_trace_id() {
    let (endpoint, received) = receiver().await;
    let telemetry = Tracing::new(&Settings {
        logs_endpoint: Some(endpoint),
        resource_attributes: "k8s.namespace.name=shop,service.namespace=main"
            .parse()
            .unwrap(),
        ..Settings::new("order-service", LogFormat::Json)
    })
    .unwrap();
    let subscriber = tracing::subscriber::set_default(telemetry.subscriber(std::io::sink));
    app(Metrics::new())
        .get("/work")
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .assert_status(StatusCode::OK);
    drop(subscriber);

    let deadline = Instant::now() + Duration::from_secs(15);
    while messages(&received).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let messages = messages(&received);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (resource, record) = &messages[0];
    for expected in [
        ("service.name", "order-service"),
        ("k8s.namespace.name", "shop"),
        ("service.namespace", "main"),
    ] {
        assert!(
            resource.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {resource:?}"
        );
    }
    assert_eq!(trace_id(record), TRACE_ID);
    assert_ne!(
        span_id(record),
        "00f067aa0ba902b7",
        "the service's request span, a child of the caller's"
    );
    assert_eq!(record.severity_text, "INFO");
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_endpoint_that_never_answers_blocks_no_request_and_bounds_what_is_held() {
    const CAPACITY: usize = 16;
    const REQUESTS: u64 = 300;
    // Connections complete in the backlog, requests are written, and no
    // answer ever comes: the exporter waits for its timeout.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/otlp/v1/logs", black_hole.local_addr().unwrap());
    let telemetry = Tracing::new(&Settings {
        logs_endpoint: Some(endpoint.parse().unwrap()),
        log_queue_capacity: CAPACITY,
        ..Settings::new("order-service", LogFormat::Json)
    })
    .unwrap();
    let metrics = Metrics::new();
    let dropped = metrics.register(
        "storekeeper_log_records_dropped",
        "Log records not exported",
        telemetry.dropped_log_records(),
    );
    let app = app(metrics.clone());
    let subscriber = tracing::subscriber::set_default(telemetry.subscriber(std::io::sink));
    let started = Instant::now();
    for _ in 0..REQUESTS {
        app.get("/work").send().await.assert_status(StatusCode::OK);
    }
    let elapsed = started.elapsed();
    drop(subscriber);

    assert!(
        elapsed < Duration::from_secs(5),
        "{REQUESTS} requests took {elapsed:?}: logging waited for the endpoint"
    );
    // Every request logged at least one record; at most CAPACITY are held.
    let dropped = dropped.get();
    assert!(
        dropped >= REQUESTS - CAPACITY as u64,
        "only {dropped} of at least {REQUESTS} records dropped"
    );
    assert!(
        metrics
            .encode()
            .unwrap()
            .contains(&format!("storekeeper_log_records_dropped_total {dropped}")),
    );
    // Resetting the hanging connections lets the exporter give up now.
    drop(black_hole);
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}
