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

impl ProductQuery {
    /// One string per distinct query, to key cached answers by: the fields
    /// joined by NUL, which only the search words may hold, and they sit
    /// between fields that cannot, so two queries never share a key.
    pub(crate) fn cache_key(&self) -> String {
        format!(
            "{}\0{}\0{}\0{}\0{}",
            self.category.as_deref().unwrap_or_default(),
            self.q.as_deref().unwrap_or_default(),
            self.sort.as_deref().unwrap_or_default(),
            self.page,
            self.per_page
        )
    }
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

/// What the admin's edit form sends: every field but the stock, which
/// travels as a change (`stock_delta`) and only when the admin changed it,
/// so saving never undoes reservations made since the form was loaded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ProductChanges {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slug: Option<String>,
    pub(crate) description: String,
    /// Price in minor units.
    pub(crate) price_cents: i64,
    /// ISO 4217 code.
    pub(crate) currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image_url: Option<String>,
    /// Category slug.
    pub(crate) category: String,
    /// Units to add (negative: remove); absent when the stock was not touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stock_delta: Option<i64>,
}

/// A product's stock as the admin sees it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StockLevels {
    /// Units shoppers can still order.
    pub(crate) available: i64,
    /// Units held by orders still in checkout.
    pub(crate) reserved: i64,
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
        changes: &ProductChanges,
    ) -> BackendResult<Product> {
        let path = format!("/api/products/{}", segment(id));
        self.request(ShopService::Product, Method::PATCH, &path)
            .bearer(token)
            .json(changes)
            .fetch()
            .await
    }

    /// `GET /api/products/{id}/stock` (admin): available and reserved.
    pub(crate) async fn stock_levels(&self, token: &str, id: &str) -> BackendResult<StockLevels> {
        let path = format!("/api/products/{}/stock", segment(id));
        self.request(ShopService::Product, Method::GET, &path)
            .bearer(token)
            .fetch()
            .await
    }

    /// `PATCH /api/products/{id}` with only `stock_delta`: adds units to
    /// the stock as it is then, keeping the reservations made meanwhile.
    pub(crate) async fn restock(
        &self,
        token: &str,
        id: &str,
        units: i64,
    ) -> BackendResult<Product> {
        let path = format!("/api/products/{}", segment(id));
        self.request(ShopService::Product, Method::PATCH, &path)
            .bearer(token)
            .json(&serde_json::json!({ "stock_delta": units }))
            .fetch()
            .await
    }
}
