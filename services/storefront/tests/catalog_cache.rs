//! Fewer backend calls per page, same pages: stand-in product- and
//! order-services count what the real storefront asks them.
//! Product reads are shared between pages for a moment and asked again
//! after it; adding to the cart takes the badge from order-service's
//! answer instead of reading the cart a second time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::Path,
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};
use storekeeper_contract::ShopService;
use storekeeper_kit::testing::TestApp;
use support::{Shopper, serve, shop, users_as};

/// Requests each stand-in route answered, by route.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<&'static str, usize>>>);

impl Calls {
    fn count(&self, route: &'static str) {
        *self.0.lock().unwrap().entry(route).or_default() += 1;
    }

    fn of(&self, route: &'static str) -> usize {
        self.0
            .lock()
            .unwrap()
            .get(route)
            .copied()
            .unwrap_or_default()
    }
}

fn product_json() -> Value {
    json!({
        "id": "p1", "slug": "kettle", "name": "Kettle", "description": "Boils.",
        "price_cents": 4900, "currency": "USD", "image_url": "/images/kitchen/kettle.svg",
        "stock": 7, "category": "kitchen", "category_name": "Kitchen",
    })
}

async fn start() -> (TestApp, Calls) {
    let calls = Calls::default();
    let products = Router::new()
        .route(
            "/api/categories",
            get(|| async { Json(json!([{"slug": "kitchen", "name": "Kitchen"}])) }),
        )
        .route(
            "/api/products",
            get({
                let calls = calls.clone();
                move || async move {
                    calls.count("list");
                    Json(json!({"items": [product_json()], "page": 1, "per_page": 5, "total": 1}))
                }
            }),
        )
        .route(
            "/api/products/{id}",
            get({
                let calls = calls.clone();
                move |Path(id): Path<String>| async move {
                    calls.count("product");
                    if id == "p1" || id == "kettle" {
                        Ok(Json(product_json()))
                    } else {
                        Err(StatusCode::NOT_FOUND)
                    }
                }
            }),
        );
    let users = users_as("customer");
    let orders = Router::new()
        .route(
            "/api/cart",
            get({
                let calls = calls.clone();
                move || async move {
                    calls.count("cart");
                    Json(json!({"items": []}))
                }
            }),
        )
        .route(
            "/api/cart/items",
            post({
                let calls = calls.clone();
                move || async move {
                    calls.count("add");
                    Json(json!({"items": [{"product_id": "p1", "quantity": 3}]}))
                }
            }),
        );
    let shop = shop(&[
        (ShopService::Product, &serve(products).await),
        (ShopService::User, &serve(users).await),
        (ShopService::Order, &serve(orders).await),
    ]);
    (shop, calls)
}

#[tokio::test]
async fn product_reads_are_shared_for_a_moment_then_asked_again() {
    let (shop, calls) = start().await;
    for _ in 0..3 {
        let page = shop.get("/products/kettle").send().await;
        page.assert_status(StatusCode::OK);
        assert!(page.text().contains("Kettle"));
    }
    assert_eq!(calls.of("product"), 1, "one product read for three pages");
    assert_eq!(calls.of("list"), 1, "one related-products read");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    shop.get("/products/kettle")
        .send()
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(calls.of("product"), 2, "asked again once the moment passed");
    assert_eq!(calls.of("list"), 2);
}

#[tokio::test]
async fn a_missing_product_is_never_kept() {
    let (shop, calls) = start().await;
    for _ in 0..2 {
        shop.get("/products/no-such")
            .send()
            .await
            .assert_status(StatusCode::NOT_FOUND);
    }
    assert_eq!(calls.of("product"), 2);
}

#[tokio::test]
async fn adding_to_the_cart_takes_the_badge_from_the_answer() {
    let (shop, calls) = start().await;
    let mut shopper = Shopper::log_in(&shop).await;
    let cart_reads = calls.of("cart");
    let added = shopper
        .post(
            &shop,
            "/products/kettle",
            "/cart/items",
            &[("product_id", "p1"), ("quantity", "3")],
        )
        .await;
    added.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(calls.of("add"), 1);
    assert_eq!(calls.of("cart"), cart_reads, "no second read of the cart");
    let home = shopper.get(&shop, "/").await.text();
    assert!(home.contains("Added Kettle to your cart."), "{home}");
    assert!(
        home.contains("data-cart-count>3<"),
        "the badge counts the answer's units: {home}"
    );
}
