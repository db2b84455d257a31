//! Placing an order: Stripe-style idempotency, prices re-read from
//! product-service, and the order plus `order.created` written in one
//! transaction.
//!
//! Idempotency: the first request with a key claims it (a row keyed by user
//! and key, holding a hash of the canonical request body) in the same
//! transaction that creates the order, and stores the response there. A
//! later request with the same key and body replays that response; with
//! another body it is refused. Concurrent requests with one key queue on the
//! row's primary key and then replay the winner's response, so twenty at
//! once still make one order. Requests that fail validation do not consume
//! the key, so the client can fix the input and retry with it.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use storekeeper_kit::{
    FieldError,
    events::{EventsError, enqueue, envelope::OrderCreated},
};
use uuid::Uuid;

use crate::{
    address::ShippingAddress,
    catalog::{Catalog, CatalogError, CatalogProduct},
    metrics::OrderMetrics,
    status::OrderStatus,
    store::{self, CartItem, Order, OrderItem},
};

/// The status a new order is answered with. It is stored with the key, and
/// a replay answers with the stored one.
const CREATED: u16 = 201;

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckoutError {
    #[error("this Idempotency-Key was already used with a different request body; use a new key")]
    KeyReused,
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    InProgress,
    #[error("the shipping address is invalid")]
    InvalidAddress(Vec<FieldError>),
    #[error("the cart is empty; add products before ordering")]
    EmptyCart,
    #[error("these products are no longer sold; remove them from the cart: {}", .0.join(", "))]
    NoLongerSold(Vec<String>),
    #[error("the cart mixes currencies; order them separately")]
    MixedCurrencies,
    #[error("the order total is too large")]
    TotalTooLarge,
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("serializing the order")]
    Serialize(#[source] serde_json::Error),
    #[error("writing order.created to the outbox")]
    Outbox(#[source] EventsError),
}

/// What checkout answers: the response to send, and whether it is a replay.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    /// The first response's status.
    pub(crate) status: u16,
    /// The order JSON, byte for byte the first response.
    pub(crate) body: String,
    pub(crate) replayed: bool,
}

/// One request to place an order: whose, under which key, with which body.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    /// When the request arrived: the order's `created_at`.
    received: DateTime<Utc>,
    user: Uuid,
    key: &'a str,
    hash: String,
}

impl<'a> Attempt<'a> {
    /// `key` is the client's `Idempotency-Key`; `body` the request as sent.
    pub(crate) fn new(user: Uuid, key: &'a str, body: &serde_json::Value) -> Self {
        Self {
            received: Utc::now(),
            user,
            key,
            hash: request_hash(body),
        }
    }
}

/// What placing an order needs: the orders database, product-service for
/// the prices, and the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkout<'a> {
    pub(crate) pool: &'a PgPool,
    pub(crate) catalog: &'a Catalog,
    pub(crate) metrics: &'a OrderMetrics,
}

/// Hash of the request body in canonical form (keys sorted, no whitespace),
/// so re-serialising the same JSON differently is still "the same body".
fn request_hash(body: &serde_json::Value) -> String {
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
fn price(
    cart: &[CartItem],
    products: &[Option<CatalogProduct>],
) -> Result<(Vec<OrderItem>, i64, String), CheckoutError> {
    let unknown: Vec<String> = cart
        .iter()
        .zip(products)
        .filter(|(_, product)| product.is_none())
        .map(|(line, _)| line.product_id.to_string())
        .collect();
    if !unknown.is_empty() {
        return Err(CheckoutError::NoLongerSold(unknown));
    }
    let priced: Vec<(&CartItem, &CatalogProduct)> =
        cart.iter().zip(products.iter().flatten()).collect();
    let currency = priced
        .first()
        .map(|(_, p)| p.currency.clone())
        .unwrap_or_default();
    if priced.iter().any(|(_, p)| p.currency != currency) {
        return Err(CheckoutError::MixedCurrencies);
    }
    let mut total: i64 = 0;
    let mut items = Vec::with_capacity(priced.len());
    for (line, product) in priced {
        let line_total = product
            .price_cents
            .checked_mul(i64::from(line.quantity))
            .and_then(|t| total.checked_add(t));
        total = line_total.ok_or(CheckoutError::TotalTooLarge)?;
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

fn replay(stored: &store::StoredKey, hash: &str) -> Result<Option<Placed>, CheckoutError> {
    if stored.request_hash != hash {
        return Err(CheckoutError::KeyReused);
    }
    Ok(match (stored.response_status, &stored.response_body) {
        (Some(status), Some(body)) => Some(Placed {
            status: u16::try_from(status).unwrap_or(CREATED),
            body: body.clone(),
            replayed: true,
        }),
        _ => None,
    })
}

impl Checkout<'_> {
    /// The stored answer for this key, if a finished request left one: a
    /// replay, or [`CheckoutError::KeyReused`] when the key came with
    /// another body. Asked before the body is parsed, so a reused key is
    /// refused as such whatever the new body holds.
    pub(crate) async fn stored_answer(
        &self,
        attempt: &Attempt<'_>,
    ) -> Result<Option<Placed>, CheckoutError> {
        let mut conn = self.pool.acquire().await?;
        let Some(stored) = store::find_key(&mut conn, attempt.user, attempt.key).await? else {
            return Ok(None);
        };
        let placed = replay(&stored, &attempt.hash)?;
        if placed.is_some() {
            self.metrics.replays.inc();
        }
        Ok(placed)
    }

    /// Places an order from the shopper's cart, to be paid with
    /// `payment_method_id` and shipped to `shipping_address`.
    pub(crate) async fn place(
        &self,
        attempt: &Attempt<'_>,
        payment_method_id: Uuid,
        shipping_address: ShippingAddress,
    ) -> Result<Placed, CheckoutError> {
        let (user, received) = (attempt.user, attempt.received);
        let address = shipping_address
            .validate()
            .map_err(CheckoutError::InvalidAddress)?;

        // Claim the key before reading the cart: a concurrent request with the
        // same key waits on the claim until this transaction ends, then replays
        // its answer instead of finding the cart already emptied. An error
        // below rolls back, which releases the key for a corrected retry.
        let mut tx = self.pool.begin().await?;
        if !store::claim_key(&mut tx, user, attempt.key, &attempt.hash).await? {
            // Another request with this key won the race; answer as it did.
            tx.rollback().await?;
            return self
                .stored_answer(attempt)
                .await?
                .ok_or(CheckoutError::InProgress);
        }
        let cart = store::lock_cart(&mut tx, user).await?;
        if cart.is_empty() {
            return Err(CheckoutError::EmptyCart);
        }
        let ids: Vec<Uuid> = cart.iter().map(|line| line.product_id).collect();
        let products = self.catalog.products(&ids).await?;
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
            payment_method_id,
            cancellation_reason: None,
            created_at: received,
            updated_at: received,
        };
        let response = serde_json::to_string(&order).map_err(CheckoutError::Serialize)?;
        store::insert_order(&mut tx, &order).await?;
        let event = OrderCreated {
            order_id,
            user_id: user,
            items: order.event_items(),
            total_cents,
            currency: order.currency.clone(),
        };
        enqueue(&mut tx, &event, order_id)
            .await
            .map_err(CheckoutError::Outbox)?;
        store::clear_cart(&mut tx, user, &ids).await?;
        store::store_response(&mut tx, user, attempt.key, CREATED, &response).await?;
        tx.commit().await?;
        self.metrics.placed.inc();
        tracing::info!(%order_id, total_cents, "order placed");
        Ok(Placed {
            status: CREATED,
            body: response,
            replayed: false,
        })
    }
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
        assert!(
            matches!(&err, CheckoutError::NoLongerSold(ids) if *ids == [b.to_string()]),
            "{err:?}"
        );
        let err = price(
            &[line(a, 1), line(b, 1)],
            &[product(a, 1, "USD"), product(b, 1, "EUR")],
        )
        .unwrap_err();
        assert!(matches!(err, CheckoutError::MixedCurrencies), "{err:?}");
        let err = price(&[line(a, 99)], &[product(a, i64::MAX / 2, "USD")]).unwrap_err();
        assert!(matches!(err, CheckoutError::TotalTooLarge), "{err:?}");
    }

    #[test]
    fn the_hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": {"c": 2}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":{"c":2},"a":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"b":{"c":3},"a":1}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
    }
}
