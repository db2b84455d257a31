//! Connections to RabbitMQ: a channel with publisher confirms, opened with
//! backoff, and the `/readyz` check.
//!
//! Every long-running part (relay, each consumer) owns one connection and
//! opens a new one when the old one dies, so a broker restart costs a few
//! seconds of delay and never a lost event.

use std::{collections::BTreeMap, time::Duration};

use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable, LongString, ShortString},
    uri::AMQPUri,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::EventsError;
use crate::admin::Check;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Largest AMQP frame we ask for unless `AMQP_URL` sets `frame_max`.
/// lapin keeps buffers sized by the frame for each connection; at the
/// broker's default (128 KiB) that is ~16 MiB of RSS per service for events
/// that are a few hundred bytes. Bigger messages still go through, in
/// several frames.
pub const DEFAULT_FRAME_MAX: u32 = 8192;

/// Connects with [`DEFAULT_FRAME_MAX`] unless the URL names its own, on
/// the tokio runtime the caller runs on: lapin's own default would wait for
/// socket readiness on an async-io thread and run its internal tasks on
/// async-global-executor threads, so every frame would cross one more
/// thread on its way to or from the task that needs it.
async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default()
        .with_connection_name(name.into())
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    match url.parse::<AMQPUri>() {
        Ok(mut uri) => {
            uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
            Connection::connect_uri(uri, properties).await
        }
        // Let lapin report the malformed URL in its own words.
        Err(_) => Connection::connect(url, properties).await,
    }
}

/// An open connection with one channel in confirm mode.
pub struct Link {
    /// Kept so the connection lives as long as the channel.
    pub connection: Connection,
    /// The channel; every publish on it is confirmed.
    pub channel: Channel,
}

impl Link {
    /// Connects and opens a confirm-mode channel.
    pub async fn open(url: &str, name: &str) -> Result<Self, EventsError> {
        let connection = connect(url, name).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            channel,
        })
    }

    /// Like [`Link::open`], retrying with backoff until it works or
    /// `shutdown` fires (then `None`).
    pub async fn open_with_retry(
        url: &str,
        name: &str,
        shutdown: &CancellationToken,
    ) -> Option<Self> {
        let mut delay = MIN_BACKOFF;
        loop {
            match Self::open(url, name).await {
                Ok(link) => return Some(link),
                Err(err) => {
                    tracing::warn!(error = %err, component = name, retry_in = ?delay, "RabbitMQ unreachable");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// Closes politely (errors ignored: the connection may already be gone).
    pub async fn close(self) {
        let _ = self.channel.close(200, "bye").await;
        let _ = self.connection.close(200, "bye").await;
    }
}

/// A persistent JSON message with the event's metadata.
pub fn properties(event_id: Uuid, event_type: &str, headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(event_id.to_string().into())
        .with_type(event_type.into())
        .with_headers(headers)
}

/// Publishes `mandatory` and waits for the broker's confirm: a message no
/// queue takes is an error ([`EventsError::Unroutable`]), never a silent
/// drop.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
    event_id: Uuid,
) -> Result<(), EventsError> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirm = channel
        .basic_publish(exchange, routing_key, options, payload, properties)
        .await?
        .await?;
    match confirm {
        Confirmation::Nack(_) => Err(EventsError::NotConfirmed(event_id)),
        Confirmation::Ack(Some(_)) => Err(EventsError::Unroutable(routing_key.to_owned())),
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
    }
}

/// A header value holding text.
pub fn text(value: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.into()))
}

/// Reads a text header.
pub fn header_text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        AMQPValue::ShortString(value) => Some(value.to_string()),
        _ => None,
    }
}

/// The headers that carry an event's W3C trace context.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// The trace context in a message's headers (empty when it has none).
pub fn trace_context(headers: Option<&FieldTable>) -> BTreeMap<String, String> {
    TRACE_HEADERS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), header_text(headers, name)?)))
        .collect()
}

/// Copies the trace context headers of `from` into `into`: a retry, a dead
/// letter and a replay stay in the trace of the event they carry.
pub fn keep_trace_context(from: Option<&FieldTable>, into: &mut FieldTable) {
    for (name, value) in trace_context(from) {
        into.insert(name.into(), text(value));
    }
}

/// Reads an integer header (any integer width).
pub fn header_int(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    match headers?.inner().get(&ShortString::from(name))? {
        AMQPValue::LongLongInt(value) => Some(*value),
        AMQPValue::LongInt(value) => Some(i64::from(*value)),
        AMQPValue::LongUInt(value) => Some(i64::from(*value)),
        AMQPValue::ShortInt(value) => Some(i64::from(*value)),
        AMQPValue::ShortUInt(value) => Some(i64::from(*value)),
        _ => None,
    }
}

/// The `/readyz` check: an AMQP handshake with the broker succeeds.
/// Optional: while the broker is down events wait in the outbox and
/// consumers reconnect, so the service serves degraded and stays ready.
pub fn readiness_check(url: &str) -> Check {
    let url = url.to_owned();
    Check::new("rabbitmq", move || {
        let url = url.clone();
        async move {
            let connection = connect(&url, "readiness probe")
                .await
                .map_err(|err| err.to_string())?;
            let _ = connection.close(200, "readiness probe").await;
            Ok(())
        }
    })
    .optional()
}
