//! `GET /openapi.json`, generated from the handlers' annotations.

use axum::{Json, Router, routing::get};
use storekeeper_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{cart, orders};
use crate::state::AppState;

/// The OpenAPI description of order-service.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Storekeeper order-service",
        description = "Cart, checkout and orders. Errors are RFC 9457 `application/problem+json`."
    ),
    paths(
        cart::get_cart,
        cart::add_item,
        cart::set_item,
        cart::remove_item,
        orders::place_order,
        orders::list_orders,
        orders::get_order,
        orders::cancel_order,
        orders::order_history,
    ),
    components(schemas(storekeeper_kit::Problem, storekeeper_kit::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "cart", description = "The shopper's cart"),
        (name = "orders", description = "Checkout and order history"),
    )
)]
pub(super) struct ApiDoc;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
