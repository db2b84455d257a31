//! `/api/orders`: placing orders, reading them, a shopper cancelling one
//! not paid yet, and an order's history for admins. Owners see their own,
//! admins all; another shopper's order is a 404.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use storekeeper_kit::{
    AdminUser, ApiError, ApiResult, AuthUser, FieldError, db,
    extract::{Json, Path, Query, parse_json},
    idempotency::{Answer, IdempotencyKey},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    address::ShippingAddress,
    advance::{AdvanceError, advance},
    checkout::{Attempt, CheckoutError},
    state::AppState,
    status::{OrderStatus, SagaStep},
    store::{self, HistoryEntry, Order, OrderFilter},
};

/// The cancellation reason of an order its shopper cancelled.
const SHOPPER_REASON: &str = "cancelled by the shopper";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/orders", get(list_orders).post(place_order))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/orders/{id}/cancel", post(cancel_order))
        .route("/api/orders/{id}/history", get(order_history))
}

/// Body of `POST /api/orders`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrder {
    /// The id `POST /api/payments/methods` returned.
    payment_method_id: Uuid,
    /// Where to ship.
    shipping_address: ShippingAddress,
    /// The shopper's e-mail (optional): kept on the order so admins can
    /// find it by e-mail.
    #[serde(default)]
    email: Option<String>,
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

/// Paging and filters of `GET /api/orders`.
#[derive(Debug, Deserialize)]
pub(super) struct Paging {
    /// 1-based page (default 1).
    page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    per_page: Option<i64>,
    /// Only orders in this status (an upper-case word).
    status: Option<String>,
    /// Only this shopper's orders (admins; a customer only ever sees theirs).
    user_id: Option<Uuid>,
    /// Only orders placed with this e-mail, any case.
    email: Option<String>,
}

/// An order's saga history.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrderHistory {
    /// The order.
    order_id: Uuid,
    /// Its status now.
    status: OrderStatus,
    /// Every status it took, oldest first.
    entries: Vec<HistoryEntry>,
}

impl From<CheckoutError> for ApiError {
    fn from(err: CheckoutError) -> Self {
        match err {
            CheckoutError::KeyReused(reused) => reused.into(),
            CheckoutError::InProgress | CheckoutError::CartChanging => {
                ApiError::conflict(err.to_string())
            }
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
        (status = 409, description = "A request with this key is in progress, or the cart kept changing; retry", body = storekeeper_kit::Problem),
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
    let answer = place(&state, &user, &headers, &body).await;
    state
        .metrics
        .checkout(answer.as_ref().map(|answer| answer.replayed));
    Ok(answer?.into_response())
}

/// What `POST /api/orders` answers, before `order_checkouts_total` counts it.
async fn place(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    body: &serde_json::Value,
) -> ApiResult<Answer> {
    let IdempotencyKey(key) = IdempotencyKey::from_headers(headers)?;
    let attempt = Attempt::new(user.id, &key, body);
    let checkout = state.checkout();
    // The key's stored answer and the cart are read at once: one round
    // trip's wait where one after the other were two.
    let (stored, cart) = tokio::join!(
        checkout.stored_answer(&attempt),
        store::cart(&state.pool, user.id)
    );
    if let Some(replay) = stored? {
        return Ok(replay);
    }
    let order: NewOrder = parse_json(&serde_json::to_vec(body).unwrap_or_default())?;
    let email = order
        .email
        .as_deref()
        .map(str::trim)
        .filter(|email| !email.is_empty());
    if let Some(email) = email
        && !is_email(email)
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "email",
            "must be an e-mail address like ann@example.com",
        )]));
    }
    Ok(checkout
        .place(
            &attempt,
            cart?,
            order.payment_method_id,
            order.shipping_address,
            email,
        )
        .await?)
}

/// Whether `email` looks like an address: one `@` between a non-empty local
/// part and a dotted domain, no spaces or control characters, at most 254
/// characters (the most a mail server accepts).
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// The caller's orders (all orders for admins), newest first, optionally
/// only those in one status or (admins) of one shopper.
#[utoipa::path(get, path = "/api/orders", tag = "orders",
    params(("page" = Option<i64>, Query, description = "1-based page"), ("per_page" = Option<i64>, Query, description = "1 to 100"),
        ("status" = Option<String>, Query, description = "only orders in this status, e.g. PAID"),
        ("user_id" = Option<Uuid>, Query, description = "admins: only this shopper's orders"),
        ("email" = Option<String>, Query, description = "only orders placed with this e-mail (any case)")),
    responses(
        (status = 200, description = "A page of orders", body = OrderPage),
        (status = 422, description = "Page out of range or unknown status", body = storekeeper_kit::Problem),
    ), security(("bearer" = [])))]
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
    let status = paging.status.as_deref().filter(|s| !s.is_empty());
    let status = match status.map(|word| OrderStatus::parse(word).ok_or(word)) {
        Some(Err(word)) => {
            errors.push(FieldError::new(
                "status",
                format!(
                    "unknown status {word:?}; one of PENDING, AWAITING_PAYMENT, PAID, CANCELLED, REFUNDED"
                ),
            ));
            None
        }
        Some(Ok(status)) => Some(status),
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let filter = OrderFilter {
        user: owner(&user).or(paging.user_id),
        status,
        email: paging.email.filter(|email| !email.trim().is_empty()),
    };
    let (items, total) =
        store::orders(&state.pool, filter, per_page, (page - 1) * per_page).await?;
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

/// Cancels the caller's own order while it is not paid yet, through the
/// saga's cancellation step: `order.cancelled` releases its stock and
/// makes payment-service refund a charge that lands after it.
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order, now CANCELLED", body = Order),
        (status = 404, description = "No such order of this caller", body = storekeeper_kit::Problem),
        (status = 409, description = "order-not-cancellable: already PAID, CANCELLED or REFUNDED", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = [])))]
pub(super) async fn cancel_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    let not_found = || ApiError::not_found(format!("no order {id}"));
    let mut tx = db::begin(&state.pool).await?;
    let order = store::lock_order(&mut tx, id)
        .await?
        .filter(|order| order.user_id == user.id)
        .ok_or_else(not_found)?;
    let moved = advance(
        &mut tx,
        &order,
        SagaStep::ShopperCancelled,
        Some(SHOPPER_REASON),
    )
    .await
    .map_err(|err| match err {
        AdvanceError::Invalid(invalid) => not_cancellable(id, invalid.from),
        AdvanceError::Database(err) => err.into(),
        AdvanceError::Outbox(err) => ApiError::internal(anyhow::Error::new(err)),
    })?;
    let cancelled = store::order(&mut tx, id, None)
        .await?
        .ok_or_else(not_found)?;
    tx.commit().await?;
    state.metrics.moved(&moved);
    tracing::info!(order_id = %id, from = moved.from.as_str(), "order cancelled by its shopper");
    Ok(Json(cancelled))
}

/// The 409 for cancelling an order that is past cancelling.
fn not_cancellable(id: Uuid, status: OrderStatus) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "order-not-cancellable",
        "The order can no longer be cancelled",
    )
    .with_detail(format!(
        "order {id} is already {}; only an order that is not paid yet can be cancelled",
        status.as_str()
    ))
}

/// One order's saga history (admins): every status with the step that
/// moved it there and when.
#[utoipa::path(get, path = "/api/orders/{id}/history", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order's history, oldest first", body = OrderHistory),
        (status = 403, description = "Not an admin", body = storekeeper_kit::Problem),
        (status = 404, description = "No such order", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = [])))]
pub(super) async fn order_history(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<OrderHistory>> {
    let mut conn = state.pool.acquire().await?;
    let order = store::order(&mut conn, id, None)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
    let entries = store::history(&mut conn, id).await?;
    Ok(Json(OrderHistory {
        order_id: id,
        status: order.status,
        entries,
    }))
}

#[cfg(test)]
mod tests {
    use storekeeper_kit::idempotency::KeyReused;

    use super::*;

    #[test]
    fn checkout_refusals_keep_their_problems() {
        let cases = [
            (
                CheckoutError::KeyReused(KeyReused),
                422,
                "idempotency-key-reused",
            ),
            (CheckoutError::InProgress, 409, "conflict"),
            (CheckoutError::CartChanging, 409, "conflict"),
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

    #[test]
    fn e_mails_are_checked_loosely() {
        for good in ["ann@example.com", "a.b+tag@mail.example.co.uk"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
            "ann@.com",
            "ann@example.com.",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn a_paid_order_is_not_cancellable_and_says_so() {
        let problem = not_cancellable(Uuid::nil(), OrderStatus::Paid);
        assert_eq!(
            (problem.status().as_u16(), problem.kind()),
            (409, "order-not-cancellable")
        );
        let detail = problem.to_problem().detail.unwrap_or_default();
        assert!(detail.contains("already PAID"), "{detail}");
    }
}
