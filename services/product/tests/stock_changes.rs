//! Admin stock changes are deltas: an edit racing reservations never undoes
//! them, a removal below zero is refused, and the admin sees what is on
//! hand beside what orders in checkout hold. An absolute stock applies only
//! to the version of the product it was read at (`If-Match`).

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use http::StatusCode;
use product_service::inventory::Inventory;
use serde_json::{Value, json};
use sqlx::PgPool;
use storekeeper_kit::{
    events::{
        Envelope, Handler,
        envelope::{EventItem, OrderCancelled, OrderCreated, OrderPaid},
    },
    testing::TestResponse,
};
use support::{Ctx, new_product};
use uuid::Uuid;

fn created(order: Uuid, product: Uuid, quantity: i32) -> Envelope {
    let data = OrderCreated {
        order_id: order,
        user_id: Uuid::new_v4(),
        items: vec![EventItem {
            product_id: product,
            quantity,
        }],
        total_cents: 100,
        currency: "USD".into(),
    };
    Envelope::new(&data, order).unwrap()
}

fn paid(order: Uuid) -> Envelope {
    let data = OrderPaid {
        order_id: order,
        user_id: Uuid::new_v4(),
        total_cents: 100,
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

async fn levels(ctx: &Ctx, id: &str) -> Value {
    let response = ctx
        .app
        .get(&format!("/api/products/{id}/stock"))
        .bearer(&ctx.admin_token())
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    response.json()
}

async fn patch_if_match(ctx: &Ctx, id: &str, body: &Value, tag: &str) -> TestResponse {
    ctx.app
        .patch(&format!("/api/products/{id}"))
        .bearer(&ctx.admin_token())
        .header("if-match", tag)
        .json(body)
        .send()
        .await
}

async fn patch(ctx: &Ctx, id: &str, body: &Value) -> TestResponse {
    ctx.app
        .patch(&format!("/api/products/{id}"))
        .bearer(&ctx.admin_token())
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn an_admin_edit_racing_50_reservations_leaves_stock_adding_up() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool.clone()).seeded().await;
    let mut body = new_product("racing-kettle");
    body["stock"] = json!(100);
    let product = ctx.create(&body).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let product_id: Uuid = id.parse().unwrap();

    let reservations = (0..50).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            apply(&pool, &created(Uuid::new_v4(), product_id, 1)).await;
        })
    });
    let reservations: Vec<_> = reservations.collect();
    // Meanwhile the admin fixes a typo ten times and restocks ten times, as
    // a form loaded before the reservations would.
    for round in 0..10 {
        let typo = patch(
            &ctx,
            &id,
            &json!({ "name": format!("Racing Kettle {round}") }),
        )
        .await;
        typo.assert_status(StatusCode::OK);
        let restock = patch(&ctx, &id, &json!({ "stock_delta": 2 })).await;
        restock.assert_status(StatusCode::OK);
    }
    for reservation in reservations {
        reservation.await.unwrap();
    }

    let levels = levels(&ctx, &id).await;
    assert_eq!(levels["available"], 100 + 20 - 50, "{levels}");
    assert_eq!(levels["reserved"], 50, "{levels}");
    let product: Value = ctx
        .app
        .get(&format!("/api/products/{id}"))
        .send()
        .await
        .json();
    assert_eq!(product["stock"], 70);
    assert_eq!(product["name"], "Racing Kettle 9");
    ctx.cleanup().await;
}

#[tokio::test]
async fn reserved_counts_orders_in_checkout_only() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool.clone()).seeded().await;
    let mut body = new_product("counted-mug");
    body["stock"] = json!(10);
    let id = ctx.create(&body).await["id"].as_str().unwrap().to_owned();
    let product_id: Uuid = id.parse().unwrap();
    let orders: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for order in &orders {
        apply(&pool, &created(*order, product_id, 2)).await;
    }
    assert_eq!(
        levels(&ctx, &id).await,
        json!({"product_id": id, "available": 4, "reserved": 6})
    );

    apply(&pool, &paid(orders[0])).await;
    apply(&pool, &cancelled(orders[1])).await;
    // A repeated or late `order.paid` changes nothing more.
    apply(&pool, &paid(orders[0])).await;
    apply(&pool, &paid(orders[1])).await;
    assert_eq!(
        levels(&ctx, &id).await,
        json!({"product_id": id, "available": 6, "reserved": 2})
    );
    ctx.cleanup().await;
}

#[tokio::test]
async fn a_removal_below_zero_is_refused_with_what_is_on_hand() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let id = ctx.create(&new_product("scarce-cup")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = patch(&ctx, &id, &json!({ "stock_delta": -6 })).await;
    let problem = refused.assert_problem(StatusCode::CONFLICT, "insufficient-stock");
    assert!(
        problem.detail.as_deref().unwrap().contains("5 are on hand"),
        "{problem:?}"
    );
    let both = patch(&ctx, &id, &json!({ "stock": 1, "stock_delta": 1 })).await;
    both.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let taken = patch(&ctx, &id, &json!({ "stock_delta": -5 })).await;
    taken.assert_status(StatusCode::OK);
    assert_eq!(taken.json::<Value>()["stock"], 0);
    ctx.app
        .get(&format!("/api/products/{}/stock", Uuid::new_v4()))
        .bearer(&ctx.admin_token())
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.app
        .get(&format!("/api/products/{id}/stock"))
        .bearer(&ctx.customer_token())
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    ctx.cleanup().await;
}

#[tokio::test]
async fn an_absolute_stock_applies_only_to_the_version_it_was_read_at() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool.clone()).seeded().await;
    let mut body = new_product("counted-jug");
    body["stock"] = json!(10);
    let id = ctx.create(&body).await["id"].as_str().unwrap().to_owned();
    let product_id: Uuid = id.parse().unwrap();

    let unguarded = patch(&ctx, &id, &json!({ "stock": 40 })).await;
    let problem =
        unguarded.assert_problem(StatusCode::PRECONDITION_REQUIRED, "precondition-required");
    assert!(
        problem.detail.as_deref().unwrap().contains("stock_delta"),
        "{problem:?}"
    );
    for not_one_version in ["*", "W/\"1\"", "\"\"", "\"abc\"", "\"1\", \"2\""] {
        patch_if_match(&ctx, &id, &json!({ "stock": 40 }), not_one_version)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    }
    assert_eq!(levels(&ctx, &id).await["available"], 10);

    // Read, then an order reserves 3, then the set based on the read.
    let read = ctx.stock_etag(&id).await;
    apply(&pool, &created(Uuid::new_v4(), product_id, 3)).await;
    let stale = patch_if_match(&ctx, &id, &json!({ "stock": 40 }), &read).await;
    let problem = stale.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    assert!(
        problem.detail.as_deref().unwrap().contains("7 on hand now"),
        "{problem:?}"
    );
    assert_eq!(
        levels(&ctx, &id).await,
        json!({"product_id": id, "available": 7, "reserved": 3}),
        "the reservation stands"
    );

    let fresh = ctx.stock_etag(&id).await;
    patch_if_match(&ctx, &id, &json!({ "stock": 40 }), &fresh)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(levels(&ctx, &id).await["available"], 40);
    assert_ne!(
        ctx.stock_etag(&id).await,
        fresh,
        "every change is a new version"
    );
    patch_if_match(&ctx, &id, &json!({ "stock": 41 }), &fresh)
        .await
        .assert_problem(StatusCode::PRECONDITION_FAILED, "precondition-failed");
    patch_if_match(
        &ctx,
        &Uuid::new_v4().to_string(),
        &json!({ "stock": 1 }),
        &fresh,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.cleanup().await;
}
