//! Events over RabbitMQ with at-least-once delivery and exactly-once effects.
//!
//! - [`envelope`]: the message every event travels in, and the event
//!   contracts of the checkout saga (one place for each event name).
//! - [`outbox`]: write an event in the same PostgreSQL transaction as the
//!   state change ([`outbox::enqueue`]); the [`outbox::Relay`] publishes it
//!   with publisher confirms and marks it sent.
//! - [`consumer`]: a durable queue per consumer; each event's effect and its
//!   id are committed in one transaction before the ack, so repeats are
//!   ignored; failures retry with backoff, then go to a dead-letter queue
//!   with the reason.
//! - [`topology`]: exchanges and queues, declared idempotently at start.
//! - [`metrics`]: published, consumed, retried, dead-lettered; outbox backlog
//!   and age.
//!
//! The tables live in `migrations/20260101000000_events.sql` in this crate; each service
//! links that file into its own `migrations/` directory.

pub mod broker;
pub mod consumer;
pub mod envelope;
pub mod metrics;
pub mod outbox;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;

use std::time::Duration;

pub use consumer::{Consumer, Handler, HandlerError};
pub use envelope::{Envelope, Event};
pub use metrics::EventMetrics;
pub use outbox::{Relay, enqueue};
/// Stops relays and consumers; re-exported so services need no `tokio-util`.
pub use tokio_util::sync::CancellationToken;

use storekeeper_contract::{env, events::EXCHANGE};

use crate::vars::{ConfigError, Source, Vars};

/// Why talking to the broker or the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The broker refused or dropped something.
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker answered a publish with a negative confirm.
    #[error("RabbitMQ did not confirm the publish of event {0}")]
    NotConfirmed(uuid::Uuid),
    /// The broker ended a consumer's delivery stream.
    #[error("RabbitMQ closed the consumer's channel")]
    Closed,
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    /// An event could not be serialized.
    #[error("event encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where events go and how consumers behave (`AMQP_URL`, `EVENTS_*`).
#[derive(Clone)]
pub struct EventsConfig {
    /// Broker URL (`AMQP_URL`).
    pub amqp_url: String,
    /// Topic exchange events are published to (`EVENTS_EXCHANGE`, default
    /// `storekeeper_contract::events::EXCHANGE`). Tests give each run its own, so parallel tests on
    /// one broker never see each other's events.
    pub exchange: String,
    /// Prepended to every queue name (`EVENTS_QUEUE_PREFIX`, default empty),
    /// for the same isolation.
    pub queue_prefix: String,
    /// Attempts before a failing event is dead-lettered (`EVENTS_MAX_ATTEMPTS`, default 5).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each attempt (`EVENTS_RETRY_BASE_MS`, default 200).
    pub retry_base: Duration,
    /// Unacknowledged deliveries per consumer, processed concurrently
    /// (`EVENTS_PREFETCH`, default 32).
    pub prefetch: u16,
    /// How often the relay looks at the outbox without a notification
    /// (`OUTBOX_POLL_MS`, default 1000).
    pub poll_interval: Duration,
    /// Queues that delete themselves after this long unused, and exchanges
    /// that go with their last binding: for test runs only.
    pub ephemeral: Option<Duration>,
}

impl std::fmt::Debug for EventsConfig {
    // Hand-written: the URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsConfig")
            .field("exchange", &self.exchange)
            .field("queue_prefix", &self.queue_prefix)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

impl EventsConfig {
    /// Reads the `EVENTS_*` settings; [`crate::ServiceConfig`] calls it for
    /// the services on the broker, with their `AMQP_URL`.
    pub fn from_source<S: Source>(vars: &Vars<S>, amqp_url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            amqp_url: amqp_url.to_owned(),
            exchange: vars.or(env::EVENTS_EXCHANGE, EXCHANGE.to_owned())?,
            queue_prefix: vars.or(env::EVENTS_QUEUE_PREFIX, String::new())?,
            max_attempts: vars.or(env::EVENTS_MAX_ATTEMPTS, 5_u32)?.max(1),
            retry_base: Duration::from_millis(vars.or(env::EVENTS_RETRY_BASE_MS, 200)?),
            prefetch: vars.or(env::EVENTS_PREFETCH, 32_u16)?.max(1),
            poll_interval: Duration::from_millis(vars.or(env::OUTBOX_POLL_MS, 1000)?.max(10)),
            ephemeral: None,
        })
    }

    /// The full name of a consumer's queue, e.g. `order.saga`.
    pub fn queue_name(&self, consumer: &str) -> String {
        format!("{}{consumer}", self.queue_prefix)
    }

    /// The dead-letter exchange that goes with [`EventsConfig::exchange`].
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.exchange)
    }

    /// Delay before retry number `attempt` (1-based): base × 2^(attempt-1), at most 30 s.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.retry_base
            .saturating_mul(factor)
            .min(Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let vars = Vars(HashMap::<&str, &str>::new());
        let config = EventsConfig::from_source(&vars, "amqp://x").unwrap();
        assert_eq!(config.exchange, "store.events");
        assert_eq!(config.dead_letter_exchange(), "store.events.dlx");
        assert_eq!(config.queue_name("order.saga"), "order.saga");
    }

    #[test]
    fn retry_delay_doubles_and_is_capped() {
        let vars = Vars(HashMap::from([("EVENTS_RETRY_BASE_MS", "100")]));
        let config = EventsConfig::from_source(&vars, "amqp://x").unwrap();
        assert_eq!(config.retry_delay(1), Duration::from_millis(100));
        assert_eq!(config.retry_delay(3), Duration::from_millis(400));
        assert_eq!(config.retry_delay(40), Duration::from_secs(30));
    }

    #[test]
    fn prefix_isolates_queues() {
        let vars = Vars(HashMap::from([
            ("EVENTS_QUEUE_PREFIX", "t1."),
            ("EVENTS_EXCHANGE", "t1"),
        ]));
        let config = EventsConfig::from_source(&vars, "amqp://x").unwrap();
        assert_eq!(config.queue_name("payment.charges"), "t1.payment.charges");
        assert_eq!(config.dead_letter_exchange(), "t1.dlx");
    }
}
