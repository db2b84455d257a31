//! One saga step applied to a locked order: the new status and the event
//! that follows it, written on the caller's transaction. Both the saga
//! consumer and the reaper move orders through here, so an order cancelled
//! for any reason announces `order.cancelled` (and its stock comes back)
//! the same way. A cancellation for a declined card also puts the order's
//! lines back into the shopper's cart, in the same transaction, so they
//! can pay with another card at once.

use std::time::Duration;

use sqlx::PgConnection;
use storekeeper_kit::events::{
    EventsError, OutboxRow,
    envelope::{OrderCancelled, OrderPaid, PaymentRequested},
};

use crate::{
    cart::MAX_QUANTITY,
    status::{InvalidTransition, OrderStatus, SagaStep, transition},
    store::{self, Order},
};

/// What a step did to an order, kept until the transaction commits: the
/// counters are told only then, so a rolled-back step counts nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    /// The status before.
    pub(crate) from: OrderStatus,
    /// The status after.
    pub(crate) to: OrderStatus,
    /// What moved it.
    pub(crate) step: SagaStep,
    /// How long after it was placed.
    pub(crate) age: Duration,
}

/// Why a step was not applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdvanceError {
    /// The step does not apply to the order's status.
    #[error(transparent)]
    Invalid(#[from] InvalidTransition),
    /// PostgreSQL failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The next event could not be written to the outbox.
    #[error("writing the next event to the outbox: {0}")]
    Outbox(#[from] EventsError),
}

/// Moves the locked `order` by `step`; `reason` is kept when it cancels.
pub(crate) async fn advance(
    conn: &mut PgConnection,
    order: &Order,
    step: SagaStep,
    reason: Option<&str>,
) -> Result<Moved, AdvanceError> {
    let to = transition(order.status, step)?;
    let next = announcement(order, to, reason.unwrap_or_default())?;
    store::set_status(conn, order.id, (to, step, reason), next).await?;
    if step == SagaStep::PaymentFailed {
        store::restore_cart(conn, order, MAX_QUANTITY).await?;
    }
    let age = (chrono::Utc::now() - order.created_at)
        .to_std()
        .unwrap_or_default();
    Ok(Moved {
        from: order.status,
        to,
        step,
        age,
    })
}

/// The outbox row of the event that follows the move to `to`, if any.
fn announcement(
    order: &Order,
    to: OrderStatus,
    reason: &str,
) -> Result<Option<OutboxRow>, EventsError> {
    Ok(Some(match to {
        OrderStatus::AwaitingPayment => {
            let request = PaymentRequested {
                order_id: order.id,
                user_id: order.user_id,
                payment_method_id: order.payment_method_id,
                amount_cents: order.total_cents,
                currency: order.currency.clone(),
            };
            OutboxRow::new(&request, order.id)?
        }
        OrderStatus::Paid => {
            let paid = OrderPaid {
                order_id: order.id,
                user_id: order.user_id,
                total_cents: order.total_cents,
            };
            OutboxRow::new(&paid, order.id)?
        }
        OrderStatus::Cancelled => {
            let cancelled = OrderCancelled {
                order_id: order.id,
                reason: reason.to_owned(),
                items: order.event_items(),
            };
            OutboxRow::new(&cancelled, order.id)?
        }
        OrderStatus::Pending | OrderStatus::Refunded => return Ok(None),
    }))
}
