//! W3C trace context through the kit: an HTTP request's `traceparent` is
//! continued by the server middleware, put on every JSON log line and
//! forwarded on outgoing calls; an event written to the outbox inside that
//! trace is published with it (real PostgreSQL and RabbitMQ) and handled by
//! the consumer in a span of the same trace, under the same request id.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{Router, routing::get};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};
use storekeeper_kit::testing::TestDatabase;
use storekeeper_kit::{
    Metrics,
    events::{
        Consumer, Envelope, Event, EventMetrics, EventsConfig, Handler, Relay,
        consumer::HandlerFuture, enqueue,
    },
    telemetry::{self, RequestBuilderExt as _, RequestId, TraceIds},
    testing::TestApp,
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, Span};
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Every log line of this test binary, as the services write them (JSON).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        assert!(
            telemetry::init_for_tests(move || Capture(writer.clone())),
            "the only subscriber of this binary"
        );
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON log lines whose message is `message`.
fn lines(message: &str) -> Vec<serde_json::Value> {
    let bytes = logs().lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect(line))
        .filter(|line| line["message"] == message)
        .collect()
}

fn trace_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap()
}

/// Logs, and answers the `traceparent` an outgoing call from here carries.
async fn hop() -> String {
    tracing::info!("handling hop");
    let call = reqwest::Client::new()
        .get("http://127.0.0.1:9/next")
        .with_request_id()
        .build()
        .unwrap();
    call.headers()
        .get("traceparent")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_request_continues_the_callers_trace_in_logs_and_calls() {
    logs();
    let app = TestApp::new(Router::new().route("/hop", get(hop)));
    let response = app
        .get("/hop")
        .header("traceparent", TRACEPARENT)
        .header("x-request-id", "req-http-1")
        .send()
        .await;
    let forwarded = response.text();
    assert_eq!(trace_of(&forwarded), TRACE_ID, "{forwarded}");
    assert_ne!(
        forwarded.split('-').nth(2),
        Some("00f067aa0ba902b7"),
        "the callee's parent is this service's span, not the caller's"
    );
    let handled: Vec<_> = lines("handling hop")
        .into_iter()
        .filter(|line| line["span"]["request_id"] == "req-http-1")
        .collect();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0]["trace_id"], TRACE_ID);
    assert_eq!(
        handled[0]["span_id"],
        forwarded.split('-').nth(2).unwrap(),
        "the log line names the request's span"
    );
}

#[tokio::test]
async fn a_request_without_trace_context_starts_a_trace() {
    logs();
    let app = TestApp::new(Router::new().route("/hop", get(hop)));
    let response = app
        .get("/hop")
        .header("x-request-id", "req-http-2")
        .send()
        .await;
    let forwarded = response.text();
    let trace = trace_of(&forwarded);
    assert_eq!(trace.len(), 32);
    assert_ne!(trace, TRACE_ID);
    assert_ne!(trace, "0".repeat(32));
    let handled: Vec<_> = lines("handling hop")
        .into_iter()
        .filter(|line| line["span"]["request_id"] == "req-http-2")
        .collect();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0]["trace_id"], trace);
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Traced {
    n: i32,
}

impl Event for Traced {
    const TYPE: &'static str = "test.traced";
}

/// What the handler saw: its span's trace ids and the current request id.
type Seen = Arc<Mutex<Vec<(Option<TraceIds>, Option<RequestId>)>>>;

struct Recorder(Seen);

impl Handler for Recorder {
    fn handle<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _event: &'a Envelope,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            tracing::info!("handling traced event");
            self.0
                .lock()
                .unwrap()
                .push((TraceIds::of_span(&Span::current()), RequestId::current()));
            Ok(())
        })
    }
}

#[tokio::test]
async fn an_event_is_handled_in_the_trace_that_wrote_it() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    logs();
    let config = EventsConfig::ephemeral();
    let events = EventMetrics::register(&Metrics::new());
    let seen = Seen::default();
    let consumer = Consumer::new(
        "test.traces",
        &[Traced::TYPE],
        Recorder(seen.clone()),
        pool.clone(),
        config.clone(),
        events.clone(),
    );
    consumer.declare().await.unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(consumer.run(shutdown.clone()));
    tokio::spawn(Relay::new(pool.clone(), config, events).run(shutdown.clone()));

    // A request span continuing the caller's trace writes the event.
    let span = tracing::info_span!("request");
    telemetry::continue_trace(&span, || {
        telemetry::extract_map(&BTreeMap::from([(
            "traceparent".to_owned(),
            TRACEPARENT.to_owned(),
        )]))
    });
    let writer = TraceIds::of_span(&span).unwrap();
    let event_id = RequestId::scope(
        Some(RequestId("req-event-1".into())),
        async {
            let mut tx = storekeeper_kit::db::begin(&pool).await.unwrap();
            let id = enqueue(&mut tx, &Traced { n: 1 }, Uuid::new_v4())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            id
        }
        .instrument(span),
    )
    .await;

    let stored: (Option<Json<BTreeMap<String, String>>>, String) =
        sqlx::query_as("SELECT trace_context, payload FROM outbox WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let stored_parent = &stored.0.unwrap().0["traceparent"];
    assert_eq!(trace_of(stored_parent), TRACE_ID);
    assert!(stored_parent.contains(&writer.span_id), "{stored_parent}");
    let envelope: Envelope = serde_json::from_str(&stored.1).unwrap();
    assert_eq!(envelope.request_id.as_deref(), Some("req-event-1"));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "event never handled"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    shutdown.cancel();
    let (ids, request_id) = seen.lock().unwrap()[0].clone();
    let ids = ids.expect("the handler runs in a traced span");
    assert_eq!(ids.trace_id, TRACE_ID);
    assert_ne!(
        ids.span_id, writer.span_id,
        "the consumer has a span of its own"
    );
    assert_eq!(request_id, Some(RequestId("req-event-1".into())));
    let handled: Vec<_> = lines("handling traced event")
        .into_iter()
        .filter(|line| line["span"]["event_id"] == event_id.to_string())
        .collect();
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0]["trace_id"], TRACE_ID);
    assert_eq!(handled[0]["span_id"], ids.span_id);
    assert_eq!(handled[0]["span"]["request_id"], "req-event-1");
}
