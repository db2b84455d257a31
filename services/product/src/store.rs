//! PostgreSQL queries: the catalog, the sample catalog's upserts, and the
//! stock the checkout saga reserves.
//!
//! Runtime-checked queries (`query_as` + `FromRow`); every one of them is
//! exercised by the integration tests against a real server. Only fixed SQL
//! fragments are ever concatenated (the `ORDER BY` chosen from
//! [`crate::listing::Sort`]); client text always travels as a bind
//! parameter.

use std::sync::LazyLock;

use sqlx::{PgConnection, PgPool, types::Json};
use storekeeper_kit::events::{OutboxRow, envelope::EventItem};
use uuid::Uuid;

use crate::{
    domain::{Category, Product, ValidPatch, ValidProduct},
    listing::{ListQuery, ProductPage},
};

/// Why a catalog write was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// No product with that id.
    #[error("product not found")]
    NotFound,
    /// Another product has the slug.
    #[error("the slug `{0}` is already used by another product; choose another")]
    SlugTaken(String),
    /// The category slug names no category.
    #[error("category `{0}` does not exist")]
    UnknownCategory(String),
    /// A stock change would take the stock below zero.
    #[error(
        "removing {removing} units would take the stock below zero: {on_hand} are on hand (reserved units are already taken off)"
    )]
    StockBelowZero {
        /// Units the change would remove.
        removing: i64,
        /// Units on hand now.
        on_hand: i32,
    },
    /// The product changed since the caller read the version it sent.
    #[error(
        "the product changed since you read it ({on_hand} on hand now); read GET /api/products/{{id}}/stock again for its ETag, or send `stock_delta`"
    )]
    Changed {
        /// Units on hand now.
        on_hand: i32,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The unique constraint on product slugs.
const SLUG_CONSTRAINT: &str = "products_slug_key";
/// The check that keeps stock at zero or more.
const STOCK_CONSTRAINT: &str = "products_stock_non_negative";

/// A write's error, with a duplicate `slug` told apart.
fn write_error(slug: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |err| match &err {
        sqlx::Error::Database(db) if db.constraint() == Some(SLUG_CONSTRAINT) => {
            StoreError::SlugTaken(slug.to_owned())
        }
        _ => StoreError::Database(err),
    }
}

/// Whether `err` is the stock check refusing a negative stock.
fn is_negative_stock(err: &StoreError) -> bool {
    matches!(err, StoreError::Database(sqlx::Error::Database(db)) if db.constraint() == Some(STOCK_CONSTRAINT))
}

/// The columns of [`Product`], for `FROM products p JOIN categories c`.
const PRODUCT_COLUMNS: &str = "p.id, p.slug, p.name, p.description, p.price_cents, p.currency, \
     p.image_url, p.stock, c.slug AS category, c.name AS category_name, p.created_at, p.updated_at";

/// The filters shared by the page query and the count query.
const LIST_FILTER: &str = "FROM products p JOIN categories c ON c.id = p.category_id \
     WHERE ($1::text IS NULL OR c.slug = $1) \
       AND ($2::text IS NULL OR p.search @@ websearch_to_tsquery('english', $2))";

/// Every category, alphabetically.
pub(crate) async fn categories(pool: &PgPool) -> Result<Vec<Category>, sqlx::Error> {
    sqlx::query_as("SELECT id, slug, name, description FROM categories ORDER BY name, id")
        .fetch_all(pool)
        .await
}

/// One page of products matching `query`, with the total over all pages.
pub(crate) async fn list(pool: &PgPool, query: &ListQuery) -> Result<ProductPage, sqlx::Error> {
    let page_sql = format!(
        "SELECT {PRODUCT_COLUMNS} {LIST_FILTER} ORDER BY {} LIMIT $3 OFFSET $4",
        query.sort.order_by()
    );
    let items = sqlx::query_as::<_, Product>(&page_sql)
        .bind(query.category.as_deref())
        .bind(query.q.as_deref())
        .bind(i64::from(query.per_page))
        .bind(query.offset())
        .fetch_all(pool)
        .await?;
    let total = if query.page == 1 && items.len() < usize::try_from(query.per_page).unwrap_or(0) {
        // The first page is not full, so it holds every match: no need to count.
        i64::try_from(items.len()).unwrap_or(i64::MAX)
    } else {
        sqlx::query_scalar(&format!("SELECT count(*) {LIST_FILTER}"))
            .bind(query.category.as_deref())
            .bind(query.q.as_deref())
            .fetch_one(pool)
            .await?
    };
    Ok(ProductPage {
        items,
        page: query.page,
        per_page: query.per_page,
        total,
    })
}

/// The products with these ids that exist, in the order of `ids`; read
/// from the database, never the cache, for callers that need current
/// prices.
pub(crate) async fn by_ids(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM unnest($1::uuid[]) WITH ORDINALITY AS wanted (id, n) \
         JOIN products p ON p.id = wanted.id JOIN categories c ON c.id = p.category_id \
         ORDER BY wanted.n"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// The product with this id, if any.
pub(crate) async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p JOIN categories c ON c.id = p.category_id \
         WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The product with this slug, if any.
pub(crate) async fn by_slug(pool: &PgPool, slug: &str) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p JOIN categories c ON c.id = p.category_id \
         WHERE p.slug = $1"
    ))
    .bind(slug)
    .fetch_optional(pool)
    .await
}

/// Inserts a new product.
pub(crate) async fn create(pool: &PgPool, product: &ValidProduct) -> Result<Product, StoreError> {
    let sql = format!(
        "WITH p AS ( \
           INSERT INTO products \
             (id, slug, name, description, price_cents, currency, image_url, stock, category_id) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, c.id FROM categories c WHERE c.slug = $9 \
           RETURNING * \
         ) SELECT {PRODUCT_COLUMNS} FROM p JOIN categories c ON c.id = p.category_id"
    );
    sqlx::query_as(&sql)
        .bind(Uuid::now_v7())
        .bind(&product.slug)
        .bind(&product.name)
        .bind(&product.description)
        .bind(product.price_cents)
        .bind(&product.currency)
        .bind(&product.image_url)
        .bind(product.stock)
        .bind(&product.category)
        .fetch_optional(pool)
        .await
        .map_err(write_error(&product.slug))?
        .ok_or_else(|| StoreError::UnknownCategory(product.category.clone()))
}

/// Applies a patch; fields left `None` keep their value. A `stock_delta`
/// is added to the stock as it is when the statement runs (a row lock, so
/// a concurrent reservation is never overwritten); one that would take it
/// below zero is refused. With `version` (from [`stock_levels`]) the patch
/// applies only to the row as it was then, so an absolute `stock` read
/// before a reservation cannot undo it.
pub(crate) async fn update(
    pool: &PgPool,
    id: Uuid,
    patch: &ValidPatch,
    version: Option<&str>,
) -> Result<Product, StoreError> {
    let category_id = match &patch.category {
        Some(slug) => Some(
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM categories WHERE slug = $1")
                .bind(slug)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| StoreError::UnknownCategory(slug.clone()))?,
        ),
        None => None,
    };
    let sql = format!(
        "WITH p AS ( \
           UPDATE products SET \
             slug = COALESCE($2, slug), name = COALESCE($3, name), \
             description = COALESCE($4, description), price_cents = COALESCE($5, price_cents), \
             currency = COALESCE($6, currency), image_url = COALESCE($7, image_url), \
             stock = COALESCE($8, stock) + $10, category_id = COALESCE($9, category_id), \
             updated_at = now() \
           WHERE id = $1 AND ($11::text IS NULL OR xmin::text = $11) RETURNING * \
         ) SELECT {PRODUCT_COLUMNS} FROM p JOIN categories c ON c.id = p.category_id"
    );
    let updated = sqlx::query_as(&sql)
        .bind(id)
        .bind(patch.slug.as_deref())
        .bind(patch.name.as_deref())
        .bind(patch.description.as_deref())
        .bind(patch.price_cents)
        .bind(patch.currency.as_deref())
        .bind(patch.image_url.as_deref())
        .bind(patch.stock)
        .bind(category_id)
        .bind(patch.stock_delta.unwrap_or(0))
        .bind(version)
        .fetch_optional(pool)
        .await
        .map_err(write_error(patch.slug.as_deref().unwrap_or_default()));
    match updated {
        Ok(Some(product)) => Ok(product),
        Ok(None) => {
            let on_hand: Option<i32> =
                sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
            match (on_hand, version) {
                (Some(on_hand), Some(_)) => Err(StoreError::Changed { on_hand }),
                _ => Err(StoreError::NotFound),
            }
        }
        Err(err) if is_negative_stock(&err) => {
            let on_hand: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound)?;
            Err(StoreError::StockBelowZero {
                removing: -i64::from(patch.stock_delta.unwrap_or(0)),
                on_hand,
            })
        }
        Err(err) => Err(err),
    }
}

/// A product's stock for the admin: units on hand (what shoppers can still
/// order), units reserved by orders that are neither paid nor cancelled,
/// and the row's version (PostgreSQL's `xmin`, new with every change of the
/// row — a reservation, a release, an edit), which an absolute stock change
/// must name.
pub(crate) async fn stock_levels(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<(i32, i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.stock, COALESCE(( \
           SELECT sum((item->>'quantity')::bigint) \
           FROM stock_reservations r, jsonb_array_elements(r.items) item \
           WHERE r.status = 'RESERVED' AND item->>'product_id' = p.id::text \
         ), 0)::bigint, p.xmin::text \
         FROM products p WHERE p.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Deletes a product.
pub(crate) async fn delete(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
    let result = sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    if result.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

// --- the sample catalog ----------------------------------------------------

/// Inserts a category, or refreshes its name and description (by slug).
pub(crate) async fn upsert_category(
    conn: &mut PgConnection,
    slug: &str,
    name: &str,
    description: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO categories (id, slug, name, description) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description",
    )
    .bind(Uuid::now_v7())
    .bind(slug)
    .bind(name)
    .bind(description)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Inserts a product, or rewrites everything but its stock (by slug);
/// returns its id when it was inserted or changed.
pub(crate) async fn upsert_product(
    conn: &mut PgConnection,
    product: &ValidProduct,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO products \
           (id, slug, name, description, price_cents, currency, image_url, stock, category_id) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, c.id FROM categories c WHERE c.slug = $9 \
         ON CONFLICT (slug) DO UPDATE SET \
           name = EXCLUDED.name, description = EXCLUDED.description, \
           price_cents = EXCLUDED.price_cents, currency = EXCLUDED.currency, \
           image_url = EXCLUDED.image_url, category_id = EXCLUDED.category_id, \
           updated_at = now() \
         WHERE (products.name, products.description, products.price_cents, products.currency, \
                products.image_url, products.category_id) \
           IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.description, EXCLUDED.price_cents, \
                EXCLUDED.currency, EXCLUDED.image_url, EXCLUDED.category_id) \
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(&product.slug)
    .bind(&product.name)
    .bind(&product.description)
    .bind(product.price_cents)
    .bind(&product.currency)
    .bind(&product.image_url)
    .bind(product.stock)
    .bind(&product.category)
    .fetch_optional(conn)
    .await
}

// --- stock reservations ----------------------------------------------------

/// What was decided for an order's stock, and for which items.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Reservation {
    /// `RESERVED`, `REJECTED`, `RELEASED` or `SOLD`.
    pub(crate) status: String,
    pub(crate) items: Json<Vec<EventItem>>,
}

/// The order's reservation, locked, if one was decided.
pub(crate) async fn lock_reservation(
    conn: &mut PgConnection,
    order: Uuid,
) -> Result<Option<Reservation>, sqlx::Error> {
    sqlx::query_as("SELECT status, items FROM stock_reservations WHERE order_id = $1 FOR UPDATE")
        .bind(order)
        .fetch_optional(conn)
        .await
}

/// [`insert_reservation`]'s statement without an event.
const INSERT_RESERVATION: &str =
    "INSERT INTO stock_reservations (order_id, status, items) VALUES ($1, $2, $3)";

/// [`insert_reservation`]'s statement with the event that announces it.
static INSERT_RESERVATION_ANNOUNCING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH decided AS (INSERT INTO stock_reservations (order_id, status, items) \
         VALUES ($1, $2, $3) RETURNING order_id) {}",
        OutboxRow::insert_from("decided", 4)
    )
});

/// Records the first decision for the order's stock, and `announced` (the
/// event that tells it, if any) into the outbox in the same statement. A
/// plain insert: a decision already there (which the order's lock rules
/// out) fails the transaction instead of being overwritten, so a tombstone
/// can never turn into a reservation.
pub(crate) async fn insert_reservation(
    conn: &mut PgConnection,
    (order, status): (Uuid, &str),
    items: &[EventItem],
    announced: Option<OutboxRow>,
) -> Result<(), sqlx::Error> {
    let sql = if announced.is_some() {
        INSERT_RESERVATION_ANNOUNCING.as_str()
    } else {
        INSERT_RESERVATION
    };
    let query = sqlx::query(sql).bind(order).bind(status).bind(Json(items));
    match announced {
        Some(announced) => announced.bind(query),
        None => query,
    }
    .execute(conn)
    .await
    .map(|_| ())
}

/// Marks the order's reservation released (its stock was given back).
pub(crate) async fn mark_released(conn: &mut PgConnection, order: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stock_reservations SET status = 'RELEASED', updated_at = now() \
         WHERE order_id = $1 AND status = 'RESERVED'",
    )
    .bind(order)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Marks the order's reservation sold (its order was paid); anything else
/// (released, rejected, already sold) is left as it is.
pub(crate) async fn mark_sold(conn: &mut PgConnection, order: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE stock_reservations SET status = 'SOLD', updated_at = now() \
         WHERE order_id = $1 AND status = 'RESERVED'",
    )
    .bind(order)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Takes `quantity` units if that many are on hand (one conditional
/// statement, so stock never goes below zero); `None` when short.
pub(crate) async fn take_stock(
    conn: &mut PgConnection,
    product: Uuid,
    quantity: i32,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE products SET stock = stock - $2, updated_at = now() WHERE id = $1 AND stock >= $2 RETURNING stock",
    )
    .bind(product)
    .bind(quantity)
    .fetch_optional(conn)
    .await
}

/// Gives `quantity` units back.
pub(crate) async fn return_stock(
    conn: &mut PgConnection,
    product: Uuid,
    quantity: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE products SET stock = stock + $2, updated_at = now() WHERE id = $1")
        .bind(product)
        .bind(quantity)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A product's stock and name, to say what is short.
pub(crate) async fn stock_and_name(
    conn: &mut PgConnection,
    product: Uuid,
) -> Result<Option<(i32, String)>, sqlx::Error> {
    sqlx::query_as("SELECT stock, name FROM products WHERE id = $1")
        .bind(product)
        .fetch_optional(conn)
        .await
}
