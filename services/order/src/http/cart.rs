//! The shopper's cart, kept in PostgreSQL. Each token sees only its own.

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

use super::AppState;
use crate::store::{self, CartItem};

/// Most units of one product in a cart.
pub const MAX_QUANTITY: i32 = 99;
/// Most lines in a cart.
pub const MAX_LINES: i64 = 50;

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
pub struct Cart {
    /// The lines, oldest first.
    pub items: Vec<CartItem>,
}

/// Body of `POST /api/cart/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    /// The product.
    pub product_id: Uuid,
    /// Units to add, 1 to 99.
    pub quantity: i32,
}

/// Body of `PATCH /api/cart/items/{product_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantity {
    /// New quantity, 1 to 99 (0 removes the line).
    pub quantity: i32,
}

fn check_quantity(quantity: i32, min: i32) -> ApiResult<()> {
    if (min..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(ApiError::validation(vec![FieldError::new(
            "quantity",
            format!("must be between {min} and {MAX_QUANTITY}"),
        )]))
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
    check_quantity(body.quantity, 1)?;
    let product = state
        .catalog
        .product(body.product_id)
        .await
        .map_err(ApiError::unavailable)?;
    if product.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "product_id",
            "no such product",
        )]));
    }
    if store::cart_lines(&state.pool, user.id).await? >= MAX_LINES {
        let in_cart = store::cart(&state.pool, user.id)
            .await?
            .iter()
            .any(|l| l.product_id == body.product_id);
        if !in_cart {
            return Err(ApiError::unprocessable(format!(
                "a cart holds at most {MAX_LINES} different products"
            )));
        }
    }
    if store::add_to_cart(
        &state.pool,
        user.id,
        body.product_id,
        body.quantity,
        MAX_QUANTITY,
    )
    .await?
    .is_none()
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "quantity",
            format!("a cart holds at most {MAX_QUANTITY} of one product"),
        )]));
    }
    current(&state, user).await
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
    check_quantity(body.quantity, 0)?;
    let found = if body.quantity == 0 {
        store::remove_from_cart(&state.pool, user.id, product_id).await?
    } else {
        store::set_quantity(&state.pool, user.id, product_id, body.quantity).await?
    };
    if !found {
        return Err(ApiError::not_found(format!(
            "product {product_id} is not in the cart"
        )));
    }
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
