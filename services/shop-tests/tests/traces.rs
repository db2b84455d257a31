//! One trace across the saga: an order placed with a `traceparent` is
//! handled by product-, payment- and order-service's consumers in that
//! trace (real PostgreSQL and RabbitMQ). Each consumer writes its next event
//! inside its `event` span, so the trace context stored with every outbox
//! row of the saga shows where each step ran; the request id travels in the
//! envelopes.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Value, json};
use shop_tests::{ADDRESS, Shop};
use sqlx::{PgPool, types::Json};
use storekeeper_kit::{events::Envelope, telemetry};
use uuid::Uuid;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// An outbox row: event type, envelope, stored trace context.
type Row = (String, String, Option<Json<BTreeMap<String, String>>>);

/// `(event type, trace id, request id)` of every event in `db`'s outbox.
async fn outbox(db: &PgPool) -> Vec<(String, Option<String>, Option<String>)> {
    let rows: Vec<Row> =
        sqlx::query_as("SELECT event_type, payload, trace_context FROM outbox ORDER BY id")
            .fetch_all(db)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(event_type, payload, trace)| {
            let envelope: Envelope = serde_json::from_str(&payload).unwrap();
            let trace_id = trace.and_then(|Json(map)| {
                map.get("traceparent")
                    .and_then(|parent| parent.split('-').nth(1).map(str::to_owned))
            });
            (event_type, trace_id, envelope.request_id)
        })
        .collect()
}

#[tokio::test]
async fn an_order_placed_in_a_trace_is_paid_in_that_trace() {
    assert!(
        telemetry::init_for_tests(std::io::sink),
        "the only subscriber of this binary"
    );
    let shop = Shop::start().await;
    let alice = shop.shopper();
    let kettle = shop.product("Kettle", 4_900, 5).await;
    shop.add_to_cart(&alice, kettle, 1).await;
    let method = shop.card(&alice, "4242424242424242").await;
    let response = shop
        .order
        .post("/api/orders")
        .bearer(&alice.token)
        .header("Idempotency-Key", "traced-1")
        .header("traceparent", TRACEPARENT)
        .header("x-request-id", "req-traced-checkout")
        .json(&json!({"payment_method_id": method, "shipping_address": ADDRESS()}))
        .send()
        .await;
    response.assert_status(StatusCode::CREATED);
    let id: Uuid = response.json::<Value>()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shop.settled(&alice.token, id).await["status"], "PAID");

    let mut events = outbox(&shop.orders_db.pool).await;
    events.extend(outbox(&shop.products_db.pool).await);
    events.extend(outbox(&shop.payments_db.pool).await);
    let types: Vec<&str> = events.iter().map(|(t, _, _)| t.as_str()).collect();
    for step in [
        "order.created",      // order-service, the checkout request
        "inventory.reserved", // product-service's consumer
        "payment.requested",  // order-service's consumer
        "payment.succeeded",  // payment-service's consumer
        "order.paid",         // order-service's consumer
    ] {
        assert!(types.contains(&step), "{step} missing from {types:?}");
    }
    for (event_type, trace_id, request_id) in &events {
        assert_eq!(trace_id.as_deref(), Some(TRACE_ID), "{event_type}");
        assert_eq!(
            request_id.as_deref(),
            Some("req-traced-checkout"),
            "{event_type}"
        );
    }
    shop.finish().await;
}
