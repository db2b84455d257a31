//! The outbox, the relay and the consumer against the real PostgreSQL and
//! RabbitMQ: delivery, de-duplication, retries, dead-lettering and outages.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use storekeeper_kit::testing::TestDatabase;
use storekeeper_kit::{
    Metrics,
    events::{
        Consumer, Envelope, Event, EventMetrics, EventsConfig, Handler, HandlerError, Relay,
        consumer::HandlerFuture,
        enqueue,
        metrics::TypeLabels,
        outbox::{OutboxRow, enqueue_envelope},
        testing::{ChaosProxy, publish_raw, take_dead_letters},
    },
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pinged {
    n: i32,
}

impl Event for Pinged {
    const TYPE: &'static str = "test.pinged";
}

/// Records each event it applies; fails the first `fail_first` attempts,
/// and always fails (permanently) for `n < 0`. With `pause_on_first`, the
/// first attempt holds back everything the service sends the broker from
/// then on (its ack included) before its effect commits.
#[derive(Clone)]
struct Recorder {
    attempts: Arc<AtomicU32>,
    fail_first: u32,
    pause_on_first: Option<ChaosProxy>,
}

impl Handler for Recorder {
    fn handle<'a>(&'a self, conn: &'a mut PgConnection, event: &'a Envelope) -> HandlerFuture<'a> {
        Box::pin(async move {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let data: Pinged = event.decode().map_err(HandlerError::Permanent)?;
            if data.n < 0 {
                return Err(HandlerError::Permanent(format!("negative ping {}", data.n)));
            }
            if data.n == 99 && attempt <= 4 {
                return Err(HandlerError::Unavailable("database unreachable".into()));
            }
            if attempt <= self.fail_first {
                return Err(HandlerError::Transient(format!("flaky attempt {attempt}")));
            }
            if let (1, Some(proxy)) = (attempt, &self.pause_on_first) {
                proxy.pause();
            }
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
    events: EventMetrics,
    shutdown: CancellationToken,
    attempts: Arc<AtomicU32>,
}

impl Harness {
    async fn new(pool: PgPool, fail_first: u32) -> Self {
        Self::with_config(pool, fail_first, EventsConfig::ephemeral()).await
    }

    async fn with_config(pool: PgPool, fail_first: u32, config: EventsConfig) -> Self {
        Self::with_recorder(pool, fail_first, config, None).await
    }

    async fn with_recorder(
        pool: PgPool,
        fail_first: u32,
        config: EventsConfig,
        pause_on_first: Option<ChaosProxy>,
    ) -> Self {
        sqlx::query("CREATE TABLE effects (event_id uuid NOT NULL, n int NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let metrics = Metrics::new();
        let events = EventMetrics::register(&metrics);
        let attempts = Arc::new(AtomicU32::new(0));
        let consumer = Consumer::new(
            "test.pings",
            &[Pinged::TYPE],
            Recorder {
                attempts: attempts.clone(),
                fail_first,
                pause_on_first,
            },
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
        Self {
            pool,
            config,
            metrics,
            events,
            shutdown,
            attempts,
        }
    }

    async fn emit(&self, n: i32) -> Uuid {
        let mut tx = storekeeper_kit::db::begin(&self.pool).await.unwrap();
        let id = enqueue(&mut tx, &Pinged { n }, Uuid::new_v4())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    }

    async fn effects(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    async fn wait_for_effects(&self, expected: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.effects().await < expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {expected} effects",
                self.effects().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the relay has stamped every row and counted it. The
    /// relay stamps rows after the broker's confirm, so a consumer may well
    /// have applied an event before its row is marked sent.
    async fn wait_until_published(&self, expected: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let unpublished = self.unpublished().await;
            let counted = self
                .events
                .published
                .get_or_create(&TypeLabels {
                    event_type: "test.pinged".to_owned(),
                })
                .get();
            if unpublished == 0 && counted >= expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{unpublished} rows still unpublished, {counted} of {expected} counted"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn unpublished(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn committed_events_are_published_consumed_and_marked_sent() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, 0).await;
    for n in 0..20 {
        harness.emit(n).await;
    }
    harness.wait_for_effects(20).await;
    harness.wait_until_published(20).await;
    let text = harness.metrics.encode().unwrap();
    assert!(
        text.contains("events_published_total{event_type=\"test.pinged\"} 20"),
        "{text}"
    );
    assert!(
        text.contains("outbox_publish_lag_seconds_count 20"),
        "{text}"
    );
    harness.events.outbox_backlog.get();
}

/// The relay reads the outbox only when it may hold something new (a
/// notification, a poll tick, or a read cut short by a full pipeline), not
/// after every confirm. More rows than the pipeline holds, committed at
/// once, must still all go out on the one notification, with no poll tick
/// to fall back on.
#[tokio::test]
async fn more_rows_than_the_pipeline_holds_go_out_without_waiting_for_a_poll() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let config = EventsConfig {
        poll_interval: Duration::from_hours(1),
        ..EventsConfig::ephemeral()
    };
    let harness = Harness::with_config(pool, 0, config).await;
    let rows = 2_500;
    let mut tx = storekeeper_kit::db::begin(&harness.pool).await.unwrap();
    for n in 0..rows {
        enqueue(&mut tx, &Pinged { n }, Uuid::new_v4())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    harness.wait_for_effects(i64::from(rows)).await;
    harness
        .wait_until_published(u64::try_from(rows).unwrap())
        .await;
}

/// A state change that is one statement writes its event in that
/// statement: the row goes out when the change happened, and not when the
/// statement changed nothing.
#[tokio::test]
async fn an_event_written_in_its_state_changes_statement_goes_out_only_with_it() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, 0).await;
    sqlx::query("CREATE TABLE states (n int PRIMARY KEY)")
        .execute(&harness.pool)
        .await
        .unwrap();
    let sql = format!(
        "WITH changed AS (INSERT INTO states (n) VALUES ($1) ON CONFLICT DO NOTHING RETURNING n) {}",
        OutboxRow::insert_from("changed", 2)
    );
    for n in [1, 1, 2] {
        let row = OutboxRow::new(&Pinged { n }, Uuid::new_v4()).unwrap();
        let mut tx = storekeeper_kit::db::begin(&harness.pool).await.unwrap();
        row.bind(sqlx::query(&sql).bind(n))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&harness.pool)
        .await
        .unwrap();
    assert_eq!(rows, 2, "the repeated change wrote no second event");
    harness.wait_for_effects(2).await;
    harness.wait_until_published(2).await;
    let ns: Vec<i32> = sqlx::query_scalar("SELECT n FROM effects ORDER BY n")
        .fetch_all(&harness.pool)
        .await
        .unwrap();
    assert_eq!(ns, [1, 2]);
}

#[tokio::test]
async fn rolled_back_events_never_leave() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, 0).await;
    let mut tx = storekeeper_kit::db::begin(&harness.pool).await.unwrap();
    enqueue(&mut tx, &Pinged { n: 1 }, Uuid::new_v4())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    harness.emit(2).await;
    harness.wait_for_effects(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ns: Vec<i32> = sqlx::query_scalar("SELECT n FROM effects")
        .fetch_all(&harness.pool)
        .await
        .unwrap();
    assert_eq!(ns, [2]);
}

#[tokio::test]
async fn the_same_event_delivered_twice_has_one_effect() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, 0).await;
    let envelope = Envelope::new(&Pinged { n: 7 }, Uuid::new_v4()).unwrap();
    let body = serde_json::to_vec(&envelope).unwrap();
    publish_raw(&harness.config, Pinged::TYPE, &body).await;
    publish_raw(&harness.config, Pinged::TYPE, &body).await;
    // And once more through the outbox, as a relay crash would.
    let mut conn = harness.pool.acquire().await.unwrap();
    enqueue_envelope(&mut conn, &envelope).await.unwrap();
    drop(conn);
    harness.emit(8).await;
    harness.wait_for_effects(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(harness.effects().await, 2);
    let text = harness.metrics.encode().unwrap();
    assert!(text.contains("outcome=\"duplicate\"} 2"), "{text}");
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, 2).await;
    harness.emit(1).await;
    harness.wait_for_effects(1).await;
    assert_eq!(harness.attempts.load(Ordering::SeqCst), 3);
    assert!(
        take_dead_letters(&harness.config, "test.pings")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_with_a_reason_and_the_queue_flows() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, 0).await;
    publish_raw(&harness.config, Pinged::TYPE, b"{not json").await;
    harness.emit(-1).await;
    harness.emit(5).await;
    harness.wait_for_effects(1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut letters = Vec::new();
    while letters.len() < 2 && tokio::time::Instant::now() < deadline {
        letters.extend(take_dead_letters(&harness.config, "test.pings").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut reasons: Vec<_> = letters.iter().map(|l| l.reason.clone()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "negative ping -1");
    assert!(reasons[1].starts_with("undecodable message"), "{reasons:?}");
    assert!(letters.iter().any(|l| l.body == b"{not json"));
}

#[tokio::test]
async fn events_failing_every_attempt_end_in_the_dead_letter_queue() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, u32::MAX).await;
    harness.emit(3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = take_dead_letters(&harness.config, "test.pings").await;
        if !letters.is_empty() || tokio::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]
            .reason
            .starts_with("failed 3 attempts; last error: flaky attempt 3"),
        "{letters:?}"
    );
    assert_eq!(harness.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(harness.effects().await, 0);
}

#[tokio::test]
async fn a_broker_outage_delays_events_but_loses_none() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let proxy = ChaosProxy::start().await;
    let config = EventsConfig::ephemeral().via(&proxy.url());
    let harness = Harness::with_config(pool, 0, config).await;
    harness.emit(1).await;
    harness.wait_for_effects(1).await;

    proxy.cut();
    for n in 2..=10 {
        harness.emit(n).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(harness.effects().await < 10);
    proxy.restore();
    harness.wait_for_effects(10).await;
    harness.wait_until_published(10).await;
    let ns: Vec<i32> = sqlx::query_scalar("SELECT DISTINCT n FROM effects")
        .fetch_all(&harness.pool)
        .await
        .unwrap();
    assert_eq!(ns.len(), 10);
}

/// A service that dies after its effect commits and before its ack reaches
/// the broker: the broker hands the event out again, and the redelivery
/// finds it applied.
#[tokio::test]
async fn a_consumer_lost_between_commit_and_ack_applies_the_redelivery_once() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let proxy = ChaosProxy::start().await;
    let config = EventsConfig::ephemeral().via(&proxy.url());
    let harness = Harness::with_recorder(pool, 0, config, Some(proxy.clone())).await;
    harness.emit(1).await;
    harness.wait_for_effects(1).await;
    // The ack was held back; losing the connection now loses it for good.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();

    let duplicates = || {
        let text = harness.metrics.encode().unwrap();
        text.lines()
            .any(|line| line.contains("outcome=\"duplicate\"") && line.ends_with(" 1"))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !duplicates() && harness.effects().await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was never delivered again: {}",
            harness.metrics.encode().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.effects().await, 1, "the redelivery applied again");
    assert!(duplicates(), "{}", harness.metrics.encode().unwrap());
}

#[tokio::test]
async fn an_unreachable_database_requeues_without_using_up_attempts() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    let harness = Harness::new(pool, 0).await;
    harness.emit(99).await;
    harness.wait_for_effects(1).await;
    // Four refusals, more than max_attempts (3), and still no dead letter.
    assert_eq!(harness.attempts.load(Ordering::SeqCst), 5);
    assert!(
        take_dead_letters(&harness.config, "test.pings")
            .await
            .is_empty()
    );
    let text = harness.metrics.encode().unwrap();
    assert!(text.contains("outcome=\"requeued\"} 4"), "{text}");
}

#[tokio::test]
async fn an_unroutable_event_stays_in_the_outbox_until_its_queue_exists() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    sqlx::query("CREATE TABLE effects (event_id uuid NOT NULL, n int NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let config = EventsConfig::ephemeral();
    let metrics = Metrics::new();
    let events = EventMetrics::register(&metrics);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(Relay::new(pool.clone(), config.clone(), events.clone()).run(shutdown.clone()));

    let mut tx = storekeeper_kit::db::begin(&pool).await.unwrap();
    enqueue(&mut tx, &Pinged { n: 7 }, Uuid::new_v4())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let returned = || {
        events
            .returned
            .get_or_create(&TypeLabels {
                event_type: Pinged::TYPE.to_owned(),
            })
            .get()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while returned() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never returned");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let unpublished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unpublished, 1, "a returned event must stay in the outbox");

    // The consumer comes up late; the kept event reaches it.
    let consumer = Consumer::new(
        "test.pings",
        &[Pinged::TYPE],
        Recorder {
            attempts: Arc::new(AtomicU32::new(0)),
            fail_first: 0,
            pause_on_first: None,
        },
        pool.clone(),
        config,
        events.clone(),
    );
    tokio::spawn(consumer.run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&pool)
            .await
            .unwrap();
        if effects == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn one_relay_publishes_at_a_time_and_another_takes_over_when_it_stops() {
    let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
    let pool = database.pool.clone();
    sqlx::query("CREATE TABLE effects (event_id uuid NOT NULL, n int NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let config = EventsConfig::ephemeral();
    let metrics = Metrics::new();
    let events = EventMetrics::register(&metrics);
    let consumer = Consumer::new(
        "test.pings",
        &[Pinged::TYPE],
        Recorder {
            attempts: Arc::new(AtomicU32::new(0)),
            fail_first: 0,
            pause_on_first: None,
        },
        pool.clone(),
        config.clone(),
        events.clone(),
    );
    consumer.declare().await.unwrap();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(consumer.run(shutdown.clone()));
    let relay = || Relay::new(pool.clone(), config.clone(), events.clone());
    let emit = |n: i32| {
        let pool = pool.clone();
        async move {
            let mut tx = storekeeper_kit::db::begin(&pool).await.unwrap();
            enqueue(&mut tx, &Pinged { n }, Uuid::new_v4())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    let effects = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM effects")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let wait_for = |expected: i64| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while effects().await < expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "stuck below {expected}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let first = shutdown.child_token();
    tokio::spawn(relay().run(first.clone()));
    for n in 0..20 {
        emit(n).await;
    }
    wait_for(20).await;
    // A second relay waits while the first holds the lock...
    tokio::spawn(relay().run(shutdown.child_token()));
    for n in 20..40 {
        emit(n).await;
    }
    wait_for(40).await;
    // ...and takes it over at its next poll when the first stops.
    first.cancel();
    for n in 40..80 {
        emit(n).await;
    }
    wait_for(80).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(effects().await, 80);
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("events_published_total{event_type=\"test.pinged\"} 80"),
        "two relays published the same rows: {text}"
    );
    assert!(!text.contains("outcome=\"duplicate\""), "{text}");
}
