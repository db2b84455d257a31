//! The HTTP API under `/api/users`: one router per resource, merged over
//! the shared state.

mod openapi;
mod secret;
mod sessions;
mod users;

use axum::Router;

use crate::state::AppState;

/// The public API router.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .merge(sessions::router())
        .merge(openapi::router())
        .with_state(state)
}
