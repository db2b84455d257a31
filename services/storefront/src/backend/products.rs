//! product-service: categories, the product list, one product, admin writes.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use storekeeper_contract::ShopService;

use super::{Backend, BackendResult, segment};

/// A category for the navigation.
#[derive(Debug, Clone, Deserialize)]
pub struct Category {
    /// URL-friendly name, the `category` filter value.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// One or two sentences for the category page.
    #[serde(default)]
    pub description: String,
}

/// A product as product-service shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    /// Stable id (used by the cart and orders).
    pub id: String,
    /// URL-friendly unique name (used in storefront URLs).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Plain-text description.
    #[serde(default)]
    pub description: String,
    /// Price in minor units.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Absolute URL or a product-service path (`/images/...`).
    #[serde(default)]
    pub image_url: String,
    /// Units on hand.
    #[serde(default)]
    pub stock: i64,
    /// Category slug.
    #[serde(default)]
    pub category: String,
    /// Category display name.
    #[serde(default)]
    pub category_name: String,
}

/// One page of the product list.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductPage {
    /// The products on this page.
    pub items: Vec<Product>,
    /// 1-based page number.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
    /// Matching products in all pages.
    pub total: u64,
}

/// Filters for the product list; empty strings are left out of the query.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProductQuery {
    /// Category slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Full-text search words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Sort key understood by product-service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// 1-based page.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
}

/// The fields an admin edits; sent whole on create and on edit.
#[derive(Debug, Clone, Serialize)]
pub struct ProductInput {
    /// Display name.
    pub name: String,
    /// URL-friendly unique name (derived from the name when absent on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Description.
    pub description: String,
    /// Price in minor units.
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Image URL (a placeholder is generated when absent on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Units on hand.
    pub stock: i64,
    /// Category slug.
    pub category: String,
}

impl Backend {
    /// `GET /api/categories`.
    pub async fn categories(&self) -> BackendResult<Vec<Category>> {
        self.request(ShopService::Product, Method::GET, "/api/categories")
            .fetch()
            .await
    }

    /// `GET /api/products?...`.
    pub async fn products(&self, query: &ProductQuery) -> BackendResult<ProductPage> {
        self.request(ShopService::Product, Method::GET, "/api/products")
            .query(query)
            .fetch()
            .await
    }

    /// `GET /api/products/{id-or-slug}`.
    pub async fn product(&self, id_or_slug: &str) -> BackendResult<Product> {
        let path = format!("/api/products/{}", segment(id_or_slug));
        self.request(ShopService::Product, Method::GET, &path)
            .fetch()
            .await
    }

    /// `POST /api/products` (admin).
    pub async fn create_product(
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
    pub async fn update_product(
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
