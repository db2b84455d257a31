//! The HTTP API: one router per resource, merged over the shared state.

mod cart;
mod openapi;
mod orders;

use axum::Router;

use crate::state::AppState;

/// The public API router (the kit's runner adds the common middleware
/// when serving).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(cart::router())
        .merge(orders::router())
        .merge(openapi::router())
        .with_state(state)
}
