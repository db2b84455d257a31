//! Checkout that never orders twice and never lies: stand-in user-,
//! payment- and order-services record what the real storefront sends.
//! One attempt keeps its `Idempotency-Key` and tokenized card across
//! retries; an order request that gets no answer in the storefront's 5 s is
//! followed until its order shows up, instead of being called a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use storekeeper_contract::ShopService;
use storekeeper_kit::testing::{TestApp, TestResponse};
use support::{Shopper, field, field_problem, serve, shop};

const PAYING_CARD: &str = "4242 4242 4242 4242";
const OTHER_CARD: &str = "5555 5555 5555 4444";

/// How the stand-in order-service answers the next `POST /api/orders`.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 422 on the street address (nothing committed).
    Refuse,
    /// 201 with the order.
    Place,
    /// Commits after 6 s, past the storefront's 5 s, and answers later.
    Slow,
}

#[derive(Clone, Default)]
struct Backends {
    answers: Arc<Mutex<Vec<Answer>>>,
    /// (Idempotency-Key, payment_method_id) of every order request.
    requests: Arc<Mutex<Vec<(String, String)>>>,
    /// Orders committed so far.
    orders: Arc<Mutex<Vec<Value>>>,
    tokenized: Arc<Mutex<usize>>,
}

fn order_json(id: &str, method: &str) -> Value {
    json!({
        "id": id, "status": "PENDING", "items": [],
        "total_cents": 4900, "currency": "USD",
        "shipping_address": {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield",
                              "postal_code": "12345", "country": "US"},
        "payment_method_id": method,
        "created_at": "2026-01-02T03:04:05Z",
    })
}

async fn place(backends: Backends, headers: HeaderMap, body: Value) -> Response {
    let key = headers
        .get("idempotency-key")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let method = body["payment_method_id"].as_str().unwrap().to_owned();
    backends
        .requests
        .lock()
        .unwrap()
        .push((key, method.clone()));
    let answer = backends.answers.lock().unwrap().remove(0);
    let order = order_json(&uuid::Uuid::new_v4().to_string(), &method);
    match answer {
        Answer::Refuse => field_problem("shipping_address.line1", "is too vague").into_response(),
        Answer::Place => {
            backends.orders.lock().unwrap().push(order.clone());
            (StatusCode::CREATED, Json(order)).into_response()
        }
        Answer::Slow => {
            // Committed whether or not the caller is still waiting (the
            // server drops this handler when the storefront hangs up).
            let committed = order.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(6)).await;
                backends.orders.lock().unwrap().push(committed);
            });
            tokio::time::sleep(Duration::from_secs(11)).await;
            (StatusCode::CREATED, Json(order)).into_response()
        }
    }
}

async fn start(answers: &[Answer]) -> (TestApp, Shopper, Backends) {
    let backends = Backends::default();
    backends.answers.lock().unwrap().extend_from_slice(answers);
    let users = Router::new()
        .route(
            "/api/users/login",
            post(|| async {
                Json(json!({"access_token": "a", "refresh_token": "r", "expires_in": 900}))
            }),
        )
        .route(
            "/api/users/me",
            get(|| async {
                Json(json!({"email": "ann@example.com", "name": "Ann", "role": "customer"}))
            }),
        );
    let payments = Router::new().route(
        "/api/payments/methods",
        post({
            let backends = backends.clone();
            move || async move {
                let mut count = backends.tokenized.lock().unwrap();
                *count += 1;
                (
                    StatusCode::CREATED,
                    Json(json!({"id": format!("pm-{count}")})),
                )
            }
        }),
    );
    let orders = Router::new()
        .route(
            "/api/cart",
            get(|| async { Json(json!({"items": [{"product_id": "p1", "quantity": 1}]})) }),
        )
        .route(
            "/api/orders",
            post({
                let backends = backends.clone();
                move |headers: HeaderMap, Json(body): Json<Value>| place(backends, headers, body)
            })
            .get({
                let backends = backends.clone();
                move || async move {
                    let mut items = backends.orders.lock().unwrap().clone();
                    items.reverse();
                    Json(json!({"items": items, "page": 1, "per_page": 50, "total": items.len()}))
                }
            }),
        );
    let (users, payments, orders) = (
        serve(users).await,
        serve(payments).await,
        serve(orders).await,
    );
    let shop = shop(&[
        (ShopService::User, users.as_str()),
        (ShopService::Payment, payments.as_str()),
        (ShopService::Order, orders.as_str()),
    ]);
    let shopper = Shopper::log_in(&shop).await;
    (shop, shopper, backends)
}

/// Fills the checkout form with `card` and sends it; returns the answer
/// and the form's idempotency key.
async fn check_out(shop: &TestApp, shopper: &mut Shopper, card: &str) -> (TestResponse, String) {
    let form_page = shopper.get(shop, "/checkout").await;
    form_page.assert_status(StatusCode::OK);
    let key = field(&form_page.text(), "idempotency_key");
    let response = shopper
        .post(
            shop,
            "/checkout",
            "/checkout",
            &[
                ("idempotency_key", &key),
                ("name", "Ann Lee"),
                ("line1", "1 Main St"),
                ("city", "Springfield"),
                ("postal_code", "12345"),
                ("country", "US"),
                ("card_number", card),
                ("exp_month", "12"),
                ("exp_year", "2034"),
                ("cvc", "123"),
            ],
        )
        .await;
    (response, key)
}

async fn form_key(shop: &TestApp, shopper: &mut Shopper) -> String {
    field(
        &shopper.get(shop, "/checkout").await.text(),
        "idempotency_key",
    )
}

#[tokio::test]
async fn a_retry_of_one_attempt_sends_the_same_key_and_card_token() {
    let (shop, mut shopper, backends) = start(&[Answer::Refuse, Answer::Place]).await;
    let (refused, key) = check_out(&shop, &mut shopper, PAYING_CARD).await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.text().contains("Is too vague"),
        "{}",
        refused.text()
    );
    assert_eq!(
        form_key(&shop, &mut shopper).await,
        key,
        "the attempt goes on"
    );

    let (placed, retry_key) = check_out(&shop, &mut shopper, PAYING_CARD).await;
    assert_eq!(retry_key, key);
    placed.assert_status(StatusCode::SEE_OTHER);
    assert!(placed.header("location").unwrap().starts_with("/orders/"));
    assert_eq!(*backends.tokenized.lock().unwrap(), 1, "tokenized once");
    assert_eq!(
        *backends.requests.lock().unwrap(),
        [
            (key.clone(), "pm-1".to_owned()),
            (key.clone(), "pm-1".to_owned())
        ],
        "the same request twice: order-service can replay it"
    );
    assert_ne!(
        form_key(&shop, &mut shopper).await,
        key,
        "an order placed ends the attempt; the next checkout is a new one"
    );
}

#[tokio::test]
async fn another_card_is_tokenized_under_the_same_key() {
    let (shop, mut shopper, backends) = start(&[Answer::Refuse, Answer::Place]).await;
    let (refused, key) = check_out(&shop, &mut shopper, PAYING_CARD).await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let (placed, _) = check_out(&shop, &mut shopper, OTHER_CARD).await;
    placed.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(*backends.tokenized.lock().unwrap(), 2);
    assert_eq!(
        *backends.requests.lock().unwrap(),
        [(key.clone(), "pm-1".to_owned()), (key, "pm-2".to_owned())]
    );
}

#[tokio::test]
async fn an_unanswered_order_is_followed_not_called_a_failure() {
    let (shop, mut shopper, backends) = start(&[Answer::Slow]).await;
    let (sent, _) = check_out(&shop, &mut shopper, PAYING_CARD).await;
    sent.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(sent.header("location"), Some("/checkout/pending"));

    let checking = shopper.get(&shop, "/checkout/pending").await;
    checking.assert_status(StatusCode::OK);
    let html = checking.text();
    assert!(html.contains("Your order is being checked"), "{html}");
    assert!(!html.contains("nothing was ordered"), "{html}");
    let status = shopper.get(&shop, "/checkout/pending/status").await;
    assert_eq!(status.json::<Value>()["terminal"], false);

    // Meanwhile checkout is closed: a second submit cannot order again.
    let again = shopper.get(&shop, "/checkout").await;
    assert_eq!(again.header("location"), Some("/checkout/pending"));
    assert_eq!(backends.requests.lock().unwrap().len(), 1);

    // order-service commits a moment later; the page finds the order.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = shopper.get(&shop, "/checkout/pending/status").await;
    assert_eq!(status.json::<Value>()["terminal"], true);
    let found = shopper.get(&shop, "/checkout/pending").await;
    found.assert_status(StatusCode::SEE_OTHER);
    let order = backends.orders.lock().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        found.header("location"),
        Some(format!("/orders/{order}").as_str())
    );
    let next = shopper.get(&shop, "/checkout/pending").await;
    assert_eq!(
        next.header("location"),
        Some("/orders"),
        "nothing left to follow"
    );
}
