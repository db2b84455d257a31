//! The OpenAPI document served at `GET /openapi.json`, generated from the
//! handlers' annotations.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

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

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`.
pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
