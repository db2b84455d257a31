//! `GET /openapi.json`, generated from the handlers' annotations.

use axum::{Json, Router, routing::get};
use storekeeper_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{sessions, users};
use crate::state::AppState;

/// user-service's API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Storekeeper user-service", description = "Accounts, login, access and refresh tokens."),
    paths(users::register, sessions::login, sessions::refresh, sessions::logout, users::me, users::change_password),
    components(schemas(storekeeper_kit::Problem, storekeeper_kit::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "users", description = "Accounts and sessions"))
)]
pub(super) struct ApiDoc;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
