//! A declined card keeps the cart: the order it cancels puts its lines
//! back, so the shopper pays with another card without rebuilding it.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::Value;
use shop_tests::{Shop, Shopper};
use uuid::Uuid;

async fn cart(shop: &Shop, shopper: &Shopper) -> Vec<(String, i64)> {
    let cart: Value = shop
        .order
        .get("/api/cart")
        .bearer(&shopper.token)
        .send()
        .await
        .json();
    let mut lines: Vec<(String, i64)> = cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                line["product_id"].as_str().unwrap().to_owned(),
                line["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    lines.sort();
    lines
}

async fn place(shop: &Shop, shopper: &Shopper, card: &str) -> Uuid {
    let method = shop.card(shopper, card).await;
    let response = shop
        .checkout(shopper, &Uuid::new_v4().to_string(), method)
        .await;
    response.assert_status(StatusCode::CREATED);
    response.json::<Value>()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_declined_card_puts_the_lines_back_and_another_card_pays() {
    let shop = Shop::start().await;
    let erin = shop.shopper();
    let teapot = shop.product("Teapot", 2_500, 4).await;
    let cups = shop.product("Cups", 800, 10).await;
    shop.add_to_cart(&erin, teapot, 1).await;
    shop.add_to_cart(&erin, cups, 4).await;
    let before = cart(&shop, &erin).await;

    let declined = place(&shop, &erin, "4000000000000002").await;
    assert_eq!(cart(&shop, &erin).await, vec![], "checkout takes the lines");
    let order = shop.settled(&erin.token, declined).await;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(
        cart(&shop, &erin).await,
        before,
        "the declined order's lines are back in the cart"
    );
    shop.eventually("stock released", || async {
        shop.stock(teapot).await == 4 && shop.stock(cups).await == 10
    })
    .await;

    let paid = place(&shop, &erin, "4242424242424242").await;
    let order = shop.settled(&erin.token, paid).await;
    assert_eq!(order["status"], "PAID");
    assert_eq!(order["total_cents"], 2_500 + 4 * 800);
    assert_eq!(
        cart(&shop, &erin).await,
        vec![],
        "a paid order keeps nothing"
    );
    assert_eq!((shop.stock(teapot).await, shop.stock(cups).await), (3, 6));
    shop.finish().await;
}

#[tokio::test]
async fn restored_lines_add_to_what_the_shopper_put_in_meanwhile() {
    let shop = Shop::start().await;
    let finn = shop.shopper();
    let jar = shop.product("Jar", 300, 200).await;
    let lid = shop.product("Lid", 100, 200).await;
    shop.add_to_cart(&finn, jar, 60).await;
    let declined = place(&shop, &finn, "4000000000009995").await;
    shop.add_to_cart(&finn, jar, 50).await;
    shop.add_to_cart(&finn, lid, 2).await;
    assert_eq!(
        shop.settled(&finn.token, declined).await["status"],
        "CANCELLED"
    );
    let mut want = vec![(jar.to_string(), 99), (lid.to_string(), 2)];
    want.sort();
    assert_eq!(
        cart(&shop, &finn).await,
        want,
        "merged, at most 99 of one product"
    );
    shop.finish().await;
}

#[tokio::test]
async fn out_of_stock_does_not_refill_the_cart() {
    let shop = Shop::start().await;
    let gus = shop.shopper();
    let rare = shop.product("Rare", 1_000, 1).await;
    shop.add_to_cart(&gus, rare, 2).await;
    let rejected = place(&shop, &gus, "4242424242424242").await;
    assert_eq!(
        shop.settled(&gus.token, rejected).await["status"],
        "CANCELLED"
    );
    assert_eq!(
        cart(&shop, &gus).await,
        vec![],
        "only a declined card gives the lines back"
    );
    shop.finish().await;
}
