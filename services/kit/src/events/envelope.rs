//! The envelope every event travels in and the data of each event in the
//! checkout saga.
//!
//! An event's routing key is its `type`. Each payload type names its own
//! routing key through [`Event::TYPE`], taken from
//! `storekeeper_contract::events`, so publishers, consumers and the docs
//! cannot disagree on a string.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use storekeeper_contract::events as keys;
use uuid::Uuid;

use crate::telemetry::RequestId;

/// `{ id, type, occurred_at, correlation_id, request_id?, data }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per event; consumers de-duplicate on it.
    pub id: Uuid,
    /// The routing key, e.g. `order.created`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the state change happened.
    pub occurred_at: DateTime<Utc>,
    /// Ties together every event of one business flow (the order id in the saga).
    pub correlation_id: Uuid,
    /// The `x-request-id` of the request that started the flow, so its log
    /// lines and the consumers' can be found together; absent for events no
    /// request caused (the reaper's). Consumers run their handler under it,
    /// so the events they write carry it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The event's own fields.
    pub data: serde_json::Value,
}

/// An event payload with its routing key.
pub trait Event: Serialize + DeserializeOwned {
    /// The routing key and envelope `type`.
    const TYPE: &'static str;
}

impl Envelope {
    /// Wraps `data` in a fresh envelope, with the current request id.
    pub fn new<E: Event>(data: &E, correlation_id: Uuid) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            event_type: E::TYPE.to_owned(),
            occurred_at: Utc::now(),
            correlation_id,
            request_id: RequestId::current().map(|id| id.0),
            data: serde_json::to_value(data)?,
        })
    }

    /// Reads the payload as `E`; fails when the type or the shape differs.
    pub fn decode<E: Event>(&self) -> Result<E, String> {
        if self.event_type != E::TYPE {
            return Err(format!(
                "expected a {} event, got {}",
                E::TYPE,
                self.event_type
            ));
        }
        serde_json::from_value(self.data.clone())
            .map_err(|err| format!("malformed {} data: {err}", E::TYPE))
    }
}

/// One product line of an order, as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventItem {
    /// The product.
    pub product_id: Uuid,
    /// Units.
    pub quantity: i32,
}

/// A product the stock could not cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortItem {
    /// The product.
    pub product_id: Uuid,
    /// Units the order asked for.
    pub requested: i32,
    /// Units on hand when the reservation was tried (0 for unknown products).
    pub available: i32,
}

/// An order was placed (order-service); product-service reserves its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCreated {
    /// The order.
    pub order_id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// What to reserve.
    pub items: Vec<EventItem>,
    /// Order total, minor units.
    pub total_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Event for OrderCreated {
    const TYPE: &'static str = keys::ORDER_CREATED;
}

/// Stock for every line is set aside (product-service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReserved {
    /// The order.
    pub order_id: Uuid,
    /// What was reserved.
    pub items: Vec<EventItem>,
}

impl Event for InventoryReserved {
    const TYPE: &'static str = keys::INVENTORY_RESERVED;
}

/// Some line could not be covered; nothing was reserved (product-service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRejected {
    /// The order.
    pub order_id: Uuid,
    /// A sentence naming the short items.
    pub reason: String,
    /// The short items.
    pub short_items: Vec<ShortItem>,
}

impl Event for InventoryRejected {
    const TYPE: &'static str = keys::INVENTORY_REJECTED;
}

/// Stock is reserved; charge the order (order-service, which owns the saga).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequested {
    /// The order; at most one charge per order.
    pub order_id: Uuid,
    /// The shopper; the payment method must be theirs.
    pub user_id: Uuid,
    /// The tokenized card.
    pub payment_method_id: Uuid,
    /// Amount, minor units.
    pub amount_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Event for PaymentRequested {
    const TYPE: &'static str = keys::PAYMENT_REQUESTED;
}

/// The charge was captured (payment-service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    /// The order.
    pub order_id: Uuid,
    /// The payment.
    pub payment_id: Uuid,
    /// Captured amount, minor units.
    pub amount_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl Event for PaymentSucceeded {
    const TYPE: &'static str = keys::PAYMENT_SUCCEEDED;
}

/// The charge was refused (payment-service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// The order.
    pub order_id: Uuid,
    /// The payment attempt.
    pub payment_id: Uuid,
    /// Stable code, e.g. `card_declined`, `insufficient_funds`.
    pub code: String,
    /// Words for the shopper.
    pub reason: String,
}

impl Event for PaymentFailed {
    const TYPE: &'static str = keys::PAYMENT_FAILED;
}

/// Money went back to the shopper (payment-service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: Uuid,
    /// The payment.
    pub payment_id: Uuid,
    /// The refund.
    pub refund_id: Uuid,
    /// This refund, minor units.
    pub amount_cents: i64,
    /// Everything refunded so far, minor units.
    pub refunded_total_cents: i64,
    /// True once the whole captured amount is refunded.
    pub fully_refunded: bool,
}

impl Event for PaymentRefunded {
    const TYPE: &'static str = keys::PAYMENT_REFUNDED;
}

/// The order is paid (order-service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    /// The order.
    pub order_id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// Amount, minor units.
    pub total_cents: i64,
}

impl Event for OrderPaid {
    const TYPE: &'static str = keys::ORDER_PAID;
}

/// The order is cancelled (order-service); reserved stock goes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: Uuid,
    /// Why.
    pub reason: String,
    /// Its lines (informational: product-service releases what it reserved).
    pub items: Vec<EventItem>,
}

impl Event for OrderCancelled {
    const TYPE: &'static str = keys::ORDER_CANCELLED;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_designed_shape() {
        let data = OrderPaid {
            order_id: Uuid::nil(),
            user_id: Uuid::nil(),
            total_cents: 5,
        };
        let envelope = Envelope::new(&data, Uuid::nil()).unwrap();
        let json = serde_json::to_value(&envelope).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["correlation_id", "data", "id", "occurred_at", "type"]
        );
        assert_eq!(json["type"], "order.paid");
        assert_eq!(envelope.decode::<OrderPaid>().unwrap(), data);
    }

    #[tokio::test]
    async fn envelope_carries_the_current_request_id() {
        let data = OrderPaid {
            order_id: Uuid::nil(),
            user_id: Uuid::nil(),
            total_cents: 5,
        };
        let envelope = RequestId::scope(Some(RequestId("r-9".into())), async {
            Envelope::new(&data, Uuid::nil()).unwrap()
        })
        .await;
        assert_eq!(envelope.request_id.as_deref(), Some("r-9"));
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["request_id"], "r-9");
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn decode_checks_type_and_shape() {
        let envelope = Envelope::new(
            &OrderPaid {
                order_id: Uuid::nil(),
                user_id: Uuid::nil(),
                total_cents: 1,
            },
            Uuid::nil(),
        )
        .unwrap();
        assert!(
            envelope
                .decode::<OrderCancelled>()
                .unwrap_err()
                .contains("expected a order.cancelled")
        );
        let broken = Envelope {
            data: serde_json::json!({"order_id": "x"}),
            ..envelope
        };
        assert!(
            broken
                .decode::<OrderPaid>()
                .unwrap_err()
                .starts_with("malformed order.paid")
        );
    }
}
