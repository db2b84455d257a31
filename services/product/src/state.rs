//! What every handler can reach.

use axum::extract::FromRef;
use sqlx::PgPool;
use storekeeper_kit::auth::TokenVerifier;

use crate::cache::CatalogCache;

/// The handlers' shared state. Cheap to clone.
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
