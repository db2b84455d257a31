//! product-service: the Storekeeper catalog — categories, products,
//! full-text search, and the stock the checkout saga reserves.
//!
//! [`app`] is the public API router; [`inventory::start_events`] runs the
//! outbox relay and the `product.inventory` consumer (stock reservations);
//! [`seed::load`] loads the sample catalog. Modules: `domain` (types,
//! validation, pure), `currency` (ISO 4217), `listing` (list query
//! parameters), `images` (placeholder pictures), `cache` (Redis
//! cache-aside), `inventory` (the saga's stock reservations), `seed` (the
//! sample catalog), `store` (SQL), `state` (what handlers reach), `http`
//! (handlers, OpenAPI).

pub mod cache;
mod currency;
mod domain;
mod http;
mod images;
pub mod inventory;
mod listing;
pub mod seed;
mod state;
mod store;

pub use state::AppState;

/// The schema migrations, embedded; applied at start and by `seed`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The name in logs and metrics.
pub const SERVICE_NAME: &str = "product-service";
/// The `PORT` default (the contract's `ShopService::Product`; docs/architecture.md lists every port).
pub const DEFAULT_PORT: u16 = 3002;
/// The database (and default Redis key prefix) this service owns.
pub const DATABASE: &str = "products";

/// The public API router, without kit's common middleware.
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
