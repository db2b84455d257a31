//! `GET /openapi.json`, generated from the handlers' annotations.

use axum::{Json, Router, routing::get};
use storekeeper_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{methods, payments};
use crate::state::AppState;

/// The OpenAPI description of payment-service.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Storekeeper payment-service",
        description = "Card tokenization, payments and refunds. Errors are RFC 9457 `application/problem+json`."
    ),
    paths(
        methods::create_method,
        payments::list_payments,
        payments::get_payment,
        payments::refund_payment,
    ),
    components(schemas(storekeeper_kit::Problem, storekeeper_kit::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "payments", description = "A shopper's cards and payments"),
        (name = "admin", description = "Refunds; need the `admin` role"),
    )
)]
pub(super) struct ApiDoc;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
