//! The saga's deadline and events out of order, over the real PostgreSQL
//! and RabbitMQ: a stuck order is reaped and its stock comes back, two
//! reapers (two replicas) cancel each expired order once, a payment that
//! lands after the order was cancelled is refunded, and a refund that
//! overtakes its payment is applied once the payment is.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use order_service::{metrics::OrderMetrics, reaper::Reaper};
use serde_json::Value;
use shop_tests::{Service, Shop};
use storekeeper_kit::Metrics;
use storekeeper_kit::events::{
    Envelope, EventsConfig,
    envelope::PaymentRefunded,
    testing::{publish_raw, take_dead_letters},
};
use uuid::Uuid;

/// A deadline short enough for a test to outlive.
const SHORT: Duration = Duration::from_secs(2);

async fn status_becomes(shop: &Shop, token: &str, id: Uuid, status: &str) {
    shop.eventually(&format!("order {id} {status}"), || async {
        shop.order_json(token, id).await["status"] == status
    })
    .await;
}

/// Money captured and not given back, over every payment.
async fn money_kept(shop: &Shop) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(amount_cents - refunded_cents), 0)::bigint FROM payments \
         WHERE status <> 'FAILED'",
    )
    .fetch_one(&shop.payments_db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn stuck_orders_are_reaped_and_their_stock_comes_back() {
    // Normal prefetch: the late services handle each order's queued events
    // (created or requested, then cancelled) at the same time, and the
    // per-order locks keep the outcome what it would be one at a time.
    let events = EventsConfig::ephemeral();
    let mut shop = Shop::start_with_deadline(events.clone(), events, SHORT).await;
    let (ann, bob) = (shop.shopper(), shop.shopper());
    let kettle = shop.product("Kettle", 4_900, 5).await;
    let mug = shop.product("Mug", 1_250, 5).await;

    // The charge never comes back: AWAITING_PAYMENT with its stock reserved.
    shop.stop_workers(Service::Payment).await;
    let waiting = shop.buy(&ann, kettle, 2, "4242424242424242").await;
    status_becomes(&shop, &ann.token, waiting, "AWAITING_PAYMENT").await;
    assert_eq!(shop.stock(kettle).await, 3);
    // The reservation never happens: PENDING.
    shop.stop_workers(Service::Product).await;
    let pending = shop.buy(&bob, mug, 1, "4242424242424242").await;

    for (shopper, id) in [(&ann, waiting), (&bob, pending)] {
        let order = shop
            .settled_within(&shopper.token, id, Duration::from_secs(15))
            .await;
        assert_eq!(order["status"], "CANCELLED");
        assert_eq!(
            order["cancellation_reason"],
            "expired: not completed within 2 s"
        );
    }
    // The late services catch up: the kettles come back, the mug is
    // reserved and released (or never taken), the kettle charge is never
    // made or given back.
    shop.start_workers(Service::Product);
    shop.start_workers(Service::Payment);
    // The kettle's charge request and both cancellations.
    shop.eventually("payment-service saw its three events", || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
            .fetch_one(&shop.payments_db.pool)
            .await
            .unwrap();
        seen == 3
    })
    .await;
    shop.eventually("product-service saw the mug's order", || async {
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM stock_reservations")
            .fetch_one(&shop.products_db.pool)
            .await
            .unwrap();
        seen == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((shop.stock(kettle).await, shop.stock(mug).await), (5, 5));
    assert_eq!(money_kept(&shop).await, 0);
    assert_eq!(
        shop.statuses().await,
        [("CANCELLED".to_owned(), 2)],
        "reaped orders stay cancelled"
    );
    let text = shop.order_metrics.encode().unwrap();
    assert!(
        text.contains(r#"orders_cancelled_total{stage="deadline"} 2"#),
        "{text}"
    );
    shop.finish().await;
}

/// Every replica of order-service runs a reaper. Two at once over more
/// expired orders than one batch share them: each order is cancelled, and
/// announced, exactly once.
#[tokio::test]
async fn two_reapers_at_once_cancel_each_expired_order_once() {
    const ORDERS: usize = 130;
    let events = EventsConfig::ephemeral();
    let mut shop = Shop::start_with_deadline(events.clone(), events, SHORT).await;
    let mug = shop.product("Mug", 1_250, 1_000).await;
    // Only this test's reapers: the shop's own stop, and with
    // product-service's workers stopped no order leaves PENDING.
    shop.stop_workers(Service::Order).await;
    shop.stop_workers(Service::Product).await;
    for _ in 0..ORDERS {
        let shopper = shop.shopper();
        shop.buy(&shopper, mug, 1, "4242424242424242").await;
    }
    tokio::time::sleep(SHORT + Duration::from_millis(500)).await;

    let replica = || {
        let reaper = Reaper::new(
            shop.orders_db.pool.clone(),
            SHORT,
            OrderMetrics::register(&Metrics::new()),
        );
        async move {
            let mut cancelled = 0;
            loop {
                match reaper.reap_once().await.unwrap() {
                    0 => return cancelled,
                    n => cancelled += n,
                }
            }
        }
    };
    let (first, second) = tokio::join!(replica(), replica());
    assert_eq!(first + second, ORDERS, "{first} + {second}");
    let orders = i64::try_from(ORDERS).unwrap();
    assert_eq!(shop.statuses().await, [("CANCELLED".to_owned(), orders)]);
    let announced: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT payload::jsonb->'data'->>'order_id') FROM outbox \
         WHERE event_type = 'order.cancelled'",
    )
    .fetch_one(&shop.orders_db.pool)
    .await
    .unwrap();
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type = 'order.cancelled'")
            .fetch_one(&shop.orders_db.pool)
            .await
            .unwrap();
    assert_eq!((announced, events), (orders, orders));
    shop.finish().await;
}

#[tokio::test]
async fn a_charge_requested_before_the_deadline_and_made_after_it_keeps_no_money() {
    // One delivery at a time: the charge request (queued first) is decided
    // before the cancellation reaches payment-service. Whether its worker
    // asks the provider before the cancellation is recorded (captured, then
    // refunded in full) or after (not charged at all) is a race either way
    // of which the shop keeps nothing; the capture tests pin each side.
    let events = EventsConfig {
        prefetch: 1,
        ..EventsConfig::ephemeral()
    };
    let mut shop = Shop::start_with_deadline(events.clone(), events, SHORT).await;
    let cy = shop.shopper();
    let lamp = shop.product("Lamp", 3_000, 4).await;
    shop.stop_workers(Service::Payment).await;
    let id = shop.buy(&cy, lamp, 1, "4242424242424242").await;
    status_becomes(&shop, &cy.token, id, "AWAITING_PAYMENT").await;
    status_becomes(&shop, &cy.token, id, "CANCELLED").await;

    shop.start_workers(Service::Payment);
    shop.eventually("the charge settled, keeping nothing", || async {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM charge_intents")
            .fetch_one(&shop.payments_db.pool)
            .await
            .unwrap();
        let cancelled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM cancelled_orders WHERE order_id = $1")
                .bind(id)
                .fetch_one(&shop.payments_db.pool)
                .await
                .unwrap();
        let payment: Option<(String, i64, i64)> = sqlx::query_as(
            "SELECT status, amount_cents, refunded_cents FROM payments WHERE order_id = $1",
        )
        .bind(id)
        .fetch_optional(&shop.payments_db.pool)
        .await
        .unwrap();
        pending == 0
            && cancelled == 1
            && payment.is_none_or(|(status, amount, refunded)| {
                status == "REFUNDED" && amount == 3_000 && refunded == 3_000
            })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shop.order_json(&cy.token, id).await["status"], "CANCELLED");
    assert_eq!(shop.stock(lamp).await, 4);
    let text = shop.order_metrics.encode().unwrap();
    assert!(!text.contains("orders_paid_total 1"), "{text}");
    shop.finish().await;
}

#[tokio::test]
async fn a_refund_that_overtakes_its_payment_is_applied_after_it() {
    // Retries spaced out enough to outlast the stopped payment-service.
    let events = EventsConfig {
        max_attempts: 20,
        retry_base: Duration::from_millis(100),
        ..EventsConfig::ephemeral()
    };
    let mut shop = Shop::start_with(events.clone(), events).await;
    let dee = shop.shopper();
    let book = shop.product("Book", 1_000, 3).await;
    shop.stop_workers(Service::Payment).await;
    let id = shop.buy(&dee, book, 1, "4242424242424242").await;
    status_becomes(&shop, &dee.token, id, "AWAITING_PAYMENT").await;

    let early = Envelope::new(
        &PaymentRefunded {
            order_id: id,
            payment_id: Uuid::new_v4(),
            refund_id: Uuid::new_v4(),
            amount_cents: 1_000,
            refunded_total_cents: 1_000,
            fully_refunded: true,
        },
        id,
    )
    .unwrap();
    publish_raw(
        &shop.events,
        "payment.refunded",
        &serde_json::to_vec(&early).unwrap(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        shop.order_json(&dee.token, id).await["status"],
        "AWAITING_PAYMENT",
        "the early refund waits for the payment"
    );

    shop.start_workers(Service::Payment);
    status_becomes(&shop, &dee.token, id, "REFUNDED").await;
    let letters = take_dead_letters(&shop.events, "order.saga").await;
    assert!(letters.is_empty(), "nothing dead-lettered: {letters:?}");
    let order: Value = shop.order_json(&dee.token, id).await;
    assert_eq!(order["total_cents"], 1_000);
    shop.finish().await;
}
