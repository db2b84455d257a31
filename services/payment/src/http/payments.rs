//! `/api/payments`: reads for the owner (admins see all) and admin refunds.

use axum::{
    Router,
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use storekeeper_kit::{
    AdminUser, ApiError, ApiResult, AuthUser, FieldError,
    extract::{Json, Path, Query, parse_json},
    idempotency::IdempotencyKey,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    refunds::{self, Attempt, RefundError},
    state::AppState,
    store::{self, Payment, Refund},
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/payments", get(list_payments))
        .route("/api/payments/{id}", get(get_payment))
        .route("/api/payments/{id}/refunds", post(refund_payment))
}

/// Query of `GET /api/payments`.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    /// Only this order's payments.
    order_id: Option<Uuid>,
}

/// A list of payments.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PaymentList {
    /// Newest first.
    items: Vec<Payment>,
}

/// Body of `POST /api/payments/{id}/refunds`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRefund {
    /// Amount to refund, minor units; everything not yet refunded when absent.
    amount_cents: Option<i64>,
}

impl From<RefundError> for ApiError {
    fn from(err: RefundError) -> Self {
        match err {
            RefundError::NotFound(_) => ApiError::not_found(err.to_string()),
            RefundError::NotCaptured { .. } | RefundError::InProgress => {
                ApiError::conflict(err.to_string())
            }
            RefundError::Amount { .. } => {
                ApiError::validation(vec![FieldError::new("amount_cents", err.to_string())])
            }
            RefundError::KeyReused(reused) => reused.into(),
            RefundError::Database(err) => err.into(),
            RefundError::Outbox(_) | RefundError::Serialize(_) => {
                ApiError::internal(anyhow::Error::new(err))
            }
        }
    }
}

fn owner_filter(user: &AuthUser) -> Option<Uuid> {
    (!user.is_admin()).then_some(user.id)
}

/// The caller's payments (all payments for admins), optionally for one order.
#[utoipa::path(
    get,
    path = "/api/payments",
    tag = "payments",
    params(("order_id" = Option<Uuid>, Query, description = "Only this order's payments.")),
    responses((status = 200, description = "Payments, newest first", body = PaymentList)),
    security(("bearer" = []))
)]
pub(super) async fn list_payments(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<PaymentList>> {
    let items = store::list(&state.pool, owner_filter(&user), query.order_id).await?;
    Ok(Json(PaymentList { items }))
}

/// One payment; another shopper's is a 404.
#[utoipa::path(
    get,
    path = "/api/payments/{id}",
    tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 404, description = "No such payment for this caller", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_payment(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Payment>> {
    store::get(&state.pool, id, owner_filter(&user))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no payment {id}")))
}

/// Refunds all or part of a captured payment (admin). Never more than
/// captured; the payment becomes `REFUNDED` when fully refunded. Needs an
/// `Idempotency-Key` header: the same key and request replay the first
/// answer (with `Idempotent-Replayed: true`); another request is a 422.
#[utoipa::path(
    post,
    path = "/api/payments/{id}/refunds",
    tag = "admin",
    params(
        ("id" = Uuid, Path, description = "Payment id"),
        ("Idempotency-Key" = String, Header, description = "Unique per intended refund, e.g. a UUID; kept 48 hours"),
    ),
    request_body = NewRefund,
    responses(
        (status = 201, description = "Refund issued, or the replay of the first answer", body = Refund),
        (status = 400, description = "Missing or malformed Idempotency-Key", body = storekeeper_kit::Problem),
        (status = 404, description = "No such payment", body = storekeeper_kit::Problem),
        (status = 409, description = "The payment was not captured or is fully refunded, or a request with this key is in progress", body = storekeeper_kit::Problem),
        (status = 422, description = "Amount not positive or above what remains, or key reused with another request", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = []))
)]
pub(super) async fn refund_payment(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Bytes,
) -> ApiResult<Response> {
    // An empty body means "refund everything left".
    let request: NewRefund = if body.iter().all(u8::is_ascii_whitespace) {
        NewRefund::default()
    } else {
        parse_json(&body)?
    };
    let attempt = Attempt::new(admin.id, &key, id, request.amount_cents);
    let answer = refunds::refund(&state.pool, &attempt).await?;
    if !answer.replayed {
        state.metrics.refunds.inc();
        tracing::info!(payment_id = %id, admin = %admin.id, "refund issued");
    }
    Ok(answer.into_response())
}
