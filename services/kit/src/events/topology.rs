//! Exchanges and queues, declared idempotently every time a component
//! connects (a declare of something that exists with the same arguments is
//! a no-op), so a fresh broker is set up by whichever service starts first.
//!
//! For a consumer named `order.saga` on exchange `store.events`:
//!
//! | name | kind | purpose |
//! | --- | --- | --- |
//! | `store.events` | topic exchange | every event, routed by its type |
//! | `store.events.dlx` | direct exchange | dead letters, routed by queue name |
//! | `order.saga` | queue | bound to the consumer's event types; dead-letters to the DLX |
//! | `order.saga.retry.5000ms`, `….10000ms`, … | queues | failed deliveries wait in the queue of their backoff (its message TTL), then return to `order.saga` |
//! | `order.saga.dlq` | queue | events that failed every attempt, with the reason in a header |
//!
//! One retry queue per delay, because RabbitMQ expires messages only at a
//! queue's head: in one queue a message waiting ten minutes would hold back
//! one due in five seconds. A retry queue's name carries its delay, so a
//! changed `EVENTS_RETRY_BASE_MS` declares new queues instead of clashing
//! with the arguments of the old ones.

use std::time::Duration;

use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use super::{EventsConfig, EventsError, broker::text};

/// Declares the event exchange and its dead-letter exchange.
pub async fn declare_exchanges(
    channel: &Channel,
    config: &EventsConfig,
) -> Result<(), EventsError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        auto_delete: config.ephemeral.is_some(),
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            &config.exchange,
            ExchangeKind::Topic,
            options,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            &config.dead_letter_exchange(),
            ExchangeKind::Direct,
            options,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// The name of a consumer's retry queue for one delay.
pub fn retry_queue(queue: &str, delay: Duration) -> String {
    format!("{queue}.retry.{}ms", delay.as_millis())
}

/// The name of a consumer's dead-letter queue.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
}

/// Declares a consumer's queue, retry queue and dead-letter queue, and binds
/// the queue to `routing_keys`.
pub async fn declare_consumer(
    channel: &Channel,
    config: &EventsConfig,
    queue: &str,
    routing_keys: &[&str],
) -> Result<(), EventsError> {
    declare_exchanges(channel, config).await?;
    let dlx = config.dead_letter_exchange();

    let mut main_args = expiry(config);
    main_args.insert("x-dead-letter-exchange".into(), text(dlx.clone()));
    main_args.insert("x-dead-letter-routing-key".into(), text(queue));
    declare_queue(channel, queue, main_args).await?;
    for key in routing_keys {
        channel
            .queue_bind(
                queue,
                &config.exchange,
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }

    // Expired retries are dead-lettered through the default exchange
    // straight back to the consumer's queue.
    for delay in config.retry_delays() {
        let mut retry_args = expiry(config);
        retry_args.insert("x-dead-letter-exchange".into(), text(""));
        retry_args.insert("x-dead-letter-routing-key".into(), text(queue));
        retry_args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(millis(delay)),
        );
        declare_queue(channel, &retry_queue(queue, delay), retry_args).await?;
    }

    let dlq = dead_letter_queue(queue);
    declare_queue(channel, &dlq, expiry(config)).await?;
    channel
        .queue_bind(
            &dlq,
            &dlx,
            queue,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), EventsError> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(name, options, args).await?;
    Ok(())
}

/// Test queues remove themselves once unused for a while.
fn expiry(config: &EventsConfig) -> FieldTable {
    let mut args = FieldTable::default();
    if let Some(ttl) = config.ephemeral {
        args.insert("x-expires".into(), AMQPValue::LongLongInt(millis(ttl)));
    }
    args
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// How many messages wait in `queue` (a passive declare: it never creates
/// the queue; an absent queue is an error).
pub async fn depth(channel: &Channel, queue: &str) -> Result<u32, EventsError> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue, options, FieldTable::default())
        .await?;
    Ok(declared.message_count())
}
