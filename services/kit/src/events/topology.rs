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
//! | `order.saga.retry` | queue | failed deliveries wait here for their backoff, then return to `order.saga` |
//! | `order.saga.dlq` | queue | events that failed every attempt, with the reason in a header |

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

/// The name of a consumer's retry queue.
pub fn retry_queue(queue: &str) -> String {
    format!("{queue}.retry")
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
    let mut retry_args = expiry(config);
    retry_args.insert("x-dead-letter-exchange".into(), text(""));
    retry_args.insert("x-dead-letter-routing-key".into(), text(queue));
    declare_queue(channel, &retry_queue(queue), retry_args).await?;

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
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        args.insert("x-expires".into(), AMQPValue::LongLongInt(millis));
    }
    args
}
