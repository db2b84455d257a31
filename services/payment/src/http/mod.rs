//! The HTTP API: card tokenization, payment reads, admin refunds.

mod methods;
pub mod openapi;
mod payments;

use axum::{Router, extract::FromRef};
use sqlx::PgPool;
use storekeeper_kit::auth::TokenVerifier;

use crate::metrics::PaymentMetrics;

/// What every handler can reach. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The `payments` database.
    pub pool: PgPool,
    /// Verifies access tokens.
    pub verifier: TokenVerifier,
    /// Business counters.
    pub metrics: PaymentMetrics,
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The public API router (kit's `serve` adds the common middleware).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(methods::router())
        .merge(payments::router())
        .merge(openapi::router())
        .with_state(state)
}
