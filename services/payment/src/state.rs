//! What every handler can reach.

use axum::extract::FromRef;
use sqlx::PgPool;
use storekeeper_kit::auth::TokenVerifier;

use crate::metrics::PaymentMetrics;

/// The handlers' shared state. Cheap to clone.
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
