//! `GET /openapi.json`, generated from the handlers' annotations.

use std::sync::LazyLock;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use storekeeper_kit::openapi::BearerAuth;
use utoipa::OpenApi;

use super::{categories, images, products};
use crate::{
    batch::ProductBatch,
    domain::{Category, NewProduct, Product, ProductPatch, StockLevels},
    listing::{ProductPage, Sort},
    state::AppState,
};

/// The OpenAPI description of product-service.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Storekeeper product-service",
        description = "Catalog, categories and search. Errors are RFC 9457 `application/problem+json`."
    ),
    paths(
        categories::list_categories,
        products::list_products,
        products::batch_get_products,
        products::get_product,
        products::create_product,
        products::update_product,
        products::delete_product,
        products::stock_levels,
        images::image,
    ),
    components(schemas(
        Category,
        Product,
        ProductPage,
        ProductBatch,
        NewProduct,
        ProductPatch,
        StockLevels,
        Sort,
        storekeeper_kit::Problem,
        storekeeper_kit::FieldError,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "catalog", description = "Public catalog reads"),
        (name = "admin", description = "Catalog writes; need an access token with the `admin` role"),
    )
)]
pub(super) struct ApiDoc;

/// Serialized once: the document never changes while the process runs.
static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().unwrap_or_default());

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_str(),
    )
        .into_response()
}
