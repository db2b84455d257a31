//! product-service: the Storekeeper catalog — categories, products,
//! full-text search, and the stock the checkout saga reserves.
//!
//! `app(state)` is the public API router; `main.rs` wraps it with kit's
//! middleware and serves it (or runs `seed`). Modules:
//! `domain` (types, validation), `listing` (list query parameters),
//! `store` (SQL), `cache` (Redis cache-aside), `seed` (sample catalog),
//! `images` (placeholder pictures), `http` (handlers, OpenAPI),
//! `inventory` (the checkout saga's stock reservations, over events).

pub mod cache;
pub mod currency;
pub mod domain;
pub mod http;
pub mod images;
pub mod inventory;
pub mod listing;
pub mod seed;
pub mod store;

pub use http::AppState;

/// The schema migrations, embedded; applied at start and by `seed`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The service name used in logs and metrics.
pub const SERVICE_NAME: &str = "product-service";
/// The public API port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 3002;
/// The database (and default Redis key prefix) of this service.
pub const DATABASE: &str = "products";

/// The public API router, without kit's common middleware (`kit::server::serve` adds it).
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// What `/readyz` checks: PostgreSQL (reachable, so migrations ran at start) and Redis.
pub fn readiness(
    pool: &sqlx::PgPool,
    redis: &storekeeper_kit::cache::Cache,
) -> storekeeper_kit::Readiness {
    storekeeper_kit::Readiness::new()
        .with(storekeeper_kit::db::readiness_check(pool))
        .with(storekeeper_kit::cache::readiness_check(redis))
}
