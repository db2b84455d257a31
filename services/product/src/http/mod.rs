//! The HTTP API: one router per resource, merged over the shared state.
//!
//! Handlers are thin: parse (kit's extractors answer bad input with
//! problem+json), validate with `domain`/`listing`, call `store`, keep the
//! cache coherent, respond.

mod cached;
mod categories;
mod error;
mod images;
mod openapi;
mod products;

use axum::Router;

use crate::state::AppState;

/// The public API router (the kit's runner adds the common middleware
/// when serving).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(categories::router())
        .merge(products::router())
        .merge(images::router())
        .merge(openapi::router())
        .with_state(state)
}
