//! Events over RabbitMQ with at-least-once delivery and exactly-once effects.
//!
//! - [`envelope`]: the message every event travels in, and the event
//!   contracts of the checkout saga (one place for each event name).
//! - [`outbox`]: write an event in the same PostgreSQL transaction as the
//!   state change ([`outbox::enqueue`], or in the same statement with an
//!   [`outbox::OutboxRow`]); the [`outbox::Relay`] publishes it
//!   with publisher confirms and marks it sent.
//! - [`consumer`]: a durable queue per consumer; each event's effect and its
//!   id are committed in one transaction before the ack, so repeats are
//!   ignored; failures retry with backoff, then go to a dead-letter queue
//!   with the reason. Deliveries in flight are capped at half the pool.
//! - [`after_commit`]: holds what a handler did until its transaction
//!   committed, for counters that must not count a rolled-back event.
//! - [`topology`]: exchanges and queues, declared idempotently at start.
//! - [`dead_letters`]: list and replay what a consumer gave up on;
//!   [`dead_letter_routes`] serves that on the admin port.
//! - [`metrics`]: published, returned, consumed, retried, dead-lettered (by
//!   cause), dead-letter queue depth; outbox backlog and age.
//!
//! The tables live in `migrations/20260101000000_events.sql` in this crate; each service
//! links that file into its own `migrations/` directory.

pub mod after_commit;
pub mod broker;
pub mod consumer;
pub mod dead_letter_routes;
pub mod dead_letters;
pub mod envelope;
pub mod metrics;
pub mod outbox;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;

use std::time::Duration;

pub use after_commit::AfterCommit;
pub use consumer::{Consumer, Handler, HandlerError};
pub use dead_letters::DeadLetters;
pub use envelope::{Envelope, Event};
pub use metrics::EventMetrics;
pub use outbox::{OutboxRow, Relay, enqueue};
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
    /// No queue took a message published `mandatory` to this routing key.
    #[error("RabbitMQ could not route a message with routing key {0} to any queue")]
    Unroutable(String),
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

/// Deliveries of a failing event before it is dead-lettered, by default:
/// with [`DEFAULT_RETRY_BASE_MS`] doubling, the last retry comes about ten
/// minutes after the first failure, long enough to ride out a deadlock
/// storm, a failover or a deployment of the service an event waits for.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// The first retry's delay in milliseconds, by default (then 10 s, 20 s, …
/// 320 s).
pub const DEFAULT_RETRY_BASE_MS: u64 = 5_000;
/// The longest a failing event waits between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_mins(10);
/// The longest pause before an event whose database is down goes back to
/// its queue.
const UNAVAILABLE_PAUSE: Duration = Duration::from_secs(5);

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
    /// Attempts before a failing event is dead-lettered (`EVENTS_MAX_ATTEMPTS`,
    /// default [`DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each attempt up to
    /// [`MAX_RETRY_DELAY`] (`EVENTS_RETRY_BASE_MS`, default
    /// [`DEFAULT_RETRY_BASE_MS`]).
    pub retry_base: Duration,
    /// Unacknowledged deliveries per consumer, processed concurrently
    /// (`EVENTS_PREFETCH`, default 32); a [`Consumer`] takes at most half
    /// its database pool, whatever this says.
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
            max_attempts: vars
                .or(env::EVENTS_MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS)?
                .max(1),
            retry_base: Duration::from_millis(
                vars.or(env::EVENTS_RETRY_BASE_MS, DEFAULT_RETRY_BASE_MS)?
                    .max(1),
            ),
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

    /// Delay before retry number `attempt` (1-based): base × 2^(attempt-1),
    /// at most [`MAX_RETRY_DELAY`].
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.retry_base.saturating_mul(factor).min(MAX_RETRY_DELAY)
    }

    /// Every distinct retry delay a failing event can wait, shortest first:
    /// one retry queue each (`topology::retry_queue`).
    pub fn retry_delays(&self) -> Vec<Duration> {
        let mut delays: Vec<Duration> = (1..self.max_attempts)
            .map(|attempt| self.retry_delay(attempt))
            .collect();
        delays.dedup();
        delays
    }

    /// How long a consumer waits before handing back an event whose
    /// dependency (its database) is down: short, since no attempt is used
    /// up, yet long enough not to spin.
    pub fn unavailable_pause(&self) -> Duration {
        self.retry_base.saturating_mul(4).min(UNAVAILABLE_PAUSE)
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
        assert_eq!(config.retry_delay(40), MAX_RETRY_DELAY);
    }

    #[test]
    fn default_retries_span_minutes_with_one_queue_per_delay() {
        let config =
            EventsConfig::from_source(&Vars(HashMap::<&str, &str>::new()), "amqp://x").unwrap();
        let delays = config.retry_delays();
        assert_eq!(delays.len(), 7);
        assert_eq!(delays[0], Duration::from_secs(5));
        let total: Duration = delays.iter().sum();
        assert!(total >= Duration::from_mins(10), "{total:?}");
        assert_eq!(config.unavailable_pause(), Duration::from_secs(5));
    }

    #[test]
    fn equal_capped_delays_share_a_queue() {
        let vars = Vars(HashMap::from([
            ("EVENTS_RETRY_BASE_MS", "300000"),
            ("EVENTS_MAX_ATTEMPTS", "6"),
        ]));
        let config = EventsConfig::from_source(&vars, "amqp://x").unwrap();
        assert_eq!(
            config.retry_delays(),
            [Duration::from_mins(5), Duration::from_mins(10)]
        );
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
