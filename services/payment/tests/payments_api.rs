//! payment-service end to end over its real router and database: card
//! tokenization, charging once per order with test-card outcomes, reads
//! guarded by owner, and refunds.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{Ctx, card};
use uuid::Uuid;

#[tokio::test]
async fn tokenizing_keeps_only_brand_and_last4() {
    let ctx = Ctx::start().await;
    let (_, token) = ctx.keys.customer();
    let response = ctx
        .app
        .post("/api/payments/methods")
        .bearer(&token)
        .json(&card("4242 4242 4242 4242"))
        .send()
        .await;
    response.assert_status(StatusCode::CREATED);
    let body: Value = response.json();
    assert_eq!(body["brand"], "visa");
    assert_eq!(body["last4"], "4242");
    assert!(!response.text().contains("42424242"));
    let stored: Vec<(String, String, String)> =
        sqlx::query_as("SELECT brand, last4, provider_token FROM payment_methods")
            .fetch_all(&ctx.pool)
            .await
            .unwrap();
    let [(brand, last4, token)] = stored.as_slice() else {
        panic!("one method stored, not {stored:?}");
    };
    assert_eq!((brand.as_str(), last4.as_str()), ("visa", "4242"));
    // The token is the provider's random id and nothing else: neither the
    // number nor the CVC rides along (a search for "123" in it would fail
    // whenever the random id happens to hold those digits).
    let random = token.strip_prefix("sim_ok_").unwrap_or_default();
    assert!(Uuid::try_parse(random).is_ok(), "{token}");
    ctx.finish().await;
}

#[tokio::test]
async fn bad_cards_are_422_naming_the_field() {
    let ctx = Ctx::start().await;
    let (_, token) = ctx.keys.customer();
    let cases = [
        (
            json!({"card_number": "4242424242424241", "exp_month": 12, "exp_year": 2035, "cvc": "123"}),
            "card_number",
        ),
        (
            json!({"card_number": "4242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}),
            "card_number",
        ),
        (
            json!({"card_number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"}),
            "exp_year",
        ),
        (
            json!({"card_number": "4242424242424242", "exp_month": 13, "exp_year": 2035, "cvc": "123"}),
            "exp_month",
        ),
        (
            json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "12a"}),
            "cvc",
        ),
        (
            json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035}),
            "cvc",
        ),
    ];
    for (body, field) in cases {
        let problem = ctx
            .app
            .post("/api/payments/methods")
            .bearer(&token)
            .json(&body)
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(problem.errors[0].field, field, "{body}");
    }
    ctx.app
        .post("/api/payments/methods")
        .json(&card("4242424242424242"))
        .send()
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    ctx.finish().await;
}

#[tokio::test]
async fn test_cards_decide_the_outcome() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let cases = [
        ("4242424242424242", "payment.succeeded", None),
        ("4000000000000002", "payment.failed", Some("card_declined")),
        (
            "4000000000009995",
            "payment.failed",
            Some("insufficient_funds"),
        ),
    ];
    for (number, event_type, code) in cases {
        let method = ctx.tokenize(&token, number).await;
        let order = Uuid::new_v4();
        let events = ctx.request_charge(user, method, order, 2_500).await;
        let last = events.last().unwrap();
        assert_eq!(last["type"], event_type, "{number}");
        assert_eq!(last["data"]["order_id"], order.to_string());
        let payments = ctx.payments_of(&token, order).await;
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0]["amount_cents"], 2_500);
        assert_eq!(payments[0]["last4"], &number[12..]);
        match code {
            None => assert_eq!(payments[0]["status"], "SUCCEEDED"),
            Some(code) => {
                assert_eq!(payments[0]["status"], "FAILED");
                assert_eq!(payments[0]["failure_code"], code);
                assert_eq!(last["data"]["code"], code);
            }
        }
    }
    let text = ctx.metrics.encode().unwrap();
    assert!(text.contains("payments_succeeded_total 1"), "{text}");
    assert!(
        text.contains("payments_failed_total{code=\"card_declined\"} 1"),
        "{text}"
    );
    ctx.finish().await;
}

#[tokio::test]
async fn an_order_is_charged_once_however_often_it_is_requested() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    for _ in 0..3 {
        ctx.request_charge(user, method, order, 1_000).await;
    }
    assert_eq!(ctx.payments_of(&token, order).await.len(), 1);
    assert_eq!(ctx.outbox().await.len(), 1);
    ctx.finish().await;
}

#[tokio::test]
async fn someone_elses_payment_method_cannot_be_charged() {
    let ctx = Ctx::start().await;
    let (_, alice) = ctx.keys.customer();
    let (mallory_id, _) = ctx.keys.customer();
    let method = ctx.tokenize(&alice, "4242424242424242").await;
    let events = ctx
        .request_charge(mallory_id, method, Uuid::new_v4(), 1_000)
        .await;
    assert_eq!(events[0]["type"], "payment.failed");
    assert_eq!(events[0]["data"]["code"], "payment_method_not_found");
    ctx.finish().await;
}

#[tokio::test]
async fn shoppers_see_only_their_own_payments() {
    let ctx = Ctx::start().await;
    let (alice_id, alice) = ctx.keys.customer();
    let (_, bob) = ctx.keys.customer();
    let (_, admin) = ctx.keys.admin();
    let method = ctx.tokenize(&alice, "4242424242424242").await;
    let order = Uuid::new_v4();
    ctx.request_charge(alice_id, method, order, 1_000).await;
    let payment_id = ctx.payments_of(&alice, order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert!(ctx.payments_of(&bob, order).await.is_empty());
    ctx.app
        .get(&format!("/api/payments/{payment_id}"))
        .bearer(&bob)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.app
        .get(&format!("/api/payments/{payment_id}"))
        .bearer(&alice)
        .send()
        .await
        .assert_status(StatusCode::OK);
    ctx.app
        .get(&format!("/api/payments/{payment_id}"))
        .bearer(&admin)
        .send()
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(ctx.payments_of(&admin, order).await.len(), 1);
    ctx.app
        .get("/api/payments/not-a-uuid")
        .bearer(&alice)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.finish().await;
}

#[tokio::test]
async fn refunds_are_admin_only_and_never_exceed_the_capture() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let (_, admin) = ctx.keys.admin();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    ctx.request_charge(user, method, order, 1_000).await;
    let payment_id = ctx.payments_of(&token, order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("/api/payments/{payment_id}/refunds");

    ctx.app
        .post(&url)
        .bearer(&token)
        .json(&json!({}))
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    for amount in [0, -5, 1_001] {
        ctx.app
            .post(&url)
            .bearer(&admin)
            .header("Idempotency-Key", "refused-first")
            .json(&json!({"amount_cents": amount}))
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    let partial = ctx
        .app
        .post(&url)
        .bearer(&admin)
        .header("Idempotency-Key", "refused-first")
        .json(&json!({"amount_cents": 400}))
        .send()
        .await;
    partial.assert_status(StatusCode::CREATED);
    let payment = &ctx.payments_of(&token, order).await[0];
    assert_eq!(
        (
            payment["status"].as_str(),
            payment["refunded_cents"].as_i64()
        ),
        (Some("SUCCEEDED"), Some(400))
    );

    // No body: refund the rest.
    ctx.app
        .post(&url)
        .bearer(&admin)
        .header("Idempotency-Key", "the-rest")
        .send()
        .await
        .assert_status(StatusCode::CREATED);
    let payment = &ctx.payments_of(&token, order).await[0];
    assert_eq!(
        (
            payment["status"].as_str(),
            payment["refunded_cents"].as_i64()
        ),
        (Some("REFUNDED"), Some(1_000))
    );
    ctx.app
        .post(&url)
        .bearer(&admin)
        .header("Idempotency-Key", "nothing-left")
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");

    let events = ctx.outbox().await;
    let refunds: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "payment.refunded")
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[1]["data"]["fully_refunded"], true);
    ctx.app
        .post(&format!("/api/payments/{}/refunds", Uuid::new_v4()))
        .bearer(&admin)
        .header("Idempotency-Key", "no-such-payment")
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.finish().await;
}

#[tokio::test]
async fn failed_payments_cannot_be_refunded_and_openapi_is_served() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let (_, admin) = ctx.keys.admin();
    let method = ctx.tokenize(&token, "4000000000000002").await;
    let order = Uuid::new_v4();
    ctx.request_charge(user, method, order, 1_000).await;
    let payment_id = ctx.payments_of(&token, order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ctx.app
        .post(&format!("/api/payments/{payment_id}/refunds"))
        .bearer(&admin)
        .header("Idempotency-Key", "declined")
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    let doc: Value = ctx.app.get("/openapi.json").send().await.json();
    assert!(doc["paths"]["/api/payments/{id}/refunds"]["post"].is_object());
    ctx.finish().await;
}

#[tokio::test]
async fn an_order_cancelled_before_its_charge_is_never_charged() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    assert_eq!(ctx.cancel_order(order).await, Vec::<Value>::new());
    let events = ctx.request_charge(user, method, order, 2_500).await;
    assert_eq!(events, Vec::<Value>::new(), "no charge, no event");
    assert_eq!(ctx.payments_of(&token, order).await, Vec::<Value>::new());
    ctx.finish().await;
}

#[tokio::test]
async fn a_charge_that_lands_before_the_cancellation_is_refunded_in_full() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    let events = ctx.request_charge(user, method, order, 2_500).await;
    assert_eq!(events[0]["type"], "payment.succeeded");
    let events = ctx.cancel_order(order).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["type"], "payment.refunded");
    assert_eq!(events[1]["data"]["amount_cents"], 2_500);
    assert_eq!(events[1]["data"]["fully_refunded"], true);
    // A second notice of the same cancellation refunds nothing more.
    assert_eq!(ctx.cancel_order(order).await.len(), 2);
    let payments = ctx.payments_of(&token, order).await;
    assert_eq!(payments[0]["status"], "REFUNDED");
    assert_eq!(payments[0]["refunded_cents"], 2_500);
    let text = ctx.metrics.encode().unwrap();
    assert!(text.contains("refunds_total 1"), "{text}");
    assert!(text.contains("payments_succeeded_total 1"), "{text}");

    // A declined charge has nothing to give back.
    let declined = Uuid::new_v4();
    let card = ctx.tokenize(&token, "4000000000000002").await;
    ctx.request_charge(user, card, declined, 900).await;
    assert_eq!(
        ctx.cancel_order(declined).await.len(),
        3,
        "only payment.failed"
    );
    ctx.finish().await;
}

#[tokio::test]
async fn a_retried_refund_pays_out_once() {
    let ctx = Ctx::start().await;
    let (user, token) = ctx.keys.customer();
    let (_, admin) = ctx.keys.admin();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    ctx.request_charge(user, method, order, 1_000).await;
    let payment_id = ctx.payments_of(&token, order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("/api/payments/{payment_id}/refunds");
    let refund = |key: Option<&str>, body: Value| {
        let mut request = ctx.app.post(&url).bearer(&admin).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };

    refund(None, json!({"amount_cents": 300}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "idempotency-key-missing");
    refund(Some("has space"), json!({"amount_cents": 300}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");

    // Ten at once and one later with the same key and body: one refund.
    let first = refund(Some("refund-7"), json!({"amount_cents": 300})).await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retries = futures::future::join_all(
        (0..10).map(|_| refund(Some("refund-7"), json!({"amount_cents": 300}))),
    )
    .await;
    for again in &retries {
        again.assert_status(StatusCode::CREATED);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body, first.body, "byte-for-byte the first answer");
    }
    assert_eq!(
        ctx.payments_of(&token, order).await[0]["refunded_cents"],
        300
    );

    // The same key with another request is refused, whatever it asks.
    refund(Some("refund-7"), json!({"amount_cents": 200}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    refund(Some("refund-7"), json!({}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    // Keys belong to an admin: another admin's identical key is theirs.
    let (_, other_admin) = ctx.keys.admin();
    ctx.app
        .post(&url)
        .bearer(&other_admin)
        .header("Idempotency-Key", "refund-7")
        .json(&json!({"amount_cents": 300}))
        .send()
        .await
        .assert_status(StatusCode::CREATED);
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(refunds, 2);
    let text = ctx.metrics.encode().unwrap();
    assert!(text.contains("refunds_total 2"), "{text}");
    ctx.finish().await;
}

#[tokio::test]
async fn tests_run_on_the_pool_a_replica_gets() {
    let ctx = Ctx::start().await;
    let production =
        storekeeper_kit::ServiceConfig::for_tests(storekeeper_contract::ShopService::Payment)
            .database
            .unwrap()
            .max_connections;
    assert_eq!(ctx.pool.options().get_max_connections(), production);
    ctx.finish().await;
}
