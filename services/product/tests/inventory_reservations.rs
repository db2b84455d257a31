//! The `product.inventory` consumer's effects on the real database: all or
//! nothing reservations that never take stock below zero, releases, and
//! decisions made once per order.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use product_service::inventory::Inventory;
use sqlx::PgPool;
use storekeeper_kit::events::{
    Envelope, Handler,
    envelope::{EventItem, OrderCancelled, OrderCreated},
    testing::outbox_payloads,
};
use uuid::Uuid;

async fn product(pool: &PgPool, name: &str, stock: i32) -> Uuid {
    let category: Uuid = sqlx::query_scalar(
        "INSERT INTO categories (id, slug, name) VALUES ($1, $2, 'Test') RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(format!("c-{}", Uuid::new_v4().simple()))
    .fetch_one(pool)
    .await
    .unwrap();
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO products (id, slug, name, price_cents, currency, image_url, stock, category_id) \
         VALUES ($1, $2, $3, 100, 'USD', '/x.svg', $4, $5)",
    )
    .bind(id)
    .bind(format!("p-{}", id.simple()))
    .bind(name)
    .bind(stock)
    .bind(category)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn stock(pool: &PgPool, id: Uuid) -> i32 {
    sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn created(order: Uuid, items: &[(Uuid, i32)]) -> Envelope {
    let data = OrderCreated {
        order_id: order,
        user_id: Uuid::new_v4(),
        items: items
            .iter()
            .map(|(product_id, quantity)| EventItem {
                product_id: *product_id,
                quantity: *quantity,
            })
            .collect(),
        total_cents: 100,
        currency: "USD".into(),
    };
    Envelope::new(&data, order).unwrap()
}

fn cancelled(order: Uuid) -> Envelope {
    let data = OrderCancelled {
        order_id: order,
        reason: "test".into(),
        items: Vec::new(),
    };
    Envelope::new(&data, order).unwrap()
}

async fn apply(pool: &PgPool, event: &Envelope) {
    let mut tx = storekeeper_kit::db::begin(pool).await.unwrap();
    Inventory { cache: None }
        .handle(&mut tx, event)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn an_order_in_stock_is_reserved_and_announced() {
    let (_database, pool) = support::database().await;
    let (a, b) = (product(&pool, "A", 5).await, product(&pool, "B", 2).await);
    let order = Uuid::new_v4();
    apply(&pool, &created(order, &[(a, 2), (b, 2), (a, 1)])).await;
    assert_eq!((stock(&pool, a).await, stock(&pool, b).await), (2, 0));
    let events = outbox_payloads(&pool).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "inventory.reserved");
    assert_eq!(events[0]["data"]["order_id"], order.to_string());
    assert_eq!(events[0]["correlation_id"], order.to_string());
}

#[tokio::test]
async fn a_short_line_rejects_the_whole_order_and_takes_nothing() {
    let (_database, pool) = support::database().await;
    let (a, b) = (
        product(&pool, "Plenty", 5).await,
        product(&pool, "Scarce", 1).await,
    );
    let unknown = Uuid::new_v4();
    apply(
        &pool,
        &created(Uuid::new_v4(), &[(a, 2), (b, 3), (unknown, 1)]),
    )
    .await;
    assert_eq!((stock(&pool, a).await, stock(&pool, b).await), (5, 1));
    let events = outbox_payloads(&pool).await;
    assert_eq!(events[0]["type"], "inventory.rejected");
    let reason = events[0]["data"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("Scarce (requested 3, available 1)"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("unknown product {unknown}")),
        "{reason}"
    );
    assert_eq!(
        events[0]["data"]["short_items"].as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn cancelling_releases_once_and_repeats_change_nothing() {
    let (_database, pool) = support::database().await;
    let a = product(&pool, "A", 5).await;
    let order = Uuid::new_v4();
    apply(&pool, &created(order, &[(a, 3)])).await;
    // The same order announced again (a new event id) reserves nothing more.
    apply(&pool, &created(order, &[(a, 3)])).await;
    assert_eq!(stock(&pool, a).await, 2);
    apply(&pool, &cancelled(order)).await;
    apply(&pool, &cancelled(order)).await;
    assert_eq!(stock(&pool, a).await, 5);
    assert_eq!(outbox_payloads(&pool).await.len(), 1);
}

#[tokio::test]
async fn a_cancel_that_overtakes_its_order_leaves_a_tombstone() {
    let (_database, pool) = support::database().await;
    let a = product(&pool, "A", 5).await;
    let order = Uuid::new_v4();
    apply(&pool, &cancelled(order)).await;
    apply(&pool, &created(order, &[(a, 3)])).await;
    assert_eq!(stock(&pool, a).await, 5);
    assert!(outbox_payloads(&pool).await.is_empty());
}

#[tokio::test]
async fn concurrent_reservations_never_oversell() {
    let (_database, pool) = support::database().await;
    let a = product(&pool, "Hot", 10).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (pool, event) = (pool.clone(), created(Uuid::new_v4(), &[(a, 1)]));
        tasks.spawn(async move { apply(&pool, &event).await });
    }
    tasks.join_all().await;
    assert_eq!(stock(&pool, a).await, 0);
    let kinds: Vec<String> = outbox_payloads(&pool)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "inventory.reserved").count(),
        10
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "inventory.rejected").count(),
        20
    );
}

/// Units of `product` held by orders still in checkout (`RESERVED` rows).
async fn reserved(pool: &PgPool, product: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum((item->>'quantity')::bigint), 0)::bigint \
         FROM stock_reservations r, jsonb_array_elements(r.items) item \
         WHERE r.status = 'RESERVED' AND item->>'product_id' = $1::text",
    )
    .bind(product)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_order_created_and_cancelled_at_once_keeps_no_stock() {
    // The reaper cancels an order while product-service may still be
    // reserving it: both events of each order are handled at the same time.
    const ORDERS: usize = 120;
    const INITIAL: i32 = 10_000;
    let (_database, pool) = support::database().await;
    let a = product(&pool, "Raced", INITIAL).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..ORDERS {
        let pool = pool.clone();
        let order = Uuid::new_v4();
        let (create, cancel) = (created(order, &[(a, 3)]), cancelled(order));
        tasks.spawn(async move {
            tokio::join!(apply(&pool, &create), apply(&pool, &cancel));
        });
    }
    // Orders that are only created keep their stock, and it adds up.
    for _ in 0..5 {
        apply(&pool, &created(Uuid::new_v4(), &[(a, 2)])).await;
    }
    tasks.join_all().await;

    assert_eq!(
        reserved(&pool, a).await,
        10,
        "only the uncancelled orders hold stock"
    );
    assert_eq!(stock(&pool, a).await, INITIAL - 10);
    let decisions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM stock_reservations GROUP BY status ORDER BY status",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let orders = i64::try_from(ORDERS).unwrap();
    assert_eq!(
        decisions,
        [("RELEASED".to_owned(), orders), ("RESERVED".to_owned(), 5)]
    );
}
