//! The checkout saga across product-, order- and payment-service, over the
//! real PostgreSQL and RabbitMQ: every accepted order reaches exactly one
//! terminal state, stock and money move exactly once.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use shop_tests::{Service, Shop};
use storekeeper_kit::events::{
    Envelope,
    testing::{publish_raw, take_dead_letters},
};
use uuid::Uuid;

#[tokio::test]
async fn happy_path_reserves_stock_charges_once_and_pays() {
    let shop = Shop::start().await;
    let alice = shop.shopper();
    let kettle = shop.product("Kettle", 4_900, 5).await;
    let mug = shop.product("Mug", 1_250, 5).await;
    shop.add_to_cart(&alice, kettle, 1).await;
    shop.add_to_cart(&alice, mug, 2).await;
    let method = shop.card(&alice, "4242424242424242").await;
    let response = shop.checkout(&alice, "happy-1", method).await;
    response.assert_status(StatusCode::CREATED);
    let placed: Value = response.json();
    assert_eq!(placed["status"], "PENDING");
    assert_eq!(placed["total_cents"], 4_900 + 2 * 1_250);
    assert_eq!(placed["currency"], "USD");
    assert_eq!(placed["items"].as_array().unwrap().len(), 2);

    let id: Uuid = placed["id"].as_str().unwrap().parse().unwrap();
    let order = shop.settled(&alice.token, id).await;
    assert_eq!(order["status"], "PAID");
    assert!(order.get("cancellation_reason").is_none());
    let kettle_line = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "Kettle")
        .unwrap();
    assert_eq!(kettle_line["unit_price_cents"], 4_900);
    assert_eq!(kettle_line["quantity"], 1);
    assert_eq!(order["shipping_address"]["city"], "London");
    assert!(order["created_at"].is_string());

    assert_eq!((shop.stock(kettle).await, shop.stock(mug).await), (4, 3));
    let payments = shop
        .payment
        .get(&format!("/api/payments?order_id={id}"))
        .bearer(&alice.token)
        .send()
        .await;
    let payments: Value = payments.json();
    assert_eq!(payments["items"].as_array().unwrap().len(), 1);
    assert_eq!(payments["items"][0]["status"], "SUCCEEDED");
    assert_eq!(payments["items"][0]["amount_cents"], 7_400);
    let cart: Value = shop
        .order
        .get("/api/cart")
        .bearer(&alice.token)
        .send()
        .await
        .json();
    assert_eq!(cart["items"], json!([]), "the ordered lines leave the cart");
    let text = shop.order_metrics.encode().unwrap();
    assert!(text.contains("orders_paid_total 1"), "{text}");
    shop.finish().await;
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_and_restores_stock() {
    let shop = Shop::start().await;
    let bob = shop.shopper();
    let lamp = shop.product("Lamp", 3_000, 3).await;
    shop.add_to_cart(&bob, lamp, 2).await;
    for (card, reason) in [
        ("4000000000000002", "payment failed: the card was declined"),
        (
            "4000000000009995",
            "payment failed: the card has insufficient funds",
        ),
    ] {
        let method = shop.card(&bob, card).await;
        let response = shop
            .checkout(&bob, &Uuid::new_v4().to_string(), method)
            .await;
        response.assert_status(StatusCode::CREATED);
        let id: Uuid = response.json::<Value>()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let order = shop.settled(&bob.token, id).await;
        assert_eq!(order["status"], "CANCELLED");
        assert_eq!(order["cancellation_reason"], reason);
        shop.eventually("stock released", || async { shop.stock(lamp).await == 3 })
            .await;
    }
    shop.finish().await;
}

#[tokio::test]
async fn out_of_stock_cancels_with_a_reason_naming_the_item() {
    let shop = Shop::start().await;
    let carol = shop.shopper();
    let rare = shop.product("Rare Tea", 2_000, 1).await;
    let common = shop.product("Common Tea", 500, 10).await;
    shop.add_to_cart(&carol, common, 3).await;
    let id = shop.buy(&carol, rare, 2, "4242424242424242").await;
    let order = shop.settled(&carol.token, id).await;
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(
        order["cancellation_reason"],
        "out of stock: Rare Tea (requested 2, available 1)"
    );
    assert_eq!(
        (shop.stock(rare).await, shop.stock(common).await),
        (1, 10),
        "all or nothing"
    );
    let payments: Value = shop
        .payment
        .get(&format!("/api/payments?order_id={id}"))
        .bearer(&carol.token)
        .send()
        .await
        .json();
    assert_eq!(payments["items"], json!([]), "nothing was charged");
    shop.finish().await;
}

#[tokio::test]
async fn a_full_refund_makes_the_order_refunded() {
    let shop = Shop::start().await;
    let dan = shop.shopper();
    let admin = shop.admin();
    let book = shop.product("Book", 1_000, 2).await;
    let id = shop.buy(&dan, book, 1, "4242424242424242").await;
    assert_eq!(shop.settled(&dan.token, id).await["status"], "PAID");
    let payments: Value = shop
        .payment
        .get(&format!("/api/payments?order_id={id}"))
        .bearer(&dan.token)
        .send()
        .await
        .json();
    let payment = payments["items"][0]["id"].as_str().unwrap().to_owned();
    let url = format!("/api/payments/{payment}/refunds");
    shop.payment
        .post(&url)
        .bearer(&admin)
        .header("Idempotency-Key", "partial")
        .json(&json!({"amount_cents": 300}))
        .send()
        .await
        .assert_status(StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        shop.order_json(&dan.token, id).await["status"],
        "PAID",
        "a partial refund keeps it PAID"
    );
    shop.payment
        .post(&url)
        .bearer(&admin)
        .header("Idempotency-Key", "the-rest")
        .send()
        .await
        .assert_status(StatusCode::CREATED);
    shop.eventually("order refunded", || async {
        shop.order_json(&dan.token, id).await["status"] == "REFUNDED"
    })
    .await;
    shop.finish().await;
}

#[tokio::test]
async fn the_same_events_delivered_again_have_no_second_effect() {
    let shop = Shop::start().await;
    let erin = shop.shopper();
    let pen = shop.product("Pen", 200, 10).await;
    let id = shop.buy(&erin, pen, 3, "4242424242424242").await;
    assert_eq!(shop.settled(&erin.token, id).await["status"], "PAID");

    // Publish every event order-service emitted (order.created,
    // payment.requested, order.paid) twice more, as a relay crash would.
    let payloads: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, payload FROM outbox ORDER BY id")
            .fetch_all(&shop.orders_db.pool)
            .await
            .unwrap();
    assert_eq!(payloads.len(), 3, "{payloads:?}");
    let processed = || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
            .fetch_one(&shop.products_db.pool)
            .await
            .unwrap();
        seen
    };
    // What product-service acted on the first time, once it has settled.
    let mut first = processed().await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = processed().await;
        if now == first {
            break;
        }
        first = now;
    }
    for _ in 0..2 {
        for (event_type, payload) in &payloads {
            publish_raw(&shop.events, event_type, payload.as_bytes()).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        processed().await,
        first,
        "product-service acted on each event once"
    );
    assert_eq!(shop.stock(pen).await, 7, "stock taken once");
    let charges: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&shop.payments_db.pool)
        .await
        .unwrap();
    assert_eq!(charges, 1, "charged once");
    assert_eq!(shop.order_json(&erin.token, id).await["status"], "PAID");
    shop.finish().await;
}

#[tokio::test]
async fn restarting_a_service_mid_saga_loses_nothing() {
    let mut shop = Shop::start().await;
    let fay = shop.shopper();
    let cup = shop.product("Cup", 700, 20).await;
    shop.stop_workers(Service::Payment).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(shop.buy(&fay, cup, 1, "4242424242424242").await);
    }
    shop.eventually("orders awaiting payment", || async {
        let mut all = true;
        for id in &ids {
            all &= shop.order_json(&fay.token, *id).await["status"] == "AWAITING_PAYMENT";
        }
        all
    })
    .await;
    shop.stop_workers(Service::Product).await;
    shop.start_workers(Service::Payment);
    shop.start_workers(Service::Product);
    for id in &ids {
        assert_eq!(shop.settled(&fay.token, *id).await["status"], "PAID");
    }
    assert_eq!(shop.stock(cup).await, 15);
    shop.finish().await;
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_saga_keeps_flowing() {
    let shop = Shop::start().await;
    let gus = shop.shopper();
    let hat = shop.product("Hat", 1_500, 5).await;
    publish_raw(&shop.events, "order.created", b"\xff not an envelope").await;
    let wrong_shape = Envelope {
        id: Uuid::new_v4(),
        event_type: "order.created".into(),
        occurred_at: chrono::Utc::now(),
        correlation_id: Uuid::new_v4(),
        request_id: None,
        data: json!({"order_id": "nope"}),
    };
    publish_raw(
        &shop.events,
        "order.created",
        &serde_json::to_vec(&wrong_shape).unwrap(),
    )
    .await;
    let id = shop.buy(&gus, hat, 1, "4242424242424242").await;
    assert_eq!(shop.settled(&gus.token, id).await["status"], "PAID");
    let mut letters = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while letters.len() < 2 && tokio::time::Instant::now() < deadline {
        letters.extend(take_dead_letters(&shop.events, product_service::inventory::CONSUMER).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut reasons: Vec<String> = letters.into_iter().map(|l| l.reason).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("malformed order.created data"),
        "{reasons:?}"
    );
    assert!(reasons[1].starts_with("undecodable message"), "{reasons:?}");
    shop.finish().await;
}
