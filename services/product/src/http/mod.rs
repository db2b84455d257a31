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

use axum::{
    Router,
    extract::FromRef,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use sqlx::PgPool;
use storekeeper_kit::auth::TokenVerifier;

use crate::cache::CatalogCache;

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
