//! The HTTP API: one router per resource, merged, over one shared state.
//!
//! Handlers are thin: parse (kit's extractors answer bad input with
//! problem+json), validate with `domain`/`listing`, call `store`, keep the
//! cache coherent, respond.

mod categories;
mod error;
mod images;
pub mod openapi;
mod products;

use std::future::Future;

use axum::{
    Router,
    extract::FromRef,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sqlx::PgPool;
use storekeeper_kit::{ApiError, ApiResult, auth::TokenVerifier};

use crate::cache::{CatalogCache, Lookup};

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The `products` database.
    pub pool: PgPool,
    /// The Redis read cache.
    pub cache: CatalogCache,
    /// Verifies access tokens for the admin routes.
    pub verifier: TokenVerifier,
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The public API router (kit's `serve` adds the common middleware).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(categories::router())
        .merge(products::router())
        .merge(images::router())
        .merge(openapi::router())
        .with_state(state)
}

/// Cache-aside: answer a hit from Redis; otherwise load, answer, and fill.
async fn cached<T, F, Fut>(cache: &CatalogCache, lookup: Lookup, load: F) -> ApiResult<Response>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let (fill, status) = match lookup {
        Lookup::Hit(body) => return Ok(json_bytes(body, "hit")),
        Lookup::Miss(key) => (Some(key), "miss"),
        Lookup::Unavailable => (None, "bypass"),
    };
    let body = serde_json::to_vec(&load().await?).map_err(ApiError::internal)?;
    if let Some(key) = fill {
        cache.fill(key, &body).await;
    }
    Ok(json_bytes(body, status))
}

/// A JSON response from bytes that are already serialized (cache hits).
fn json_bytes(body: Vec<u8>, cache_status: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("x-cache"),
                HeaderValue::from_static(cache_status),
            ),
        ],
        body,
    )
        .into_response()
}
