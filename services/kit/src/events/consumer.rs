//! Consuming events: effect and de-duplication in one transaction, ack
//! after commit, bounded retries with backoff, then a dead-letter queue.
//!
//! For each delivery the consumer opens a transaction, records the event id
//! in `processed_events` (a repeat finds it there and is acknowledged with no
//! effect), runs the [`Handler`] on the same transaction, commits, and only
//! then acknowledges. A crash anywhere before the commit leaves no trace and
//! the broker redelivers; a crash after it finds the id on redelivery.
//!
//! A failing delivery is re-published to the consumer's retry queue for its
//! backoff (one queue per delay, whose message TTL is the delay) and returns
//! to the queue when it expires; after `max_attempts`, or at once for a
//! [`HandlerError::Permanent`] or an undecodable message, it goes to the
//! dead-letter queue with the reason in the `x-death-reason` header, counted
//! in `events_dead_lettered_total` by cause. Either way the original is
//! acknowledged, so a poison message never blocks the queue. When the
//! database itself is unreachable the delivery is returned to the queue
//! after a pause instead, without using up an attempt: an outage delays
//! events, never buries them.
//!
//! Each delivery is handled in an `event` span that continues the trace in
//! the message's `traceparent`/`tracestate` headers (a new trace without
//! them), under the envelope's request id, so the handler's log lines and
//! the events it writes belong to the flow that caused it.
//!
//! While consuming, the consumer measures its dead-letter queue's depth
//! every [`DEPTH_INTERVAL`] (and after each dead letter) into
//! `events_dead_letter_queue_depth`; [`super::dead_letters`] lists and
//! replays what waits there.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use futures::TryStreamExt;
use lapin::{
    Channel,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions},
    types::{AMQPValue, FieldTable},
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    db,
    telemetry::{self, RequestId},
};

use super::{
    EventsConfig, EventsError,
    broker::{Link, header_int, keep_trace_context, publish_confirmed, text, trace_context},
    envelope::Envelope,
    metrics::EventMetrics,
    topology,
};

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Retrying may help (database hiccup): retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (malformed data): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
    /// A dependency is down (the database is unreachable): the delivery
    /// goes back to the queue after a pause without using up an attempt,
    /// so an outage of any length dead-letters nothing.
    #[error("{0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(format!("database unreachable: {err}")),
            other => Self::Transient(format!("database: {other}")),
        }
    }
}

impl From<EventsError> for HandlerError {
    fn from(err: EventsError) -> Self {
        match err {
            EventsError::Encode(err) => Self::Permanent(format!("encoding: {err}")),
            EventsError::Db(err) => err.into(),
            other => Self::Transient(other.to_string()),
        }
    }
}

/// How often a consumer measures its dead-letter queue's depth.
pub const DEPTH_INTERVAL: Duration = Duration::from_secs(15);

/// Why an event was dead-lettered: the `cause` label of
/// `events_dead_lettered_total` and the `x-death-cause` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathCause {
    /// The message is not an event envelope.
    Undecodable,
    /// The handler said retrying cannot help ([`HandlerError::Permanent`]).
    Rejected,
    /// Every attempt failed with [`HandlerError::Transient`].
    RetriesExhausted,
}

impl DeathCause {
    /// The label and header value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::Rejected => "rejected",
            Self::RetriesExhausted => "retries_exhausted",
        }
    }
}

/// A boxed future borrowing the handler's transaction.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// Applies one event inside the consumer's transaction. Everything it writes
/// on `conn` (including [`super::enqueue`]d events) commits with the
/// processed-event record, or not at all.
pub trait Handler: Send + Sync + 'static {
    /// Applies `event`.
    fn handle<'a>(&'a self, conn: &'a mut PgConnection, event: &'a Envelope) -> HandlerFuture<'a>;

    /// Runs after the effect of `event` committed (best-effort side work
    /// such as cache invalidation, which must not hold the transaction's
    /// locks and must not run before the commit). Default: nothing.
    fn committed<'a>(
        &'a self,
        event: &'a Envelope,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let _ = event;
        Box::pin(std::future::ready(()))
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect was committed.
    Processed,
    /// The event had been processed before; nothing was done.
    Duplicate,
    /// Sent to the retry queue.
    Retried,
    /// Sent to the dead-letter queue.
    DeadLettered,
    /// Returned to the queue untouched (a dependency is down).
    Requeued,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
            Self::Requeued => "requeued",
        }
    }
}

/// `config` with its prefetch cut to half the pool: every delivery in
/// flight holds a connection for its transaction, and the API, the relay
/// and the background tasks need the other half (`EVENTS_PREFETCH` 32 over
/// `DATABASE_MAX_CONNECTIONS` 10 would starve them).
fn within_pool(config: EventsConfig, pool: &PgPool) -> EventsConfig {
    let half = u16::try_from(pool.options().get_max_connections() / 2)
        .unwrap_or(u16::MAX)
        .max(1);
    EventsConfig {
        prefetch: config.prefetch.min(half),
        ..config
    }
}

/// One consumer: a durable queue bound to some event types, and a handler.
#[derive(Clone)]
pub struct Consumer {
    name: String,
    routing_keys: Vec<&'static str>,
    handler: Arc<dyn Handler>,
    pool: PgPool,
    config: EventsConfig,
    metrics: EventMetrics,
}

impl Consumer {
    /// A consumer called `name` (`<service>.<purpose>`, also its queue name
    /// and its key in `processed_events`) for events of `routing_keys`,
    /// holding at most half of `pool` (see [`within_pool`]).
    pub fn new(
        name: impl Into<String>,
        routing_keys: &[&'static str],
        handler: impl Handler,
        pool: PgPool,
        config: EventsConfig,
        metrics: EventMetrics,
    ) -> Self {
        Self {
            name: name.into(),
            routing_keys: routing_keys.to_vec(),
            handler: Arc::new(handler),
            config: within_pool(config, &pool),
            pool,
            metrics,
        }
    }

    fn queue(&self) -> String {
        self.config.queue_name(&self.name)
    }

    /// Declares the topology (so events published before the first
    /// consume are queued); `run` does it too, on every reconnect.
    pub async fn declare(&self) -> Result<(), EventsError> {
        let link = Link::open(&self.config.amqp_url, &self.name).await?;
        let result = topology::declare_consumer(
            &link.channel,
            &self.config,
            &self.queue(),
            &self.routing_keys,
        )
        .await;
        link.close().await;
        result
    }

    /// Consumes until `shutdown` fires, reconnecting after broker outages.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut delay = super::broker::MIN_BACKOFF;
        while let Some(link) =
            Link::open_with_retry(&self.config.amqp_url, &self.name, &shutdown).await
        {
            match self.consume(&link, &shutdown).await {
                Ok(()) => {
                    link.close().await;
                    break;
                }
                Err(err) => {
                    tracing::warn!(consumer = %self.name, error = %err, retry_in = ?delay, "consumer lost its channel");
                    link.close().await;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(super::broker::MAX_BACKOFF);
        }
        tracing::info!(consumer = %self.name, "consumer stopped");
    }

    async fn consume(&self, link: &Link, shutdown: &CancellationToken) -> Result<(), EventsError> {
        let queue = self.queue();
        topology::declare_consumer(&link.channel, &self.config, &queue, &self.routing_keys).await?;
        link.channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let deliveries = link
            .channel
            .basic_consume(
                &queue,
                &self.name,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(consumer = %self.name, %queue, "consuming");
        let channel = &link.channel;
        let work = deliveries
            .map_err(EventsError::from)
            .try_for_each_concurrent(usize::from(self.config.prefetch), |delivery| async move {
                self.deliver(channel, delivery).await
            });
        let watch_depth = async {
            loop {
                self.measure_dead_letters(&link.connection).await;
                tokio::time::sleep(DEPTH_INTERVAL).await;
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => Ok(()),
            () = watch_depth => Ok(()),
            result = work => match result {
                Ok(()) => Err(EventsError::Closed),
                Err(err) => Err(err),
            },
        }
    }

    /// Measures the dead-letter queue's depth on a channel of its own (a
    /// failed passive declare closes its channel, never the consuming one).
    async fn measure_dead_letters(&self, connection: &lapin::Connection) {
        let measured = async {
            let channel = connection.create_channel().await?;
            let depth =
                topology::depth(&channel, &topology::dead_letter_queue(&self.queue())).await;
            let _ = channel.close(200, "measured").await;
            depth
        }
        .await;
        match measured {
            Ok(depth) => self
                .metrics
                .set_dead_letter_depth(&topology::dead_letter_queue(&self.name), depth),
            Err(err) => {
                tracing::warn!(consumer = %self.name, error = %err, "cannot measure the dead-letter queue");
            }
        }
    }

    async fn deliver(&self, channel: &Channel, delivery: Delivery) -> Result<(), EventsError> {
        if self.handle_delivery(channel, &delivery).await? == Outcome::Requeued {
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            delivery.acker.nack(requeue).await?;
        } else {
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        Ok(())
    }

    /// Decides the fate of one delivery; publishes retries and dead letters
    /// (confirmed) before the caller acknowledges the original.
    async fn handle_delivery(
        &self,
        channel: &Channel,
        delivery: &Delivery,
    ) -> Result<Outcome, EventsError> {
        let headers = delivery.properties.headers().as_ref();
        let attempt = header_int(headers, "x-attempt")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1);
        let envelope: Envelope = match serde_json::from_slice(&delivery.data) {
            Ok(envelope) => envelope,
            Err(err) => {
                let reason = format!("undecodable message: {err}");
                self.dead_letter(channel, delivery, attempt, DeathCause::Undecodable, &reason)
                    .await?;
                self.metrics
                    .count(&self.name, "unknown", Outcome::DeadLettered.label());
                return Ok(Outcome::DeadLettered);
            }
        };
        let span = tracing::info_span!(
            "event",
            consumer = %self.name,
            event_type = %envelope.event_type,
            event_id = %envelope.id,
            correlation_id = %envelope.correlation_id,
            request_id = envelope.request_id.as_deref().unwrap_or(""),
            attempt,
        );
        telemetry::continue_trace(&span, || telemetry::extract_map(&trace_context(headers)));
        let request_id = envelope.request_id.clone().map(RequestId);
        let outcome = RequestId::scope(request_id, async {
            match self.apply(&envelope).await {
                Ok(outcome) => Ok::<_, EventsError>(outcome),
                Err(HandlerError::Unavailable(reason)) => {
                    let pause = self.config.unavailable_pause();
                    tracing::warn!(%reason, ?pause, "dependency down; returning the event to the queue");
                    tokio::time::sleep(pause).await;
                    Ok(Outcome::Requeued)
                }
                Err(HandlerError::Permanent(reason)) => {
                    tracing::error!(%reason, "event rejected; dead-lettering");
                    self.dead_letter(channel, delivery, attempt, DeathCause::Rejected, &reason)
                        .await?;
                    Ok(Outcome::DeadLettered)
                }
                Err(HandlerError::Transient(reason)) if attempt >= self.config.max_attempts => {
                    tracing::error!(%reason, "event failed its last attempt; dead-lettering");
                    let reason = format!("failed {attempt} attempts; last error: {reason}");
                    let cause = DeathCause::RetriesExhausted;
                    self.dead_letter(channel, delivery, attempt, cause, &reason)
                        .await?;
                    Ok(Outcome::DeadLettered)
                }
                Err(HandlerError::Transient(reason)) => {
                    let delay = self.config.retry_delay(attempt);
                    tracing::warn!(%reason, retry_in = ?delay, "event failed; will retry");
                    self.retry(channel, delivery, attempt, delay).await?;
                    Ok(Outcome::Retried)
                }
            }
        })
        .instrument(span)
        .await?;
        self.metrics
            .count(&self.name, &envelope.event_type, outcome.label());
        if outcome == Outcome::Processed {
            let lag = (chrono::Utc::now() - envelope.occurred_at)
                .to_std()
                .unwrap_or_default();
            self.metrics.consume_lag.observe(lag.as_secs_f64());
        }
        Ok(outcome)
    }

    /// Runs the handler and records the event id, in one transaction.
    async fn apply(&self, envelope: &Envelope) -> Result<Outcome, HandlerError> {
        let mut tx = db::begin(&self.pool).await?;
        let first_time = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(envelope.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first_time {
            tracing::debug!("duplicate delivery ignored");
            return Ok(Outcome::Duplicate);
        }
        self.handler.handle(&mut tx, envelope).await?;
        tx.commit().await?;
        self.handler.committed(envelope).await;
        Ok(Outcome::Processed)
    }

    async fn retry(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        attempt: u32,
        delay: Duration,
    ) -> Result<(), EventsError> {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-attempt".into(),
            AMQPValue::LongLongInt(i64::from(attempt) + 1),
        );
        keep_trace_context(delivery.properties.headers().as_ref(), &mut headers);
        let properties = delivery.properties.clone().with_headers(headers);
        publish_confirmed(
            channel,
            "",
            &topology::retry_queue(&self.queue(), delay),
            &delivery.data,
            properties,
            uuid::Uuid::nil(),
        )
        .await
    }

    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        attempt: u32,
        cause: DeathCause,
        reason: &str,
    ) -> Result<(), EventsError> {
        let mut headers = FieldTable::default();
        headers.insert("x-death-reason".into(), text(reason));
        headers.insert("x-death-cause".into(), text(cause.label()));
        headers.insert(
            "x-dead-lettered-at".into(),
            text(chrono::Utc::now().to_rfc3339()),
        );
        headers.insert("x-consumer".into(), text(self.name.clone()));
        headers.insert(
            "x-attempts".into(),
            AMQPValue::LongLongInt(i64::from(attempt)),
        );
        headers.insert(
            "x-original-routing-key".into(),
            text(delivery.routing_key.to_string()),
        );
        keep_trace_context(delivery.properties.headers().as_ref(), &mut headers);
        let properties = delivery.properties.clone().with_headers(headers);
        publish_confirmed(
            channel,
            &self.config.dead_letter_exchange(),
            &self.queue(),
            &delivery.data,
            properties,
            uuid::Uuid::nil(),
        )
        .await?;
        self.metrics.count_dead_letter(&self.name, cause.label());
        if let Ok(depth) =
            topology::depth(channel, &topology::dead_letter_queue(&self.queue())).await
        {
            self.metrics
                .set_dead_letter_depth(&topology::dead_letter_queue(&self.name), depth);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::vars::Vars;

    #[tokio::test]
    async fn deliveries_in_flight_stay_below_the_pool() {
        let pool = |size| {
            PgPoolOptions::new()
                .max_connections(size)
                .connect_lazy("postgres://postgres@127.0.0.1:5432/unused")
                .unwrap()
        };
        let config = EventsConfig {
            prefetch: 32,
            ..EventsConfig::from_source(&Vars(HashMap::<&str, &str>::new()), "amqp://unused")
                .unwrap()
        };
        let prefetch = |size| within_pool(config.clone(), &pool(size)).prefetch;
        assert_eq!(prefetch(10), 5);
        assert_eq!(prefetch(100), 32);
        assert_eq!(prefetch(1), 1);
    }
}
