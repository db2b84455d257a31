//! product-service: the Storekeeper catalog — categories, products,
//! full-text search, and the stock the checkout saga reserves.
//!
//! [`app`] is the public API router; [`inventory::start_events`] runs the
//! outbox relay and the `product.inventory` consumer (stock reservations);
//! [`seed::load`] loads the sample catalog. Modules: `domain` (types,
//! validation, pure), `currency` (ISO 4217), `listing` (list query
//! parameters), `batch` (the ids of a batch read), `images` (placeholder pictures), `cache` (Redis
//! cache-aside), `inventory` (the saga's stock reservations), `seed` (the
//! sample catalog), `store` (SQL), `state` (what handlers reach), `http`
//! (handlers, OpenAPI).

mod batch;
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

/// The public API router, without kit's common middleware.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}
