//! PostgreSQL queries for categories and products.
//!
//! Runtime-checked queries (`query_as` + `FromRow`); every one of them is
//! exercised by the integration tests against a real server. Only fixed SQL
//! fragments are ever concatenated (the `ORDER BY` chosen from [`Sort`]);
//! client text always travels as a bind parameter. A duplicate slug surfaces
//! as a violation of the `products_slug_key` constraint ([`SLUG_CONSTRAINT`]).

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Category, Product, ValidPatch, ValidProduct};
use crate::listing::{ListQuery, ProductPage};

/// Why a catalog write was refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No product with that id.
    #[error("product not found")]
    NotFound,
    /// The category slug names no category.
    #[error("category `{0}` does not exist")]
    UnknownCategory(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The unique constraint on product slugs.
pub const SLUG_CONSTRAINT: &str = "products_slug_key";

/// The columns of [`Product`], for `FROM products p JOIN categories c`.
const PRODUCT_COLUMNS: &str = "p.id, p.slug, p.name, p.description, p.price_cents, p.currency, \
     p.image_url, p.stock, c.slug AS category, c.name AS category_name, p.created_at, p.updated_at";

/// The filters shared by the page query and the count query.
const LIST_FILTER: &str = "FROM products p JOIN categories c ON c.id = p.category_id \
     WHERE ($1::text IS NULL OR c.slug = $1) \
       AND ($2::text IS NULL OR p.search @@ websearch_to_tsquery('english', $2))";

/// Every category, alphabetically.
pub async fn categories(pool: &PgPool) -> Result<Vec<Category>, sqlx::Error> {
    sqlx::query_as("SELECT id, slug, name, description FROM categories ORDER BY name, id")
        .fetch_all(pool)
        .await
}

/// One page of products matching `query`, with the total over all pages.
pub async fn list(pool: &PgPool, query: &ListQuery) -> Result<ProductPage, sqlx::Error> {
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

/// The product with this id, if any.
pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p JOIN categories c ON c.id = p.category_id \
         WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The product with this slug, if any.
pub async fn by_slug(pool: &PgPool, slug: &str) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p JOIN categories c ON c.id = p.category_id \
         WHERE p.slug = $1"
    ))
    .bind(slug)
    .fetch_optional(pool)
    .await
}

/// Inserts a new product.
pub async fn create(pool: &PgPool, product: &ValidProduct) -> Result<Product, StoreError> {
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
        .await?
        .ok_or_else(|| StoreError::UnknownCategory(product.category.clone()))
}

/// Applies a patch; fields left `None` keep their value.
pub async fn update(pool: &PgPool, id: Uuid, patch: &ValidPatch) -> Result<Product, StoreError> {
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
             stock = COALESCE($8, stock), category_id = COALESCE($9, category_id), \
             updated_at = now() \
           WHERE id = $1 RETURNING * \
         ) SELECT {PRODUCT_COLUMNS} FROM p JOIN categories c ON c.id = p.category_id"
    );
    sqlx::query_as(&sql)
        .bind(id)
        .bind(patch.slug.as_deref())
        .bind(patch.name.as_deref())
        .bind(patch.description.as_deref())
        .bind(patch.price_cents)
        .bind(patch.currency.as_deref())
        .bind(patch.image_url.as_deref())
        .bind(patch.stock)
        .bind(category_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Deletes a product.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
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
