//! payment-service end to end over its real router and database: card
//! tokenization, charging once per order with test-card outcomes, reads
//! guarded by owner, and refunds.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use payment_service::{AppState, MIGRATOR, app, charges::Charger, metrics::PaymentMetrics};
use serde_json::{Value, json};
use sqlx::PgPool;
use storekeeper_kit::{
    Metrics,
    events::{Envelope, Handler, envelope::PaymentRequested},
    testing::{TestApp, TestKeys},
};
use uuid::Uuid;

struct Fixture {
    app: TestApp,
    keys: TestKeys,
    pool: PgPool,
    charger: Charger,
    metrics: Metrics,
}

fn fixture(pool: PgPool) -> Fixture {
    let keys = TestKeys::generate();
    let metrics = Metrics::new();
    let state = AppState {
        pool: pool.clone(),
        verifier: keys.verifier.clone(),
        metrics: PaymentMetrics::register(&metrics),
    };
    let charger = Charger {
        metrics: state.metrics.clone(),
    };
    Fixture {
        app: TestApp::with_metrics(app(state), metrics.clone()),
        keys,
        pool,
        charger,
        metrics,
    }
}

fn card(number: &str) -> Value {
    json!({"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"})
}

impl Fixture {
    async fn tokenize(&self, token: &str, number: &str) -> Uuid {
        let response = self
            .app
            .post("/api/payments/methods")
            .bearer(token)
            .json(&card(number))
            .send()
            .await;
        response.assert_status(StatusCode::CREATED);
        let body: Value = response.json();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Delivers `payment.requested` to the charger as the consumer would.
    async fn request_charge(
        &self,
        user: Uuid,
        method: Uuid,
        order: Uuid,
        amount: i64,
    ) -> Vec<Value> {
        let event = Envelope::new(
            &PaymentRequested {
                order_id: order,
                user_id: user,
                payment_method_id: method,
                amount_cents: amount,
                currency: "USD".into(),
            },
            order,
        )
        .unwrap();
        let mut tx = self.pool.begin().await.unwrap();
        self.charger.handle(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        self.outbox().await
    }

    async fn outbox(&self) -> Vec<Value> {
        let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap();
        payloads
            .iter()
            .map(|p| serde_json::from_str(p).unwrap())
            .collect()
    }

    async fn payments_of(&self, token: &str, order: Uuid) -> Vec<Value> {
        let response = self
            .app
            .get(&format!("/api/payments?order_id={order}"))
            .bearer(token)
            .send()
            .await;
        response.assert_status(StatusCode::OK);
        let body: Value = response.json();
        body["items"].as_array().unwrap().clone()
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn tokenizing_keeps_only_brand_and_last4(pool: PgPool) {
    let f = fixture(pool);
    let (_, token) = f.keys.customer();
    let response = f
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
            .fetch_all(&f.pool)
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
    let f = fixture(pool);
    let (_, token) = f.keys.customer();
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
        let problem = f
            .app
            .post("/api/payments/methods")
            .bearer(&token)
            .json(&body)
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(problem.errors[0].field, field, "{body}");
    }
    f.app
        .post("/api/payments/methods")
        .json(&card("4242424242424242"))
        .send()
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn test_cards_decide_the_outcome(pool: PgPool) {
    let f = fixture(pool);
    let (user, token) = f.keys.customer();
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
        let method = f.tokenize(&token, number).await;
        let order = Uuid::new_v4();
        let events = f.request_charge(user, method, order, 2_500).await;
        let last = events.last().unwrap();
        assert_eq!(last["type"], event_type, "{number}");
        assert_eq!(last["data"]["order_id"], order.to_string());
        let payments = f.payments_of(&token, order).await;
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
    let text = f.metrics.encode().unwrap();
    assert!(text.contains("payments_succeeded_total 1"), "{text}");
    assert!(
        text.contains("payments_failed_total{code=\"card_declined\"} 1"),
        "{text}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_order_is_charged_once_however_often_it_is_requested(pool: PgPool) {
    let f = fixture(pool);
    let (user, token) = f.keys.customer();
    let method = f.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    for _ in 0..3 {
        f.request_charge(user, method, order, 1_000).await;
    }
    assert_eq!(f.payments_of(&token, order).await.len(), 1);
    assert_eq!(f.outbox().await.len(), 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn someone_elses_payment_method_cannot_be_charged(pool: PgPool) {
    let f = fixture(pool);
    let (_, alice) = f.keys.customer();
    let (mallory_id, _) = f.keys.customer();
    let method = f.tokenize(&alice, "4242424242424242").await;
    let events = f
        .request_charge(mallory_id, method, Uuid::new_v4(), 1_000)
        .await;
    assert_eq!(events[0]["type"], "payment.failed");
    assert_eq!(events[0]["data"]["code"], "payment_method_not_found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn shoppers_see_only_their_own_payments(pool: PgPool) {
    let f = fixture(pool);
    let (alice_id, alice) = f.keys.customer();
    let (_, bob) = f.keys.customer();
    let (_, admin) = f.keys.admin();
    let method = f.tokenize(&alice, "4242424242424242").await;
    let order = Uuid::new_v4();
    f.request_charge(alice_id, method, order, 1_000).await;
    let payment_id = f.payments_of(&alice, order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    assert!(f.payments_of(&bob, order).await.is_empty());
    f.app
        .get(&format!("/api/payments/{payment_id}"))
        .bearer(&bob)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    f.app
        .get(&format!("/api/payments/{payment_id}"))
        .bearer(&alice)
        .send()
        .await
        .assert_status(StatusCode::OK);
    f.app
        .get(&format!("/api/payments/{payment_id}"))
        .bearer(&admin)
        .send()
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(f.payments_of(&admin, order).await.len(), 1);
    f.app
        .get("/api/payments/not-a-uuid")
        .bearer(&alice)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn refunds_are_admin_only_and_never_exceed_the_capture(pool: PgPool) {
    let f = fixture(pool);
    let (user, token) = f.keys.customer();
    let (_, admin) = f.keys.admin();
    let method = f.tokenize(&token, "4242424242424242").await;
    let order = Uuid::new_v4();
    f.request_charge(user, method, order, 1_000).await;
    let payment_id = f.payments_of(&token, order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("/api/payments/{payment_id}/refunds");

    f.app
        .post(&url)
        .bearer(&token)
        .json(&json!({}))
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    for amount in [0, -5, 1_001] {
        f.app
            .post(&url)
            .bearer(&admin)
            .json(&json!({"amount_cents": amount}))
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    let partial = f
        .app
        .post(&url)
        .bearer(&admin)
        .json(&json!({"amount_cents": 400}))
        .send()
        .await;
    partial.assert_status(StatusCode::CREATED);
    let payment = &f.payments_of(&token, order).await[0];
    assert_eq!(
        (
            payment["status"].as_str(),
            payment["refunded_cents"].as_i64()
        ),
        (Some("SUCCEEDED"), Some(400))
    );

    // No body: refund the rest.
    f.app
        .post(&url)
        .bearer(&admin)
        .send()
        .await
        .assert_status(StatusCode::CREATED);
    let payment = &f.payments_of(&token, order).await[0];
    assert_eq!(
        (
            payment["status"].as_str(),
            payment["refunded_cents"].as_i64()
        ),
        (Some("REFUNDED"), Some(1_000))
    );
    f.app
        .post(&url)
        .bearer(&admin)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");

    let events = f.outbox().await;
    let refunds: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "payment.refunded")
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[1]["data"]["fully_refunded"], true);
    f.app
        .post(&format!("/api/payments/{}/refunds", Uuid::new_v4()))
        .bearer(&admin)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn failed_payments_cannot_be_refunded_and_openapi_is_served(pool: PgPool) {
    let f = fixture(pool);
    let (user, token) = f.keys.customer();
    let (_, admin) = f.keys.admin();
    let method = f.tokenize(&token, "4000000000000002").await;
    let order = Uuid::new_v4();
    f.request_charge(user, method, order, 1_000).await;
    let payment_id = f.payments_of(&token, order).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    f.app
        .post(&format!("/api/payments/{payment_id}/refunds"))
        .bearer(&admin)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    let doc: Value = f.app.get("/openapi.json").send().await.json();
    assert!(doc["paths"]["/api/payments/{id}/refunds"]["post"].is_object());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn readiness_checks_postgres_and_rabbitmq(pool: PgPool) {
    let up = TestApp::new(storekeeper_kit::admin::router(
        Metrics::new(),
        payment_service::readiness(&pool, storekeeper_kit::events::testing::AMQP_URL),
    ));
    let report: Value = up.get("/readyz").send().await.json();
    assert_eq!(report["checks"]["postgres"], "ok");
    assert_eq!(report["checks"]["rabbitmq"], "ok");
    let broker_down = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        storekeeper_kit::testing::closed_port()
    );
    let down = TestApp::new(storekeeper_kit::admin::router(
        Metrics::new(),
        payment_service::readiness(&pool, &broker_down),
    ));
    let response = down.get("/readyz").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let report: Value = response.json();
    assert!(
        report["checks"]["rabbitmq"]
            .as_str()
            .unwrap()
            .starts_with("down"),
        "{report}"
    );
}
