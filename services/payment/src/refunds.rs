//! Refunding a captured payment, all of it or a part: never more than was
//! captured, and the payment becomes `REFUNDED` once fully refunded. The
//! refund, the payment's new total and `payment.refunded` commit together.

use sqlx::PgPool;
use storekeeper_kit::events::{EventsError, enqueue, envelope::PaymentRefunded};
use uuid::Uuid;

use crate::store::{self, Refund};

/// Why a refund was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RefundError {
    #[error("no payment {0}")]
    NotFound(Uuid),
    #[error("payment {id} is {status}; only captured payments with money left can be refunded")]
    NotCaptured { id: Uuid, status: String },
    #[error("must be between 1 and {remaining} (what is left to refund)")]
    Amount { remaining: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("writing payment.refunded to the outbox")]
    Outbox(#[source] EventsError),
}

/// Refunds `amount` of payment `id`; everything not yet refunded when `None`.
pub(crate) async fn refund(
    pool: &PgPool,
    id: Uuid,
    amount: Option<i64>,
) -> Result<Refund, RefundError> {
    let mut tx = pool.begin().await?;
    let payment = store::lock(&mut tx, id)
        .await?
        .ok_or(RefundError::NotFound(id))?;
    if payment.status != "SUCCEEDED" {
        return Err(RefundError::NotCaptured {
            id,
            status: payment.status,
        });
    }
    let remaining = payment.amount_cents - payment.refunded_cents;
    let amount = amount.unwrap_or(remaining);
    if amount <= 0 || amount > remaining {
        return Err(RefundError::Amount { remaining });
    }
    let (refund, updated) = store::insert_refund(&mut tx, &payment, amount).await?;
    let event = PaymentRefunded {
        order_id: updated.order_id,
        payment_id: updated.id,
        refund_id: refund.id,
        amount_cents: amount,
        refunded_total_cents: updated.refunded_cents,
        fully_refunded: updated.refunded_cents == updated.amount_cents,
    };
    enqueue(&mut tx, &event, updated.order_id)
        .await
        .map_err(RefundError::Outbox)?;
    tx.commit().await?;
    Ok(refund)
}
