//! `/api/products`: cached reads for everyone, validated writes for admins.
//!
//! Every write invalidates the cache after its transaction committed and
//! before it answers, so a client that reads after its write sees the write.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use storekeeper_kit::{
    AdminUser, ApiError, ApiResult, Problem,
    extract::{Json, Path, Query},
};
use uuid::Uuid;

use super::{cached::cached, error::invalid_query};
use crate::{
    batch::{BatchParams, ProductBatch},
    domain::{NewProduct, Product, ProductPatch, StockLevels, is_slug},
    listing::{ListParams, ProductPage},
    state::AppState,
    store,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/products", get(list_products).post(create_product))
        .route("/api/products:batchGet", get(batch_get_products))
        .route(
            "/api/products/{id}",
            get(get_product)
                .patch(update_product)
                .delete(delete_product),
        )
        .route("/api/products/{id}/stock", get(stock_levels))
}

/// A page of products, filtered, searched and sorted.
#[utoipa::path(
    get,
    path = "/api/products",
    tag = "catalog",
    params(ListParams),
    responses(
        (status = 200, description = "One page of matching products", body = ProductPage),
        (status = 400, description = "A query parameter is malformed or out of bounds", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn list_products(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> ApiResult<Response> {
    let query = params.validate().map_err(invalid_query)?;
    let lookup = state.cache.list(&query).await;
    cached(&state.cache, lookup, || async {
        Ok(store::list(&state.pool, &query).await?)
    })
    .await
}

/// Several products by id in one request, current: read from the
/// database, not the cache, because checkout prices orders from it.
#[utoipa::path(
    get,
    path = "/api/products:batchGet",
    tag = "catalog",
    params(BatchParams),
    responses(
        (status = 200, description = "The products that exist, in the order asked for; unknown ids are left out", body = ProductBatch),
        (status = 400, description = "`ids` is missing, holds something other than UUIDs, or too many", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn batch_get_products(
    State(state): State<AppState>,
    Query(params): Query<BatchParams>,
) -> ApiResult<Json<ProductBatch>> {
    let ids = params.validate().map_err(invalid_query)?;
    let products = store::by_ids(&state.pool, &ids).await?;
    Ok(Json(ProductBatch { products }))
}

/// One product, by id or by slug.
#[utoipa::path(
    get,
    path = "/api/products/{id}",
    tag = "catalog",
    params(("id" = String, Path, description = "The product's UUID, or its slug")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such product", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn get_product(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found(format!("no product has the id or slug `{key}`"));
    if let Ok(id) = Uuid::parse_str(&key) {
        let lookup = state.cache.product(id).await;
        cached(&state.cache, lookup, || async {
            store::by_id(&state.pool, id).await?.ok_or_else(not_found)
        })
        .await
    } else if is_slug(&key) {
        let lookup = state.cache.product_by_slug(&key).await;
        cached(&state.cache, lookup, || async {
            store::by_slug(&state.pool, &key)
                .await?
                .ok_or_else(not_found)
        })
        .await
    } else {
        Err(not_found())
    }
}

/// Creates a product (admin).
#[utoipa::path(
    post,
    path = "/api/products",
    tag = "admin",
    request_body = NewProduct,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` names the new product", body = Product),
        (status = 400, description = "Malformed JSON", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing, expired or invalid access token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The slug is taken", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Body too large", content_type = "application/problem+json", body = Problem),
        (status = 415, description = "Body is not JSON", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "A field is missing, of the wrong type or invalid", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn create_product(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Json(body): Json<NewProduct>,
) -> ApiResult<Response> {
    let product = body.validate().map_err(ApiError::validation)?;
    let created = store::create(&state.pool, &product).await?;
    state.cache.invalidate(&[created.id]).await;
    tracing::info!(admin = %admin.id, product = %created.id, slug = %created.slug, "product created");
    let location = format!("/api/products/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

/// Changes some fields of a product (admin).
#[utoipa::path(
    patch,
    path = "/api/products/{id}",
    tag = "admin",
    params(
        ("id" = Uuid, Path, description = "The product's UUID"),
        ("If-Match" = Option<String>, Header, description = "The ETag of `GET /api/products/{id}/stock`: the patch applies only if the product has not changed since. Required with an absolute `stock`, which would otherwise undo the reservations and releases made meanwhile"),
    ),
    request_body = ProductPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated product", body = Product),
        (status = 400, description = "Malformed JSON", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing, expired or invalid access token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such product", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The new slug is taken (`conflict`), or `stock_delta` would take the stock below zero (`insufficient-stock`)", content_type = "application/problem+json", body = Problem),
        (status = 412, description = "`If-Match` names a version the product no longer has: it changed since it was read (`precondition-failed`)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "A field is invalid, `stock` and `stock_delta` are both sent, or the patch is empty", content_type = "application/problem+json", body = Problem),
        (status = 428, description = "An absolute `stock` without `If-Match` (`precondition-required`)", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn update_product(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Json(body): Json<ProductPatch>,
) -> ApiResult<Json<Product>> {
    let patch = body.validate().map_err(ApiError::validation)?;
    let version = if_match(&headers)?;
    if patch.stock.is_some() && version.is_none() {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "If-Match required",
        )
        .with_detail(
            "an absolute `stock` needs `If-Match` with the ETag of GET /api/products/{id}/stock, \
             so it cannot undo reservations made since; or send `stock_delta`",
        ));
    }
    let updated = store::update(&state.pool, id, &patch, version.as_deref()).await?;
    state.cache.invalidate(&[id]).await;
    tracing::info!(admin = %admin.id, product = %id, stock_delta = ?patch.stock_delta, stock = updated.stock, "product updated");
    Ok(Json(updated))
}

/// A product's stock on hand and reserved (admin), read from the database,
/// never the cache: the admin changes stock from it.
#[utoipa::path(
    get,
    path = "/api/products/{id}/stock",
    tag = "admin",
    params(("id" = Uuid, Path, description = "The product's UUID")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Units available and reserved; the `ETag` header is the product's version, for `If-Match` on a patch", body = StockLevels),
        (status = 401, description = "Missing, expired or invalid access token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such product", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn stock_levels(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let (available, reserved, version) = store::stock_levels(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no product with this id"))?;
    tracing::debug!(admin = %admin.id, product = %id, "stock levels read");
    let levels = StockLevels {
        product_id: id,
        available,
        reserved,
    };
    Ok(([(header::ETAG, format!("\"{version}\""))], Json(levels)).into_response())
}

/// The version `If-Match` names: `None` without the header; a list, a weak
/// tag or `*` are refused, since only one exact version makes the patch
/// safe.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|tag| tag.trim().strip_prefix('"')?.strip_suffix('"'))
        .filter(|version| !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()))
        .map(|version| Some(version.to_owned()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "If-Match must be one ETag exactly as GET /api/products/{id}/stock gave it",
            )
        })
}

/// Deletes a product (admin).
#[utoipa::path(
    delete,
    path = "/api/products/{id}",
    tag = "admin",
    params(("id" = Uuid, Path, description = "The product's UUID")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing, expired or invalid access token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such product", content_type = "application/problem+json", body = Problem),
    )
)]
pub(super) async fn delete_product(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    store::delete(&state.pool, id).await?;
    state.cache.invalidate(&[id]).await;
    tracing::info!(admin = %admin.id, product = %id, "product deleted");
    Ok(StatusCode::NO_CONTENT)
}
