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
use storekeeper_kit::db;
use uuid::Uuid;

use crate::{
    domain::{NewProduct, ValidProduct},
    store,
};

/// The embedded sample catalog, as JSON.
const CATALOG_JSON: &str = include_str!("../data/catalog.json");

/// The sample catalog file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Catalog {
    /// Currency of every price in the file.
    currency: String,
    categories: Vec<SeedCategory>,
    products: Vec<SeedProduct>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedCategory {
    slug: String,
    name: String,
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedProduct {
    slug: String,
    /// Category slug.
    category: String,
    name: String,
    /// Price in minor units of the catalog's currency.
    price_cents: i64,
    /// Initial stock (a re-seed never changes it).
    stock: i32,
    description: String,
}

/// The sample catalog after the API's own checks.
struct Checked {
    categories: Vec<SeedCategory>,
    products: Vec<ValidProduct>,
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

/// Parses the embedded catalog and validates it with the same rules as the API.
fn checked() -> Result<Checked, SeedError> {
    let catalog: Catalog =
        serde_json::from_str(CATALOG_JSON).map_err(|err| SeedError::Invalid(err.to_string()))?;
    let mut products = Vec::with_capacity(catalog.products.len());
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
        let valid = as_new_product(product, &catalog.currency)
            .validate()
            .map_err(|errors| {
                SeedError::Invalid(format!("product `{}`: {errors:?}", product.slug))
            })?;
        products.push(valid);
    }
    Ok(Checked {
        categories: catalog.categories,
        products,
    })
}

/// Upserts the sample catalog (by slug) in one transaction.
pub async fn load(pool: &PgPool) -> Result<SeedReport, SeedError> {
    let catalog = checked()?;
    let mut tx = db::begin(pool).await?;
    for category in &catalog.categories {
        store::upsert_category(
            &mut tx,
            &category.slug,
            &category.name,
            &category.description,
        )
        .await?;
    }
    let mut changed = Vec::new();
    for product in &catalog.products {
        changed.extend(store::upsert_product(&mut tx, product).await?);
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
        let catalog = checked().unwrap();
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
