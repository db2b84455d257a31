//! The read cache: hits are counted, a write is never followed by a stale
//! read on the replica that made it, and Redis being down only makes reads
//! slower. (Across replicas: tests/near_cache.rs.)

mod support;

use http::StatusCode;
use serde_json::{Value, json};
use support::Ctx;

#[tokio::test]
async fn second_read_is_a_hit() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).tracking().await.seeded().await;
    for uri in [
        "/api/products/cork-yoga-mat",
        "/api/products?category=audio&page=1",
    ] {
        let first = ctx.app.get(uri).send().await;
        assert_eq!(first.header("x-cache"), Some("miss"), "{uri}");
        // The near-cache takes the body from the first fill, or (when that
        // fill created the counter, itself a change) from the next Redis hit.
        ctx.read_until_near(uri).await;
        let near = ctx.app.get(uri).send().await;
        assert_eq!(near.header("x-cache"), Some("near"), "{uri}");
        assert_eq!(first.body, near.body);
        assert_eq!(near.header("content-type"), Some("application/json"));
    }
    assert_eq!(ctx.cache_count("detail", "miss"), 1);
    assert_eq!(ctx.cache_count("list", "miss"), 1);
    assert!(ctx.cache_count("detail", "near") >= 1);
    assert!(ctx.cache_count("list", "near") >= 1);

    // Another replica (empty near-cache) finds the body in Redis.
    let other = ctx.replica().tracking().await;
    let third = other.app.get("/api/products/cork-yoga-mat").send().await;
    assert_eq!(third.header("x-cache"), Some("hit"));
    assert_eq!(other.cache_count("detail", "hit"), 1);
    ctx.cleanup().await;
}

#[tokio::test]
async fn not_found_is_not_cached() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let slug = "late-arrival";
    for _ in 0..2 {
        ctx.app
            .get(&format!("/api/products/{slug}"))
            .send()
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    ctx.create(&support::new_product(slug)).await;
    ctx.app
        .get(&format!("/api/products/{slug}"))
        .send()
        .await
        .assert_status(StatusCode::OK);
    ctx.cleanup().await;
}

#[tokio::test]
async fn every_write_is_visible_to_the_next_read() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).tracking().await.seeded().await;
    let token = ctx.admin_token();
    let list_uri = "/api/products?category=fitness&sort=price_asc&per_page=100";
    let search_uri = "/api/products?q=kettlebell";

    // Warm every kind of key.
    let product: Value = ctx
        .app
        .get("/api/products/kettlebell-16kg")
        .send()
        .await
        .json();
    let id = product["id"].as_str().unwrap().to_owned();
    let detail_uri = format!("/api/products/{id}");
    for uri in [
        detail_uri.as_str(),
        "/api/products/kettlebell-16kg",
        list_uri,
        search_uri,
    ] {
        ctx.read_until_near(uri).await;
    }

    // Update: detail by id, by slug, list and search all see it at once.
    ctx.app
        .patch(&detail_uri)
        .bearer(&token)
        .json(&json!({ "price_cents": 100, "name": "Kettlebell Deluxe" }))
        .send()
        .await
        .assert_status(StatusCode::OK);
    let detail: Value = ctx.app.get(&detail_uri).send().await.json();
    assert_eq!(detail["price_cents"], 100);
    let by_slug: Value = ctx
        .app
        .get("/api/products/kettlebell-16kg")
        .send()
        .await
        .json();
    assert_eq!(by_slug["name"], "Kettlebell Deluxe");
    let list: Value = ctx.app.get(list_uri).send().await.json();
    assert_eq!(list["items"][0]["id"], id.as_str(), "cheapest first now");
    assert_eq!(list["items"][0]["price_cents"], 100);
    let search: Value = ctx.app.get(search_uri).send().await.json();
    assert_eq!(search["items"][0]["name"], "Kettlebell Deluxe");

    // Slug change: the old slug stops resolving, the new one starts.
    ctx.app
        .patch(&detail_uri)
        .bearer(&token)
        .json(&json!({ "slug": "kettlebell-deluxe" }))
        .send()
        .await
        .assert_status(StatusCode::OK);
    ctx.app
        .get("/api/products/kettlebell-16kg")
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.app
        .get("/api/products/kettlebell-deluxe")
        .send()
        .await
        .assert_status(StatusCode::OK);

    // Create: the list grows.
    let before: Value = ctx.app.get(list_uri).send().await.json();
    let mut body = support::new_product("balance-board");
    body["category"] = json!("fitness");
    ctx.create(&body).await;
    let after: Value = ctx.app.get(list_uri).send().await.json();
    assert_eq!(after["total"], before["total"].as_i64().unwrap() + 1);

    // Delete: gone from detail and list.
    ctx.app
        .delete(&detail_uri)
        .bearer(&token)
        .send()
        .await
        .assert_status(StatusCode::NO_CONTENT);
    ctx.app
        .get(&detail_uri)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    let list: Value = ctx.app.get(list_uri).send().await.json();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != id.as_str())
    );
    ctx.cleanup().await;
}

#[tokio::test]
async fn stock_changes_outside_the_api_are_visible_after_invalidate() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).tracking().await.seeded().await;
    let uri = "/api/products/foam-roller";
    let product: Value = ctx.app.get(uri).send().await.json();
    ctx.read_until_near(uri).await;
    let id: uuid::Uuid = product["id"].as_str().unwrap().parse().unwrap();
    // What the checkout saga does: reserve in SQL, then invalidate.
    sqlx::query("UPDATE products SET stock = stock - 3 WHERE id = $1 AND stock >= 3")
        .bind(id)
        .execute(&ctx.pool)
        .await
        .unwrap();
    ctx.catalog.invalidate(&[id]).await;
    let after: Value = ctx.app.get(uri).send().await.json();
    assert_eq!(after["stock"], product["stock"].as_i64().unwrap() - 3);
    ctx.cleanup().await;
}

#[tokio::test]
async fn redis_down_reads_come_from_postgres() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::redis_down(pool).seeded().await;
    let token = ctx.admin_token();
    let product = ctx.app.get("/api/products/cork-yoga-mat").send().await;
    product.assert_status(StatusCode::OK);
    assert_eq!(product.header("x-cache"), Some("bypass"));
    let list = ctx.app.get("/api/products?q=yoga").send().await;
    list.assert_status(StatusCode::OK);
    assert!(list.json::<Value>()["total"].as_i64().unwrap() >= 1);
    ctx.app
        .get("/api/categories")
        .send()
        .await
        .assert_status(StatusCode::OK);

    // Writes still work; reads after them are fresh (they come from PostgreSQL).
    let id = product.json::<Value>()["id"].as_str().unwrap().to_owned();
    let version = ctx.stock_etag(&id).await;
    ctx.app
        .patch(&format!("/api/products/{id}"))
        .bearer(&token)
        .header("if-match", &version)
        .json(&json!({ "stock": 1 }))
        .send()
        .await
        .assert_status(StatusCode::OK);
    let after: Value = ctx
        .app
        .get(&format!("/api/products/{id}"))
        .send()
        .await
        .json();
    assert_eq!(after["stock"], 1);

    assert_eq!(ctx.cache_count("detail", "error"), 2);
    assert_eq!(ctx.cache_count("list", "error"), 1);
    let metrics = ctx.metrics.encode().unwrap();
    assert!(
        metrics.contains("product_cache_invalidation_failures_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_count_lookups_and_requests_by_route() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    ctx.app.get("/api/products/cork-yoga-mat").send().await;
    let metrics = ctx.metrics.encode().unwrap();
    assert!(
        metrics.contains(r#"product_cache_lookups_total{kind="detail",outcome="miss"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/api/products/{id}""#),
        "{metrics}"
    );
    ctx.cleanup().await;
}

#[tokio::test]
async fn categories_are_cached_until_the_generation_moves() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).tracking().await.seeded().await;
    let first = ctx.app.get("/api/categories").send().await;
    assert_eq!(first.header("x-cache"), Some("miss"));
    let second = ctx.app.get("/api/categories").send().await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(first.body, second.body);
    ctx.read_until_near("/api/categories").await;

    // What `product-service seed` does after changing the catalog: even with
    // no product ids, invalidation moves the generation.
    sqlx::query("UPDATE categories SET name = 'Sound' WHERE slug = 'audio'")
        .execute(&ctx.pool)
        .await
        .unwrap();
    ctx.catalog.invalidate(&[]).await;
    let categories: Vec<Value> = ctx.app.get("/api/categories").send().await.json();
    assert!(categories.iter().any(|c| c["name"] == "Sound"));
    ctx.cleanup().await;
}

#[tokio::test]
async fn a_reader_racing_a_writer_cannot_cache_stale_data() {
    use product_service::cache::{CatalogCache, Lookup};
    let (_database, pool) = support::database().await;

    let ctx = Ctx::new(pool).seeded().await;
    let metrics = storekeeper_kit::Metrics::new();
    let cache = CatalogCache::new(ctx.redis.clone(), &metrics);
    let product: Value = ctx.app.get("/api/products/foam-roller").send().await.json();
    let id: uuid::Uuid = product["id"].as_str().unwrap().parse().unwrap();

    // The reader misses and reads PostgreSQL (old data)...
    let Lookup::Miss(fill) = cache.product(id).await else {
        panic!("expected a miss");
    };
    // ...meanwhile a writer commits and invalidates...
    sqlx::query("UPDATE products SET stock = 0 WHERE id = $1")
        .bind(id)
        .execute(&ctx.pool)
        .await
        .unwrap();
    cache.invalidate(&[id]).await;
    // ...then the slow reader fills the cache with what it read before.
    cache
        .fill(fill, axum::body::Bytes::from_static(br#"{"stale":true}"#))
        .await;

    // Nobody ever sees that entry.
    assert!(matches!(cache.product(id).await, Lookup::Miss(_)));
    let fresh: Value = ctx
        .app
        .get(&format!("/api/products/{id}"))
        .send()
        .await
        .json();
    assert_eq!(fresh["stock"], 0);
    ctx.cleanup().await;
}
