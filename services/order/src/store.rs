//! SQL for carts, orders, their history and idempotency keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

use sqlx::{PgConnection, PgPool, Row, types::Json as SqlJson};
use storekeeper_kit::{
    events::{
        OutboxRow,
        envelope::{EventItem, OrderCreated},
    },
    idempotency::{AnsweredClaim, KeyTable},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    address::ShippingAddress,
    status::{OrderStatus, SagaStep},
};

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
    /// The shopper's e-mail, when the client sent it (admins search by it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
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

    /// The `order.created` event that starts the order's saga.
    pub(crate) fn created(&self) -> OrderCreated {
        OrderCreated {
            order_id: self.id,
            user_id: self.user_id,
            items: self.event_items(),
            total_cents: self.total_cents,
            currency: self.currency.clone(),
        }
    }
}

/// An order's row with its lines, read in one statement.
#[derive(sqlx::FromRow)]
struct OrderWithItems {
    #[sqlx(flatten)]
    row: OrderRow,
    items: SqlJson<Vec<LineJson>>,
}

/// A line as [`OrderWithItems`] carries it.
#[derive(Deserialize)]
struct LineJson {
    product_id: Uuid,
    name: String,
    unit_price_cents: i64,
    quantity: i32,
}

impl OrderWithItems {
    fn into_order(self) -> Result<Order, sqlx::Error> {
        let order_id = self.row.id;
        let items = self
            .items
            .0
            .into_iter()
            .map(|line| OrderItem {
                order_id,
                product_id: line.product_id,
                name: line.name,
                unit_price_cents: line.unit_price_cents,
                quantity: line.quantity,
            })
            .collect();
        self.row.into_order(items)
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
    email: Option<String>,
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
            email: self.email,
            payment_method_id: self.payment_method_id,
            cancellation_reason: self.cancellation_reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const ORDER_COLUMNS: &str = "id, user_id, status, total_cents, currency, shipping_address, \
     email, payment_method_id, cancellation_reason, created_at, updated_at";

// --- carts -----------------------------------------------------------------

/// A user's cart lines, oldest first.
const CART: &str = "SELECT product_id, quantity, added_at FROM cart_items WHERE user_id = $1 \
     ORDER BY added_at, product_id";

/// The user's cart, oldest line first.
pub(crate) async fn cart(pool: &PgPool, user: Uuid) -> Result<Vec<CartItem>, sqlx::Error> {
    sqlx::query_as(CART).bind(user).fetch_all(pool).await
}

/// What [`add_to_cart`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Added {
    /// The line took the units: the cart after the add, oldest line first.
    Line(Vec<CartItem>),
    /// The line would pass the most units of one product: nothing changed.
    LineFull,
    /// A new line, but the cart holds the most lines: nothing changed.
    CartFull,
}

/// A row of [`add_to_cart`]'s answer: the cart's room, and one line of the
/// cart after the add (none when nothing was added).
#[derive(sqlx::FromRow)]
struct AddedRow {
    room: bool,
    product_id: Option<Uuid>,
    quantity: Option<i32>,
    added_at: Option<DateTime<Utc>>,
}

/// Adds `quantity` to a line (creating it while the cart has fewer than
/// `max_lines` lines), at most `max_quantity` in a line, and answers with
/// the cart after it: the cart's room, the upsert and the cart in one
/// statement, one round trip per add where a read of the cart after it
/// made two.
pub(crate) async fn add_to_cart(
    pool: &PgPool,
    user: Uuid,
    product: Uuid,
    quantity: i32,
    max_quantity: i32,
    max_lines: i64,
) -> Result<Added, sqlx::Error> {
    let rows: Vec<AddedRow> = sqlx::query_as(
        "WITH cart AS (SELECT count(*) < $5 OR coalesce(bool_or(product_id = $2), false) AS room \
           FROM cart_items WHERE user_id = $1), \
         added AS (INSERT INTO cart_items (user_id, product_id, quantity) \
           SELECT $1, $2, $3 FROM cart WHERE room \
           ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = cart_items.quantity + EXCLUDED.quantity \
           WHERE cart_items.quantity + EXCLUDED.quantity <= $4 \
           RETURNING product_id, quantity, added_at), \
         lines AS (SELECT product_id, quantity, added_at FROM added \
           UNION ALL SELECT product_id, quantity, added_at FROM cart_items \
           WHERE user_id = $1 AND product_id <> $2 AND EXISTS (SELECT FROM added)) \
         SELECT cart.room, line.product_id, line.quantity, line.added_at \
         FROM cart LEFT JOIN lines AS line ON true \
         ORDER BY line.added_at, line.product_id",
    )
    .bind(user)
    .bind(product)
    .bind(quantity)
    .bind(max_quantity)
    .bind(max_lines)
    .fetch_all(pool)
    .await?;
    let room = rows.first().is_some_and(|row| row.room);
    let cart: Vec<CartItem> = rows
        .into_iter()
        .filter_map(|row| {
            Some(CartItem {
                product_id: row.product_id?,
                quantity: row.quantity?,
                added_at: row.added_at?,
            })
        })
        .collect();
    Ok(match (cart.is_empty(), room) {
        (false, _) => Added::Line(cart),
        (true, true) => Added::LineFull,
        (true, false) => Added::CartFull,
    })
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

/// Puts an order's lines back into its shopper's cart (inside the
/// transaction that cancels it for a declined card), so they can pay with
/// another card without rebuilding the cart. A line the shopper has added
/// again meanwhile gets the units added, at most `max` of one product.
pub(crate) async fn restore_cart(
    conn: &mut PgConnection,
    order: &Order,
    max: i32,
) -> Result<(), sqlx::Error> {
    let products: Vec<Uuid> = order.items.iter().map(|item| item.product_id).collect();
    let quantities: Vec<i32> = order
        .items
        .iter()
        .map(|item| item.quantity.min(max))
        .collect();
    sqlx::query(
        "INSERT INTO cart_items (user_id, product_id, quantity) \
         SELECT $1, product_id, quantity FROM unnest($2::uuid[], $3::int[]) AS line (product_id, quantity) \
         ON CONFLICT (user_id, product_id) DO UPDATE \
         SET quantity = LEAST(cart_items.quantity + EXCLUDED.quantity, $4)",
    )
    .bind(order.user_id)
    .bind(products)
    .bind(quantities)
    .bind(max)
    .execute(conn)
    .await?;
    Ok(())
}

// --- orders ----------------------------------------------------------------

/// What [`place_order`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// The order is in, its key claimed with its answer, the cart emptied.
    Placed,
    /// The cart is the one priced, but the key was taken by another
    /// request with it (which has finished: its answer is stored).
    KeyTaken,
    /// The cart is not the one priced: it holds this many lines now.
    CartChanged { lines: i64 },
}

/// [`place_order`]'s statement. It locks the shopper's cart lines, checks
/// they are the lines priced (product and quantity), claims the key with
/// its answer only then, and only with the key writes the order, its first
/// history row, its lines, its `order.created` row in the outbox, and takes
/// the ordered lines out of the cart. Parameters: the order `$1`–`$9`, its
/// lines `$10`–`$13`, the outbox row `$14`–`$17`, the claim `$18`–`$22`.
static PLACE_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH locked AS ( \
             SELECT product_id, quantity FROM cart_items WHERE user_id = $2 FOR UPDATE), \
         matched AS ( \
             SELECT WHERE (SELECT count(*) FROM locked) = cardinality($10::uuid[]) \
             AND NOT EXISTS ( \
                 SELECT FROM unnest($10::uuid[], $13::integer[]) AS line (product_id, quantity) \
                 WHERE NOT EXISTS (SELECT FROM locked \
                     WHERE locked.product_id = line.product_id AND locked.quantity = line.quantity))), \
         claimed AS ({}), \
         placed AS ( \
             INSERT INTO orders (id, user_id, status, total_cents, currency, shipping_address, \
                                 payment_method_id, created_at, updated_at, email) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, $9 FROM claimed RETURNING id), \
         history AS ( \
             INSERT INTO order_history (order_id, status, step, at) \
             SELECT id, $3, 'placed', $8 FROM placed), \
         lines AS ( \
             INSERT INTO order_items (order_id, product_id, name, unit_price_cents, quantity) \
             SELECT placed.id, line.product_id, line.name, line.unit_price_cents, line.quantity \
             FROM placed, unnest($10::uuid[], $11::text[], $12::bigint[], $13::integer[]) \
                 AS line (product_id, name, unit_price_cents, quantity)), \
         announced AS ({}), \
         emptied AS ( \
             DELETE FROM cart_items WHERE user_id = $2 AND product_id = ANY($10) \
             AND EXISTS (SELECT FROM placed)) \
         SELECT (SELECT count(*) FROM locked), EXISTS (SELECT FROM matched), \
                EXISTS (SELECT FROM placed)",
        KEYS.claim_from("matched", 18),
        OutboxRow::insert_from("placed", 14)
    )
});

/// Places `order` from its shopper's cart, if the cart still holds the
/// order's lines, under `claim` (the key and the answer it replays), with
/// `created` (its `order.created` event) for the outbox: one autocommit
/// statement, one round trip, where a transaction of a claim, a cart lock
/// and the writes took five, and the cart's lines locked for that one
/// statement only. A concurrent checkout of the same cart waits on its
/// lines and then finds them gone; one with the same key finds the key
/// taken.
pub(crate) async fn place_order(
    pool: &PgPool,
    order: &Order,
    created: OutboxRow,
    claim: AnsweredClaim<'_>,
) -> Result<Placement, sqlx::Error> {
    let products: Vec<Uuid> = order.items.iter().map(|item| item.product_id).collect();
    let names: Vec<&str> = order.items.iter().map(|item| item.name.as_str()).collect();
    let prices: Vec<i64> = order
        .items
        .iter()
        .map(|item| item.unit_price_cents)
        .collect();
    let quantities: Vec<i32> = order.items.iter().map(|item| item.quantity).collect();
    let query = sqlx::query(&PLACE_ORDER)
        .bind(order.id)
        .bind(order.user_id)
        .bind(order.status.as_str())
        .bind(order.total_cents)
        .bind(&order.currency)
        .bind(SqlJson(&order.shipping_address))
        .bind(order.payment_method_id)
        .bind(order.created_at)
        .bind(&order.email)
        .bind(products)
        .bind(names)
        .bind(prices)
        .bind(quantities);
    let found = claim.bind(created.bind(query)).fetch_one(pool).await?;
    let (lines, matched, placed): (i64, bool, bool) =
        (found.try_get(0)?, found.try_get(1)?, found.try_get(2)?);
    Ok(match (matched, placed) {
        (_, true) => Placement::Placed,
        (true, false) => Placement::KeyTaken,
        (false, false) => Placement::CartChanged { lines },
    })
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

/// Locks an order for a status change (the saga), reading its lines in
/// the same statement: every saga step locks an order, and a second
/// statement for the lines was one of the seven each step made.
pub(crate) async fn lock_order(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Order>, sqlx::Error> {
    let found: Option<OrderWithItems> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS}, (SELECT coalesce(json_agg(json_build_object(\
           'product_id', i.product_id, 'name', i.name, \
           'unit_price_cents', i.unit_price_cents, 'quantity', i.quantity) \
           ORDER BY i.product_id), '[]') FROM order_items i WHERE i.order_id = orders.id) AS items \
         FROM orders WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    found.map(OrderWithItems::into_order).transpose()
}

/// Up to `limit` open orders (`PENDING`, `AWAITING_PAYMENT`) placed more
/// than `deadline` ago, oldest first, locked. Rows another transaction
/// holds (the saga moving them, another replica's reaper) are skipped, so
/// reapers on several replicas never wait on or cancel the same order.
pub(crate) async fn lock_expired(
    conn: &mut PgConnection,
    deadline: std::time::Duration,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE status IN ('PENDING', 'AWAITING_PAYMENT') \
         AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2 \
         FOR UPDATE SKIP LOCKED"
    ))
    .bind(deadline.as_secs_f64())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    assemble(conn, rows).await
}

/// Which orders a listing shows: `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderFilter {
    /// Only this shopper's orders (a customer's own; an admin's search).
    pub(crate) user: Option<Uuid>,
    /// Only orders in this status.
    pub(crate) status: Option<OrderStatus>,
    /// Only orders placed with this e-mail (any case).
    pub(crate) email: Option<String>,
}

const FILTER: &str = "($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2) \
     AND ($3::text IS NULL OR lower(email) = lower($3))";

/// A page of orders matching `filter`, newest first, and the total count.
pub(crate) async fn orders(
    pool: &PgPool,
    filter: OrderFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Order>, i64), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let status = filter.status.map(OrderStatus::as_str);
    let rows: Vec<OrderRow> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE {FILTER} \
         ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(filter.user)
    .bind(status)
    .bind(&filter.email)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM orders WHERE {FILTER}"))
        .bind(filter.user)
        .bind(status)
        .bind(&filter.email)
        .fetch_one(&mut *conn)
        .await?;
    Ok((assemble(&mut conn, rows).await?, total))
}

/// One entry of an order's saga history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct HistoryEntry {
    /// The status the order took.
    pub(crate) status: String,
    /// What moved it there: `placed`, a saga step (`stock_reserved`,
    /// `payment_failed`, `shopper_cancelled`…), or `recorded` for a status
    /// an order reached before history was kept.
    pub(crate) step: String,
    /// Why, when it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// When.
    pub(crate) at: DateTime<Utc>,
}

/// An order's history, oldest first.
pub(crate) async fn history(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, step, reason, at FROM order_history WHERE order_id = $1 ORDER BY at, status",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// [`set_status`]'s statement without an event.
const SET_STATUS: &str = "WITH moved AS (UPDATE orders SET status = $2, \
     cancellation_reason = COALESCE($3, cancellation_reason), updated_at = clock_timestamp() \
     WHERE id = $1 RETURNING id) \
     INSERT INTO order_history (order_id, status, step, reason) SELECT id, $2, $4, $3 FROM moved";

/// [`set_status`]'s statement with the event that follows the move.
static SET_STATUS_ANNOUNCING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH moved AS (UPDATE orders SET status = $2, \
         cancellation_reason = COALESCE($3, cancellation_reason), updated_at = clock_timestamp() \
         WHERE id = $1 RETURNING id), \
         history AS (INSERT INTO order_history (order_id, status, step, reason) \
         SELECT id, $2, $4, $3 FROM moved) {}",
        OutboxRow::insert_from("moved", 5)
    )
});

/// Writes a new status (and the reason, when cancelling), adds it to the
/// order's history with the step that moved it, and writes `next` (the
/// event that follows, if any) into the outbox, in one statement: one
/// round trip per saga step where there were two.
pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    (status, step, reason): (OrderStatus, SagaStep, Option<&str>),
    next: Option<OutboxRow>,
) -> Result<(), sqlx::Error> {
    let sql = if next.is_some() {
        SET_STATUS_ANNOUNCING.as_str()
    } else {
        SET_STATUS
    };
    let query = sqlx::query(sql)
        .bind(id)
        .bind(status.as_str())
        .bind(reason)
        .bind(step.as_str());
    match next {
        Some(next) => next.bind(query),
        None => query,
    }
    .execute(conn)
    .await?;
    Ok(())
}

// --- idempotency keys ------------------------------------------------------

/// The shoppers' order keys (`storekeeper_kit::idempotency` has the SQL).
pub(crate) const KEYS: KeyTable = KeyTable::new("idempotency_keys");

#[cfg(test)]
mod tests;
