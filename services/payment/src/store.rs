//! SQL for payment methods, payments and refunds.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::LazyLock;

use sqlx::{FromRow, PgConnection, PgPool, Row};
use storekeeper_kit::{events::OutboxRow, idempotency::KeyTable};
use utoipa::ToSchema;
use uuid::Uuid;

/// A tokenized card, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct PaymentMethod {
    /// The id to place orders with.
    pub(crate) id: Uuid,
    /// `visa`, `mastercard`, `amex`, `discover` or `unknown`.
    pub(crate) brand: String,
    /// Last four digits.
    pub(crate) last4: String,
    /// Expiry month.
    pub(crate) exp_month: i32,
    /// Expiry year.
    pub(crate) exp_year: i32,
}

/// A payment method with the provider token (never shown to clients).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredMethod {
    /// The method.
    #[sqlx(flatten)]
    pub(crate) method: PaymentMethod,
    /// The provider's opaque token.
    pub(crate) provider_token: String,
}

/// A charge attempt for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct Payment {
    /// Payment id.
    pub(crate) id: Uuid,
    /// The order charged.
    pub(crate) order_id: Uuid,
    /// `SUCCEEDED`, `FAILED` or `REFUNDED` (fully refunded).
    #[schema(example = "SUCCEEDED")]
    pub(crate) status: String,
    /// Charged amount, minor units.
    pub(crate) amount_cents: i64,
    /// ISO 4217 code.
    pub(crate) currency: String,
    /// Refunded so far, minor units.
    pub(crate) refunded_cents: i64,
    /// Machine-readable decline code when `FAILED`.
    pub(crate) failure_code: Option<String>,
    /// Why it failed, in words, when `FAILED`.
    pub(crate) failure_reason: Option<String>,
    /// Card brand.
    pub(crate) brand: Option<String>,
    /// Card's last four digits.
    pub(crate) last4: Option<String>,
    /// When the charge was attempted.
    pub(crate) created_at: DateTime<Utc>,
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct Refund {
    /// Refund id.
    pub(crate) id: Uuid,
    /// The payment refunded.
    pub(crate) payment_id: Uuid,
    /// Amount, minor units.
    pub(crate) amount_cents: i64,
    /// When.
    pub(crate) created_at: DateTime<Utc>,
}

const PAYMENT_COLUMNS: &str = "id, order_id, status, amount_cents, currency, refunded_cents, \
     failure_code, failure_reason, brand, last4, created_at";

/// Stores a tokenized card.
pub(crate) async fn insert_method(
    pool: &PgPool,
    user: Uuid,
    brand: &str,
    last4: &str,
    exp: (u32, u32),
    provider_token: &str,
) -> Result<PaymentMethod, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO payment_methods (id, user_id, brand, last4, exp_month, exp_year, provider_token) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, brand, last4, exp_month, exp_year",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(brand)
    .bind(last4)
    .bind(i32::try_from(exp.0).unwrap_or(0))
    .bind(i32::try_from(exp.1).unwrap_or(0))
    .bind(provider_token)
    .fetch_one(pool)
    .await
}

/// What a charge needs before its provider call, in one read: the
/// shopper's payment method with its token (`None` if absent or someone
/// else's) and whether order-service cancelled `order`.
pub(crate) async fn before_charge(
    conn: &mut PgConnection,
    method: Uuid,
    user: Uuid,
    order: Uuid,
) -> Result<(Option<StoredMethod>, bool), sqlx::Error> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM cancelled_orders WHERE order_id = $3) AS cancelled, \
         m.id, m.brand, m.last4, m.exp_month, m.exp_year, m.provider_token \
         FROM (VALUES (1)) AS one (n) LEFT JOIN payment_methods m ON m.id = $1 AND m.user_id = $2",
    )
    .bind(method)
    .bind(user)
    .bind(order)
    .fetch_one(conn)
    .await?;
    let method = match row.try_get::<Option<Uuid>, _>("id")? {
        Some(_) => Some(StoredMethod::from_row(&row)?),
        None => None,
    };
    Ok((method, row.try_get("cancelled")?))
}

/// Records that order-service cancelled the order (once).
pub(crate) async fn record_cancelled(
    conn: &mut PgConnection,
    order: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO cancelled_orders (order_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(order)
        .execute(conn)
        .await?;
    Ok(())
}

/// The order's payment, locked, if it was charged.
pub(crate) async fn lock_by_order(
    conn: &mut PgConnection,
    order: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE"
    ))
    .bind(order)
    .fetch_optional(conn)
    .await
}

/// A payment about to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct NewPayment<'a> {
    /// The payment's id, chosen before it is recorded so that the event
    /// telling its outcome can name it.
    pub(crate) id: Uuid,
    /// The order.
    pub(crate) order_id: Uuid,
    /// The shopper.
    pub(crate) user_id: Uuid,
    /// The method used.
    pub(crate) payment_method_id: Uuid,
    /// Amount, minor units.
    pub(crate) amount_cents: i64,
    /// ISO 4217 code.
    pub(crate) currency: &'a str,
    /// Decline code and reason, when it failed.
    pub(crate) failure: Option<(&'a str, &'a str)>,
    /// Card brand and last four, when the method was found.
    pub(crate) card: Option<(&'a str, &'a str)>,
}

/// A payment [`record_payment`] recorded.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The payment.
    pub(crate) payment: Payment,
    /// Whether order-service had cancelled the order (a capture must then
    /// be refunded).
    pub(crate) cancelled: bool,
}

/// [`record_payment`]'s statement: the intent's end, then the payment
/// unless the order has one, then the event that tells its outcome, and
/// whether the order was cancelled.
static RECORD_PAYMENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH finished AS (DELETE FROM charge_intents WHERE order_id = $2 RETURNING order_id), \
         recorded AS (INSERT INTO payments (id, order_id, user_id, payment_method_id, \
         amount_cents, currency, status, failure_code, failure_reason, brand, last4) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 FROM finished \
         ON CONFLICT ON CONSTRAINT payments_order_id_key DO NOTHING RETURNING {PAYMENT_COLUMNS}), \
         announced AS ({}) \
         SELECT {PAYMENT_COLUMNS}, \
         EXISTS (SELECT 1 FROM cancelled_orders c WHERE c.order_id = $2) AS cancelled \
         FROM recorded",
        OutboxRow::insert_from("recorded", 12)
    )
});

/// Finishes the order's charge intent and records its payment with
/// `outcome`, the event that tells it, in one statement; nothing is
/// recorded when the intent was finished already or the order has a
/// payment (`None` then). Run under the order's lock, so a cancellation
/// recorded before it is seen.
pub(crate) async fn record_payment(
    conn: &mut PgConnection,
    new: &NewPayment<'_>,
    outcome: OutboxRow,
) -> Result<Option<Recorded>, sqlx::Error> {
    let status = if new.failure.is_some() {
        "FAILED"
    } else {
        "SUCCEEDED"
    };
    let query = sqlx::query(&RECORD_PAYMENT)
        .bind(new.id)
        .bind(new.order_id)
        .bind(new.user_id)
        .bind(new.payment_method_id)
        .bind(new.amount_cents)
        .bind(new.currency)
        .bind(status)
        .bind(new.failure.map(|f| f.0))
        .bind(new.failure.map(|f| f.1))
        .bind(new.card.map(|c| c.0))
        .bind(new.card.map(|c| c.1));
    let Some(row) = outcome.bind(query).fetch_optional(conn).await? else {
        return Ok(None);
    };
    Ok(Some(Recorded {
        payment: Payment::from_row(&row)?,
        cancelled: row.try_get("cancelled")?,
    }))
}

/// Payments visible to `user` (all for admins), optionally for one order, newest first.
pub(crate) async fn list(
    pool: &PgPool,
    user: Option<Uuid>,
    order: Option<Uuid>,
) -> Result<Vec<Payment>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE ($1::uuid IS NULL OR user_id = $1) \
         AND ($2::uuid IS NULL OR order_id = $2) ORDER BY created_at DESC, id LIMIT 100"
    ))
    .bind(user)
    .bind(order)
    .fetch_all(pool)
    .await
}

/// One payment visible to `user` (any for admins).
pub(crate) async fn get(
    pool: &PgPool,
    id: Uuid,
    user: Option<Uuid>,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)"
    ))
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await
}

/// Locks a payment for a refund.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Records a refund and updates the payment's refunded total and status.
pub(crate) async fn insert_refund(
    conn: &mut PgConnection,
    payment: &Payment,
    amount: i64,
) -> Result<(Refund, Payment), sqlx::Error> {
    let refund: Refund = sqlx::query_as(
        "INSERT INTO refunds (id, payment_id, amount_cents) VALUES ($1, $2, $3) \
         RETURNING id, payment_id, amount_cents, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(payment.id)
    .bind(amount)
    .fetch_one(&mut *conn)
    .await?;
    let updated: Payment = sqlx::query_as(&format!(
        "UPDATE payments SET refunded_cents = refunded_cents + $2, updated_at = now(), \
         status = CASE WHEN refunded_cents + $2 = amount_cents THEN 'REFUNDED' ELSE status END \
         WHERE id = $1 RETURNING {PAYMENT_COLUMNS}"
    ))
    .bind(payment.id)
    .bind(amount)
    .fetch_one(conn)
    .await?;
    Ok((refund, updated))
}

// --- refund idempotency keys -------------------------------------------------

/// The admins' refund keys (`storekeeper_kit::idempotency` has the SQL).
pub(crate) const KEYS: KeyTable = KeyTable::new("refund_keys");
