//! payment-service: tokenizes cards, charges each order exactly once when
//! its stock is reserved, and issues refunds.
//!
//! `app(state)` is the public API router; [`start_events`] runs the outbox
//! relay and the `payment.requested` consumer. Modules: `card` (validation,
//! pure), `provider` (the simulated card provider), `store` (SQL),
//! `charges` (the consumer), `http` (handlers, OpenAPI), `metrics`.

pub mod card;
pub mod charges;
pub mod http;
pub mod metrics;
pub mod provider;
pub mod store;

use sqlx::PgPool;
use storekeeper_kit::events::{Consumer, EventMetrics, EventsConfig, Relay};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use http::AppState;

/// The schema migrations, embedded; applied at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The service name used in logs and metrics.
pub const SERVICE_NAME: &str = "payment-service";
/// The public API port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 8002;
/// The database of this service.
pub const DATABASE: &str = "payments";

/// The public API router, without kit's common middleware.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// The `payment.requested` consumer.
pub fn charge_consumer(state: &AppState, config: &EventsConfig, events: &EventMetrics) -> Consumer {
    Consumer::new(
        charges::CONSUMER,
        charges::ROUTING_KEYS,
        charges::Charger {
            metrics: state.metrics.clone(),
        },
        state.pool.clone(),
        config.clone(),
        events.clone(),
    )
}

/// Starts the outbox relay and the consumer; they stop when `shutdown` fires.
pub fn start_events(
    state: &AppState,
    config: &EventsConfig,
    events: &EventMetrics,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let relay = Relay::new(state.pool.clone(), config.clone(), events.clone());
    vec![
        tokio::spawn(relay.run(shutdown.clone())),
        tokio::spawn(charge_consumer(state, config, events).run(shutdown.clone())),
    ]
}

/// What `/readyz` checks: PostgreSQL (reachable, so migrations ran) and RabbitMQ.
pub fn readiness(pool: &PgPool, amqp_url: &str) -> storekeeper_kit::Readiness {
    storekeeper_kit::Readiness::new()
        .with(storekeeper_kit::db::readiness_check(pool))
        .with(storekeeper_kit::events::broker::readiness_check(amqp_url))
}
