//! Dead letters an operator can see and fix: list what waits in a
//! consumer's dead-letter queue, and replay it into the consumer's queue.
//!
//! Listing takes messages from the queue without acknowledging them and
//! then closes the channel, so the broker puts every one back: a look
//! changes nothing. Replaying publishes each chosen message (confirmed,
//! `mandatory`) to the consumer's own queue as a first attempt, and only
//! then acknowledges it in the dead-letter queue; a crash in between leaves
//! it in both, and the consumer's de-duplication gives it one effect.
//! Replaying an event that had already taken effect is a duplicate and does
//! nothing, so a replay is always safe to repeat.

use std::collections::HashSet;

use lapin::{
    BasicProperties, Channel,
    message::BasicGetMessage,
    options::{BasicAckOptions, BasicGetOptions},
    types::{AMQPValue, FieldTable},
};
use serde::Serialize;
use storekeeper_contract::{ShopService, events::ROUTES};
use uuid::Uuid;

use super::{
    EventsConfig, EventsError,
    broker::{Link, header_int, header_text, publish_confirmed},
    envelope::Envelope,
    metrics::EventMetrics,
    topology,
};

/// The most messages one listing returns.
pub const MAX_LIST: usize = 500;

/// The dead-letter queues of one service's consumers, and the broker they
/// live on. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DeadLetters {
    config: EventsConfig,
    metrics: EventMetrics,
    consumers: Vec<String>,
}

/// One dead-lettered message, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The event's id (`None` for a message that is not an event).
    pub event_id: Option<Uuid>,
    /// The event's type (its original routing key).
    pub event_type: Option<String>,
    /// `undecodable`, `rejected` or `retries_exhausted`.
    pub cause: Option<String>,
    /// The consumer's words for what went wrong.
    pub reason: Option<String>,
    /// Deliveries tried before it was given up on.
    pub attempts: Option<i64>,
    /// When it was given up on (RFC 3339).
    pub dead_lettered_at: Option<String>,
    /// The message body: the event's JSON, or the raw text when it is not
    /// JSON.
    pub body: serde_json::Value,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Replayed {
    /// The consumer whose dead letters were replayed.
    pub consumer: String,
    /// How many messages went back to the consumer's queue.
    pub replayed: usize,
    /// The ids of the replayed events (messages without one are left out).
    pub event_ids: Vec<Uuid>,
    /// Messages left in the dead-letter queue.
    pub remaining: u32,
}

/// Which dead letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every message in the queue.
    All,
    /// Only the events with these ids.
    Events(HashSet<Uuid>),
}

impl Selection {
    fn includes(&self, event_id: Option<Uuid>) -> bool {
        match self {
            Self::All => true,
            Self::Events(ids) => event_id.is_some_and(|id| ids.contains(&id)),
        }
    }
}

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The service has no consumer of that name.
    #[error("no consumer named {0} here; GET the dead-letter overview for the names")]
    UnknownConsumer(String),
    /// The broker failed or is unreachable.
    #[error(transparent)]
    Events(#[from] EventsError),
}

impl From<lapin::Error> for DeadLetterError {
    fn from(err: lapin::Error) -> Self {
        Self::Events(err.into())
    }
}

impl DeadLetters {
    /// The dead letters of `consumers` (names such as `order.saga`).
    pub fn new(config: EventsConfig, metrics: EventMetrics, consumers: Vec<String>) -> Self {
        Self {
            config,
            metrics,
            consumers,
        }
    }

    /// The dead letters of every queue the contract says `service` consumes
    /// from.
    pub fn for_service(service: ShopService, config: EventsConfig, metrics: EventMetrics) -> Self {
        let owner = format!("{}.", service.name());
        let mut consumers: Vec<String> = ROUTES
            .iter()
            .flat_map(|route| route.queues.iter())
            .filter(|queue| queue.starts_with(&owner))
            .map(|queue| (*queue).to_owned())
            .collect();
        consumers.sort();
        consumers.dedup();
        Self::new(config, metrics, consumers)
    }

    /// The consumers whose dead letters this handles.
    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }

    /// How many messages wait in each consumer's dead-letter queue (and
    /// records it in `events_dead_letter_queue_depth`).
    pub async fn depths(&self) -> Result<Vec<(String, u32)>, DeadLetterError> {
        let link = self.open().await?;
        let mut depths = Vec::with_capacity(self.consumers.len());
        for consumer in &self.consumers {
            match self.depth(&link.channel, consumer).await {
                Ok(depth) => depths.push((consumer.clone(), depth)),
                Err(err) => {
                    link.close().await;
                    return Err(err);
                }
            }
        }
        link.close().await;
        Ok(depths)
    }

    /// Up to `limit` (at most [`MAX_LIST`]) messages of `consumer`'s
    /// dead-letter queue, oldest first, left in place; and the queue's depth.
    pub async fn list(
        &self,
        consumer: &str,
        limit: usize,
    ) -> Result<(u32, Vec<DeadLetter>), DeadLetterError> {
        let queue = self.dead_letter_queue(consumer)?;
        let link = self.open().await?;
        let listed = async {
            let depth = self.depth(&link.channel, consumer).await?;
            let mut letters = Vec::new();
            while letters.len() < limit.min(MAX_LIST) {
                let Some(message) = get(&link.channel, &queue).await? else {
                    break;
                };
                letters.push(describe(&message));
            }
            Ok::<_, DeadLetterError>((depth, letters))
        }
        .await;
        // Closing the channel without acknowledging puts every message back.
        link.close().await;
        listed
    }

    /// Moves the `selection` of `consumer`'s dead letters back to its queue
    /// as first attempts.
    pub async fn replay(
        &self,
        consumer: &str,
        selection: &Selection,
    ) -> Result<Replayed, DeadLetterError> {
        let dead_letter_queue = self.dead_letter_queue(consumer)?;
        let target = self.config.queue_name(consumer);
        let link = self.open().await?;
        let replayed = async {
            let waiting = self.depth(&link.channel, consumer).await?;
            let mut event_ids = Vec::new();
            let mut replayed = 0;
            // Bounded by what waited at the start: messages dead-lettered
            // again meanwhile wait for the next replay.
            for _ in 0..waiting {
                let Some(message) = get(&link.channel, &dead_letter_queue).await? else {
                    break;
                };
                let event_id = event_id(&message);
                if !selection.includes(event_id) {
                    continue;
                }
                publish_confirmed(
                    &link.channel,
                    "",
                    &target,
                    &message.delivery.data,
                    first_attempt(&message.delivery.properties),
                    event_id.unwrap_or_default(),
                )
                .await?;
                message
                    .delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await?;
                replayed += 1;
                event_ids.extend(event_id);
                tracing::info!(consumer, event_id = ?event_id, "dead letter replayed");
            }
            Ok::<_, DeadLetterError>((replayed, event_ids))
        }
        .await;
        // Messages not chosen were never acknowledged: closing puts them back.
        link.close().await;
        let (replayed, event_ids) = replayed?;
        let remaining = self.recount(consumer).await?;
        Ok(Replayed {
            consumer: consumer.to_owned(),
            replayed,
            event_ids,
            remaining,
        })
    }

    fn dead_letter_queue(&self, consumer: &str) -> Result<String, DeadLetterError> {
        if self.consumers.iter().any(|known| known == consumer) {
            Ok(topology::dead_letter_queue(
                &self.config.queue_name(consumer),
            ))
        } else {
            Err(DeadLetterError::UnknownConsumer(consumer.to_owned()))
        }
    }

    async fn open(&self) -> Result<Link, DeadLetterError> {
        let link = Link::open(&self.config.amqp_url, "dead-letters").await?;
        // Declaring is idempotent and makes sure every queue exists before
        // it is counted or read (a passive look at a missing one would fail).
        for consumer in &self.consumers {
            let keys = storekeeper_contract::events::keys_for_queue(consumer);
            let queue = self.config.queue_name(consumer);
            if let Err(err) =
                topology::declare_consumer(&link.channel, &self.config, &queue, &keys).await
            {
                link.close().await;
                return Err(err.into());
            }
        }
        Ok(link)
    }

    async fn depth(&self, channel: &Channel, consumer: &str) -> Result<u32, DeadLetterError> {
        let depth = topology::depth(channel, &self.dead_letter_queue(consumer)?).await?;
        self.metrics
            .set_dead_letter_depth(&topology::dead_letter_queue(consumer), depth);
        Ok(depth)
    }

    async fn recount(&self, consumer: &str) -> Result<u32, DeadLetterError> {
        let link = Link::open(&self.config.amqp_url, "dead-letters").await?;
        let depth = self.depth(&link.channel, consumer).await;
        link.close().await;
        depth
    }
}

/// Takes the next message, unacknowledged.
async fn get(channel: &Channel, queue: &str) -> Result<Option<BasicGetMessage>, DeadLetterError> {
    Ok(channel
        .basic_get(queue, BasicGetOptions { no_ack: false })
        .await?)
}

fn event_id(message: &BasicGetMessage) -> Option<Uuid> {
    message
        .delivery
        .properties
        .message_id()
        .as_ref()
        .and_then(|id| id.as_str().parse().ok())
        .or_else(|| {
            serde_json::from_slice::<Envelope>(&message.delivery.data)
                .ok()
                .map(|envelope| envelope.id)
        })
}

fn describe(message: &BasicGetMessage) -> DeadLetter {
    let headers = message.delivery.properties.headers().as_ref();
    let body = serde_json::from_slice(&message.delivery.data).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&message.delivery.data).into_owned())
    });
    DeadLetter {
        event_id: event_id(message),
        // The message type the relay set; after a retry the routing key is
        // the consumer's queue, not the event type.
        event_type: message
            .delivery
            .properties
            .kind()
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| body.get("type").and_then(|t| t.as_str()).map(str::to_owned)),
        cause: header_text(headers, "x-death-cause"),
        reason: header_text(headers, "x-death-reason"),
        attempts: header_int(headers, "x-attempts"),
        dead_lettered_at: header_text(headers, "x-dead-lettered-at"),
        body,
    }
}

/// The message's properties with the retry and death headers dropped: the
/// consumer sees a first attempt.
fn first_attempt(properties: &BasicProperties) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-attempt".into(), AMQPValue::LongLongInt(1));
    headers.insert("x-replayed".into(), AMQPValue::Boolean(true));
    super::broker::keep_trace_context(properties.headers().as_ref(), &mut headers);
    properties.clone().with_headers(headers)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{Metrics, vars::Vars};

    fn consumers_of(service: ShopService) -> Vec<String> {
        let config =
            EventsConfig::from_source(&Vars(HashMap::<&str, &str>::new()), "amqp://x").unwrap();
        let metrics = EventMetrics::register(&Metrics::new());
        DeadLetters::for_service(service, config, metrics)
            .consumers()
            .to_vec()
    }

    #[test]
    fn a_service_handles_the_dead_letters_of_its_own_queues() {
        assert_eq!(consumers_of(ShopService::Order), ["order.saga"]);
        assert_eq!(consumers_of(ShopService::Product), ["product.inventory"]);
        assert_eq!(consumers_of(ShopService::Payment), ["payment.charges"]);
        assert!(consumers_of(ShopService::User).is_empty());
    }

    #[test]
    fn a_selection_of_events_leaves_the_rest() {
        let chosen = Uuid::new_v4();
        let selection = Selection::Events(HashSet::from([chosen]));
        assert!(selection.includes(Some(chosen)));
        assert!(!selection.includes(Some(Uuid::new_v4())));
        assert!(!selection.includes(None));
        assert!(Selection::All.includes(None));
    }
}
