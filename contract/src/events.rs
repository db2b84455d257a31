//! The checkout saga's events: one durable topic exchange, one routing key
//! per event type, a durable queue per consumer named `<service>.<purpose>`.
//! The payload types live in the kit (`storekeeper_kit::events::envelope`);
//! the names live here so the docs, the services and the tests agree.

use crate::ShopService;

/// The topic exchange every event is published to (the `EVENTS_EXCHANGE`
/// default).
pub const EXCHANGE: &str = "store.events";

/// A new order was accepted; stock must be reserved.
pub const ORDER_CREATED: &str = "order.created";
/// Stock for an order is reserved.
pub const INVENTORY_RESERVED: &str = "inventory.reserved";
/// Stock for an order could not be reserved.
pub const INVENTORY_REJECTED: &str = "inventory.rejected";
/// The saga asks for an order to be charged.
pub const PAYMENT_REQUESTED: &str = "payment.requested";
/// An order was charged.
pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
/// A charge was declined or failed.
pub const PAYMENT_FAILED: &str = "payment.failed";
/// A payment was refunded, in part or in full.
pub const PAYMENT_REFUNDED: &str = "payment.refunded";
/// An order reached `PAID`.
pub const ORDER_PAID: &str = "order.paid";
/// An order reached `CANCELLED`; its reserved stock must be released.
pub const ORDER_CANCELLED: &str = "order.cancelled";

/// The queue product-service reserves and releases stock from.
pub const PRODUCT_INVENTORY_QUEUE: &str = "product.inventory";
/// The queue payment-service charges from.
pub const PAYMENT_CHARGES_QUEUE: &str = "payment.charges";
/// The queue order-service drives the saga from.
pub const ORDER_SAGA_QUEUE: &str = "order.saga";

/// One event type: who publishes it and which queues consume it.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The routing key (also the envelope's `type`).
    pub key: &'static str,
    /// The service that publishes it (through its outbox).
    pub publisher: ShopService,
    /// The consuming queues.
    pub queues: &'static [&'static str],
    /// What it means.
    pub meaning: &'static str,
}

/// Every event type of the saga, in the order a good checkout sees them.
pub const ROUTES: &[Route] = &[
    Route {
        key: ORDER_CREATED,
        publisher: ShopService::Order,
        queues: &[PRODUCT_INVENTORY_QUEUE],
        meaning: "an order was accepted; reserve its stock",
    },
    Route {
        key: INVENTORY_RESERVED,
        publisher: ShopService::Product,
        queues: &[ORDER_SAGA_QUEUE],
        meaning: "stock is reserved",
    },
    Route {
        key: INVENTORY_REJECTED,
        publisher: ShopService::Product,
        queues: &[ORDER_SAGA_QUEUE],
        meaning: "stock could not be reserved; the order is cancelled",
    },
    Route {
        key: PAYMENT_REQUESTED,
        publisher: ShopService::Order,
        queues: &[PAYMENT_CHARGES_QUEUE],
        meaning: "charge the order once",
    },
    Route {
        key: PAYMENT_SUCCEEDED,
        publisher: ShopService::Payment,
        queues: &[ORDER_SAGA_QUEUE],
        meaning: "the order is paid",
    },
    Route {
        key: PAYMENT_FAILED,
        publisher: ShopService::Payment,
        queues: &[ORDER_SAGA_QUEUE],
        meaning: "the charge was declined; the order is cancelled",
    },
    Route {
        key: PAYMENT_REFUNDED,
        publisher: ShopService::Payment,
        queues: &[ORDER_SAGA_QUEUE],
        meaning: "money went back; a full refund makes the order `REFUNDED`",
    },
    Route {
        key: ORDER_PAID,
        publisher: ShopService::Order,
        queues: &[PRODUCT_INVENTORY_QUEUE],
        meaning: "the order reached `PAID`; its reserved stock is sold",
    },
    Route {
        key: ORDER_CANCELLED,
        publisher: ShopService::Order,
        queues: &[PRODUCT_INVENTORY_QUEUE, PAYMENT_CHARGES_QUEUE],
        meaning: "the order reached `CANCELLED`; release its stock, and charge nothing (or refund a charge that came too late)",
    },
];

/// The routing keys a consuming queue is bound to.
pub fn keys_for_queue(queue: &str) -> Vec<&'static str> {
    ROUTES
        .iter()
        .filter(|route| route.queues.contains(&queue))
        .map(|route| route.key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_consumer_is_on_the_broker() {
        for route in ROUTES {
            assert!(route.publisher.uses_broker(), "{}", route.key);
            for queue in route.queues {
                let owner = queue.split('.').next().unwrap_or_default();
                let service = ShopService::from_name(owner).unwrap();
                assert!(service.uses_broker(), "{queue}");
            }
        }
    }

    #[test]
    fn queues_know_their_keys() {
        assert_eq!(
            keys_for_queue(PRODUCT_INVENTORY_QUEUE),
            [ORDER_CREATED, ORDER_PAID, ORDER_CANCELLED]
        );
        assert_eq!(
            keys_for_queue(PAYMENT_CHARGES_QUEUE),
            [PAYMENT_REQUESTED, ORDER_CANCELLED]
        );
        assert_eq!(keys_for_queue(ORDER_SAGA_QUEUE).len(), 5);
    }
}
