//! What every service's OpenAPI document shares: the bearer-token security
//! scheme the `AuthUser`/`AdminUser` extractors expect. Services add it with
//! `#[openapi(modifiers(&storekeeper_kit::openapi::BearerAuth))]`.

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Declares the `bearer` (JWT) security scheme that routes refer to with
/// `security(("bearer" = []))`.
pub struct BearerAuth;

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
