//! payment-service end to end over its real router and database: card
//! tokenization, charging once per order with test-card outcomes, reads
//! guarded by owner, and refunds.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use payment_service::MIGRATOR;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{Ctx, card};
use uuid::Uuid;

#[sqlx::test(migrator = "MIGRATOR")]
async fn tokenizing_keeps_only_brand_and_last4(pool: PgPool) {
    let ctx = Ctx::new(pool);
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
    assert_eq!(stored.len(), 1);
    let everything = format!("{stored:?}");
    assert!(
        !everything.contains("4242424242424242") && !everything.contains("123"),
        "{everything}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_cards_are_422_naming_the_field(pool: PgPool) {
    let ctx = Ctx::new(pool);
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
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn test_cards_decide_the_outcome(pool: PgPool) {
    let ctx = Ctx::new(pool);
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
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_order_is_charged_once_however_often_it_is_requested(pool: PgPool) {
    let ctx = Ctx::new(pool);
    let (user, token) = ctx.keys.customer();
    let method = ctx.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    for _ in 0..3 {
        ctx.request_charge(user, method, order, 1_000).await;
    }
    assert_eq!(ctx.payments_of(&token, order).await.len(), 1);
    assert_eq!(ctx.outbox().await.len(), 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn someone_elses_payment_method_cannot_be_charged(pool: PgPool) {
    let ctx = Ctx::new(pool);
    let (_, alice) = ctx.keys.customer();
    let (mallory_id, _) = ctx.keys.customer();
    let method = ctx.tokenize(&alice, "4242424242424242").await;
    let events = ctx
        .request_charge(mallory_id, method, Uuid::new_v4(), 1_000)
        .await;
    assert_eq!(events[0]["type"], "payment.failed");
    assert_eq!(events[0]["data"]["code"], "payment_method_not_found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn shoppers_see_only_their_own_payments(pool: PgPool) {
    let ctx = Ctx::new(pool);
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
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn refunds_are_admin_only_and_never_exceed_the_capture(pool: PgPool) {
    let ctx = Ctx::new(pool);
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
            .json(&json!({"amount_cents": amount}))
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    let partial = ctx
        .app
        .post(&url)
        .bearer(&admin)
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
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn failed_payments_cannot_be_refunded_and_openapi_is_served(pool: PgPool) {
    let ctx = Ctx::new(pool);
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
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    let doc: Value = ctx.app.get("/openapi.json").send().await.json();
    assert!(doc["paths"]["/api/payments/{id}/refunds"]["post"].is_object());
}
