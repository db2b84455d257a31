//! What every handler can reach.

use std::time::Duration;

use axum::extract::FromRef;
use sqlx::PgPool;
use storekeeper_kit::auth::TokenVerifier;

use crate::{catalog::Catalog, checkout::Checkout, metrics::OrderMetrics};

/// The handlers' shared state. Cheap to clone.
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
    /// How long an order may stay open before the reaper cancels it
    /// (`ORDER_DEADLINE_SECS`).
    pub deadline: Duration,
}

impl AppState {
    /// What placing an order needs, borrowed from the state.
    pub(crate) fn checkout(&self) -> Checkout<'_> {
        Checkout {
            pool: &self.pool,
            catalog: &self.catalog,
            metrics: &self.metrics,
        }
    }
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}
