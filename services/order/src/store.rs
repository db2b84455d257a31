//! SQL for carts, orders and idempotency keys.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, types::Json as SqlJson};
use storekeeper_kit::events::envelope::EventItem;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{address::ShippingAddress, status::OrderStatus};

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct CartItem {
    /// The product.
    pub(crate) product_id: Uuid,
    /// Units, 1 to 99.
    pub(crate) quantity: i32,
    /// When the line was first added.
    pub(crate) added_at: DateTime<Utc>,
}

/// A line of an order, priced at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct OrderItem {
    /// The order.
    #[serde(skip)]
    pub(crate) order_id: Uuid,
    /// The product.
    pub(crate) product_id: Uuid,
    /// Its name when ordered.
    pub(crate) name: String,
    /// Its price when ordered, minor units.
    pub(crate) unit_price_cents: i64,
    /// Units.
    pub(crate) quantity: i32,
}

/// An order, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct Order {
    /// Order id.
    pub(crate) id: Uuid,
    /// The shopper.
    pub(crate) user_id: Uuid,
    /// Where the order is in the saga.
    pub(crate) status: OrderStatus,
    /// The lines.
    pub(crate) items: Vec<OrderItem>,
    /// Sum of the lines, minor units.
    pub(crate) total_cents: i64,
    /// ISO 4217 code.
    pub(crate) currency: String,
    /// Where it ships.
    pub(crate) shipping_address: ShippingAddress,
    /// The tokenized card charged.
    pub(crate) payment_method_id: Uuid,
    /// Why it was cancelled (only when `CANCELLED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cancellation_reason: Option<String>,
    /// When it was placed.
    pub(crate) created_at: DateTime<Utc>,
    /// When its status last changed.
    pub(crate) updated_at: DateTime<Utc>,
}

impl Order {
    /// The lines as the saga's events carry them (product and quantity):
    /// what product-service reserves at `order.created` and releases at
    /// `order.cancelled`.
    pub(crate) fn event_items(&self) -> Vec<EventItem> {
        self.items
            .iter()
            .map(|item| EventItem {
                product_id: item.product_id,
                quantity: item.quantity,
            })
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    status: String,
    total_cents: i64,
    currency: String,
    shipping_address: SqlJson<ShippingAddress>,
    payment_method_id: Uuid,
    cancellation_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl OrderRow {
    fn into_order(self, items: Vec<OrderItem>) -> Result<Order, sqlx::Error> {
        let status = OrderStatus::parse(&self.status).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown order status {}", self.status).into())
        })?;
        Ok(Order {
            id: self.id,
            user_id: self.user_id,
            status,
            items,
            total_cents: self.total_cents,
            currency: self.currency,
            shipping_address: self.shipping_address.0,
            payment_method_id: self.payment_method_id,
            cancellation_reason: self.cancellation_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const ORDER_COLUMNS: &str = "id, user_id, status, total_cents, currency, shipping_address, \
     payment_method_id, cancellation_reason, created_at, updated_at";

// --- carts -----------------------------------------------------------------

/// A user's cart lines, oldest first.
const CART: &str = "SELECT product_id, quantity, added_at FROM cart_items WHERE user_id = $1 \
     ORDER BY added_at, product_id";

/// The user's cart, oldest line first.
pub(crate) async fn cart(pool: &PgPool, user: Uuid) -> Result<Vec<CartItem>, sqlx::Error> {
    sqlx::query_as(CART).bind(user).fetch_all(pool).await
}

/// The user's cart, locked for checkout: a concurrent checkout by the same
/// user (with another key) waits here and then sees the cart it emptied.
pub(crate) async fn lock_cart(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Vec<CartItem>, sqlx::Error> {
    sqlx::query_as(&format!("{CART} FOR UPDATE"))
        .bind(user)
        .fetch_all(conn)
        .await
}

/// Number of lines in the user's cart.
pub(crate) async fn cart_lines(pool: &PgPool, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM cart_items WHERE user_id = $1")
        .bind(user)
        .fetch_one(pool)
        .await
}

/// Adds `quantity` to a line (creating it); `None` when the sum would exceed `max`.
pub(crate) async fn add_to_cart(
    pool: &PgPool,
    user: Uuid,
    product: Uuid,
    quantity: i32,
    max: i32,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity \
         WHERE cart_items.quantity + EXCLUDED.quantity <= $4 RETURNING quantity",
    )
    .bind(user)
    .bind(product)
    .bind(quantity)
    .bind(max)
    .fetch_optional(pool)
    .await
}

/// Sets a line's quantity; false when the line does not exist.
pub(crate) async fn set_quantity(
    pool: &PgPool,
    user: Uuid,
    product: Uuid,
    quantity: i32,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE cart_items SET quantity = $3 WHERE user_id = $1 AND product_id = $2")
            .bind(user)
            .bind(product)
            .bind(quantity)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes a line; false when it was not there.
pub(crate) async fn remove_from_cart(
    pool: &PgPool,
    user: Uuid,
    product: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2")
        .bind(user)
        .bind(product)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes the ordered lines from the cart (inside the checkout transaction).
pub(crate) async fn clear_cart(
    conn: &mut PgConnection,
    user: Uuid,
    products: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND product_id = ANY($2)")
        .bind(user)
        .bind(products)
        .execute(conn)
        .await?;
    Ok(())
}

// --- orders ----------------------------------------------------------------

/// Inserts an order and its lines.
pub(crate) async fn insert_order(
    conn: &mut PgConnection,
    order: &Order,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orders (id, user_id, status, total_cents, currency, shipping_address, payment_method_id, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(order.id)
    .bind(order.user_id)
    .bind(order.status.as_str())
    .bind(order.total_cents)
    .bind(&order.currency)
    .bind(SqlJson(&order.shipping_address))
    .bind(order.payment_method_id)
    .bind(order.created_at)
    .execute(&mut *conn)
    .await?;
    for item in &order.items {
        sqlx::query(
            "INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(order.id)
        .bind(item.product_id)
        .bind(&item.name)
        .bind(item.unit_price_cents)
        .bind(item.quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn items_of(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<OrderItem>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, product_id, name, unit_price_cents, quantity FROM order_items \
         WHERE order_id = ANY($1) ORDER BY order_id, product_id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

async fn assemble(conn: &mut PgConnection, rows: Vec<OrderRow>) -> Result<Vec<Order>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut items = items_of(conn, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                items.drain(..).partition(|item| item.order_id == row.id);
            items = rest;
            row.into_order(mine)
        })
        .collect()
}

/// One order visible to `owner` (`None`: any order, for admins and the saga).
pub(crate) async fn order(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Order>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)"
    ))
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(assemble(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Locks an order for a status change (the saga).
pub(crate) async fn lock_order(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Order>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => Ok(assemble(conn, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// A page of orders visible to `owner`, newest first, and the total count.
pub(crate) async fn orders(
    pool: &PgPool,
    owner: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Order>, i64), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let rows: Vec<OrderRow> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE ($1::uuid IS NULL OR user_id = $1) \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(owner)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE ($1::uuid IS NULL OR user_id = $1)")
            .bind(owner)
            .fetch_one(&mut *conn)
            .await?;
    Ok((assemble(&mut conn, rows).await?, total))
}

/// Writes a new status (and the reason, when cancelling).
pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: OrderStatus,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = $2, cancellation_reason = COALESCE($3, cancellation_reason), \
         updated_at = clock_timestamp() WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

// --- idempotency keys ------------------------------------------------------

/// A stored idempotency key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StoredKey {
    /// Hash of the canonical request body.
    pub(crate) request_hash: String,
    /// The first response's status, once there is one.
    pub(crate) response_status: Option<i32>,
    /// The first response's body.
    pub(crate) response_body: Option<String>,
}

/// Looks a key up.
pub(crate) async fn find_key(
    conn: &mut PgConnection,
    user: Uuid,
    key: &str,
) -> Result<Option<StoredKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// Claims a key; false when another request holds it. A concurrent claim
/// of the same key waits here until the first transaction ends.
pub(crate) async fn claim_key(
    conn: &mut PgConnection,
    user: Uuid,
    key: &str,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user)
    .bind(key)
    .bind(hash)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the response to replay.
pub(crate) async fn store_response(
    conn: &mut PgConnection,
    user: Uuid,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE user_id = $1 AND key = $2")
        .bind(user)
        .bind(key)
        .bind(i32::from(status))
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes keys older than `hours`; returns how many.
pub(crate) async fn prune_keys(pool: &PgPool, hours: i32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
    )
    .bind(hours)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
