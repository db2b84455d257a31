//! The transactional outbox and its relay.
//!
//! A service calls [`enqueue`] inside the transaction that changes its
//! state, so the event exists if and only if the change committed. The
//! [`Relay`] publishes unpublished rows in insertion order, waits for the
//! broker's confirms, then stamps them `published_at`. It wakes on the
//! `outbox` notification the insert trigger sends at commit, and also polls,
//! so nothing waits on a lost notification. If the broker or the database
//! goes away, rows simply stay unpublished until both are back; a crash
//! between the confirm and the stamp republishes, which consumers ignore.
//!
//! One relay per database publishes at a time (a transaction-scoped advisory
//! lock), which keeps events in commit order even with several replicas.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use lapin::{options::BasicPublishOptions, types::FieldTable};
use sqlx::{PgConnection, PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    EventsConfig, EventsError,
    broker::{Link, properties},
    envelope::{Envelope, Event},
    metrics::EventMetrics,
    topology,
};

/// The PostgreSQL notification channel the insert trigger signals.
pub const NOTIFY_CHANNEL: &str = "outbox";
/// Rows published per round trip.
const BATCH: i64 = 256;
/// Published rows are kept this long (for audits), then pruned.
const RETENTION: &str = "7 days";
/// Advisory lock key (any constant; one per database).
const RELAY_LOCK: i64 = 0x0075_7462_6f78;

/// Writes `data` as an event into the outbox, on the caller's transaction.
/// Returns the event id.
pub async fn enqueue<E: Event>(
    conn: &mut PgConnection,
    data: &E,
    correlation_id: Uuid,
) -> Result<Uuid, EventsError> {
    let envelope = Envelope::new(data, correlation_id)?;
    enqueue_envelope(conn, &envelope).await?;
    Ok(envelope.id)
}

/// Writes a ready-made envelope into the outbox (tests use it to publish
/// the same event twice).
pub async fn enqueue_envelope(
    conn: &mut PgConnection,
    envelope: &Envelope,
) -> Result<(), EventsError> {
    let payload = serde_json::to_string(envelope)?;
    sqlx::query("INSERT INTO outbox (event_id, event_type, payload) VALUES ($1, $2, $3)")
        .bind(envelope.id)
        .bind(&envelope.event_type)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    event_id: Uuid,
    event_type: String,
    payload: String,
    created_at: DateTime<Utc>,
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
    /// outages are waited out.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = self.listen().await;
        let mut link: Option<Link> = None;
        let mut last_gauges: Option<Instant> = None;
        let mut delay = super::broker::MIN_BACKOFF;
        while !shutdown.is_cancelled() {
            if link.is_none() {
                link = self.connect(&shutdown).await;
            }
            let mut failed = false;
            if let Some(open) = &link {
                match self.drain(open).await {
                    Ok(_) => delay = super::broker::MIN_BACKOFF,
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
            if last_gauges.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                self.update_gauges().await;
                last_gauges = Some(Instant::now());
            }
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
                () = wait_for_notification(listener.as_mut(), wait) => {}
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

    /// Publishes every unpublished row; returns how many.
    pub async fn drain(&self, link: &Link) -> Result<usize, EventsError> {
        let mut total = 0;
        loop {
            let published = self.publish_batch(link).await?;
            total += published;
            if published < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(total);
            }
        }
    }

    async fn publish_batch(&self, link: &Link) -> Result<usize, EventsError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, event_id, event_type, payload, created_at FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Send the whole batch, then collect the confirms: one round trip
        // instead of one per event, and the broker keeps the order.
        let mut confirms = Vec::with_capacity(rows.len());
        for row in &rows {
            let confirm = link
                .channel
                .basic_publish(
                    &self.config.exchange,
                    &row.event_type,
                    BasicPublishOptions::default(),
                    row.payload.as_bytes(),
                    properties(row.event_id, &row.event_type, FieldTable::default()),
                )
                .await?;
            confirms.push(async move {
                let confirmation = confirm.await?;
                if confirmation.is_nack() {
                    return Err(EventsError::NotConfirmed(row.event_id));
                }
                Ok::<_, EventsError>(())
            });
        }
        try_join_all(confirms).await?;
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        sqlx::query("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let now = Utc::now();
        for row in &rows {
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
        Ok(rows.len())
    }

    async fn update_gauges(&self) {
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
        let pruned = sqlx::query(&format!(
            "DELETE FROM outbox WHERE published_at < now() - interval '{RETENTION}'"
        ))
        .execute(&self.pool)
        .await;
        if let Err(err) = pruned {
            tracing::warn!(error = %err, "cannot prune the outbox");
        }
    }
}

/// Waits for an outbox notification or `timeout`, whichever comes first.
async fn wait_for_notification(listener: Option<&mut PgListener>, timeout: Duration) {
    match listener {
        Some(listener) => {
            if let Ok(Err(err)) = tokio::time::timeout(timeout, listener.recv()).await {
                // sqlx reconnects on the next recv; meanwhile, poll.
                tracing::warn!(error = %err, "outbox LISTEN connection lost");
                tokio::time::sleep(timeout).await;
            }
        }
        None => tokio::time::sleep(timeout).await,
    }
}
