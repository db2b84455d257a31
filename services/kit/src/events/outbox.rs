//! The transactional outbox and its relay.
//!
//! A service calls [`enqueue`] inside the transaction that changes its
//! state, or writes an [`OutboxRow`] in the very statement that changes
//! it, so the event exists if and only if the change committed. The
//! [`Relay`] publishes unpublished rows in insertion order and stamps each
//! `published_at` once the broker confirmed it. It wakes on the `outbox`
//! notification the insert trigger sends at commit, and also polls, so
//! nothing waits on a lost notification. Publishing is pipelined: rows
//! committed while earlier ones wait for their confirms go out at once
//! (the channel keeps their order), so an event never waits for another
//! event's confirm or stamp. If the broker or the database goes away, rows
//! simply stay unpublished until both are back; a crash between the confirm
//! and the stamp republishes, which consumers ignore — which is also why
//! stamps are committed without waiting for the disk.
//!
//! Each row also keeps the W3C trace context (`traceparent`, `tracestate`)
//! of the span that wrote it, which the relay publishes as AMQP headers, so
//! the consumer's handling joins the trace of the request that caused it.
//!
//! One relay per database publishes at a time (a session advisory lock held
//! on the relay's own connection; the others try again every poll
//! interval), which keeps events in commit order even with several
//! replicas.
//!
//! Events are published `mandatory`: when no queue is bound to an event's
//! type yet (a fresh broker, a consumer that has not declared its queue),
//! the broker returns it instead of confirming and dropping it, and its row
//! stays unpublished until a later round finds it a queue. An event type
//! the contract gives no consumer would go out without `mandatory` (nobody
//! waits for it, so keeping it would only grow the backlog); today every
//! type the services publish has one.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use lapin::{
    options::BasicPublishOptions,
    publisher_confirm::{Confirmation, PublisherConfirm},
    types::FieldTable,
};
use sqlx::{
    Connection, PgConnection, PgPool, Postgres,
    postgres::{PgArguments, PgListener},
    query::Query,
    types::Json,
};
use storekeeper_contract::events::ROUTES;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    EventsConfig, EventsError,
    broker::{Link, properties, text},
    envelope::{Envelope, Event},
    metrics::EventMetrics,
    topology,
};
use crate::telemetry;

/// The PostgreSQL notification channel the insert trigger signals.
pub const NOTIFY_CHANNEL: &str = "outbox";
/// Rows read per query.
const BATCH: usize = 256;
/// Most rows published and not yet confirmed; past it the relay waits for
/// confirms before reading more.
const MAX_IN_FLIGHT: usize = 1024;
/// How long a stopping relay waits for the confirms of what it published,
/// so that it stamps them instead of leaving them to be published again.
const SETTLE: Duration = Duration::from_secs(2);
/// Deletes the published rows older than the retention (7 days, kept for
/// audits); `outbox_published_idx` finds them without reading the rest.
const PRUNE: &str = "DELETE FROM outbox WHERE published_at < now() - interval '7 days'";
/// Advisory lock key (any constant; one per database).
const RELAY_LOCK: i64 = 0x0075_7462_6f78;

/// The outbox columns an event fills, in the order [`OutboxRow::bind`]
/// binds them (a macro so that `concat!` can build [`enqueue`]'s insert).
macro_rules! outbox_columns {
    () => {
        "event_id, event_type, payload, trace_context"
    };
}

/// Writes `data` as an event into the outbox, on the caller's transaction.
/// Returns the event id.
pub async fn enqueue<E: Event>(
    conn: &mut PgConnection,
    data: &E,
    correlation_id: Uuid,
) -> Result<Uuid, EventsError> {
    let row = OutboxRow::new(data, correlation_id)?;
    let id = row.event_id;
    row.insert(conn).await?;
    Ok(id)
}

/// Writes a ready-made envelope into the outbox (tests use it to publish
/// the same event twice), with the current span's trace context.
pub async fn enqueue_envelope(
    conn: &mut PgConnection,
    envelope: &Envelope,
) -> Result<(), EventsError> {
    OutboxRow::of(envelope)?.insert(conn).await
}

/// An event as the outbox row that carries it, with the current span's
/// trace context, for a state change that is one statement already: that
/// statement writes the row too ([`OutboxRow::insert_from`] as its last
/// part, the row's values bound by [`OutboxRow::bind`]), one round trip
/// fewer than an [`enqueue`] after it.
#[derive(Debug)]
pub struct OutboxRow {
    event_id: Uuid,
    event_type: String,
    payload: String,
    trace_context: Option<Json<BTreeMap<String, String>>>,
}

impl OutboxRow {
    /// The row for `data`, an event of the flow `correlation_id`.
    pub fn new<E: Event>(data: &E, correlation_id: Uuid) -> Result<Self, EventsError> {
        Self::of(&Envelope::new(data, correlation_id)?)
    }

    fn of(envelope: &Envelope) -> Result<Self, EventsError> {
        let trace = telemetry::current_trace_context();
        Ok(Self {
            event_id: envelope.id,
            event_type: envelope.event_type.clone(),
            payload: serde_json::to_string(envelope)?,
            trace_context: (!trace.is_empty()).then_some(Json(trace)),
        })
    }

    /// The statement part that writes a row from the result of `from`, a
    /// data-modifying CTE of the caller's statement: the row goes in only
    /// if `from` returned a row, with its values bound as parameters
    /// `$first` to `$first + 3` (by [`OutboxRow::bind`], after the
    /// statement's own `first - 1`).
    pub fn insert_from(from: &str, first: usize) -> String {
        format!(
            "INSERT INTO outbox ({}) SELECT ${first}, ${}, ${}, ${} FROM {from}",
            outbox_columns!(),
            first + 1,
            first + 2,
            first + 3
        )
    }

    /// Binds the row's four values as the next parameters of `query`, in
    /// the order [`OutboxRow::insert_from`] names their columns.
    pub fn bind(self, query: Query<'_, Postgres, PgArguments>) -> Query<'_, Postgres, PgArguments> {
        query
            .bind(self.event_id)
            .bind(self.event_type)
            .bind(self.payload)
            .bind(self.trace_context)
    }

    async fn insert(self, conn: &mut PgConnection) -> Result<(), EventsError> {
        const INSERT: &str = concat!(
            "INSERT INTO outbox (",
            outbox_columns!(),
            ") VALUES ($1, $2, $3, $4)"
        );
        self.bind(sqlx::query(INSERT)).execute(conn).await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    event_type: String,
    payload: String,
    trace_context: Option<Json<BTreeMap<String, String>>>,
    created_at: DateTime<Utc>,
}

impl Row {
    /// The row's trace context as AMQP headers (none for rows written
    /// outside a trace or before the column existed).
    fn headers(&self) -> FieldTable {
        let mut headers = FieldTable::default();
        for (name, value) in self.trace_context.iter().flat_map(|Json(map)| map) {
            headers.insert(name.as_str().into(), text(value.clone()));
        }
        headers
    }
}

/// True unless the contract says no queue consumes `event_type`: events a
/// consumer waits for must reach a queue or stay in the outbox.
fn must_be_routed(event_type: &str) -> bool {
    ROUTES
        .iter()
        .find(|route| route.key == event_type)
        .is_none_or(|route| !route.queues.is_empty())
}

/// A row published and waiting for the broker's confirm.
struct Sent {
    row: Row,
    confirm: PublisherConfirm,
}

/// What the leading relay has published but not stamped yet, oldest first,
/// and what the broker returned for want of a queue.
#[derive(Default)]
struct Pipeline {
    sent: VecDeque<Sent>,
    /// Ids returned this poll period: published again after the next poll
    /// tick, not on every notification.
    returned: Vec<i64>,
}

impl Pipeline {
    /// Ids the next read must skip: in flight, or returned this period.
    fn skipped(&self) -> Vec<i64> {
        self.sent
            .iter()
            .map(|sent| sent.row.id)
            .chain(self.returned.iter().copied())
            .collect()
    }

    /// The oldest publish's confirm; pending while nothing is in flight.
    async fn next_confirm(&mut self) -> lapin::Result<Confirmation> {
        match self.sent.front_mut() {
            Some(front) => (&mut front.confirm).await,
            None => std::future::pending().await,
        }
    }

    /// The oldest publish (whose confirm `first` is) and every later one
    /// whose confirm has already arrived, in publish order.
    fn confirmed(
        &mut self,
        first: lapin::Result<Confirmation>,
    ) -> Vec<(Row, lapin::Result<Confirmation>)> {
        let mut done = Vec::new();
        if let Some(sent) = self.sent.pop_front() {
            done.push((sent.row, first));
        }
        while let Some(front) = self.sent.front_mut() {
            let Some(confirmation) = (&mut front.confirm).now_or_never() else {
                break;
            };
            if let Some(sent) = self.sent.pop_front() {
                done.push((sent.row, confirmation));
            }
        }
        done
    }
}

/// Publishes the outbox. Run one per service with [`Relay::run`].
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    config: EventsConfig,
    metrics: EventMetrics,
}

impl Relay {
    /// A relay for the outbox in `pool`'s database.
    pub fn new(pool: PgPool, config: EventsConfig, metrics: EventMetrics) -> Self {
        Self {
            pool,
            config,
            metrics,
        }
    }

    /// Publishes until `shutdown` fires; never returns an error, because
    /// outages are waited out. A replica that does not hold the relay lock
    /// tries again every poll interval.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = self.listen().await;
        let mut link: Option<Link> = None;
        let mut gauges = Gauges::default();
        let mut delay = super::broker::MIN_BACKOFF;
        while !shutdown.is_cancelled() {
            if link.is_none() {
                link = self.connect(&shutdown).await;
            }
            let mut failed = false;
            if let Some(open) = &link {
                match self
                    .lead(open, listener.as_mut(), &mut gauges, &shutdown)
                    .await
                {
                    Ok(()) => delay = super::broker::MIN_BACKOFF,
                    Err(err) => {
                        tracing::warn!(error = %err, retry_in = ?delay, "outbox relay failed; retrying");
                        failed = true;
                        if matches!(err, EventsError::Amqp(_) | EventsError::NotConfirmed(_))
                            && let Some(old) = link.take()
                        {
                            old.close().await;
                        }
                    }
                }
            }
            self.update_gauges_when_due(&mut gauges).await;
            let wait = if failed {
                delay
            } else {
                self.config.poll_interval
            };
            if failed {
                delay = (delay * 2).min(super::broker::MAX_BACKOFF);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(open) = link {
            open.close().await;
        }
        tracing::info!("outbox relay stopped");
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "cannot LISTEN for outbox; polling"))
            .ok()?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .inspect_err(|err| tracing::warn!(error = %err, "cannot LISTEN for outbox; polling"))
            .ok()?;
        Some(listener)
    }

    async fn connect(&self, shutdown: &CancellationToken) -> Option<Link> {
        let link = Link::open_with_retry(&self.config.amqp_url, "outbox-relay", shutdown).await?;
        match topology::declare_exchanges(&link.channel, &self.config).await {
            Ok(()) => Some(link),
            Err(err) => {
                tracing::warn!(error = %err, "declaring exchanges failed");
                link.close().await;
                None
            }
        }
    }

    /// A connection of its own holding the relay lock, or `None` when
    /// another relay holds it. The lock lives as long as the connection, so
    /// a relay that dies (or loses its database) hands it over at once.
    /// Stamps on it are committed asynchronously: a stamp lost in a crash
    /// only publishes its events again, which consumers ignore.
    async fn take_lead(&self) -> Result<Option<PgConnection>, EventsError> {
        let mut conn = self.pool.acquire().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *conn)
            .await?;
        if !locked {
            return Ok(None);
        }
        let mut conn = conn.detach();
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut conn)
            .await?;
        Ok(Some(conn))
    }

    /// While this relay holds the lock: publishes new rows as soon as they
    /// are committed, without waiting for earlier publishes' confirms, and
    /// stamps rows as their confirms arrive. Returns when another relay
    /// leads or `shutdown` fires; an error ends the lead (the rows in
    /// flight are published again by the next one).
    async fn lead(
        &self,
        link: &Link,
        mut listener: Option<&mut PgListener>,
        gauges: &mut Gauges,
        shutdown: &CancellationToken,
    ) -> Result<(), EventsError> {
        let Some(mut conn) = self.take_lead().await? else {
            return Ok(());
        };
        let mut pipeline = Pipeline::default();
        let mut poll = tokio::time::interval(self.config.poll_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Whether the outbox may hold rows this relay has not read: at the
        // start, after a notification or a poll tick, and while the last
        // read stopped for want of room in the pipeline. A confirm alone
        // brings no new row, so it costs no read.
        let mut unread = true;
        loop {
            if unread {
                unread = self.publish_new(&mut conn, link, &mut pipeline).await? == Read::Partly;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                first = pipeline.next_confirm() => {
                    let done = pipeline.confirmed(first);
                    self.stamp(&mut conn, &mut pipeline, done).await?;
                }
                () = notified(listener.as_deref_mut(), self.config.poll_interval) => unread = true,
                _ = poll.tick() => {
                    pipeline.returned.clear();
                    unread = true;
                    self.update_gauges_when_due(gauges).await;
                }
            }
        }
        let settled = tokio::time::timeout(SETTLE, async {
            while !pipeline.sent.is_empty() {
                let first = pipeline.next_confirm().await;
                let done = pipeline.confirmed(first);
                self.stamp(&mut conn, &mut pipeline, done).await?;
            }
            Ok::<_, EventsError>(())
        })
        .await;
        if let Ok(Err(err)) = settled {
            tracing::warn!(error = %err, "outbox relay could not stamp its last publishes");
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// Publishes every committed row not yet in flight, oldest first, up to
    /// [`MAX_IN_FLIGHT`] unconfirmed; says whether it read them all.
    async fn publish_new(
        &self,
        conn: &mut PgConnection,
        link: &Link,
        pipeline: &mut Pipeline,
    ) -> Result<Read, EventsError> {
        loop {
            let room = MAX_IN_FLIGHT.saturating_sub(pipeline.sent.len()).min(BATCH);
            if room == 0 {
                return Ok(Read::Partly);
            }
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, event_id, event_type, payload, trace_context, created_at FROM outbox \
                 WHERE published_at IS NULL AND NOT (id = ANY($1)) ORDER BY id LIMIT $2",
            )
            .bind(pipeline.skipped())
            .bind(i64::try_from(room).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
            let fetched = rows.len();
            for row in rows {
                let options = BasicPublishOptions {
                    mandatory: must_be_routed(&row.event_type),
                    ..BasicPublishOptions::default()
                };
                let confirm = link
                    .channel
                    .basic_publish(
                        &self.config.exchange,
                        &row.event_type,
                        options,
                        row.payload.as_bytes(),
                        properties(row.event_id, &row.event_type, row.headers()),
                    )
                    .await?;
                pipeline.sent.push_back(Sent { row, confirm });
            }
            if fetched < room {
                return Ok(Read::All);
            }
        }
    }

    /// Stamps the confirmed rows of `done` (keeping returned ones for the
    /// next poll); a negative confirm is an error, after the rows before it
    /// were stamped.
    async fn stamp(
        &self,
        conn: &mut PgConnection,
        pipeline: &mut Pipeline,
        done: Vec<(Row, lapin::Result<Confirmation>)>,
    ) -> Result<(), EventsError> {
        let mut routed = Vec::with_capacity(done.len());
        let mut returned = Vec::new();
        let mut failure = None;
        for (row, confirmation) in done {
            match confirmation {
                Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => routed.push(row),
                Ok(Confirmation::Ack(Some(_))) => returned.push(row),
                Ok(Confirmation::Nack(_)) => {
                    failure = Some(EventsError::NotConfirmed(row.event_id));
                    break;
                }
                Err(err) => {
                    failure = Some(err.into());
                    break;
                }
            }
        }
        let ids: Vec<i64> = routed.iter().map(|row| row.id).collect();
        sqlx::query("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
        pipeline.returned.extend(returned.iter().map(|row| row.id));
        self.count_returned(returned.iter());
        self.count_published(&routed);
        failure.map_or(Ok(()), Err)
    }

    /// Counts and logs events the broker could not route; they stay in the
    /// outbox.
    fn count_returned<'a>(&self, rows: impl Iterator<Item = &'a Row>) {
        for row in rows {
            self.metrics
                .returned
                .get_or_create(&super::metrics::TypeLabels {
                    event_type: row.event_type.clone(),
                })
                .inc();
            tracing::warn!(
                event_id = %row.event_id,
                event_type = %row.event_type,
                "no queue is bound for this event yet; it stays in the outbox and is published again"
            );
        }
    }

    fn count_published(&self, rows: &[Row]) {
        let now = Utc::now();
        for row in rows {
            self.metrics
                .published
                .get_or_create(&super::metrics::TypeLabels {
                    event_type: row.event_type.clone(),
                })
                .inc();
            let lag = (now - row.created_at).to_std().unwrap_or_default();
            self.metrics.outbox_lag.observe(lag.as_secs_f64());
        }
        tracing::debug!(count = rows.len(), "published outbox events");
    }

    /// Measures the backlog and prunes old rows, at most once a second.
    async fn update_gauges_when_due(&self, gauges: &mut Gauges) {
        if gauges
            .last
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        gauges.last = Some(Instant::now());
        let stats: Result<(i64, Option<f64>), _> = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))::float8 \
             FROM outbox WHERE published_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await;
        match stats {
            Ok((backlog, age)) => {
                self.metrics.outbox_backlog.set(backlog);
                self.metrics.outbox_oldest_age.set(age.unwrap_or(0.0));
            }
            Err(err) => tracing::warn!(error = %err, "cannot measure the outbox"),
        }
        let pruned = sqlx::query(PRUNE).execute(&self.pool).await;
        if let Err(err) = pruned {
            tracing::warn!(error = %err, "cannot prune the outbox");
        }
    }
}

/// How far a relay's read of the outbox got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// Every unpublished row committed before the read is in flight.
    All,
    /// The pipeline filled first: more rows may wait.
    Partly,
}

/// When the relay last measured the outbox.
#[derive(Default)]
struct Gauges {
    last: Option<Instant>,
}

/// Returns when an outbox notification arrives, having taken every other
/// one already received (one read covers them all); never without a
/// listener (the relay's poll tick covers that), and after `pause` when the
/// LISTEN connection failed (sqlx reconnects on the next wait; meanwhile,
/// poll).
async fn notified(listener: Option<&mut PgListener>, pause: Duration) {
    match listener {
        Some(listener) => match listener.recv().await {
            Ok(_) => while listener.next_buffered().is_some() {},
            Err(err) => {
                tracing::warn!(error = %err, "outbox LISTEN connection lost");
                tokio::time::sleep(pause).await;
            }
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use storekeeper_contract::events::ROUTES;

    use super::{PRUNE, must_be_routed};
    use crate::testing::TestDatabase;

    #[test]
    fn only_events_nobody_consumes_may_go_unrouted() {
        for route in ROUTES {
            assert_eq!(
                must_be_routed(route.key),
                !route.queues.is_empty(),
                "{}",
                route.key
            );
        }
        assert!(must_be_routed("test.unknown"));
    }

    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

    /// The prune reads only the rows it deletes: with an index on
    /// `published_at` the planner can answer it without a sequential scan
    /// of the outbox (it may still choose one for a small table, so the
    /// test forbids them to see whether an index can serve it).
    #[tokio::test]
    async fn the_prune_reads_the_expired_rows_from_an_index() {
        let database = TestDatabase::for_kit(Some(&MIGRATOR)).await;
        let mut tx = crate::db::begin(&database.pool).await.unwrap();
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {PRUNE}"))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("outbox_published_idx"), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        tx.rollback().await.unwrap();
        database.drop_database().await;
    }
}
