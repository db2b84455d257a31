//! A shopper cancelling an order not paid yet (through the saga's
//! cancellation step, so stock comes back and no money is kept), the 409
//! once it is past cancelling, and the admins' order search and saga
//! history.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::Value;
use shop_tests::{Service, Shop};
use uuid::Uuid;

fn problem_type(body: &Value) -> &str {
    body["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_shopper_cancels_an_unpaid_order_and_its_stock_comes_back() {
    let mut shop = Shop::start().await;
    let hana = shop.shopper();
    let ivan = shop.shopper();
    let admin = shop.admin();
    let stool = shop.product("Stool", 4_000, 3).await;
    shop.stop_workers(Service::Payment).await;
    let id = shop.buy(&hana, stool, 2, "4242424242424242").await;
    shop.eventually("stock reserved, awaiting payment", || async {
        shop.order_json(&hana.token, id).await["status"] == "AWAITING_PAYMENT"
    })
    .await;
    assert_eq!(shop.stock(stool).await, 1);

    let cancel = format!("/api/orders/{id}/cancel");
    for token in [&ivan.token, &admin] {
        let response = shop.order.post(&cancel).bearer(token).send().await;
        response.assert_status(StatusCode::NOT_FOUND);
    }
    let response = shop.order.post(&cancel).bearer(&hana.token).send().await;
    response.assert_status(StatusCode::OK);
    let order: Value = response.json();
    assert_eq!(order["status"], "CANCELLED");
    assert_eq!(order["cancellation_reason"], "cancelled by the shopper");
    shop.eventually("stock released", || async { shop.stock(stool).await == 3 })
        .await;

    let again = shop.order.post(&cancel).bearer(&hana.token).send().await;
    again.assert_status(StatusCode::CONFLICT);
    let problem: Value = again.json();
    assert!(
        problem_type(&problem).ends_with("/order-not-cancellable"),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already CANCELLED"),
        "{problem}"
    );

    shop.start_workers(Service::Payment);
    shop.eventually("no money kept for the cancelled order", || async {
        let payments: Value = shop
            .payment
            .get(&format!("/api/payments?order_id={id}"))
            .bearer(&hana.token)
            .send()
            .await
            .json();
        payments["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "REFUNDED" || p["status"] == "FAILED")
            && shop.stock(stool).await == 3
    })
    .await;
    assert_eq!(
        shop.order_json(&hana.token, id).await["status"],
        "CANCELLED"
    );
    shop.finish().await;
}

#[tokio::test]
async fn a_paid_order_cannot_be_cancelled() {
    let shop = Shop::start().await;
    let jo = shop.shopper();
    let desk = shop.product("Desk", 9_000, 2).await;
    let id = shop.buy(&jo, desk, 1, "4242424242424242").await;
    assert_eq!(shop.settled(&jo.token, id).await["status"], "PAID");
    let response = shop
        .order
        .post(&format!("/api/orders/{id}/cancel"))
        .bearer(&jo.token)
        .send()
        .await;
    response.assert_status(StatusCode::CONFLICT);
    let problem: Value = response.json();
    assert!(
        problem_type(&problem).ends_with("/order-not-cancellable"),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("already PAID"),
        "{problem}"
    );
    assert_eq!(shop.order_json(&jo.token, id).await["status"], "PAID");
    assert_eq!(shop.stock(desk).await, 1, "sold stays sold");
    let unknown = shop
        .order
        .post(&format!("/api/orders/{}/cancel", Uuid::new_v4()))
        .bearer(&jo.token)
        .send()
        .await;
    unknown.assert_status(StatusCode::NOT_FOUND);
    shop.finish().await;
}

#[tokio::test]
async fn admins_read_an_orders_saga_history() {
    let shop = Shop::start().await;
    let kim = shop.shopper();
    let admin = shop.admin();
    let vase = shop.product("Vase", 2_000, 5).await;
    let paid = shop.buy(&kim, vase, 1, "4242424242424242").await;
    assert_eq!(shop.settled(&kim.token, paid).await["status"], "PAID");
    let declined = shop.buy(&kim, vase, 1, "4000000000000002").await;
    assert_eq!(
        shop.settled(&kim.token, declined).await["status"],
        "CANCELLED"
    );

    let history = |id: Uuid, token: String| {
        let order = &shop.order;
        async move {
            order
                .get(&format!("/api/orders/{id}/history"))
                .bearer(&token)
                .send()
                .await
        }
    };
    let response = history(paid, admin.clone()).await;
    response.assert_status(StatusCode::OK);
    let body: Value = response.json();
    assert_eq!(body["status"], "PAID");
    let steps: Vec<(&str, &str)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["status"].as_str().unwrap(), e["step"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("PENDING", "placed"),
            ("AWAITING_PAYMENT", "stock_reserved"),
            ("PAID", "payment_succeeded")
        ]
    );
    let times: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let body: Value = history(declined, admin.clone()).await.json();
    let last = body["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "CANCELLED");
    assert_eq!(last["step"], "payment_failed");
    assert_eq!(last["reason"], "payment failed: the card was declined");

    history(paid, kim.token.clone())
        .await
        .assert_status(StatusCode::FORBIDDEN);
    history(Uuid::new_v4(), admin.clone())
        .await
        .assert_status(StatusCode::NOT_FOUND);
    shop.finish().await;
}

#[tokio::test]
async fn admins_filter_orders_by_shopper_and_status() {
    let shop = Shop::start().await;
    let lea = shop.shopper();
    let max = shop.shopper();
    let admin = shop.admin();
    let pen = shop.product("Pen", 300, 50).await;
    let lea_paid = shop.buy(&lea, pen, 1, "4242424242424242").await;
    let lea_declined = shop.buy(&lea, pen, 1, "4000000000000002").await;
    let max_paid = shop.buy(&max, pen, 1, "4242424242424242").await;
    for (token, id) in [
        (&lea.token, lea_paid),
        (&lea.token, lea_declined),
        (&max.token, max_paid),
    ] {
        shop.settled(token, id).await;
    }
    let ids = |query: String, token: String| {
        let order = &shop.order;
        async move {
            let response = order
                .get(&format!("/api/orders?{query}"))
                .bearer(&token)
                .send()
                .await;
            response.assert_status(StatusCode::OK);
            let page: Value = response.json();
            let mut ids: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            (ids, page["total"].as_i64().unwrap())
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v.iter().map(Uuid::to_string).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(format!("user_id={}", lea.id), admin.clone()).await,
        (sorted(vec![lea_paid, lea_declined]), 2)
    );
    assert_eq!(
        ids("status=PAID".into(), admin.clone()).await,
        (sorted(vec![lea_paid, max_paid]), 2)
    );
    assert_eq!(
        ids(
            format!("status=CANCELLED&user_id={}", lea.id),
            admin.clone()
        )
        .await,
        (sorted(vec![lea_declined]), 1)
    );
    assert_eq!(
        ids(format!("user_id={}", max.id), lea.token.clone()).await,
        (sorted(vec![lea_paid, lea_declined]), 2),
        "a customer's user_id filter never shows another shopper's orders"
    );
    let bad = shop
        .order
        .get("/api/orders?status=SHIPPED")
        .bearer(&admin)
        .send()
        .await;
    bad.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    shop.finish().await;
}

#[tokio::test]
async fn cancelling_while_the_charge_is_in_flight_refunds_it_in_full() {
    let shop = Shop::start().await;
    let noa = shop.shopper();
    let lamp = shop.product("Lamp", 3_500, 2).await;
    let id = shop.buy(&noa, lamp, 1, "4000000000003030").await;
    // Cancel only once the provider has been asked: before that, the
    // worker drops the charge without a call (another test covers it).
    shop.eventually("the slow charge in flight", || async {
        let text = shop.payment.metrics().encode().unwrap();
        text.contains("\npayment_provider_calls_in_flight 1\n")
    })
    .await;
    assert_eq!(
        shop.order_json(&noa.token, id).await["status"],
        "AWAITING_PAYMENT"
    );
    let response = shop
        .order
        .post(&format!("/api/orders/{id}/cancel"))
        .bearer(&noa.token)
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    shop.eventually("stock released", || async { shop.stock(lamp).await == 2 })
        .await;
    // The provider was already asked (it answers after 10 s): a call in
    // flight cannot be taken back, so the capture it answers is recorded
    // and refunded in full in the same transaction.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let payments = || async {
        let body: Value = shop
            .payment
            .get(&format!("/api/payments?order_id={id}"))
            .bearer(&noa.token)
            .send()
            .await
            .json();
        body["items"].as_array().unwrap().clone()
    };
    shop.eventually("the late capture refunded", || async {
        payments()
            .await
            .first()
            .is_some_and(|p| p["status"] == "REFUNDED")
    })
    .await;
    let taken = payments().await;
    assert_eq!(taken.len(), 1, "one payment: {taken:?}");
    assert_eq!(taken[0]["amount_cents"], 3_500);
    assert_eq!(taken[0]["refunded_cents"], 3_500, "{taken:?}");
    assert_eq!(shop.order_json(&noa.token, id).await["status"], "CANCELLED");
    let text = shop.payment.metrics().encode().unwrap();
    assert!(
        text.contains("\npayment_provider_calls_in_flight 0\n"),
        "the answered call is no longer counted: {text}"
    );
    shop.finish().await;
}

#[tokio::test]
async fn admins_find_orders_by_the_email_they_were_placed_with() {
    let shop = Shop::start().await;
    let ora = shop.shopper();
    let admin = shop.admin();
    let cup = shop.product("Cup", 400, 20).await;
    shop.add_to_cart(&ora, cup, 1).await;
    let method = shop.card(&ora, "4242424242424242").await;
    let place = |email: &'static str, key: &'static str| {
        let (order, token) = (&shop.order, ora.token.clone());
        async move {
            order
                .post("/api/orders")
                .bearer(&token)
                .header("Idempotency-Key", key)
                .json(&serde_json::json!({"payment_method_id": method,
                    "shipping_address": shop_tests::ADDRESS(), "email": email}))
                .send()
                .await
        }
    };
    let refused = place("not an address", "mail-1").await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json();
    assert_eq!(problem["errors"][0]["field"], "email", "{problem}");
    let placed = place("Ora@Example.com", "mail-1").await;
    placed.assert_status(StatusCode::CREATED);
    let placed: Value = placed.json();
    assert_eq!(placed["email"], "Ora@Example.com");

    let found: Value = shop
        .order
        .get("/api/orders?email=ora@example.COM")
        .bearer(&admin)
        .send()
        .await
        .json();
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["id"], placed["id"]);
    let none: Value = shop
        .order
        .get("/api/orders?email=someone@example.com")
        .bearer(&admin)
        .send()
        .await
        .json();
    assert_eq!(none["total"], 0);
    shop.finish().await;
}
