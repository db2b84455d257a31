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

/// Most ids product-service takes in one batch read.
const BATCH_LIMIT: usize = 100;

/// Why the catalog could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CatalogError {
    /// product-service is unreachable or failing.
    #[error("product-service is unavailable: {0}")]
    Unavailable(String),
}

/// A client for product-service's reads on `PRODUCT_URL`.
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

    /// Every product in `ids` (same order; `None` for unknown ones), read
    /// current in one request per [`BATCH_LIMIT`] ids: product-service
    /// answers `GET /api/products:batchGet` from its database, not its
    /// cache.
    pub(crate) async fn products(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<Option<CatalogProduct>>, CatalogError> {
        let batches =
            futures::future::try_join_all(ids.chunks(BATCH_LIMIT).map(|ids| self.batch(ids)))
                .await?;
        let found: Vec<CatalogProduct> = batches.into_iter().flatten().collect();
        Ok(ids
            .iter()
            .map(|id| found.iter().find(|product| product.id == *id).cloned())
            .collect())
    }

    /// The products of one batch that exist.
    async fn batch(&self, ids: &[Uuid]) -> Result<Vec<CatalogProduct>, CatalogError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let response = self
            .http
            .get(format!("{}/api/products:batchGet", self.base))
            .query(&[("ids", ids.join(","))])
            .with_request_id()
            .send()
            .await
            .map_err(|err| CatalogError::Unavailable(err.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(CatalogError::Unavailable(format!(
                "GET products:batchGet answered {status}"
            )));
        }
        let batch: Batch = response
            .json()
            .await
            .map_err(|err| CatalogError::Unavailable(format!("unexpected products JSON: {err}")))?;
        Ok(batch.products)
    }
}

/// product-service's answer to `GET /api/products:batchGet`.
#[derive(Debug, Deserialize)]
struct Batch {
    products: Vec<CatalogProduct>,
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    use axum::{Json, Router, extract::Query, http::StatusCode, routing::get};

    use super::*;

    /// A product-service that knows `known` and records every batch asked.
    async fn catalog_knowing(known: Vec<Uuid>) -> (Catalog, Arc<Mutex<Vec<usize>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let router = Router::new().route(
            "/api/products:batchGet",
            get(move |Query(query): Query<HashMap<String, String>>| {
                let (known, seen) = (known.clone(), seen.clone());
                async move {
                    let ids: Vec<Uuid> = query["ids"]
                        .split(',')
                        .map(|id| id.parse().unwrap())
                        .collect();
                    seen.lock().unwrap().push(ids.len());
                    let products: Vec<serde_json::Value> = ids
                        .iter()
                        .filter(|id| known.contains(id))
                        .map(|id| {
                            serde_json::json!({
                                "id": id, "name": "Mug", "price_cents": 1_200, "currency": "EUR"
                            })
                        })
                        .collect();
                    Json(serde_json::json!({ "products": products }))
                }
            }),
        );
        (serve(router).await, asked)
    }

    /// A catalog client of a stand-in product-service serving `router`.
    pub(crate) async fn serve(router: Router) -> Catalog {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Catalog::new(reqwest::Client::new(), &base)
    }

    #[tokio::test]
    async fn answers_follow_the_ids_with_none_for_unknown_ones_in_one_request() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (catalog, asked) = catalog_knowing(vec![c, a]).await;
        let found = catalog.products(&[a, b, c]).await.unwrap();
        let ids: Vec<Option<Uuid>> = found.iter().map(|p| p.as_ref().map(|p| p.id)).collect();
        assert_eq!(ids, [Some(a), None, Some(c)]);
        assert_eq!(found[0].as_ref().unwrap().price_cents, 1_200);
        assert_eq!(*asked.lock().unwrap(), [3]);
    }

    #[tokio::test]
    async fn more_ids_than_a_batch_takes_go_in_several() {
        let ids: Vec<Uuid> = (0..150).map(|_| Uuid::new_v4()).collect();
        let (catalog, asked) = catalog_knowing(ids.clone()).await;
        let found = catalog.products(&ids).await.unwrap();
        assert!(
            found
                .iter()
                .zip(&ids)
                .all(|(p, id)| p.as_ref().unwrap().id == *id)
        );
        let mut sizes = asked.lock().unwrap().clone();
        sizes.sort_unstable();
        assert_eq!(sizes, [50, BATCH_LIMIT]);
    }

    #[tokio::test]
    async fn a_failing_product_service_is_unavailable() {
        let router = Router::new().route(
            "/api/products:batchGet",
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        );
        let catalog = serve(router).await;
        let err = catalog.products(&[Uuid::new_v4()]).await.unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
    }
}
