//! The OpenAPI document served at `GET /openapi.json`, generated from the
//! handlers' annotations.

use storekeeper_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use crate::routes;

/// user-service's API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Storekeeper user-service", description = "Accounts, login, access and refresh tokens."),
    paths(routes::register, routes::login, routes::refresh, routes::logout, routes::me),
    components(schemas(storekeeper_kit::Problem, storekeeper_kit::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "users", description = "Accounts and sessions"))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
