//! Event metrics: what was published, consumed, retried and dead-lettered,
//! and how far behind the outbox is.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
};

use crate::metrics::Metrics;

/// Labels for published events.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// The event type (routing key).
    pub event_type: String,
}

/// Labels for consumed events.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumeLabels {
    /// The consumer (queue) name, without the test prefix.
    pub consumer: String,
    /// The event type, or `unknown` for undecodable messages.
    pub event_type: String,
    /// `processed`, `duplicate`, `retried` or `dead_lettered`.
    pub outcome: &'static str,
}

/// Labels for dead-lettered events.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    /// The consumer (queue) name, without the test prefix.
    pub consumer: String,
    /// Why: `undecodable`, `rejected` (the handler said retrying cannot
    /// help) or `retries_exhausted`.
    pub reason: &'static str,
}

/// Labels for a queue's depth.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The queue name, without the test prefix (`order.saga.dlq`).
    pub queue: String,
}

/// Handles to the event metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventMetrics {
    /// Events the relay published and the broker confirmed.
    pub published: Family<TypeLabels, Counter>,
    /// Events the broker returned because no queue was bound to their type;
    /// they stay in the outbox and are published again.
    pub returned: Family<TypeLabels, Counter>,
    /// Deliveries handled, by outcome.
    pub consumed: Family<ConsumeLabels, Counter>,
    /// Events sent to a dead-letter queue, by consumer and reason.
    pub dead_lettered: Family<DeadLetterLabels, Counter>,
    /// Messages waiting in each dead-letter queue, as last measured (by its
    /// consumer every few seconds and after each dead letter, and by the
    /// dead-letter admin endpoints).
    pub dead_letter_depth: Family<QueueLabels, Gauge>,
    /// Unpublished outbox rows.
    pub outbox_backlog: Gauge,
    /// Age of the oldest unpublished outbox row, seconds.
    pub outbox_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Time from outbox insert to confirmed publish.
    pub outbox_lag: Histogram,
    /// Time from an event's `occurred_at` to its effect being committed.
    pub consume_lag: Histogram,
}

impl EventMetrics {
    /// Registers the event metrics in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let lag = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        Self {
            published: metrics.register(
                "events_published",
                "Events published to RabbitMQ and confirmed, by type",
                Family::default(),
            ),
            returned: metrics.register(
                "events_returned",
                "Events RabbitMQ could not route to any queue, kept in the outbox to publish again, by type",
                Family::default(),
            ),
            consumed: metrics.register(
                "events_consumed",
                "Event deliveries handled, by consumer, type and outcome",
                Family::default(),
            ),
            dead_lettered: metrics.register(
                "events_dead_lettered",
                "Events sent to a dead-letter queue, by consumer and reason \
                 (undecodable, rejected, retries_exhausted)",
                Family::default(),
            ),
            dead_letter_depth: metrics.register(
                "events_dead_letter_queue_depth",
                "Messages waiting in a dead-letter queue, by queue",
                Family::default(),
            ),
            outbox_backlog: metrics.register(
                "outbox_backlog",
                "Outbox rows not yet published",
                Gauge::default(),
            ),
            outbox_oldest_age: metrics.register(
                "outbox_oldest_age_seconds",
                "Age of the oldest unpublished outbox row, seconds",
                Gauge::default(),
            ),
            outbox_lag: metrics.register(
                "outbox_publish_lag_seconds",
                "Time from writing an event to the outbox to its confirmed publish, seconds",
                lag(),
            ),
            consume_lag: metrics.register(
                "events_consume_lag_seconds",
                "Time from an event occurring to its effect being committed, seconds",
                lag(),
            ),
        }
    }

    /// Counts one dead-lettered event.
    pub fn count_dead_letter(&self, consumer: &str, reason: &'static str) {
        self.dead_lettered
            .get_or_create(&DeadLetterLabels {
                consumer: consumer.to_owned(),
                reason,
            })
            .inc();
    }

    /// Records how many messages wait in the dead-letter queue `queue`.
    pub fn set_dead_letter_depth(&self, queue: &str, depth: u32) {
        self.dead_letter_depth
            .get_or_create(&QueueLabels {
                queue: queue.to_owned(),
            })
            .set(i64::from(depth));
    }

    /// Counts one handled delivery.
    pub fn count(&self, consumer: &str, event_type: &str, outcome: &'static str) {
        self.consumed
            .get_or_create(&ConsumeLabels {
                consumer: consumer.to_owned(),
                event_type: event_type.to_owned(),
                outcome,
            })
            .inc();
    }
}
