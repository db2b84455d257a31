//! Placing orders and reading them: owners see their own, admins all;
//! another shopper's order is a 404.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use storekeeper_kit::{
    ApiError, ApiResult, AuthUser, FieldError,
    extract::{Json, Path, Query},
};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::{
    checkout::{self, NewOrder},
    store::{self, Order},
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/orders", get(list_orders).post(place_order))
        .route("/api/orders/{id}", get(get_order))
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<Order>,
    /// 1-based page number.
    pub page: i64,
    /// Page size.
    pub per_page: i64,
    /// Orders in all pages.
    pub total: i64,
}

/// Paging of `GET /api/orders`.
#[derive(Debug, Deserialize)]
pub struct Paging {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    pub per_page: Option<i64>,
}

fn owner(user: &AuthUser) -> Option<Uuid> {
    (!user.is_admin()).then_some(user.id)
}

/// Places an order from the caller's cart. Needs an `Idempotency-Key`
/// header: the same key and body replay the first response (with
/// `Idempotent-Replayed: true`); another body is a 422.
#[utoipa::path(post, path = "/api/orders", tag = "orders", request_body = NewOrder,
    params(("Idempotency-Key" = String, Header, description = "Unique per intended order, e.g. a UUID; kept 48 hours")),
    responses(
        (status = 201, description = "Order placed (status PENDING), or the replay of the first response", body = Order),
        (status = 400, description = "Missing or malformed Idempotency-Key", body = storekeeper_kit::Problem),
        (status = 422, description = "Invalid address, empty cart, unknown product, or key reused with another body", body = storekeeper_kit::Problem),
        (status = 503, description = "product-service unavailable; retry with the same key", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = [])))]
pub(super) async fn place_order(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<Response> {
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or(""));
    let key = checkout::check_key(key)?;
    let placed = checkout::place(&state, user.id, key, &body).await?;
    let mut response = (placed.status, placed.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if placed.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The caller's orders (all orders for admins), newest first.
#[utoipa::path(get, path = "/api/orders", tag = "orders",
    params(("page" = Option<i64>, Query, description = "1-based page"), ("per_page" = Option<i64>, Query, description = "1 to 100")),
    responses((status = 200, description = "A page of orders", body = OrderPage)), security(("bearer" = [])))]
pub(super) async fn list_orders(
    State(state): State<AppState>,
    user: AuthUser,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<OrderPage>> {
    let page = paging.page.unwrap_or(1);
    let per_page = paging.per_page.unwrap_or(20);
    let mut errors = Vec::new();
    if !(1..=10_000).contains(&page) {
        errors.push(FieldError::new("page", "must be between 1 and 10000"));
    }
    if !(1..=100).contains(&per_page) {
        errors.push(FieldError::new("per_page", "must be between 1 and 100"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (items, total) =
        store::orders(&state.pool, owner(&user), per_page, (page - 1) * per_page).await?;
    Ok(Json(OrderPage {
        items,
        page,
        per_page,
        total,
    }))
}

/// One order; another shopper's is a 404.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order for this caller", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = [])))]
pub(super) async fn get_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    let mut conn = state.pool.acquire().await?;
    store::order(&mut conn, id, owner(&user))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no order {id}")))
}
