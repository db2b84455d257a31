//! order-service: the shopper's cart, checkout with idempotency keys, and
//! the order side of the checkout saga.
//!
//! [`app`] is the public API router; [`start_events`] runs the outbox
//! relay, the `order.saga` consumer, the reaper and the idempotency-key
//! pruner. Modules: `status` (the state machine, pure), `advance` (a step
//! applied to an order), `address` (validation, pure), `catalog`
//! (product-service client), `cart` (the cart's rules), `checkout` (placing
//! orders), `saga` (the consumer), `reaper` (the deadline), `store` (SQL),
//! `state` (what handlers reach), `config` (own settings), `http`
//! (handlers, OpenAPI), `metrics`. Idempotency keys, counters held until
//! the commit and the consumer's share of the pool come from the kit.

mod address;
mod advance;
mod cart;
pub mod catalog;
mod checkout;
pub mod config;
mod http;
pub mod metrics;
pub mod reaper;
mod saga;
mod state;
mod status;
mod store;

use storekeeper_kit::events::{Consumer, EventMetrics, EventsConfig, Relay};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use state::AppState;

/// The schema migrations, embedded; applied at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The public API router, without kit's common middleware.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// The `order.saga` consumer (tests declare its queue before publishing).
pub fn saga_consumer(state: &AppState, config: &EventsConfig, events: &EventMetrics) -> Consumer {
    Consumer::new(
        saga::CONSUMER,
        saga::ROUTING_KEYS,
        saga::Saga::new(state.metrics.clone()),
        state.pool.clone(),
        config.clone(),
        events.clone(),
    )
}

/// Starts the outbox relay, the saga consumer, the reaper and the key
/// pruner; they stop when `shutdown` fires.
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
        tokio::spawn(reaper(state).run(shutdown.clone())),
        tokio::spawn(store::KEYS.prune_hourly(state.pool.clone(), shutdown.clone())),
    ]
}

/// The reaper of `state`'s orders (tests run a pass of it by hand).
pub fn reaper(state: &AppState) -> reaper::Reaper {
    reaper::Reaper::new(state.pool.clone(), state.deadline, state.metrics.clone())
}
