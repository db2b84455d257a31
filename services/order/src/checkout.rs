//! Placing an order: Stripe-style idempotency, prices re-read from
//! product-service with no transaction open, and the order plus
//! `order.created` written in one statement that holds no connection
//! across the network.
//!
//! Idempotency: the first request with a key claims it (a row keyed by user
//! and key, holding a hash of the canonical request body) in the statement
//! that creates the order, together with the response: the order is
//! composed from the priced cart before the statement runs, so its answer
//! is known when the key is claimed, and the key is claimed only when the
//! cart is still the one priced. A later request with the same key and body
//! replays that response; with another body it is refused. Concurrent
//! requests with one key queue on the cart's locked lines (or the key's
//! primary key) and then replay the winner's response, so twenty at once
//! still make one order. Requests that fail validation do not consume the
//! key, so the client can fix the input and retry with it.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use storekeeper_kit::{
    FieldError,
    events::{EventsError, OutboxRow},
    idempotency::{Answer, AnsweredClaim, KeyReused, request_hash},
};
use uuid::Uuid;

use crate::{
    address::ShippingAddress,
    catalog::{Catalog, CatalogError, CatalogProduct},
    metrics::OrderMetrics,
    status::OrderStatus,
    store::{self, CartItem, Order, OrderItem, Placement},
};

/// Times the cart is priced before checkout gives up on a cart that keeps
/// changing under it (each round is one set of product-service calls).
const PRICING_ROUNDS: usize = 3;

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckoutError {
    #[error(transparent)]
    KeyReused(#[from] KeyReused),
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    InProgress,
    #[error("the shipping address is invalid")]
    InvalidAddress(Vec<FieldError>),
    #[error("the cart is empty; add products before ordering")]
    EmptyCart,
    #[error("these products are no longer sold; remove them from the cart: {}", .0.join(", "))]
    NoLongerSold(Vec<String>),
    #[error("the cart kept changing during checkout; retry")]
    CartChanging,
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

impl Checkout<'_> {
    /// The stored answer for this key, if a finished request left one: a
    /// replay, or [`CheckoutError::KeyReused`] when the key came with
    /// another body. Asked before the body is parsed, so a reused key is
    /// refused as such whatever the new body holds.
    pub(crate) async fn stored_answer(
        &self,
        attempt: &Attempt<'_>,
    ) -> Result<Option<Answer>, CheckoutError> {
        let Some(stored) = store::KEYS
            .find(self.pool, attempt.user, attempt.key)
            .await?
        else {
            return Ok(None);
        };
        let replayed = stored.replay(&attempt.hash)?;
        if replayed.is_some() {
            self.metrics.replays.inc();
        }
        Ok(replayed)
    }

    /// Places an order from the shopper's cart (`cart`, as read when the
    /// request came; read again if it changes before the order is placed),
    /// to be paid with `payment_method_id` and shipped to
    /// `shipping_address`; `email` (already checked) is kept on the order
    /// so admins can find it by e-mail.
    pub(crate) async fn place(
        &self,
        attempt: &Attempt<'_>,
        mut cart: Vec<CartItem>,
        payment_method_id: Uuid,
        shipping_address: ShippingAddress,
        email: Option<&str>,
    ) -> Result<Answer, CheckoutError> {
        let address = shipping_address
            .validate()
            .map_err(CheckoutError::InvalidAddress)?;
        let user = attempt.user;

        // Price the cart with no transaction open: the calls to
        // product-service may take seconds, and no connection or lock is
        // held meanwhile. The statement that places the order checks the
        // cart is still the one priced, and the cart is priced again when it
        // changed in between.
        for round in 0..PRICING_ROUNDS {
            if round > 0 {
                cart = store::cart(self.pool, user).await?;
            }
            if cart.is_empty() {
                // Emptied by a request with this key, whose answer this
                // one replays, or never filled.
                return self.answered_or(attempt, CheckoutError::EmptyCart).await;
            }
            let ids: Vec<Uuid> = cart.iter().map(|line| line.product_id).collect();
            let priced = price(&cart, &self.catalog.products(&ids).await?)?;
            let (order, answer) =
                compose(attempt, (address.clone(), email), payment_method_id, priced)?;
            let created =
                OutboxRow::new(&order.created(), order.id).map_err(CheckoutError::Outbox)?;
            let claim = AnsweredClaim {
                user,
                key: attempt.key,
                hash: &attempt.hash,
                answer: &answer,
            };
            match store::place_order(self.pool, &order, created, claim).await? {
                Placement::Placed => {
                    tracing::info!(order_id = %order.id, total_cents = order.total_cents, "order placed");
                    self.metrics.placed.inc();
                    return Ok(answer);
                }
                // Another request with this key won the race; answer as it did.
                Placement::KeyTaken => {
                    return self.answered_or(attempt, CheckoutError::InProgress).await;
                }
                Placement::CartChanged { lines: 0 } => {
                    return self.answered_or(attempt, CheckoutError::EmptyCart).await;
                }
                Placement::CartChanged { .. } => {}
            }
        }
        Err(CheckoutError::CartChanging)
    }

    /// The stored answer for this key if there is one (a concurrent request
    /// with it placed the order), else `refusal`.
    async fn answered_or(
        &self,
        attempt: &Attempt<'_>,
        refusal: CheckoutError,
    ) -> Result<Answer, CheckoutError> {
        self.stored_answer(attempt).await?.ok_or(refusal)
    }
}

/// The order a priced cart makes, and the answer placing it gives (the
/// one its key replays).
fn compose(
    attempt: &Attempt<'_>,
    (address, email): (ShippingAddress, Option<&str>),
    payment_method_id: Uuid,
    (items, total_cents, currency): (Vec<OrderItem>, i64, String),
) -> Result<(Order, Answer), CheckoutError> {
    let (user, received) = (attempt.user, attempt.received);
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
        email: email.map(str::to_owned),
        payment_method_id,
        cancellation_reason: None,
        created_at: received,
        updated_at: received,
    };
    let body = serde_json::to_string(&order).map_err(CheckoutError::Serialize)?;
    let answer = Answer {
        status: StatusCode::CREATED,
        body,
        replayed: false,
    };
    Ok((order, answer))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::{Json, Router, extract::Query, routing::get};
    use storekeeper_contract::ShopService;
    use storekeeper_kit::{Metrics, testing::TestDatabase};

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

    /// product-service as checkout sees it: every product at 10.00 USD.
    async fn catalog_at_ten_dollars() -> Catalog {
        let router = Router::new().route(
            "/api/products:batchGet",
            get(|Query(query): Query<HashMap<String, String>>| async move {
                let products: Vec<serde_json::Value> = query["ids"]
                    .split(',')
                    .map(|id| {
                        serde_json::json!({
                            "id": id, "name": "Kettle", "price_cents": 1_000, "currency": "USD"
                        })
                    })
                    .collect();
                Json(serde_json::json!({ "products": products }))
            }),
        );
        crate::catalog::tests::serve(router).await
    }

    #[tokio::test]
    async fn a_cart_changed_since_it_was_read_is_read_and_priced_again() {
        let database = TestDatabase::create(ShopService::Order, &crate::MIGRATOR).await;
        let pool = database.pool.clone();
        let catalog = catalog_at_ten_dollars().await;
        let metrics = OrderMetrics::register(&Metrics::new());
        let checkout = Checkout {
            pool: &pool,
            catalog: &catalog,
            metrics: &metrics,
        };
        let (user, kettle) = (Uuid::new_v4(), Uuid::new_v4());
        let body = serde_json::json!({"n": 1});
        let attempt = Attempt::new(user, "k", &body);
        let place = |cart: Vec<CartItem>| {
            checkout.place(
                &attempt,
                cart,
                Uuid::new_v4(),
                ShippingAddress::example(),
                None,
            )
        };

        // The request read one kettle; the shopper made it two before the
        // order was placed: the order is for two.
        store::add_to_cart(&pool, user, kettle, 2, 99, 50)
            .await
            .unwrap();
        let answer = place(vec![line(kettle, 1)]).await.unwrap();
        let order: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(
            (&order["items"][0]["quantity"], &order["total_cents"]),
            (&serde_json::json!(2), &serde_json::json!(2_000))
        );
        assert!(store::cart(&pool, user).await.unwrap().is_empty());

        // The same key again with the cart it read before that order
        // emptied it: the first answer, replayed.
        let replay = place(vec![line(kettle, 2)]).await.unwrap();
        assert_eq!((replay.body, replay.replayed), (answer.body, true));

        // Another shopper's cart that was emptied since it was read.
        let other = Attempt::new(Uuid::new_v4(), "k", &body);
        let err = checkout
            .place(
                &other,
                vec![line(kettle, 1)],
                Uuid::new_v4(),
                ShippingAddress::example(),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CheckoutError::EmptyCart), "{err:?}");
        database.drop_database().await;
    }
}
