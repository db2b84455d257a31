//! Placing an order: Stripe-style idempotency, prices re-read from
//! product-service, and the order plus `order.created` written in one
//! transaction.
//!
//! Idempotency: the first request with a key claims it (a row keyed by user
//! and key, holding a hash of the canonical request body) in the same
//! transaction that creates the order, and stores the response there. A
//! later request with the same key and body replays that response; with
//! another body it is a 422. Concurrent requests with one key queue on the
//! row's primary key and then replay the winner's response, so twenty at
//! once still make one order. Requests that fail validation do not consume
//! the key, so the client can fix the input and retry with it.

use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use storekeeper_kit::{
    ApiError, FieldError,
    events::{
        enqueue,
        envelope::{EventItem, OrderCreated},
    },
    extract::parse_json,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    address::ShippingAddress,
    catalog::CatalogProduct,
    http::AppState,
    status::OrderStatus,
    store::{self, CartItem, Order, OrderItem},
};

/// Body of `POST /api/orders`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The id `POST /api/payments/methods` returned.
    pub payment_method_id: Uuid,
    /// Where to ship.
    pub shipping_address: ShippingAddress,
}

/// Longest idempotency key accepted.
pub const KEY_MAX: usize = 255;

/// What checkout answers: the status and the JSON body, and whether it is a replay.
#[derive(Debug, Clone)]
pub struct Placed {
    /// 201 for a new order (and its replays).
    pub status: StatusCode,
    /// The order JSON, byte for byte the first response.
    pub body: String,
    /// True when this is a replay of an earlier response.
    pub replayed: bool,
}

/// Checks the `Idempotency-Key` header.
pub fn check_key(key: Option<&str>) -> Result<&str, ApiError> {
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

/// Hash of the request body in canonical form (keys sorted, no whitespace),
/// so re-serialising the same JSON differently is still "the same body".
pub fn request_hash(body: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Prices the cart from the catalog answers (same order as `cart`).
pub fn price(
    cart: &[CartItem],
    products: &[Option<CatalogProduct>],
) -> Result<(Vec<OrderItem>, i64, String), ApiError> {
    let unknown: Vec<String> = cart
        .iter()
        .zip(products)
        .filter(|(_, product)| product.is_none())
        .map(|(line, _)| line.product_id.to_string())
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "these products are no longer sold; remove them from the cart: {}",
            unknown.join(", ")
        )));
    }
    let priced: Vec<(&CartItem, &CatalogProduct)> =
        cart.iter().zip(products.iter().flatten()).collect();
    let currency = priced
        .first()
        .map(|(_, p)| p.currency.clone())
        .unwrap_or_default();
    if priced.iter().any(|(_, p)| p.currency != currency) {
        return Err(ApiError::unprocessable(
            "the cart mixes currencies; order them separately",
        ));
    }
    let mut total: i64 = 0;
    let mut items = Vec::with_capacity(priced.len());
    for (line, product) in priced {
        let line_total = product
            .price_cents
            .checked_mul(i64::from(line.quantity))
            .and_then(|t| total.checked_add(t));
        total =
            line_total.ok_or_else(|| ApiError::unprocessable("the order total is too large"))?;
        items.push(OrderItem {
            order_id: Uuid::nil(),
            product_id: product.id,
            name: product.name.clone(),
            unit_price_cents: product.price_cents,
            quantity: line.quantity,
        });
    }
    Ok((items, total, currency))
}

fn replay(stored: &store::StoredKey, hash: &str) -> Result<Option<Placed>, ApiError> {
    if stored.request_hash != hash {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
        )
        .with_detail(
            "this Idempotency-Key was already used with a different request body; use a new key",
        ));
    }
    Ok(match (stored.response_status, &stored.response_body) {
        (Some(status), Some(body)) => Some(Placed {
            status: u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::CREATED),
            body: body.clone(),
            replayed: true,
        }),
        _ => None,
    })
}

/// The stored answer for this key, if a finished request left one: a
/// replay, or a 422 when the key was used with another body.
async fn stored_answer(
    state: &AppState,
    user: Uuid,
    key: &str,
    hash: &str,
) -> Result<Option<Placed>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let Some(stored) = store::find_key(&mut conn, user, key).await? else {
        return Ok(None);
    };
    let placed = replay(&stored, hash)?;
    if placed.is_some() {
        state.metrics.replays.inc();
    }
    Ok(placed)
}

/// Places an order for `user` from their cart.
pub async fn place(
    state: &AppState,
    user: Uuid,
    key: &str,
    body: &serde_json::Value,
) -> Result<Placed, ApiError> {
    let received = Utc::now();
    let hash = request_hash(body);
    if let Some(placed) = stored_answer(state, user, key, &hash).await? {
        return Ok(placed);
    }

    let request: NewOrder = parse_json(&serde_json::to_vec(body).unwrap_or_default())?;
    let address = request
        .shipping_address
        .validate()
        .map_err(ApiError::validation)?;

    // Claim the key before reading the cart: a concurrent request with the
    // same key waits on the claim until this transaction ends, then replays
    // its answer instead of finding the cart already emptied. An error
    // below rolls back, which releases the key for a corrected retry.
    let mut tx = state.pool.begin().await?;
    if !store::claim_key(&mut tx, user, key, &hash).await? {
        // Another request with this key won the race; answer as it did.
        tx.rollback().await?;
        return stored_answer(state, user, key, &hash)
            .await?
            .ok_or_else(|| {
                ApiError::conflict(
                    "a request with this Idempotency-Key is still in progress; retry shortly",
                )
            });
    }
    let cart = store::lock_cart(&mut tx, user).await?;
    if cart.is_empty() {
        return Err(ApiError::validation(vec![FieldError::new(
            "cart",
            "the cart is empty; add products before ordering",
        )]));
    }
    let ids: Vec<Uuid> = cart.iter().map(|line| line.product_id).collect();
    let products = state
        .catalog
        .products(&ids)
        .await
        .map_err(ApiError::unavailable)?;
    let (items, total_cents, currency) = price(&cart, &products)?;

    let order_id = Uuid::now_v7();
    let order = Order {
        id: order_id,
        user_id: user,
        status: OrderStatus::Pending,
        items: items
            .into_iter()
            .map(|item| OrderItem { order_id, ..item })
            .collect(),
        total_cents,
        currency,
        shipping_address: address,
        payment_method_id: request.payment_method_id,
        cancellation_reason: None,
        created_at: received,
        updated_at: received,
    };
    let response =
        serde_json::to_string(&order).map_err(|err| ApiError::internal(anyhow::Error::new(err)))?;
    store::insert_order(&mut tx, &order).await?;
    let event = OrderCreated {
        order_id,
        user_id: user,
        items: order
            .items
            .iter()
            .map(|item| EventItem {
                product_id: item.product_id,
                quantity: item.quantity,
            })
            .collect(),
        total_cents,
        currency: order.currency.clone(),
    };
    enqueue(&mut tx, &event, order_id)
        .await
        .map_err(|err| ApiError::internal(anyhow::Error::new(err)))?;
    store::clear_cart(&mut tx, user, &ids).await?;
    store::store_response(&mut tx, user, key, StatusCode::CREATED.as_u16(), &response).await?;
    tx.commit().await?;
    state.metrics.placed.inc();
    tracing::info!(%order_id, total_cents, "order placed");
    Ok(Placed {
        status: StatusCode::CREATED,
        body: response,
        replayed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: Uuid, quantity: i32) -> CartItem {
        CartItem {
            product_id: product,
            quantity,
            added_at: Utc::now(),
        }
    }

    fn product(id: Uuid, price: i64, currency: &str) -> Option<CatalogProduct> {
        Option::from(CatalogProduct {
            id,
            name: "Kettle".into(),
            price_cents: price,
            currency: currency.into(),
        })
    }

    #[test]
    fn prices_come_from_the_catalog() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (items, total, currency) = price(
            &[line(a, 2), line(b, 1)],
            &[product(a, 1_000, "USD"), product(b, 250, "USD")],
        )
        .unwrap();
        assert_eq!(total, 2_250);
        assert_eq!(currency, "USD");
        assert_eq!(items[0].unit_price_cents, 1_000);
    }

    #[test]
    fn unknown_products_and_mixed_currencies_are_refused() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let err = price(&[line(a, 1), line(b, 1)], &[product(a, 1, "USD"), None]).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err = price(
            &[line(a, 1), line(b, 1)],
            &[product(a, 1, "USD"), product(b, 1, "EUR")],
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let err = price(&[line(a, 99)], &[product(a, i64::MAX / 2, "USD")]).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn the_hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": {"c": 2}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":{"c":2},"a":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"b":{"c":3},"a":1}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
    }

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
}
