//! The HTTP API under `/api/users`: one router per resource, merged over
//! the shared state.

mod openapi;
mod secret;
mod sessions;
mod users;

use axum::{Router, http::StatusCode};
use storekeeper_kit::ApiError;

use crate::{password::HashError, state::AppState};

/// A full hashing queue is a 503 the client may retry in a second; any
/// other hashing failure is a bug (500).
pub(super) fn hash_error(err: HashError) -> ApiError {
    match err {
        HashError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "Too busy")
            .with_detail("too many passwords are being checked right now; retry in a moment")
            .with_retry_after(1),
        err => ApiError::internal(err),
    }
}

/// The public API router.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(users::router())
        .merge(sessions::router())
        .merge(openapi::router())
        .with_state(state)
}
