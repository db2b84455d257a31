//! order-service's business metrics.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
};
use storekeeper_kit::Metrics;

use crate::status::OrderStatus;

/// Labels for cancelled orders.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CancelLabels {
    /// `stock` or `payment`: which step failed.
    pub(crate) stage: &'static str,
}

/// Handles to the metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OrderMetrics {
    /// Orders accepted.
    pub(crate) placed: Counter,
    /// Idempotent replays answered.
    pub(crate) replays: Counter,
    /// Orders paid.
    pub(crate) paid: Counter,
    /// Orders cancelled, by failed stage.
    pub(crate) cancellations: Family<CancelLabels, Counter>,
    /// Orders refunded.
    pub(crate) refunded: Counter,
    /// Time from placing an order to it being paid, seconds.
    pub(crate) time_to_paid: Histogram,
}

impl OrderMetrics {
    /// Registers the metrics.
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            placed: metrics.counter("orders_placed", "Orders accepted"),
            replays: metrics.counter(
                "orders_idempotent_replays",
                "POST /api/orders answered from an idempotency key",
            ),
            paid: metrics.counter("orders_paid", "Orders paid"),
            cancellations: metrics.register(
                "orders_cancelled",
                "Orders cancelled, by the stage that failed (stock, payment)",
                Family::default(),
            ),
            refunded: metrics.counter("orders_refunded", "Orders fully refunded"),
            time_to_paid: metrics.register(
                "order_time_to_paid_seconds",
                "Time from placing an order to it being paid, seconds",
                Histogram::new(exponential_buckets(0.002, 2.0, 14)),
            ),
        }
    }

    /// Counts a cancellation of an order that was `from`.
    pub(crate) fn cancelled(&self, from: OrderStatus) {
        let stage = if from == OrderStatus::Pending {
            "stock"
        } else {
            "payment"
        };
        self.cancellations
            .get_or_create(&CancelLabels { stage })
            .inc();
    }
}
