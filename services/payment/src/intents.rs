//! SQL for charge intents: charges the consumer decided on and the capture
//! worker has not finished (see the `charge_intents` migration).
//!
//! A worker owns an intent until its `claimed_until`; after that any worker
//! may claim it again (the one that owned it crashed, or its provider call
//! timed out). Deleting the row is what finishes a charge, in the
//! transaction that records the payment, so of two workers that both got
//! the provider's answer only the first records it.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use sqlx::{FromRow, PgConnection, PgPool, Row, postgres::types::PgInterval, types::Json};
use storekeeper_kit::events::envelope::PaymentRequested;
use uuid::Uuid;

/// A charge to make: what `payment.requested` asked for, with the flow's
/// correlation id, request id and trace context to carry on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Intent {
    /// The order to charge (the provider's idempotency key).
    pub order_id: Uuid,
    /// The shopper.
    pub user_id: Uuid,
    /// The shopper's payment method.
    pub payment_method_id: Uuid,
    /// Amount, minor units.
    pub amount_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The checkout flow's correlation id, for the events the charge writes.
    pub correlation_id: Uuid,
    /// The id of the request that started the flow.
    pub request_id: Option<String>,
    /// The consumer span's `traceparent`/`tracestate`.
    pub trace_context: Option<Json<BTreeMap<String, String>>>,
    /// Provider calls begun for it, this one included: above 1, an earlier
    /// call may have reached the provider.
    pub attempts: i32,
    /// When this replica's claim on it runs out, by this process's clock
    /// and never later than the database's `claimed_until`; `None` when
    /// unknown, which makes the worker renew the claim before it begins.
    #[sqlx(skip)]
    pub claim_ends: Option<Instant>,
}

const COLUMNS: &str = "order_id, user_id, payment_method_id, amount_cents, currency, \
     correlation_id, request_id, trace_context, attempts";

/// A Postgres interval of `duration` (whole microseconds).
fn interval(duration: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
    }
}

/// What [`decide`] made of a `payment.requested`.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The intent to charge, recorded and claimed by the caller.
    Charge(Intent),
    /// order-service cancelled the order: nothing to charge.
    Cancelled,
    /// The order has its payment already.
    Charged,
    /// The order has an intent already, which its worker is making.
    Pending,
}

/// Records the intent to charge `request` unless the order was cancelled,
/// charged or has an intent already, in one statement; the intent is
/// claimed by the caller for `lease` from the statement's own time (not
/// the transaction's start, so the claim the caller counts from its clock
/// ends no later than the stored one). Run under the order's lock, so a
/// cancellation or a payment recorded before it is seen.
pub(crate) async fn decide(
    conn: &mut PgConnection,
    request: &PaymentRequested,
    correlation_id: Uuid,
    trace: (Option<&str>, &BTreeMap<String, String>),
    lease: Duration,
) -> Result<Decision, sqlx::Error> {
    let (request_id, trace_context) = trace;
    let before = Instant::now();
    let row = sqlx::query(&format!(
        "WITH found AS (SELECT \
           EXISTS (SELECT 1 FROM cancelled_orders WHERE order_id = $1) AS cancelled, \
           EXISTS (SELECT 1 FROM payments WHERE order_id = $1) AS charged), \
         intended AS (INSERT INTO charge_intents (order_id, user_id, payment_method_id, \
           amount_cents, currency, correlation_id, request_id, trace_context, claimed_until) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp() + $9 FROM found \
           WHERE NOT cancelled AND NOT charged \
           ON CONFLICT (order_id) DO NOTHING RETURNING {COLUMNS}) \
         SELECT found.cancelled, found.charged, intended.* FROM found LEFT JOIN intended ON true"
    ))
    .bind(request.order_id)
    .bind(request.user_id)
    .bind(request.payment_method_id)
    .bind(request.amount_cents)
    .bind(&request.currency)
    .bind(correlation_id)
    .bind(request_id)
    .bind((!trace_context.is_empty()).then_some(Json(trace_context)))
    .bind(interval(lease))
    .fetch_one(conn)
    .await?;
    Ok(if row.try_get("cancelled")? {
        Decision::Cancelled
    } else if row.try_get("charged")? {
        Decision::Charged
    } else if row.try_get::<Option<Uuid>, _>("order_id")?.is_none() {
        Decision::Pending
    } else {
        Decision::Charge(claimed(Intent::from_row(&row)?, before + lease))
    })
}

fn claimed(intent: Intent, until: Instant) -> Intent {
    Intent {
        claim_ends: Some(until),
        ..intent
    }
}

/// Claims up to `limit` intents whose claim ran out, oldest claim first,
/// for `lease` each; counts the attempt each is about to make.
pub(crate) async fn claim_due(
    pool: &PgPool,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Intent>, sqlx::Error> {
    let before = Instant::now();
    let due: Vec<Intent> = sqlx::query_as(&format!(
        "UPDATE charge_intents SET claimed_until = now() + $1, attempts = attempts + 1 \
         WHERE order_id IN (SELECT order_id FROM charge_intents WHERE claimed_until <= now() \
         ORDER BY claimed_until LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
    ))
    .bind(interval(lease))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(due
        .into_iter()
        .map(|intent| claimed(intent, before + lease))
        .collect())
}

/// Renews the claim on `order`'s intent for `lease` (as its worker begins
/// it late, or its provider call runs long); `false` when it is finished,
/// or another worker claimed it since `attempts` was read.
pub(crate) async fn take(
    conn: &mut PgConnection,
    order: Uuid,
    attempts: i32,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "UPDATE charge_intents SET claimed_until = now() + $3 WHERE order_id = $1 AND attempts = $2",
    )
    .bind(order)
    .bind(attempts)
    .bind(interval(lease))
    .execute(conn)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Hands `orders`' intents back: claimable by any worker after `delay`.
pub(crate) async fn release(
    pool: &PgPool,
    orders: &[Uuid],
    delay: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE charge_intents SET claimed_until = now() + $2 WHERE order_id = ANY($1)")
        .bind(orders)
        .bind(interval(delay))
        .execute(pool)
        .await
        .map(|_| ())
}

/// Finishes the order's intent; `false` if another worker finished it.
pub(crate) async fn finish(conn: &mut PgConnection, order: Uuid) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM charge_intents WHERE order_id = $1")
        .bind(order)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() == 1)
}
