//! payment-service: tokenizes cards, charges each order exactly once when
//! its stock is reserved, and issues refunds.
//!
//! [`app`] is the public API router; [`start_events`] runs the outbox
//! relay, the `payment.charges` consumer and the capture worker. Modules:
//! `card` (validation, pure), `provider` (the simulated card provider),
//! `charges` (the consumer: decides charges, refunds cancelled orders),
//! `capture` (calls the provider outside any transaction, records the
//! outcome, resumes what a crash left), `intents` (their SQL), `refunds`
//! (refunding captured payments, once per idempotency key), `store` (SQL),
//! `state` (what handlers reach), `http` (handlers, OpenAPI), `metrics`.
//! Idempotency keys, counters held until the commit and the consumer's
//! share of the pool come from the kit.

pub mod capture;
mod card;
pub mod charges;
mod http;
pub mod intents;
pub mod metrics;
mod provider;
mod refunds;
mod state;
mod store;

use capture::{Capturer, Captures};
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

/// The `payment.requested` consumer, handing its charges to the worker
/// behind `captures` (tests declare its queue before publishing).
pub fn charge_consumer(
    state: &AppState,
    config: &EventsConfig,
    events: &EventMetrics,
    captures: Captures,
) -> Consumer {
    Consumer::new(
        charges::CONSUMER,
        charges::ROUTING_KEYS,
        charges::Charger::new(state.metrics.clone(), captures),
        state.pool.clone(),
        config.clone(),
        events.clone(),
    )
}

/// Starts the outbox relay, the consumer, the capture worker and the
/// refund-key pruner; they stop when `shutdown` fires.
pub fn start_events(
    state: &AppState,
    config: &EventsConfig,
    events: &EventMetrics,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let relay = Relay::new(state.pool.clone(), config.clone(), events.clone());
    let (captures, inbox) = capture::channel();
    let worker = Capturer::new(state.pool.clone(), state.metrics.clone());
    vec![
        tokio::spawn(relay.run(shutdown.clone())),
        tokio::spawn(charge_consumer(state, config, events, captures).run(shutdown.clone())),
        tokio::spawn(worker.run(inbox, shutdown.clone())),
        tokio::spawn(store::KEYS.prune_hourly(state.pool.clone(), shutdown.clone())),
    ]
}
