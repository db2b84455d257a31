//! The saga's order side: the `order.saga` consumer moves orders through
//! [`crate::status::transition`] and emits what comes next.
//!
//! | event | step | then |
//! | --- | --- | --- |
//! | `inventory.reserved` | stock reserved → `AWAITING_PAYMENT` | `payment.requested` |
//! | `inventory.rejected` | stock rejected → `CANCELLED` | `order.cancelled` |
//! | `payment.succeeded` | → `PAID` | `order.paid` |
//! | `payment.failed` | → `CANCELLED` | `order.cancelled` (stock released) |
//! | `payment.refunded` (fully) | → `REFUNDED` | — |
//!
//! A step that does not apply to the order's status is logged and ignored.

use sqlx::PgConnection;
use storekeeper_kit::events::{
    Envelope, Event, Handler, HandlerError,
    consumer::HandlerFuture,
    enqueue,
    envelope::{
        InventoryRejected, InventoryReserved, OrderCancelled, OrderPaid, PaymentFailed,
        PaymentRefunded, PaymentRequested, PaymentSucceeded,
    },
};
use uuid::Uuid;

use crate::{
    metrics::OrderMetrics,
    status::{OrderStatus, SagaStep, transition},
    store::{self, Order},
};

/// The consumer's name: its queue and its key in `processed_events`.
pub(crate) const CONSUMER: &str = "order.saga";
/// The events it handles.
pub(crate) const ROUTING_KEYS: &[&str] = &[
    InventoryReserved::TYPE,
    InventoryRejected::TYPE,
    PaymentSucceeded::TYPE,
    PaymentFailed::TYPE,
    PaymentRefunded::TYPE,
];

/// Applies saga events to orders.
#[derive(Clone, Debug)]
pub(crate) struct Saga {
    pub(crate) metrics: OrderMetrics,
}

/// An event reduced to what the state machine needs.
struct Reading {
    order_id: Uuid,
    saga_step: Option<SagaStep>,
    reason: Option<String>,
}

fn read(event: &Envelope) -> Result<Reading, String> {
    let step = |order_id, saga_step, reason| Reading {
        order_id,
        saga_step,
        reason,
    };
    Ok(match event.event_type.as_str() {
        InventoryReserved::TYPE => {
            let data: InventoryReserved = event.decode()?;
            step(data.order_id, Some(SagaStep::StockReserved), None)
        }
        InventoryRejected::TYPE => {
            let data: InventoryRejected = event.decode()?;
            step(
                data.order_id,
                Some(SagaStep::StockRejected),
                Some(data.reason),
            )
        }
        PaymentSucceeded::TYPE => {
            let data: PaymentSucceeded = event.decode()?;
            step(data.order_id, Some(SagaStep::PaymentSucceeded), None)
        }
        PaymentFailed::TYPE => {
            let data: PaymentFailed = event.decode()?;
            step(
                data.order_id,
                Some(SagaStep::PaymentFailed),
                Some(format!("payment failed: {}", data.reason)),
            )
        }
        PaymentRefunded::TYPE => {
            let data: PaymentRefunded = event.decode()?;
            step(
                data.order_id,
                data.fully_refunded.then_some(SagaStep::FullyRefunded),
                None,
            )
        }
        other => return Err(format!("order.saga does not handle {other} events")),
    })
}

impl Handler for Saga {
    fn handle<'a>(&'a self, conn: &'a mut PgConnection, event: &'a Envelope) -> HandlerFuture<'a> {
        Box::pin(async move {
            let step = read(event).map_err(HandlerError::Permanent)?;
            let Some(saga_step) = step.saga_step else {
                return Ok(());
            };
            let order = store::lock_order(conn, step.order_id)
                .await?
                .ok_or_else(|| HandlerError::Permanent(format!("no order {}", step.order_id)))?;
            let next = match transition(order.status, saga_step) {
                Ok(next) => next,
                Err(invalid) => {
                    tracing::warn!(order_id = %order.id, %invalid, "ignoring saga event");
                    return Ok(());
                }
            };
            store::set_status(conn, order.id, next, step.reason.as_deref()).await?;
            self.follow_up(conn, &order, next, step.reason.unwrap_or_default())
                .await?;
            tracing::info!(order_id = %order.id, from = order.status.as_str(), to = next.as_str(), "order moved");
            Ok(())
        })
    }
}

impl Saga {
    async fn follow_up(
        &self,
        conn: &mut PgConnection,
        order: &Order,
        next: OrderStatus,
        reason: String,
    ) -> Result<(), HandlerError> {
        match next {
            OrderStatus::AwaitingPayment => {
                let request = PaymentRequested {
                    order_id: order.id,
                    user_id: order.user_id,
                    payment_method_id: order.payment_method_id,
                    amount_cents: order.total_cents,
                    currency: order.currency.clone(),
                };
                enqueue(conn, &request, order.id).await?;
            }
            OrderStatus::Paid => {
                let paid = OrderPaid {
                    order_id: order.id,
                    user_id: order.user_id,
                    total_cents: order.total_cents,
                };
                enqueue(conn, &paid, order.id).await?;
                self.metrics.paid.inc();
                let age = (chrono::Utc::now() - order.created_at)
                    .to_std()
                    .unwrap_or_default();
                self.metrics.time_to_paid.observe(age.as_secs_f64());
            }
            OrderStatus::Cancelled => {
                let cancelled = OrderCancelled {
                    order_id: order.id,
                    reason,
                    items: order.event_items(),
                };
                enqueue(conn, &cancelled, order.id).await?;
                self.metrics.cancelled(order.status);
            }
            OrderStatus::Refunded => {
                self.metrics.refunded.inc();
            }
            OrderStatus::Pending => {}
        }
        Ok(())
    }
}
