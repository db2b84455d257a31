//! product-service: categories, the product list, one product, admin writes.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use storekeeper_contract::ShopService;

use super::{Backend, BackendResult, segment};

/// A category for the navigation.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Category {
    /// URL-friendly name, the `category` filter value.
    pub(crate) slug: String,
    pub(crate) name: String,
    /// One or two sentences for the category page.
    #[serde(default)]
    pub(crate) description: String,
}

/// A product as product-service shows it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Product {
    /// Stable id (used by the cart and orders).
    pub(crate) id: String,
    /// URL-friendly unique name (used in storefront URLs).
    pub(crate) slug: String,
    pub(crate) name: String,
    /// Plain-text description.
    #[serde(default)]
    pub(crate) description: String,
    /// Price in minor units.
    pub(crate) price_cents: i64,
    /// ISO 4217 code.
    pub(crate) currency: String,
    /// Absolute URL or a product-service path (`/images/...`).
    #[serde(default)]
    pub(crate) image_url: String,
    /// Units on hand.
    #[serde(default)]
    pub(crate) stock: i64,
    /// Category slug.
    #[serde(default)]
    pub(crate) category: String,
    #[serde(default)]
    pub(crate) category_name: String,
}

/// One page of the product list.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ProductPage {
    pub(crate) items: Vec<Product>,
    /// 1-based page number.
    pub(crate) page: u32,
    pub(crate) per_page: u32,
    /// Matching products in all pages.
    pub(crate) total: u64,
}

/// Filters for the product list; empty strings are left out of the query.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ProductQuery {
    /// Category slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) category: Option<String>,
    /// Full-text search words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) q: Option<String>,
    /// Sort key understood by product-service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sort: Option<String>,
    /// 1-based page.
    pub(crate) page: u32,
    pub(crate) per_page: u32,
}

/// The fields an admin edits; sent whole on create and on edit.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ProductInput {
    pub(crate) name: String,
    /// URL-friendly unique name (derived from the name when absent on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slug: Option<String>,
    pub(crate) description: String,
    /// Price in minor units.
    pub(crate) price_cents: i64,
    /// ISO 4217 code.
    pub(crate) currency: String,
    /// Image URL (a placeholder is generated when absent on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image_url: Option<String>,
    /// Units on hand.
    pub(crate) stock: i64,
    /// Category slug.
    pub(crate) category: String,
}

impl Backend {
    /// `GET /api/categories`.
    pub(crate) async fn categories(&self) -> BackendResult<Vec<Category>> {
        self.request(ShopService::Product, Method::GET, "/api/categories")
            .fetch()
            .await
    }

    /// `GET /api/products?...`.
    pub(crate) async fn products(&self, query: &ProductQuery) -> BackendResult<ProductPage> {
        self.request(ShopService::Product, Method::GET, "/api/products")
            .query(query)
            .fetch()
            .await
    }

    /// `GET /api/products/{id-or-slug}`.
    pub(crate) async fn product(&self, id_or_slug: &str) -> BackendResult<Product> {
        let path = format!("/api/products/{}", segment(id_or_slug));
        self.request(ShopService::Product, Method::GET, &path)
            .fetch()
            .await
    }

    /// `POST /api/products` (admin).
    pub(crate) async fn create_product(
        &self,
        token: &str,
        input: &ProductInput,
    ) -> BackendResult<Product> {
        self.request(ShopService::Product, Method::POST, "/api/products")
            .bearer(token)
            .json(input)
            .fetch()
            .await
    }

    /// `PATCH /api/products/{id}` (admin).
    pub(crate) async fn update_product(
        &self,
        token: &str,
        id: &str,
        input: &ProductInput,
    ) -> BackendResult<Product> {
        let path = format!("/api/products/{}", segment(id));
        self.request(ShopService::Product, Method::PATCH, &path)
            .bearer(token)
            .json(input)
            .fetch()
            .await
    }
}
