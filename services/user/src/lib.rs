//! user-service: accounts, login, and the tokens every other service trusts.
//!
//! Routes (DESIGN.md): `POST /api/users` (register), `POST /api/users/login`,
//! `POST /api/users/refresh` (rotates), `POST /api/users/logout`,
//! `GET /api/users/me`, and `GET /openapi.json`. Passwords are Argon2id
//! hashes; access tokens are 15-minute Ed25519 JWTs; refresh tokens are
//! opaque, stored hashed, rotated on use, and a reused one revokes its
//! login's whole family. Failed logins are throttled per account and per IP.

pub mod config;
pub mod metrics;
pub mod openapi;
pub mod password;
pub mod routes;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod validate;

use std::time::Duration;

use axum::{
    Router,
    extract::FromRef,
    routing::{get, post},
};
use sqlx::{PgPool, migrate::Migrator};
use storekeeper_kit::{
    Metrics,
    auth::{KeyError, TokenSigner, TokenVerifier},
    cache::Cache,
    client_ip::TrustedProxyHops,
};

use crate::{
    config::ThrottleConfig, metrics::UserMetrics, password::Passwords, throttle::Throttle,
};

/// The embedded schema migrations, applied at start.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Settings the handlers need beyond the connections.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Login throttle limits.
    pub throttle: ThrottleConfig,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Reverse proxies trusted to set `X-Forwarded-For`.
    pub trusted_proxy_hops: TrustedProxyHops,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            throttle: ThrottleConfig::default(),
            refresh_ttl: Duration::from_hours(24 * 30),
            trusted_proxy_hops: TrustedProxyHops::default(),
        }
    }
}

/// Everything a handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The `users` database.
    pub db: PgPool,
    /// Signs access tokens.
    pub signer: TokenSigner,
    /// Verifies them (for `/me`).
    pub verifier: TokenVerifier,
    /// Argon2id hashing.
    pub passwords: Passwords,
    /// Login throttle.
    pub throttle: Throttle,
    /// Business counters.
    pub metrics: UserMetrics,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Reverse proxies trusted to set `X-Forwarded-For`.
    pub trusted_proxy_hops: TrustedProxyHops,
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The signer's public half did not load.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The password hasher could not start.
    #[error(transparent)]
    Hash(#[from] password::HashError),
}

impl FromRef<AppState> for TrustedProxyHops {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxy_hops
    }
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
        Ok(Self {
            db,
            verifier: signer.verifier()?,
            signer,
            passwords: Passwords::new()?,
            throttle: Throttle::new(cache, settings.throttle),
            metrics: UserMetrics::register(metrics),
            refresh_ttl: settings.refresh_ttl,
            trusted_proxy_hops: settings.trusted_proxy_hops,
        })
    }
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The public API router (the kit adds the common layers when serving).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/users", post(routes::register))
        .route("/api/users/login", post(routes::login))
        .route("/api/users/refresh", post(routes::refresh))
        .route("/api/users/logout", post(routes::logout))
        .route("/api/users/me", get(routes::me))
        .route("/openapi.json", get(openapi::serve))
        .with_state(state)
}
