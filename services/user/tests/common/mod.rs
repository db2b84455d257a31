//! Shared set-up: the real router on a fresh database and a fresh Redis
//! prefix, with throw-away signing keys.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use storekeeper_kit::{
    Metrics,
    cache::Cache,
    testing::{TestApp, TestKeys, closed_port, unique_redis_prefix},
};
use user_service::{AppState, Settings, app, routes::TokenResponse};

pub const PASSWORD: &str = "correct-horse-7";

pub struct Ctx {
    pub app: TestApp,
    pub keys: TestKeys,
    pub pool: PgPool,
    pub state: AppState,
}

pub fn setup(pool: PgPool) -> Ctx {
    setup_with(pool, Settings::default(), true)
}

pub fn setup_with(pool: PgPool, settings: Settings, redis_up: bool) -> Ctx {
    let keys = TestKeys::generate();
    let redis_url = if redis_up {
        "redis://127.0.0.1:6379".to_owned()
    } else {
        format!("redis://127.0.0.1:{}", closed_port())
    };
    let cache = Cache::connect(&redis_url, &unique_redis_prefix()).unwrap();
    let metrics = Metrics::new();
    let state =
        AppState::new(pool.clone(), cache, keys.signer.clone(), &metrics, settings).unwrap();
    Ctx {
        app: TestApp::with_metrics(app(state.clone()), metrics),
        keys,
        pool,
        state,
    }
}

impl Ctx {
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

    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        peer: SocketAddr,
    ) -> storekeeper_kit::testing::TestResponse {
        self.app
            .post("/api/users/login")
            .peer(peer)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> storekeeper_kit::testing::TestResponse {
        self.login_from(email, password, SocketAddr::from(([127, 0, 0, 1], 5000)))
            .await
    }

    pub async fn tokens(&self, email: &str) -> TokenResponse {
        let response = self.login(email, PASSWORD).await;
        response.assert_status(StatusCode::OK);
        response.json()
    }

    pub async fn refresh(&self, refresh_token: &str) -> storekeeper_kit::testing::TestResponse {
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
