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

/// Handles to the event metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventMetrics {
    /// Events the relay published and the broker confirmed.
    pub published: Family<TypeLabels, Counter>,
    /// Deliveries handled, by outcome.
    pub consumed: Family<ConsumeLabels, Counter>,
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
            consumed: metrics.register(
                "events_consumed",
                "Event deliveries handled, by consumer, type and outcome",
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
