//! order-service's business metrics: what checkout answered, how far into
//! checkout each saga step lands, what the saga did, and the orders that
//! stay open too long.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
};
use storekeeper_kit::{ApiError, Metrics};

use crate::{
    advance::Moved,
    status::{OrderStatus, SagaStep},
};

/// Labels for cancelled orders.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CancelLabels {
    /// `stock`, `payment` or `deadline`: which step failed.
    pub(crate) stage: &'static str,
}

/// Labels for what `POST /api/orders` answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CheckoutLabels {
    /// `placed` (a new order), `replayed` (the answer kept for its
    /// Idempotency-Key), `refused` (a 4xx: the shopper's request cannot be
    /// served as sent) or `failed` (a 5xx: the shop could not serve it).
    pub(crate) outcome: &'static str,
    /// `none` for `placed` and `replayed`; otherwise the problem type
    /// answered (`validation`, `conflict`, `unprocessable`,
    /// `idempotency-key-reused`, `unavailable`, `internal`…): a bounded set
    /// clients also branch on.
    pub(crate) reason: &'static str,
}

/// Labels for saga steps.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StepLabels {
    /// `stock_reserved`, `stock_rejected`, `payment_succeeded`,
    /// `payment_failed`, `fully_refunded` or `expired`.
    pub(crate) step: &'static str,
}

/// Labels for open orders.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    /// `PENDING` or `AWAITING_PAYMENT`.
    pub(crate) status: &'static str,
}

/// The statuses an order is still open in.
const OPEN: [OrderStatus; 2] = [OrderStatus::Pending, OrderStatus::AwaitingPayment];

/// Handles to the metrics. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OrderMetrics {
    /// Orders accepted.
    pub(crate) placed: Counter,
    /// Idempotent replays answered.
    pub(crate) replays: Counter,
    /// What `POST /api/orders` answered, by outcome and reason.
    checkouts: Family<CheckoutLabels, Counter>,
    /// Orders paid.
    pub(crate) paid: Counter,
    /// Orders cancelled, by failed stage.
    pub(crate) cancellations: Family<CancelLabels, Counter>,
    /// Orders refunded.
    pub(crate) refunded: Counter,
    /// Time from placing an order to it being paid, seconds.
    pub(crate) time_to_paid: Histogram,
    /// Time from placing an order to each saga step committing, seconds.
    saga_steps: Family<StepLabels, Histogram>,
    /// Open orders older than the stuck threshold, by status.
    stuck: Family<StatusLabels, Gauge>,
    /// How old an open order must be to count as stuck, seconds.
    stuck_threshold: Gauge,
}

impl OrderMetrics {
    /// Registers the metrics.
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            placed: metrics.counter("orders_placed", "Orders accepted"),
            replays: metrics.counter(
                "orders_idempotent_replays",
                "POST /api/orders answered from an idempotency key",
            ),
            checkouts: metrics.register(
                "order_checkouts",
                "POST /api/orders answers, by outcome (placed, replayed, refused, failed) \
                 and reason (the problem type; none when placed or replayed)",
                Family::default(),
            ),
            paid: metrics.counter("orders_paid", "Orders paid"),
            cancellations: metrics.register(
                "orders_cancelled",
                "Orders cancelled, by the stage that failed (stock, payment, deadline) or shopper",
                Family::default(),
            ),
            refunded: metrics.counter("orders_refunded", "Orders fully refunded"),
            time_to_paid: metrics.register(
                "order_time_to_paid_seconds",
                "Time from placing an order to it being paid, seconds",
                Histogram::new(exponential_buckets(0.002, 2.0, 14)),
            ),
            saga_steps: metrics.register(
                "order_saga_step_seconds",
                "Time from placing an order to a saga step committing, by step, seconds",
                Family::new_with_constructor(saga_step_histogram as fn() -> Histogram),
            ),
            stuck: metrics.register(
                "orders_stuck",
                "Orders still PENDING or AWAITING_PAYMENT longer than \
                 orders_stuck_threshold_seconds, by status (measured by every reaper pass)",
                Family::default(),
            ),
            stuck_threshold: metrics.register(
                "orders_stuck_threshold_seconds",
                "How long an order may stay open before it counts in orders_stuck, seconds",
                Gauge::default(),
            ),
        };
        // Every status is exported from the start, so an alert sees 0
        // rather than no series before the first pass.
        for status in OPEN {
            this.stuck
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(0);
        }
        this
    }

    /// Counts what `POST /api/orders` answered: an order (`true` when it
    /// was the replay of an earlier answer) or a problem.
    pub(crate) fn checkout(&self, answer: Result<bool, &ApiError>) {
        let labels = match answer {
            Ok(true) => CheckoutLabels {
                outcome: "replayed",
                reason: "none",
            },
            Ok(false) => CheckoutLabels {
                outcome: "placed",
                reason: "none",
            },
            Err(err) => CheckoutLabels {
                outcome: if err.status().is_server_error() {
                    "failed"
                } else {
                    "refused"
                },
                reason: err.kind(),
            },
        };
        self.checkouts.get_or_create(&labels).inc();
    }

    /// Counts what a committed saga step did.
    pub(crate) fn moved(&self, moved: &Moved) {
        self.saga_steps
            .get_or_create(&StepLabels {
                step: moved.step.as_str(),
            })
            .observe(moved.age.as_secs_f64());
        match moved.to {
            OrderStatus::Paid => {
                self.paid.inc();
                self.time_to_paid.observe(moved.age.as_secs_f64());
            }
            OrderStatus::Cancelled => {
                let stage = match moved.step {
                    SagaStep::StockRejected => "stock",
                    SagaStep::Expired => "deadline",
                    SagaStep::ShopperCancelled => "shopper",
                    _ => "payment",
                };
                self.cancellations
                    .get_or_create(&CancelLabels { stage })
                    .inc();
            }
            OrderStatus::Refunded => {
                self.refunded.inc();
            }
            OrderStatus::Pending | OrderStatus::AwaitingPayment => {}
        }
    }

    /// Records how old an open order must be to count as stuck.
    pub(crate) fn set_stuck_threshold(&self, threshold: Duration) {
        self.stuck_threshold
            .set(i64::try_from(threshold.as_secs()).unwrap_or(i64::MAX));
    }

    /// Records how many open orders are older than the threshold, by
    /// status; a status missing from `counts` has none.
    pub(crate) fn set_stuck(&self, counts: &[(OrderStatus, i64)]) {
        for status in OPEN {
            let count = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.stuck
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(count);
        }
    }
}

/// 5 ms .. about 22 min, doubling: a step lands in milliseconds when the
/// shop is healthy and as late as the deadline (15 min) when it is not.
fn saga_step_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 19))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn checkouts_are_counted_by_outcome_and_problem_type() {
        let registry = Metrics::new();
        let metrics = OrderMetrics::register(&registry);
        metrics.checkout(Ok(false));
        metrics.checkout(Ok(true));
        metrics.checkout(Err(&ApiError::conflict("cart changing")));
        metrics.checkout(Err(&ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Unavailable",
        )));
        let text = registry.encode().unwrap();
        for line in [
            r#"order_checkouts_total{outcome="placed",reason="none"} 1"#,
            r#"order_checkouts_total{outcome="replayed",reason="none"} 1"#,
            r#"order_checkouts_total{outcome="refused",reason="conflict"} 1"#,
            r#"order_checkouts_total{outcome="failed",reason="unavailable"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing: {text}");
        }
    }

    #[test]
    fn stuck_orders_are_a_gauge_per_open_status_from_the_start() {
        let registry = Metrics::new();
        let metrics = OrderMetrics::register(&registry);
        let text = registry.encode().unwrap();
        assert!(
            text.contains(r#"orders_stuck{status="PENDING"} 0"#),
            "{text}"
        );
        metrics.set_stuck_threshold(Duration::from_mins(2));
        metrics.set_stuck(&[(OrderStatus::AwaitingPayment, 3)]);
        let text = registry.encode().unwrap();
        assert!(
            text.contains(r#"orders_stuck{status="PENDING"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"orders_stuck{status="AWAITING_PAYMENT"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("orders_stuck_threshold_seconds 120"),
            "{text}"
        );
    }

    #[test]
    fn saga_steps_are_timed_from_the_order_being_placed() {
        let registry = Metrics::new();
        let metrics = OrderMetrics::register(&registry);
        metrics.moved(&Moved {
            from: OrderStatus::Pending,
            to: OrderStatus::AwaitingPayment,
            step: SagaStep::StockReserved,
            age: Duration::from_millis(30),
        });
        let text = registry.encode().unwrap();
        assert!(
            text.contains(r#"order_saga_step_seconds_count{step="stock_reserved"} 1"#),
            "{text}"
        );
    }
}
