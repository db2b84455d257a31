//! The HTTP API: card tokenization, payment reads, admin refunds. One
//! router per resource, merged over the shared state.

mod methods;
mod openapi;
mod payments;

use axum::Router;

use crate::state::AppState;

/// The public API router (the kit's runner adds the common middleware
/// when serving).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(methods::router())
        .merge(payments::router())
        .merge(openapi::router())
        .with_state(state)
}
