//! Fixtures, used by every test file as `mod support;`. [`Ctx`] is the
//! real router over a database of the test's own ([`database`]: reached
//! through the pool a replica gets in production, not sqlx's test pool of
//! 5, so a test that needs more connections than production has fails
//! here first), a fresh Redis key prefix, and throw-away signing keys.

// Fixtures fail loudly; not every test binary uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    Metrics,
    auth::TokenScope,
    cache::Cache,
    testing::{TestApp, TestDatabase, TestKeys, TestResponse, closed_port, unique_redis_prefix},
};
use user_service::{AppState, Settings, app};

/// A fresh, migrated user-service database and the production-sized pool
/// on it. Keep the first half alive for the whole test: dropping it drops
/// the database.
pub async fn database() -> (TestDatabase, PgPool) {
    let database = TestDatabase::create(ShopService::User, &user_service::MIGRATOR).await;
    let pool = database.pool.clone();
    (database, pool)
}

/// Where the test Redis listens.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The password `register` gives every account.
pub const PASSWORD: &str = "correct-horse-7";

/// The tokens login and refresh answer, as a client reads them.
#[derive(Debug, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// Everything a test drives.
pub struct Ctx {
    /// The API, with the production middleware.
    pub app: TestApp,
    /// Mints tokens the app accepts.
    pub keys: TestKeys,
    /// The test's database.
    pub pool: PgPool,
    /// The app's state (its password hasher bootstraps admins).
    pub state: AppState,
}

impl Ctx {
    /// The app with default settings.
    pub fn new(pool: PgPool) -> Self {
        Self::with_settings(pool, Settings::default())
    }

    /// The app with these settings.
    pub fn with_settings(pool: PgPool, settings: Settings) -> Self {
        Self::build(pool, settings, REDIS_URL)
    }

    /// The app whose Redis URL points at a closed port.
    pub fn redis_down(pool: PgPool, settings: Settings) -> Self {
        Self::build(
            pool,
            settings,
            &format!("redis://127.0.0.1:{}", closed_port()),
        )
    }

    /// The app signing and checking `scope`'s issuer and audience, as
    /// `TOKEN_ISSUER`, `TOKEN_AUDIENCE` and `TOKEN_CLAIMS_REQUIRED` set it.
    pub fn with_scope(pool: PgPool, scope: TokenScope) -> Self {
        Self::build_scoped(pool, Settings::default(), REDIS_URL, scope)
    }

    fn build(pool: PgPool, settings: Settings, redis_url: &str) -> Self {
        Self::build_scoped(pool, settings, redis_url, TokenScope::default())
    }

    fn build_scoped(pool: PgPool, settings: Settings, redis_url: &str, scope: TokenScope) -> Self {
        let keys = TestKeys::generate();
        let cache = Cache::connect(redis_url, &unique_redis_prefix()).unwrap();
        let metrics = Metrics::new();
        let signer = keys.signer.clone().with_scope(scope);
        let state = AppState::new(pool.clone(), cache, signer, &metrics, settings).unwrap();
        Self {
            app: TestApp::with_metrics(app(state.clone()), metrics),
            keys,
            pool,
            state,
        }
    }

    pub async fn register(&self, email: &str) -> Value {
        let response = self
            .app
            .post("/api/users")
            .json(&json!({"email": email, "password": PASSWORD, "name": "Ann Lee"}))
            .send()
            .await;
        response.assert_status(StatusCode::CREATED);
        response.json()
    }

    pub async fn login_from(&self, email: &str, password: &str, peer: SocketAddr) -> TestResponse {
        self.app
            .post("/api/users/login")
            .peer(peer)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.login_from(email, password, SocketAddr::from(([127, 0, 0, 1], 5000)))
            .await
    }

    /// Logs in with [`PASSWORD`]; the login must succeed.
    pub async fn tokens(&self, email: &str) -> Tokens {
        let response = self.login(email, PASSWORD).await;
        response.assert_status(StatusCode::OK);
        response.json()
    }

    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.app
            .post("/api/users/refresh")
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
    }

    pub fn metrics_text(&self) -> String {
        self.app.metrics().encode().unwrap()
    }
}
