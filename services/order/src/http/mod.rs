//! The HTTP API: the shopper's cart and orders.

mod cart;
pub mod openapi;
mod orders;

use axum::{Router, extract::FromRef};
use sqlx::PgPool;
use storekeeper_kit::auth::TokenVerifier;

use crate::{catalog::Catalog, metrics::OrderMetrics};

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The `orders` database.
    pub pool: PgPool,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
    /// product-service, for existence checks and prices.
    pub catalog: Catalog,
    /// Business metrics.
    pub metrics: OrderMetrics,
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The public API router (kit's `serve` adds the common middleware).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(cart::router())
        .merge(orders::router())
        .merge(openapi::router())
        .with_state(state)
}
