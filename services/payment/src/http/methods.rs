//! `POST /api/payments/methods`: trade a card for a payment method id.

use axum::{Router, extract::State, http::StatusCode, routing::post};
use storekeeper_kit::{ApiError, ApiResult, AuthUser, extract::Json};

use crate::{
    card::{CardInput, validate},
    provider,
    state::AppState,
    store::{self, PaymentMethod},
};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/payments/methods", post(create_method))
}

/// Tokenizes a card. Only the brand, the last four digits and the expiry are
/// kept; the number and the CVC are never stored or logged.
#[utoipa::path(
    post,
    path = "/api/payments/methods",
    tag = "payments",
    request_body = CardInput,
    responses(
        (status = 201, description = "Card tokenized", body = PaymentMethod),
        (status = 401, description = "No valid access token", body = storekeeper_kit::Problem),
        (status = 422, description = "Invalid card (Luhn, expiry, CVC)", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create_method(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<CardInput>,
) -> ApiResult<(StatusCode, Json<PaymentMethod>)> {
    let card = validate(&input, chrono::Utc::now().date_naive()).map_err(ApiError::validation)?;
    drop(input);
    let token = provider::tokenize(&card);
    let method = store::insert_method(
        &state.pool,
        user.id,
        card.brand.as_str(),
        card.last4(),
        (card.exp_month, card.exp_year),
        &token,
    )
    .await?;
    state.metrics.methods_created.inc();
    tracing::info!(payment_method_id = %method.id, brand = %method.brand, "card tokenized");
    Ok((StatusCode::CREATED, Json(method)))
}
