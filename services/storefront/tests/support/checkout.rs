//! Stand-in user-, payment- and order-services for checkout: they log any
//! shopper in, tokenize cards, hold a one-line cart, and answer each order
//! request as the test scripted it, recording what the storefront sent.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::Path,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use storekeeper_contract::ShopService;

use super::{field_problem, serve, users_as};

/// How the stand-in order-service answers the next `POST /api/orders`.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// 422 on the street address (nothing committed).
    Refuse,
    /// 201 with the order.
    Place,
    /// Commits after 6 s, past the storefront's 5 s, and answers later.
    Slow,
}

/// What the stand-ins were asked and hold.
#[derive(Clone, Default)]
pub struct Backends {
    answers: Arc<Mutex<Vec<Answer>>>,
    /// (Idempotency-Key, payment_method_id) of every order request.
    pub requests: Arc<Mutex<Vec<(String, String)>>>,
    /// Orders committed so far.
    pub orders: Arc<Mutex<Vec<Value>>>,
    /// Cards tokenized so far.
    pub tokenized: Arc<Mutex<usize>>,
    /// While set, listing orders answers 503 (order-service unreachable
    /// for reads).
    pub listing_down: Arc<AtomicBool>,
}

impl Backends {
    /// Serves the three stand-ins, answering order requests with
    /// `answers` in turn; returns them with the URLs the storefront needs.
    pub async fn start(answers: &[Answer]) -> (Self, Vec<(ShopService, String)>) {
        let backends = Self::default();
        backends.answers.lock().unwrap().extend_from_slice(answers);
        let urls = vec![
            (ShopService::User, serve(users_as("customer")).await),
            (ShopService::Payment, serve(backends.payments()).await),
            (ShopService::Order, serve(backends.orders_api()).await),
        ];
        (backends, urls)
    }

    fn payments(&self) -> Router {
        let backends = self.clone();
        Router::new().route(
            "/api/payments/methods",
            post(move || async move {
                let mut count = backends.tokenized.lock().unwrap();
                *count += 1;
                (
                    StatusCode::CREATED,
                    Json(json!({"id": format!("pm-{count}")})),
                )
            }),
        )
    }

    fn orders_api(&self) -> Router {
        let placing = self.clone();
        let listing = self.clone();
        let reading = self.clone();
        Router::new()
            .route(
                "/api/cart",
                get(|| async { Json(json!({"items": [{"product_id": "p1", "quantity": 1}]})) }),
            )
            .route(
                "/api/orders",
                post(move |headers: HeaderMap, Json(body): Json<Value>| {
                    placing.place(headers, body)
                })
                .get(move || async move { listing.list() }),
            )
            .route(
                "/api/orders/{id}",
                get(move |Path(id): Path<String>| async move { reading.read(&id) }),
            )
    }

    async fn place(self, headers: HeaderMap, body: Value) -> Response {
        let key = headers
            .get("idempotency-key")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let method = body["payment_method_id"].as_str().unwrap().to_owned();
        self.requests.lock().unwrap().push((key, method.clone()));
        let answer = self.answers.lock().unwrap().remove(0);
        let order = order_json(&uuid::Uuid::new_v4().to_string(), &method);
        match answer {
            Answer::Refuse => {
                field_problem("shipping_address.line1", "is too vague").into_response()
            }
            Answer::Place => {
                self.orders.lock().unwrap().push(order.clone());
                (StatusCode::CREATED, Json(order)).into_response()
            }
            Answer::Slow => {
                // Committed whether or not the caller is still waiting (the
                // server drops this handler when the storefront hangs up).
                let committed = order.clone();
                let orders = self.orders.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(6)).await;
                    orders.lock().unwrap().push(committed);
                });
                tokio::time::sleep(Duration::from_secs(11)).await;
                (StatusCode::CREATED, Json(order)).into_response()
            }
        }
    }

    fn list(&self) -> Response {
        if self.listing_down.load(Ordering::SeqCst) {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let mut items = self.orders.lock().unwrap().clone();
        items.reverse();
        Json(json!({"items": items, "page": 1, "per_page": 50, "total": items.len()}))
            .into_response()
    }

    fn read(&self, id: &str) -> Response {
        let found = self
            .orders
            .lock()
            .unwrap()
            .iter()
            .find(|order| order["id"] == id)
            .cloned();
        match found {
            Some(order) => Json(order).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
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
