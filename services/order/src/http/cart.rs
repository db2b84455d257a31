//! `/api/cart`: the shopper's cart. Each token sees only its own.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, patch, post},
};
use serde::{Deserialize, Serialize};
use storekeeper_kit::{
    ApiError, ApiResult, AuthUser, FieldError,
    extract::{Json, Path},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    cart::{self, CartError},
    state::AppState,
    store::{self, CartItem},
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/cart", get(get_cart))
        .route("/api/cart/items", post(add_item))
        .route(
            "/api/cart/items/{product_id}",
            patch(set_item).delete(remove_item),
        )
}

/// The cart.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Cart {
    /// The lines, oldest first.
    items: Vec<CartItem>,
}

/// Body of `POST /api/cart/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddItem {
    /// The product.
    product_id: Uuid,
    /// Units to add, 1 to 99.
    quantity: i32,
}

/// Body of `PATCH /api/cart/items/{product_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetQuantity {
    /// New quantity, 1 to 99 (0 removes the line).
    quantity: i32,
}

impl From<CartError> for ApiError {
    fn from(err: CartError) -> Self {
        let field = |name: &str, err: &CartError| {
            ApiError::validation(vec![FieldError::new(name, err.to_string())])
        };
        match err {
            CartError::Quantity { .. } | CartError::LineFull => field("quantity", &err),
            CartError::UnknownProduct => field("product_id", &err),
            CartError::TooManyLines => ApiError::unprocessable(err.to_string()),
            CartError::NotInCart(_) => ApiError::not_found(err.to_string()),
            CartError::Catalog(err) => ApiError::unavailable(err),
            CartError::Database(err) => err.into(),
        }
    }
}

async fn current(state: &AppState, user: AuthUser) -> ApiResult<Json<Cart>> {
    Ok(Json(Cart {
        items: store::cart(&state.pool, user.id).await?,
    }))
}

/// The caller's cart.
#[utoipa::path(get, path = "/api/cart", tag = "cart",
    responses((status = 200, description = "The cart", body = Cart)), security(("bearer" = [])))]
pub(super) async fn get_cart(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Cart>> {
    current(&state, user).await
}

/// Adds units of a product (creating the line); the product must exist.
#[utoipa::path(post, path = "/api/cart/items", tag = "cart", request_body = AddItem,
    responses(
        (status = 200, description = "The updated cart", body = Cart),
        (status = 422, description = "Unknown product, bad quantity, or cart full", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = [])))]
pub(super) async fn add_item(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<AddItem>,
) -> ApiResult<Json<Cart>> {
    let items = cart::add(
        &state.pool,
        &state.catalog,
        user.id,
        body.product_id,
        body.quantity,
    )
    .await?;
    Ok(Json(Cart { items }))
}

/// Sets a line's quantity (0 removes it).
#[utoipa::path(patch, path = "/api/cart/items/{product_id}", tag = "cart", request_body = SetQuantity,
    params(("product_id" = Uuid, Path, description = "The product")),
    responses(
        (status = 200, description = "The updated cart", body = Cart),
        (status = 404, description = "The product is not in the cart", body = storekeeper_kit::Problem),
        (status = 422, description = "Bad quantity", body = storekeeper_kit::Problem),
    ),
    security(("bearer" = [])))]
pub(super) async fn set_item(
    State(state): State<AppState>,
    user: AuthUser,
    Path(product_id): Path<Uuid>,
    Json(body): Json<SetQuantity>,
) -> ApiResult<Json<Cart>> {
    cart::set_quantity(&state.pool, user.id, product_id, body.quantity).await?;
    current(&state, user).await
}

/// Removes a line (removing an absent line is not an error).
#[utoipa::path(delete, path = "/api/cart/items/{product_id}", tag = "cart",
    params(("product_id" = Uuid, Path, description = "The product")),
    responses((status = 204, description = "Removed")), security(("bearer" = [])))]
pub(super) async fn remove_item(
    State(state): State<AppState>,
    user: AuthUser,
    Path(product_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    store::remove_from_cart(&state.pool, user.id, product_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
