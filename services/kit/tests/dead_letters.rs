//! Dead letters against the real PostgreSQL and RabbitMQ: a retry budget
//! running out lands in the dead-letter queue and moves the metrics, and the
//! admin endpoints list a dead letter and replay it into exactly one effect.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use storekeeper_kit::testing::TestDatabase;
use storekeeper_kit::{
    Metrics,
    events::{
        Consumer, DeadLetters, Envelope, Event, EventMetrics, EventsConfig, Handler, HandlerError,
        Relay,
        consumer::HandlerFuture,
        dead_letter_routes::{self, Listing, Overview},
        dead_letters::Replayed,
        outbox::enqueue_envelope,
        testing::publish_raw,
    },
    testing::TestApp,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const CONSUMER: &str = "test.pings";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pinged {
    n: i32,
}

impl Event for Pinged {
    const TYPE: &'static str = "test.pinged";
}

/// Fails every delivery while `broken`: transiently, or permanently when
/// `permanent`.
#[derive(Clone)]
struct Flaky {
    broken: Arc<AtomicBool>,
    permanent: bool,
    attempts: Arc<AtomicU32>,
}

impl Handler for Flaky {
    fn handle<'a>(&'a self, conn: &'a mut PgConnection, event: &'a Envelope) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.broken.load(Ordering::SeqCst) {
                let reason = "the handler is broken".to_owned();
                return Err(if self.permanent {
                    HandlerError::Permanent(reason)
                } else {
                    HandlerError::Transient(reason)
                });
            }
            let data: Pinged = event.decode().map_err(HandlerError::Permanent)?;
            sqlx::query("INSERT INTO effects (event_id, n) VALUES ($1, $2)")
                .bind(event.id)
                .bind(data.n)
                .execute(conn)
                .await?;
            Ok(())
        })
    }
}

struct Harness {
    pool: PgPool,
    config: EventsConfig,
    metrics: Metrics,
    broken: Arc<AtomicBool>,
    attempts: Arc<AtomicU32>,
    admin: TestApp,
    _stop: tokio_util::sync::DropGuard,
}

impl Harness {
    async fn start(pool: PgPool, permanent: bool) -> Self {
        sqlx::query("CREATE TABLE effects (event_id uuid NOT NULL, n int NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let config = EventsConfig::ephemeral();
        let metrics = Metrics::new();
        let events = EventMetrics::register(&metrics);
        let broken = Arc::new(AtomicBool::new(true));
        let attempts = Arc::new(AtomicU32::new(0));
        let handler = Flaky {
            broken: broken.clone(),
            permanent,
            attempts: attempts.clone(),
        };
        let consumer = Consumer::new(
            CONSUMER,
            &[Pinged::TYPE],
            handler,
            pool.clone(),
            config.clone(),
            events.clone(),
        );
        consumer.declare().await.unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(consumer.run(shutdown.clone()));
        tokio::spawn(
            Relay::new(pool.clone(), config.clone(), events.clone()).run(shutdown.clone()),
        );
        let dead_letters = DeadLetters::new(config.clone(), events, vec![CONSUMER.to_owned()]);
        Self {
            pool,
            config,
            admin: TestApp::new(dead_letter_routes::router(dead_letters)),
            metrics,
            broken,
            attempts,
            _stop: shutdown.drop_guard(),
        }
    }

    async fn emit(&self, n: i32) -> Envelope {
        let envelope = Envelope::new(&Pinged { n }, Uuid::new_v4()).unwrap();
        let mut tx = storekeeper_kit::db::begin(&self.pool).await.unwrap();
        enqueue_envelope(&mut tx, &envelope).await.unwrap();
        tx.commit().await.unwrap();
        envelope
    }

    async fn effects(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The value of one metric line (0 when absent).
    fn metric(&self, line_prefix: &str) -> i64 {
        let text = self.metrics.encode().unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(line_prefix))
            .map_or(0, |value| value.trim().parse().unwrap())
    }

    async fn wait_for(&self, what: &str, mut done: impl AsyncFnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(self).await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

#[tokio::test]
async fn a_spent_retry_budget_lands_in_the_dead_letter_queue_and_moves_the_metrics() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::start(pool, false).await;
    let event = harness.emit(1).await;
    let dead_lettered =
        "events_dead_lettered_total{consumer=\"test.pings\",reason=\"retries_exhausted\"} ";
    harness
        .wait_for("dead-lettered", async |h| h.metric(dead_lettered) == 1)
        .await;
    assert_eq!(
        harness.attempts.load(Ordering::SeqCst),
        harness.config.max_attempts
    );
    // The depth is a gauge measured after the publish (and by a periodic
    // probe), so it follows the counter rather than moving with it.
    harness
        .wait_for("dead-letter depth measured", async |h| {
            h.metric("events_dead_letter_queue_depth{queue=\"test.pings.dlq\"} ") == 1
        })
        .await;

    let overview: Overview = harness.admin.get("/admin/dead-letters").send().await.json();
    assert_eq!(overview.queues.len(), 1);
    assert_eq!(overview.queues[0].queue, "test.pings.dlq");
    assert_eq!(overview.queues[0].depth, 1);

    let listing = harness
        .admin
        .get("/admin/dead-letters/test.pings")
        .send()
        .await;
    listing.assert_status(StatusCode::OK);
    let listing: Listing = listing.json();
    assert_eq!(listing.depth, 1);
    let letter = &listing.messages[0];
    assert_eq!(letter.event_id, Some(event.id));
    assert_eq!(letter.event_type.as_deref(), Some(Pinged::TYPE));
    assert_eq!(letter.cause.as_deref(), Some("retries_exhausted"));
    assert_eq!(letter.attempts, Some(3));
    assert!(
        letter
            .reason
            .as_deref()
            .unwrap()
            .contains("the handler is broken")
    );
    assert_eq!(letter.body["data"]["n"], 1);

    // Listing left it in place.
    let again: Listing = harness
        .admin
        .get("/admin/dead-letters/test.pings")
        .send()
        .await
        .json();
    assert_eq!(again.depth, 1);
    assert_eq!(harness.effects().await, 0);
}

#[tokio::test]
async fn a_replayed_dead_letter_takes_effect_once() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::start(pool, true).await;
    let kept = harness.emit(1).await;
    let replayed = harness.emit(2).await;
    let rejected = "events_dead_lettered_total{consumer=\"test.pings\",reason=\"rejected\"} ";
    harness
        .wait_for("both dead-lettered", async |h| h.metric(rejected) == 2)
        .await;

    // The bug is fixed; replay one of the two.
    harness.broken.store(false, Ordering::SeqCst);
    let response = harness
        .admin
        .post("/admin/dead-letters/test.pings/replay")
        .json(&json!({ "event_ids": [replayed.id] }))
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    let report: Replayed = response.json();
    assert_eq!(report.replayed, 1);
    assert_eq!(report.event_ids, [replayed.id]);
    assert_eq!(report.remaining, 1);
    harness
        .wait_for("the replay's effect", async |h| h.effects().await == 1)
        .await;

    // The same event arriving again (a replay repeated after a crash
    // between its publish and its ack) is a duplicate: still one effect.
    publish_raw(
        &harness.config,
        Pinged::TYPE,
        &serde_json::to_vec(&replayed).unwrap(),
    )
    .await;
    let duplicate = "events_consumed_total{consumer=\"test.pings\",event_type=\"test.pinged\",outcome=\"duplicate\"} ";
    harness
        .wait_for("the duplicate", async |h| h.metric(duplicate) == 1)
        .await;
    assert_eq!(harness.effects().await, 1);

    let listing: Listing = harness
        .admin
        .get("/admin/dead-letters/test.pings")
        .send()
        .await
        .json();
    assert_eq!(listing.depth, 1);
    assert_eq!(listing.messages[0].event_id, Some(kept.id));
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM effects")
        .fetch_all(&harness.pool)
        .await
        .unwrap();
    assert_eq!(ids, [replayed.id]);
}

#[tokio::test]
async fn bad_requests_get_problems() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::start(pool, true).await;
    harness
        .admin
        .get("/admin/dead-letters/nobody.here")
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    harness
        .admin
        .post("/admin/dead-letters/test.pings/replay")
        .json(&json!({ "event_ids": ["not-a-uuid"] }))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
}
