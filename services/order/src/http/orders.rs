//! `/api/orders`: placing orders and reading them. Owners see their own,
//! admins all; another shopper's order is a 404.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use storekeeper_kit::{
    ApiError, ApiResult, AuthUser, FieldError,
    extract::{Json, Path, Query, parse_json},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    address::ShippingAddress,
    checkout::{Attempt, CheckoutError, Placed},
    state::AppState,
    store::{self, Order},
};

/// Longest idempotency key accepted.
const KEY_MAX: usize = 255;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/orders", get(list_orders).post(place_order))
        .route("/api/orders/{id}", get(get_order))
}

/// Body of `POST /api/orders`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrder {
    /// The id `POST /api/payments/methods` returned.
    payment_method_id: Uuid,
    /// Where to ship.
    shipping_address: ShippingAddress,
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrderPage {
    /// Newest first.
    items: Vec<Order>,
    /// 1-based page number.
    page: i64,
    /// Page size.
    per_page: i64,
    /// Orders in all pages.
    total: i64,
}

/// Paging of `GET /api/orders`.
#[derive(Debug, Deserialize)]
pub(super) struct Paging {
    /// 1-based page (default 1).
    page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    per_page: Option<i64>,
}

impl From<CheckoutError> for ApiError {
    fn from(err: CheckoutError) -> Self {
        match err {
            CheckoutError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            )
            .with_detail(err.to_string()),
            CheckoutError::InProgress => ApiError::conflict(err.to_string()),
            CheckoutError::InvalidAddress(errors) => ApiError::validation(errors),
            CheckoutError::EmptyCart => {
                ApiError::validation(vec![FieldError::new("cart", err.to_string())])
            }
            CheckoutError::NoLongerSold(_)
            | CheckoutError::MixedCurrencies
            | CheckoutError::TotalTooLarge => ApiError::unprocessable(err.to_string()),
            CheckoutError::Catalog(err) => ApiError::unavailable(err),
            CheckoutError::Database(err) => err.into(),
            CheckoutError::Serialize(_) | CheckoutError::Outbox(_) => {
                ApiError::internal(anyhow::Error::new(err))
            }
        }
    }
}

/// Checks the `Idempotency-Key` header.
fn check_key(key: Option<&str>) -> Result<&str, ApiError> {
    let key = key.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "idempotency-key-missing", "Idempotency-Key required")
            .with_detail("POST /api/orders needs an `Idempotency-Key` header (e.g. a UUID) so a retry cannot order twice")
    })?;
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > KEY_MAX || !printable {
        return Err(ApiError::bad_request(format!(
            "the Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters"
        )));
    }
    Ok(key)
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
    let attempt = Attempt::new(user.id, check_key(key)?, &body);
    let checkout = state.checkout();
    if let Some(replay) = checkout.stored_answer(&attempt).await? {
        return Ok(answer(replay));
    }
    let order: NewOrder = parse_json(&serde_json::to_vec(&body).unwrap_or_default())?;
    let placed = checkout
        .place(&attempt, order.payment_method_id, order.shipping_address)
        .await?;
    Ok(answer(placed))
}

fn answer(placed: Placed) -> Response {
    let status = StatusCode::from_u16(placed.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, placed.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if placed.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_required_and_bounded() {
        assert_eq!(
            check_key(None).unwrap_err().kind(),
            "idempotency-key-missing"
        );
        assert!(check_key(Some("")).is_err());
        assert!(check_key(Some("has space")).is_err());
        assert!(check_key(Some(&"k".repeat(256))).is_err());
        assert_eq!(check_key(Some("3f1c-ok")).unwrap(), "3f1c-ok");
    }

    #[test]
    fn checkout_refusals_keep_their_problems() {
        let cases = [
            (CheckoutError::KeyReused, 422, "idempotency-key-reused"),
            (CheckoutError::InProgress, 409, "conflict"),
            (CheckoutError::EmptyCart, 422, "validation"),
            (CheckoutError::NoLongerSold(vec![]), 422, "unprocessable"),
            (CheckoutError::MixedCurrencies, 422, "unprocessable"),
            (CheckoutError::TotalTooLarge, 422, "unprocessable"),
        ];
        for (err, status, kind) in cases {
            let problem = ApiError::from(err);
            assert_eq!((problem.status().as_u16(), problem.kind()), (status, kind));
        }
    }
}
