//! The product-service client: checkout re-reads every price here, so a
//! client can never choose what it pays.

use serde::Deserialize;
use storekeeper_kit::telemetry::RequestBuilderExt;
use uuid::Uuid;

/// What checkout needs to know about a product (a subset of product-service's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct CatalogProduct {
    /// Product id.
    pub(crate) id: Uuid,
    /// Display name, copied into the order.
    pub(crate) name: String,
    /// Current price, minor units.
    pub(crate) price_cents: i64,
    /// ISO 4217 code.
    pub(crate) currency: String,
}

/// Why the catalog could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CatalogError {
    /// product-service is unreachable or failing.
    #[error("product-service is unavailable: {0}")]
    Unavailable(String),
}

/// A client for `GET /api/products/{id}` on `PRODUCT_URL`.
#[derive(Debug, Clone)]
pub struct Catalog {
    http: reqwest::Client,
    base: String,
}

impl Catalog {
    /// A client for product-service at `base_url` (e.g. `http://127.0.0.1:3002`).
    pub fn new(http: reqwest::Client, base_url: &str) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The product, or `None` when product-service does not know it.
    pub(crate) async fn product(&self, id: Uuid) -> Result<Option<CatalogProduct>, CatalogError> {
        let response = self
            .http
            .get(format!("{}/api/products/{id}", self.base))
            .with_request_id()
            .send()
            .await
            .map_err(|err| CatalogError::Unavailable(err.to_string()))?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => response.json().await.map(Some).map_err(|err| {
                CatalogError::Unavailable(format!("unexpected product JSON: {err}"))
            }),
            status => Err(CatalogError::Unavailable(format!(
                "GET product answered {status}"
            ))),
        }
    }

    /// Every product in `ids`, fetched concurrently; `None` for unknown ones.
    pub(crate) async fn products(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<Option<CatalogProduct>>, CatalogError> {
        futures::future::try_join_all(ids.iter().map(|id| self.product(*id))).await
    }
}
