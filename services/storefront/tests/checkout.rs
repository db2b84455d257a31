//! Checkout that never orders twice and never lies: stand-in user-,
//! payment- and order-services record what the real storefront sends.
//! One attempt keeps its `Idempotency-Key` and tokenized card across
//! retries; an order request that gets no answer in the storefront's 5 s is
//! followed until its order shows up, instead of being called a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{sync::atomic::Ordering, time::Duration};

use axum::http::StatusCode;
use serde_json::Value;
use storekeeper_kit::testing::{TestApp, TestResponse};
use support::checkout::{Answer, Backends};
use support::{Shopper, field, shop};

const PAYING_CARD: &str = "4242 4242 4242 4242";
const OTHER_CARD: &str = "5555 5555 5555 4444";

async fn start(answers: &[Answer]) -> (TestApp, Shopper, Backends) {
    let (backends, urls) = Backends::start(answers).await;
    let urls: Vec<_> = urls
        .iter()
        .map(|(service, url)| (*service, url.as_str()))
        .collect();
    let shop = shop(&urls);
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

#[tokio::test]
async fn the_pending_page_says_when_orders_cannot_be_reached_and_keeps_checking() {
    let (shop, mut shopper, backends) = start(&[Answer::Slow]).await;
    let (sent, _) = check_out(&shop, &mut shopper, PAYING_CARD).await;
    assert_eq!(sent.header("location"), Some("/checkout/pending"));
    backends.listing_down.store(true, Ordering::SeqCst);

    let checking = shopper.get(&shop, "/checkout/pending").await;
    checking.assert_status(StatusCode::OK);
    let html = checking.text();
    assert!(html.contains("can't reach our order system"), "{html}");
    assert!(html.contains("Nothing is lost"), "{html}");
    let status = shopper.get(&shop, "/checkout/pending/status").await;
    assert_eq!(status.json::<Value>()["terminal"], false);

    backends.listing_down.store(false, Ordering::SeqCst);
    let html = shopper.get(&shop, "/checkout/pending").await.text();
    assert!(!html.contains("can't reach our order system"), "{html}");
    assert!(html.contains("Your order is being checked"), "{html}");
}
