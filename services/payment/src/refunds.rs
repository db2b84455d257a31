//! Refunding a captured payment, all of it or a part: never more than was
//! captured, and the payment becomes `REFUNDED` once fully refunded. The
//! refund, the payment's new total, `payment.refunded` and the answer kept
//! for its idempotency key commit together.
//!
//! Idempotency, as for orders: the first request with a key claims it (a
//! row keyed by admin and key, holding a hash of the request) in the
//! refund's transaction and stores the answer there. The same key and
//! request replay that answer; another request under it is refused.
//! Concurrent requests with one key queue on the row's primary key and then
//! replay the winner's answer, so a retried refund never pays out twice. A
//! refused refund (amount out of range) rolls back and leaves the key
//! unused.

use axum::http::StatusCode;
use sqlx::{PgConnection, PgPool};
use storekeeper_kit::{
    db,
    events::{EventsError, enqueue, envelope::PaymentRefunded},
    idempotency::{Answer, KeyReused, request_hash},
};
use uuid::Uuid;

use crate::store::{self, Payment, Refund};

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
    #[error(transparent)]
    KeyReused(#[from] KeyReused),
    #[error("a refund with this Idempotency-Key is still in progress; retry shortly")]
    InProgress,
    #[error("serializing the refund")]
    Serialize(#[source] serde_json::Error),
}

/// One refund request: whose, under which key, for what.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    user: Uuid,
    key: &'a str,
    hash: String,
    payment: Uuid,
    amount: Option<i64>,
}

impl<'a> Attempt<'a> {
    /// `amount` of payment `payment` (everything left when `None`), asked
    /// by `user` under `key`.
    pub(crate) fn new(user: Uuid, key: &'a str, payment: Uuid, amount: Option<i64>) -> Self {
        let request = serde_json::json!({"payment_id": payment, "amount_cents": amount});
        Self {
            user,
            key,
            hash: request_hash(&request),
            payment,
            amount,
        }
    }
}

/// The answer a finished request with this key left, if any.
async fn stored_answer(
    pool: &PgPool,
    attempt: &Attempt<'_>,
) -> Result<Option<Answer>, RefundError> {
    let Some(stored) = store::KEYS.find(pool, attempt.user, attempt.key).await? else {
        return Ok(None);
    };
    Ok(stored.replay(&attempt.hash)?)
}

/// Refunds what `attempt` asks, once per key.
pub(crate) async fn refund(pool: &PgPool, attempt: &Attempt<'_>) -> Result<Answer, RefundError> {
    if let Some(answer) = stored_answer(pool, attempt).await? {
        return Ok(answer);
    }
    let mut tx = db::begin(pool).await?;
    if !store::KEYS
        .claim(&mut tx, attempt.user, attempt.key, &attempt.hash)
        .await?
    {
        // Another request with this key won the race; answer as it did.
        tx.rollback().await?;
        return stored_answer(pool, attempt)
            .await?
            .ok_or(RefundError::InProgress);
    }
    let payment = store::lock(&mut tx, attempt.payment)
        .await?
        .ok_or(RefundError::NotFound(attempt.payment))?;
    let refund = refund_locked(&mut tx, payment, attempt.amount).await?;
    let body = serde_json::to_string(&refund).map_err(RefundError::Serialize)?;
    store::KEYS
        .store_response(
            &mut tx,
            attempt.user,
            attempt.key,
            StatusCode::CREATED,
            &body,
        )
        .await?;
    tx.commit().await?;
    Ok(Answer {
        status: StatusCode::CREATED,
        body,
        replayed: false,
    })
}

/// Refunds `amount` (everything left when `None`) of a payment locked on
/// `conn`, and writes `payment.refunded` there; commits with the caller.
pub(crate) async fn refund_locked(
    conn: &mut PgConnection,
    payment: Payment,
    amount: Option<i64>,
) -> Result<Refund, RefundError> {
    if payment.status != "SUCCEEDED" {
        return Err(RefundError::NotCaptured {
            id: payment.id,
            status: payment.status,
        });
    }
    let remaining = payment.amount_cents - payment.refunded_cents;
    let amount = amount.unwrap_or(remaining);
    if amount <= 0 || amount > remaining {
        return Err(RefundError::Amount { remaining });
    }
    let (refund, updated) = store::insert_refund(conn, &payment, amount).await?;
    let event = PaymentRefunded {
        order_id: updated.order_id,
        payment_id: updated.id,
        refund_id: refund.id,
        amount_cents: amount,
        refunded_total_cents: updated.refunded_cents,
        fully_refunded: updated.refunded_cents == updated.amount_cents,
    };
    enqueue(conn, &event, updated.order_id)
        .await
        .map_err(RefundError::Outbox)?;
    Ok(refund)
}
