//! The saga under pressure: concurrent duplicate checkouts, scarce stock,
//! and a broker outage in the middle of checkouts.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::http::StatusCode;
use futures::future::join_all;
use serde_json::Value;
use shop_tests::Shop;
use storekeeper_kit::events::{EventsConfig, testing::ChaosProxy};
use uuid::Uuid;

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_make_one_order() {
    let shop = Shop::start().await;
    let ann = shop.shopper();
    let clock = shop.product("Clock", 5_000, 50).await;
    shop.add_to_cart(&ann, clock, 2).await;
    let method = shop.card(&ann, "4242424242424242").await;
    let responses = join_all((0..20).map(|_| shop.checkout(&ann, "same-key", method))).await;
    let mut ids = Vec::new();
    for response in &responses {
        response.assert_status(StatusCode::CREATED);
        ids.push(response.json::<Value>()["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the same order");
    let replays = responses
        .iter()
        .filter(|r| r.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replays, 19);
    assert_eq!(shop.statuses().await.iter().map(|(_, n)| n).sum::<i64>(), 1);
    let id: Uuid = ids[0].parse().unwrap();
    assert_eq!(shop.settled(&ann.token, id).await["status"], "PAID");
    assert_eq!(shop.stock(clock).await, 48, "reserved once");
    shop.finish().await;
}

#[tokio::test]
async fn two_keys_at_once_order_one_cart_once() {
    let shop = Shop::start().await;
    let bo = shop.shopper();
    let lamp = shop.product("Lamp", 3_000, 50).await;
    shop.add_to_cart(&bo, lamp, 1).await;
    let method = shop.card(&bo, "4242424242424242").await;
    let responses =
        join_all(["first-tab", "second-tab"].map(|key| shop.checkout(&bo, key, method))).await;
    let mut statuses: Vec<StatusCode> = responses.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY],
        "the second checkout waits for the first and finds the cart empty"
    );
    assert_eq!(shop.statuses().await.iter().map(|(_, n)| n).sum::<i64>(), 1);
    shop.finish().await;
}

#[tokio::test]
async fn fifty_shoppers_for_ten_units_make_exactly_ten_paid_orders() {
    let shop = Shop::start().await;
    let gold = shop.product("Gold Bar", 10_000, 10).await;
    let shoppers: Vec<_> = (0..50).map(|_| shop.shopper()).collect();
    join_all(shoppers.iter().map(|s| shop.add_to_cart(s, gold, 1))).await;
    let methods = join_all(shoppers.iter().map(|s| shop.card(s, "4242424242424242"))).await;
    let keys: Vec<String> = shoppers
        .iter()
        .map(|_| Uuid::new_v4().to_string())
        .collect();
    let responses = join_all(
        shoppers
            .iter()
            .zip(&methods)
            .zip(&keys)
            .map(|((s, m), key)| shop.checkout(s, key, *m)),
    )
    .await;
    for response in &responses {
        response.assert_status(StatusCode::CREATED);
    }
    shop.all_settled(Duration::from_mins(1)).await;
    assert_eq!(
        shop.statuses().await,
        [("CANCELLED".to_owned(), 40), ("PAID".to_owned(), 10)]
    );
    assert_eq!(shop.stock(gold).await, 0);
    let charged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'SUCCEEDED'")
            .fetch_one(&shop.payments_db.pool)
            .await
            .unwrap();
    assert_eq!(charged, 10, "only reserved orders are charged");
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT cancellation_reason FROM orders WHERE status = 'CANCELLED'",
    )
    .fetch_all(&shop.orders_db.pool)
    .await
    .unwrap();
    assert_eq!(
        reasons,
        ["out of stock: Gold Bar (requested 1, available 0)"]
    );
    shop.finish().await;
}

#[tokio::test]
async fn a_broker_outage_mid_checkout_delays_orders_but_settles_each_once() {
    let proxy = ChaosProxy::start().await;
    let events = EventsConfig::ephemeral();
    let shop = Shop::start_with(events.clone(), events.via(&proxy.url())).await;
    let tea = shop.product("Tea", 800, 100).await;
    let shoppers: Vec<_> = (0..20).map(|_| shop.shopper()).collect();
    let mut ids = Vec::new();
    for (n, shopper) in shoppers.iter().enumerate() {
        if n == 8 {
            proxy.cut();
        }
        let card = if n % 5 == 4 {
            "4000000000000002"
        } else {
            "4242424242424242"
        };
        ids.push(shop.buy(shopper, tea, 2, card).await);
    }
    // Checkout keeps accepting orders while the broker is away: the events
    // wait in the outboxes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'PENDING'")
        .fetch_one(&shop.orders_db.pool)
        .await
        .unwrap();
    assert!(open >= 12, "orders placed during the outage wait: {open}");
    proxy.restore();
    shop.all_settled(Duration::from_mins(1)).await;
    assert_eq!(
        shop.statuses().await,
        [("CANCELLED".to_owned(), 4), ("PAID".to_owned(), 16)]
    );
    shop.eventually("declined orders release stock", || async {
        shop.stock(tea).await == 100 - 16 * 2
    })
    .await;
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&shop.payments_db.pool)
        .await
        .unwrap();
    assert_eq!(payments, 20, "one charge attempt per order");
    for (shopper, id) in shoppers.iter().zip(&ids) {
        let order = shop.order_json(&shopper.token, *id).await;
        assert!(
            matches!(order["status"].as_str(), Some("PAID" | "CANCELLED")),
            "{order}"
        );
    }
    shop.finish().await;
}
