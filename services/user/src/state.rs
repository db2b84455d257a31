//! What every handler can reach.

use std::time::Duration;

use axum::extract::FromRef;
use sqlx::PgPool;
use storekeeper_kit::{
    Metrics,
    auth::{KeyError, TokenSigner, TokenVerifier},
    cache::Cache,
    client_ip::TrustedProxyHops,
};

use crate::{
    config::Settings,
    metrics::UserMetrics,
    password::{HashError, Passwords},
    throttle::Throttle,
};

/// The handlers' shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The `users` database.
    pub(crate) db: PgPool,
    pub(crate) signer: TokenSigner,
    /// Verifies access tokens (for `/me`).
    pub(crate) verifier: TokenVerifier,
    /// Argon2id hashing; start-up uses it to set the admin's password.
    pub passwords: Passwords,
    pub(crate) throttle: Throttle,
    pub(crate) metrics: UserMetrics,
    pub(crate) refresh_ttl: Duration,
    /// How long a rotated refresh token still buys the same successor.
    pub(crate) refresh_reuse_grace: Duration,
    pub(crate) trusted_proxy_hops: TrustedProxyHops,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The signer's public half did not load.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The password hasher could not start.
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl AppState {
    /// Builds the state; registers the business metrics in `metrics`.
    pub fn new(
        db: PgPool,
        cache: Cache,
        signer: TokenSigner,
        metrics: &Metrics,
        settings: Settings,
    ) -> Result<Self, StateError> {
        let metrics = UserMetrics::register(metrics);
        Ok(Self {
            db,
            verifier: signer.verifier()?,
            signer,
            passwords: Passwords::new(settings.hash_queue, metrics.password_jobs.clone())?,
            throttle: Throttle::new(cache, settings.throttle),
            metrics,
            refresh_ttl: settings.refresh_ttl,
            refresh_reuse_grace: settings.refresh_reuse_grace,
            trusted_proxy_hops: settings.trusted_proxy_hops,
        })
    }
}

impl FromRef<AppState> for TrustedProxyHops {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxy_hops
    }
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}
