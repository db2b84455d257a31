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
//! A step that does not apply yet (a full refund while the order still
//! awaits its payment) fails transiently, so the event is retried until the
//! step it waits for has happened; a step that never will (a repeat, or
//! anything for a terminal order) is logged and ignored. A
//! `payment.succeeded` for an order already cancelled (by its deadline) is
//! one of those: payment-service refunds it when `order.cancelled` reaches
//! it. Counters move after the commit ([`AfterCommit`]).

use std::{future::Future, pin::Pin};

use sqlx::PgConnection;
use storekeeper_kit::events::{
    AfterCommit, Envelope, Event, Handler, HandlerError,
    consumer::HandlerFuture,
    envelope::{
        InventoryRejected, InventoryReserved, PaymentFailed, PaymentRefunded, PaymentSucceeded,
    },
};
use uuid::Uuid;

use crate::{
    advance::{AdvanceError, Moved, advance},
    metrics::OrderMetrics,
    status::SagaStep,
    store,
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
    metrics: OrderMetrics,
    moved: AfterCommit<Moved>,
}

impl Saga {
    /// A saga that counts into `metrics`.
    pub(crate) fn new(metrics: OrderMetrics) -> Self {
        Self {
            metrics,
            moved: AfterCommit::default(),
        }
    }
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
            match advance(conn, &order, saga_step, step.reason.as_deref()).await {
                Ok(moved) => {
                    tracing::info!(order_id = %order.id, from = moved.from.as_str(), to = moved.to.as_str(), "order moved");
                    self.moved.hold(event.id, moved);
                    Ok(())
                }
                Err(AdvanceError::Invalid(invalid)) if invalid.is_early() => Err(
                    HandlerError::Transient(format!("{invalid} yet; retrying until it does")),
                ),
                Err(AdvanceError::Invalid(invalid)) => {
                    tracing::warn!(order_id = %order.id, %invalid, "ignoring saga event");
                    Ok(())
                }
                Err(AdvanceError::Database(err)) => Err(err.into()),
                Err(AdvanceError::Outbox(err)) => Err(err.into()),
            }
        })
    }

    fn committed<'a>(
        &'a self,
        event: &'a Envelope,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        if let Some(moved) = self.moved.take(event.id) {
            self.metrics.moved(&moved);
        }
        Box::pin(std::future::ready(()))
    }
}
