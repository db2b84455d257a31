//! order-service: the shopper's cart, checkout with idempotency keys, and
//! the order side of the checkout saga.
//!
//! [`app`] is the public API router; [`start_events`] runs the outbox
//! relay, the `order.saga` consumer and the idempotency-key pruner.
//! Modules: `status` (the state machine, pure), `address` (validation,
//! pure), `catalog` (product-service client), `cart` (the cart's rules),
//! `checkout` (placing orders), `saga` (the consumer), `store` (SQL),
//! `state` (what handlers reach), `http` (handlers, OpenAPI), `metrics`.

mod address;
mod cart;
pub mod catalog;
mod checkout;
mod http;
pub mod metrics;
mod saga;
mod state;
mod status;
mod store;

use std::time::Duration;

use sqlx::PgPool;
use storekeeper_kit::events::{Consumer, EventMetrics, EventsConfig, Relay};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use state::AppState;

/// The schema migrations, embedded; applied at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Idempotency keys live this long (the API promises at least 24 hours).
const KEY_RETENTION_HOURS: i32 = 48;

/// The public API router, without kit's common middleware.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// The `order.saga` consumer (tests declare its queue before publishing).
pub fn saga_consumer(state: &AppState, config: &EventsConfig, events: &EventMetrics) -> Consumer {
    Consumer::new(
        saga::CONSUMER,
        saga::ROUTING_KEYS,
        saga::Saga {
            metrics: state.metrics.clone(),
        },
        state.pool.clone(),
        config.clone(),
        events.clone(),
    )
}

/// Starts the outbox relay, the saga consumer and the key pruner; they stop
/// when `shutdown` fires.
pub fn start_events(
    state: &AppState,
    config: &EventsConfig,
    events: &EventMetrics,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let relay = Relay::new(state.pool.clone(), config.clone(), events.clone());
    vec![
        tokio::spawn(relay.run(shutdown.clone())),
        tokio::spawn(saga_consumer(state, config, events).run(shutdown.clone())),
        tokio::spawn(prune_keys(state.pool.clone(), shutdown.clone())),
    ]
}

async fn prune_keys(pool: PgPool, shutdown: CancellationToken) {
    loop {
        match store::prune_keys(&pool, KEY_RETENTION_HOURS).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "expired idempotency keys removed"),
            Err(err) => tracing::warn!(error = %err, "pruning idempotency keys failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_hours(1)) => {}
        }
    }
}
