//! The sample catalog and its idempotent loader.
//!
//! The data lives in `data/catalog.json`, embedded at build time so the
//! binary alone can seed a fresh database (`product-service seed`). Loading
//! upserts by slug in one transaction, so running it twice changes nothing
//! and a half-loaded catalog is never visible. Stock is only set when a
//! product is first inserted: re-seeding must not undo reservations the
//! checkout saga has made since.

use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{NewProduct, placeholder_image};

/// The embedded sample catalog, as JSON.
pub const CATALOG_JSON: &str = include_str!("../data/catalog.json");

/// The sample catalog file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Currency of every price in the file.
    pub currency: String,
    /// The categories.
    pub categories: Vec<SeedCategory>,
    /// The products.
    pub products: Vec<SeedProduct>,
}

/// One category of the sample catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCategory {
    /// Unique slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Short description.
    pub description: String,
}

/// One product of the sample catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedProduct {
    /// Unique slug.
    pub slug: String,
    /// Category slug.
    pub category: String,
    /// Display name.
    pub name: String,
    /// Price in minor units of the catalog's currency.
    pub price_cents: i64,
    /// Initial stock.
    pub stock: i32,
    /// Description.
    pub description: String,
}

/// What a seed run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    /// Categories in the sample catalog (inserted or refreshed).
    pub categories: usize,
    /// Products in the sample catalog (inserted or refreshed).
    pub products: usize,
    /// Ids of the products this run inserted or changed, so their cache entries can be invalidated.
    pub changed: Vec<Uuid>,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The embedded catalog is malformed (a build-time mistake; a test guards it).
    #[error("sample catalog is invalid: {0}")]
    Invalid(String),
    /// The database refused.
    #[error("loading the sample catalog failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Parses and validates the embedded catalog with the same rules as the API.
pub fn catalog() -> Result<Catalog, SeedError> {
    let catalog: Catalog =
        serde_json::from_str(CATALOG_JSON).map_err(|err| SeedError::Invalid(err.to_string()))?;
    for product in &catalog.products {
        if !catalog
            .categories
            .iter()
            .any(|c| c.slug == product.category)
        {
            return Err(SeedError::Invalid(format!(
                "product `{}` names unknown category `{}`",
                product.slug, product.category
            )));
        }
        as_new_product(product, &catalog.currency)
            .validate()
            .map_err(|errors| {
                SeedError::Invalid(format!("product `{}`: {errors:?}", product.slug))
            })?;
    }
    Ok(catalog)
}

/// Upserts the sample catalog (by slug) in one transaction.
pub async fn load(pool: &PgPool) -> Result<SeedReport, SeedError> {
    let catalog = catalog()?;
    let mut tx = pool.begin().await?;
    for category in &catalog.categories {
        sqlx::query(
            "INSERT INTO categories (id, slug, name, description) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description",
        )
        .bind(Uuid::now_v7())
        .bind(&category.slug)
        .bind(&category.name)
        .bind(&category.description)
        .execute(&mut *tx)
        .await?;
    }
    let mut changed = Vec::new();
    for product in &catalog.products {
        let id: Option<Uuid> = sqlx::query_scalar(
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
        .bind(&catalog.currency)
        .bind(placeholder_image(&product.category, &product.slug))
        .bind(product.stock)
        .bind(&product.category)
        .fetch_optional(&mut *tx)
        .await?;
        changed.extend(id);
    }
    tx.commit().await?;
    Ok(SeedReport {
        categories: catalog.categories.len(),
        products: catalog.products.len(),
        changed,
    })
}

fn as_new_product(product: &SeedProduct, currency: &str) -> NewProduct {
    NewProduct {
        name: product.name.clone(),
        slug: Some(product.slug.clone()),
        description: product.description.clone(),
        price_cents: product.price_cents,
        currency: currency.to_owned(),
        image_url: None,
        stock: product.stock,
        category: product.category.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid_and_big_enough() {
        let catalog = catalog().unwrap();
        assert!(catalog.categories.len() >= 6);
        assert!(catalog.products.len() >= 60);
        let mut slugs: Vec<_> = catalog.products.iter().map(|p| &p.slug).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(
            slugs.len(),
            catalog.products.len(),
            "duplicate product slug"
        );
    }
}
