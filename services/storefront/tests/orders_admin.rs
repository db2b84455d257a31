//! The shopper's cancel button and the admin's order pages against
//! stand-in services that record what the real storefront sends: cancel
//! goes to order-service's cancel route, the order search passes its
//! filters on, the order page shows the saga history, a refund form sends
//! the key minted when the page was rendered (a double click refunds
//! once), and restocking sends only `stock_delta`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    extract::{Path, RawQuery},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use storekeeper_contract::ShopService;
use storekeeper_kit::testing::TestApp;
use support::{Shopper, field, serve, shop, users_as};

const ORDER: &str = "0192c4f5-8a10-7000-8000-00000000a001";
const PAID: &str = "0192c4f5-8a10-7000-8000-00000000a002";
const SHOPPER: &str = "0192c4f5-8a10-7000-8000-00000000b001";
const PAYMENT: &str = "0192c4f5-8a10-7000-8000-00000000c001";
const PRODUCT: &str = "0192c4f5-8a10-7000-8000-00000000d001";

/// What the stand-ins were asked, in order.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn push(&self, call: String) {
        self.0.lock().unwrap().push(call);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn order(id: &str, status: &str) -> Value {
    json!({
        "id": id, "user_id": SHOPPER, "status": status,
        "items": [{"name": "Teapot", "quantity": 1, "unit_price_cents": 2500}],
        "total_cents": 2500, "currency": "USD",
        "shipping_address": {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield",
                              "postal_code": "12345", "country": "US"},
        "payment_method_id": "pm-1", "created_at": "2026-01-02T03:04:05Z",
    })
}

fn conflict(detail: &str) -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"type": "https://storekeeper.dev/problems/order-not-cancellable",
                    "title": "The order can no longer be cancelled", "status": 409, "detail": detail})),
    )
        .into_response()
}

fn order_service(calls: &Calls) -> Router {
    let c = calls.clone();
    Router::new()
        .route(
            "/api/cart",
            get(|| async { Json(json!({"items": []})) }),
        )
        .route(
            "/api/orders",
            get(move |RawQuery(query): RawQuery| {
                let c = c.clone();
                async move {
                    c.push(format!("list {}", query.unwrap_or_default()));
                    Json(json!({"items": [order(PAID, "PAID")], "page": 1, "per_page": 25, "total": 1}))
                }
            }),
        )
        .route(
            "/api/orders/{id}",
            get(|Path(id): Path<String>| async move {
                match id.as_str() {
                    ORDER => Json(order(ORDER, "AWAITING_PAYMENT")).into_response(),
                    PAID => Json(order(PAID, "PAID")).into_response(),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .route(
            "/api/orders/{id}/cancel",
            post({
                let c = calls.clone();
                move |Path(id): Path<String>| {
                    let c = c.clone();
                    async move {
                        c.push(format!("cancel {id}"));
                        if id == ORDER {
                            let mut cancelled = order(ORDER, "CANCELLED");
                            cancelled["cancellation_reason"] = json!("cancelled by the shopper");
                            Json(cancelled).into_response()
                        } else {
                            conflict(&format!("order {id} is already PAID"))
                        }
                    }
                }
            }),
        )
        .route(
            "/api/orders/{id}/history",
            get(|| async {
                Json(json!({"order_id": PAID, "status": "PAID", "entries": [
                    {"status": "PENDING", "step": "placed", "at": "2026-01-02T03:04:05.100Z"},
                    {"status": "AWAITING_PAYMENT", "step": "stock_reserved", "at": "2026-01-02T03:04:05.200Z"},
                    {"status": "PAID", "step": "payment_succeeded", "at": "2026-01-02T03:04:05.300Z"},
                ]}))
            }),
        )
}

fn payment_service(calls: &Calls) -> Router {
    let c = calls.clone();
    Router::new()
        .route(
            "/api/payments",
            get(|| async {
                Json(
                    json!({"items": [{"id": PAYMENT, "order_id": PAID, "status": "SUCCEEDED",
                    "amount_cents": 2500, "refunded_cents": 500, "currency": "USD",
                    "brand": "visa", "last4": "4242"}]}),
                )
            }),
        )
        .route(
            "/api/payments/{id}/refunds",
            post(
                move |Path(id): Path<String>, headers: HeaderMap, Json(body): Json<Value>| {
                    let c = c.clone();
                    async move {
                        let key = headers["idempotency-key"].to_str().unwrap().to_owned();
                        c.push(format!("refund {id} {key} {body}"));
                        (
                            StatusCode::CREATED,
                            Json(json!({"id": "r1", "payment_id": id,
                            "amount_cents": body["amount_cents"].as_i64().unwrap_or(2000)})),
                        )
                    }
                },
            ),
        )
}

fn teapot(id: &str) -> Value {
    json!({"id": id, "slug": "teapot", "name": "Teapot", "description": "",
    "price_cents": 2500, "currency": "USD", "image_url": "/images/x.svg",
    "stock": 12, "category": "kitchen", "category_name": "Kitchen"})
}

fn product_service(calls: &Calls) -> Router {
    let c = calls.clone();
    Router::new()
        .route("/api/categories", get(|| async { Json(json!([])) }))
        .route(
            "/api/products/{id}",
            get(|Path(id): Path<String>| async move { Json(teapot(&id)) }).patch(
                move |Path(id): Path<String>, Json(body): Json<Value>| {
                    let c = c.clone();
                    async move {
                        c.push(format!("patch {id} {body}"));
                        Json(teapot(&id))
                    }
                },
            ),
        )
        .route(
            "/api/products/{id}/stock",
            get(|| async { Json(json!({"available": 9, "reserved": 3})) }),
        )
}

async fn start(role: &'static str) -> (TestApp, Shopper, Calls) {
    let calls = Calls::default();
    let users = users_as(role);
    let (orders, payments, products) = (
        order_service(&calls),
        payment_service(&calls),
        product_service(&calls),
    );
    let (users, orders, payments, products) = (
        serve(users).await,
        serve(orders).await,
        serve(payments).await,
        serve(products).await,
    );
    let shop = shop(&[
        (ShopService::User, users.as_str()),
        (ShopService::Order, orders.as_str()),
        (ShopService::Payment, payments.as_str()),
        (ShopService::Product, products.as_str()),
    ]);
    let shopper = Shopper::log_in(&shop).await;
    (shop, shopper, calls)
}

fn location(response: &storekeeper_kit::testing::TestResponse) -> String {
    response.header("location").unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_shopper_cancels_an_unpaid_order_from_its_page() {
    let (shop, mut ann, calls) = start("customer").await;
    let page = ann.get(&shop, &format!("/orders/{ORDER}")).await;
    page.assert_status(StatusCode::OK);
    assert!(
        page.text().contains("Cancel order"),
        "an unpaid order offers it"
    );
    let paid = ann.get(&shop, &format!("/orders/{PAID}")).await;
    assert!(
        !paid.text().contains("Cancel order"),
        "a paid order does not"
    );

    let path = format!("/orders/{ORDER}");
    let done = ann.post(&shop, &path, &format!("{path}/cancel"), &[]).await;
    done.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(location(&done), path);
    assert_eq!(calls.all(), [format!("cancel {ORDER}")]);
    let notice = ann.get(&shop, &path).await.text();
    assert!(
        notice.contains("was cancelled. Nothing is charged for it."),
        "{notice}"
    );

    let refused = ann
        .post(&shop, &path, &format!("/orders/{PAID}/cancel"), &[])
        .await;
    refused.assert_status(StatusCode::SEE_OTHER);
    let notice = ann.get(&shop, &format!("/orders/{PAID}")).await.text();
    assert!(notice.contains("can no longer be cancelled"), "{notice}");

    let bad = ann
        .post(&shop, &path, "/orders/not-an-id/cancel", &[])
        .await;
    bad.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn customers_cannot_open_the_admin_order_pages() {
    let (shop, mut ann, _) = start("customer").await;
    for path in ["/admin/orders", &format!("/admin/orders/{PAID}")] {
        ann.get(&shop, path)
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn the_order_search_finds_by_order_id_shopper_id_and_status() {
    let (shop, mut admin, calls) = start("admin").await;
    let by_order = admin.get(&shop, &format!("/admin/orders?q={PAID}")).await;
    by_order.assert_status(StatusCode::OK);
    assert!(by_order.text().contains(&format!("/admin/orders/{PAID}")));
    assert_eq!(
        calls.all(),
        Vec::<String>::new(),
        "an order id is read directly"
    );

    let by_shopper = admin
        .get(&shop, &format!("/admin/orders?q={SHOPPER}&status=PAID"))
        .await;
    by_shopper.assert_status(StatusCode::OK);
    assert_eq!(
        calls.all(),
        [format!(
            "list status=PAID&user_id={SHOPPER}&page=1&per_page=25"
        )]
    );
    let everything = admin.get(&shop, "/admin/orders?status=BOGUS").await;
    everything.assert_status(StatusCode::OK);
    assert_eq!(
        calls.all()[1],
        "list page=1&per_page=25",
        "unknown status: any"
    );

    let by_email = admin.get(&shop, "/admin/orders?q=Ann%40Example.com").await;
    by_email.assert_status(StatusCode::OK);
    assert_eq!(
        calls.all()[2],
        "list email=Ann%40Example.com&page=1&per_page=25"
    );

    let unreadable = admin.get(&shop, "/admin/orders?q=A002").await;
    unreadable.assert_status(StatusCode::OK);
    let html = unreadable.text();
    assert!(
        html.contains("Enter an e-mail, or a whole order id"),
        "{html}"
    );
    assert!(html.contains(r#"aria-invalid="true""#));
    assert_eq!(calls.all().len(), 3, "nothing searched");
}

#[tokio::test]
async fn the_order_page_shows_the_history_and_a_double_clicked_refund_sends_one_key() {
    let (shop, mut admin, calls) = start("admin").await;
    let path = format!("/admin/orders/{PAID}");
    let page = admin.get(&shop, &path).await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    for words in [
        "Order placed",
        "Stock reserved",
        "Payment captured",
        "03:04:05.300 UTC",
    ] {
        assert!(html.contains(words), "{words}: {html}");
    }
    assert!(html.contains("Up to 20.00"), "what is left to refund");
    let key = field(&html, "idempotency_key");
    assert!(uuid::Uuid::parse_str(&key).is_ok());
    let again = field(&admin.get(&shop, &path).await.text(), "idempotency_key");
    assert_ne!(key, again, "each rendering mints its own key");

    let refunds = format!("{path}/refunds");
    for _ in 0..2 {
        let done = admin
            .post(
                &shop,
                &path,
                &refunds,
                &[
                    ("payment_id", PAYMENT),
                    ("currency", "USD"),
                    ("idempotency_key", &key),
                    ("amount", "5.50"),
                ],
            )
            .await;
        done.assert_status(StatusCode::SEE_OTHER);
        assert_eq!(location(&done), path);
    }
    let sent: Vec<String> = calls.all();
    let want = format!("refund {PAYMENT} {key} {{\"amount_cents\":550}}");
    assert_eq!(sent, [want.clone(), want], "both clicks carry the same key");
    let notice = admin.get(&shop, &path).await.text();
    assert!(notice.contains("Refunded $5.50"), "{notice}");

    admin
        .post(
            &shop,
            &path,
            &refunds,
            &[
                ("payment_id", PAYMENT),
                ("currency", "USD"),
                ("idempotency_key", "k-full"),
                ("amount", ""),
            ],
        )
        .await
        .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(
        calls.all()[2],
        format!("refund {PAYMENT} k-full {{}}"),
        "empty: all of it"
    );

    admin
        .post(
            &shop,
            &path,
            &refunds,
            &[
                ("payment_id", PAYMENT),
                ("idempotency_key", "k-bad"),
                ("amount", "1.234"),
            ],
        )
        .await
        .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(calls.all().len(), 3, "a malformed amount is not sent");
    let notice = admin.get(&shop, &path).await.text();
    assert!(notice.contains("Enter the amount to refund"), "{notice}");
}

#[tokio::test]
async fn restocking_from_the_list_sends_only_the_units_added() {
    let (shop, mut admin, calls) = start("admin").await;
    let restock = format!("/admin/products/{PRODUCT}/restock");
    let done = admin
        .post(
            &shop,
            "/admin/orders",
            &restock,
            &[("units", "5"), ("name", "Teapot")],
        )
        .await;
    done.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/admin/products");
    let patches = || -> Vec<String> {
        calls
            .all()
            .into_iter()
            .filter(|call| call.starts_with("patch"))
            .collect()
    };
    assert_eq!(
        patches(),
        [format!("patch {PRODUCT} {{\"stock_delta\":5}}")]
    );
    for bad in ["0", "-2", "lots", ""] {
        admin
            .post(
                &shop,
                "/admin/orders",
                &restock,
                &[("units", bad), ("name", "Teapot")],
            )
            .await
            .assert_status(StatusCode::SEE_OTHER);
    }
    assert_eq!(patches().len(), 1, "nothing sent for a bad number");
}

#[tokio::test]
async fn the_product_form_shows_stock_available_and_reserved_by_checkouts() {
    let (shop, mut admin, _) = start("admin").await;
    let form = admin
        .get(&shop, &format!("/admin/products/{PRODUCT}"))
        .await;
    form.assert_status(StatusCode::OK);
    let html = form.text();
    assert!(
        html.contains("9 available to order now, 3 reserved by orders in checkout."),
        "{html}"
    );
}
