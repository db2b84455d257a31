//! Public catalog reads: categories, list (filter, search, sort, pages),
//! detail, images, and every way a client can get them wrong.

// Helpers outside #[test] functions panic on malformed fixtures too.
#![allow(clippy::unwrap_used)]

mod support;

use http::StatusCode;
use serde_json::Value;
use support::Ctx;

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn categories_are_listed_alphabetically() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let response = ctx.app.get("/api/categories").send().await;
    response.assert_status(StatusCode::OK);
    let categories: Vec<Value> = response.json();
    assert_eq!(categories.len(), 8);
    assert_eq!(categories[0]["name"], "Audio");
    assert!(categories.iter().any(|c| c["slug"] == "coffee-tea"));
    ctx.cleanup().await;
}

#[tokio::test]
async fn list_defaults_to_first_page_by_name() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let page: Value = ctx.app.get("/api/products").send().await.json();
    assert_eq!(page["page"], 1);
    assert_eq!(page["per_page"], 20);
    assert_eq!(page["total"], 64);
    let names = names(&page);
    assert_eq!(names.len(), 20);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let first = &page["items"][0];
    for field in [
        "id",
        "slug",
        "name",
        "description",
        "price_cents",
        "currency",
        "image_url",
        "stock",
        "category",
        "category_name",
        "created_at",
        "updated_at",
    ] {
        assert!(!first[field].is_null(), "missing {field}: {first}");
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn pages_cover_the_catalog_without_overlap() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let mut seen = Vec::new();
    for page in 1..=4 {
        let body: Value = ctx
            .app
            .get(&format!(
                "/api/products?per_page=17&page={page}&sort=price_asc"
            ))
            .send()
            .await
            .json();
        assert_eq!(body["total"], 64);
        seen.extend(names(&body));
    }
    assert_eq!(seen.len(), 64);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 64);
    let beyond: Value = ctx.app.get("/api/products?page=99").send().await.json();
    assert_eq!(beyond["items"].as_array().unwrap().len(), 0);
    assert_eq!(beyond["total"], 64);
    ctx.cleanup().await;
}

#[tokio::test]
async fn category_filter_and_sorts() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let audio: Value = ctx
        .app
        .get("/api/products?category=audio&sort=price_desc")
        .send()
        .await
        .json();
    assert_eq!(audio["total"], 8);
    let items = audio["items"].as_array().unwrap();
    assert!(items.iter().all(|p| p["category"] == "audio"));
    let prices: Vec<i64> = items
        .iter()
        .map(|p| p["price_cents"].as_i64().unwrap())
        .collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");

    let cheap: Value = ctx
        .app
        .get("/api/products?sort=price_asc&per_page=1")
        .send()
        .await
        .json();
    assert_eq!(cheap["items"][0]["slug"], "gel-pen-pack");

    sqlx::query(
        "UPDATE products SET created_at = now() + interval '1 minute' WHERE slug = 'foam-roller'",
    )
    .execute(&ctx.pool)
    .await
    .unwrap();
    let newest: Value = ctx
        .app
        .get("/api/products?sort=newest&per_page=1")
        .send()
        .await
        .json();
    assert_eq!(newest["items"][0]["slug"], "foam-roller");

    let none: Value = ctx
        .app
        .get("/api/products?category=no-such-category")
        .send()
        .await
        .json();
    assert_eq!(none["total"], 0);
    ctx.cleanup().await;
}

#[tokio::test]
async fn full_text_search_ranks_name_matches() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let kettle: Value = ctx.app.get("/api/products?q=kettle").send().await.json();
    assert_eq!(kettle["items"][0]["slug"], "gooseneck-pour-over-kettle");
    // Stemming: "headphones" finds "headphone".
    let headphone: Value = ctx.app.get("/api/products?q=headphone").send().await.json();
    assert!(headphone["total"].as_i64().unwrap() >= 3, "{headphone}");
    // Web-search syntax: exclusion.
    let excluded: Value = ctx
        .app
        .get("/api/products?q=headphones%20-studio")
        .send()
        .await
        .json();
    assert!(
        excluded["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["slug"] != "studio-monitor-headphones")
    );
    // Search within a category, sorted by price.
    let filtered: Value = ctx
        .app
        .get("/api/products?q=steel&category=kitchen&sort=price_asc")
        .send()
        .await
        .json();
    let items = filtered["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|p| p["category"] == "kitchen"));
    ctx.cleanup().await;
}

#[tokio::test]
async fn hostile_and_unicode_search_text_is_just_text() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    for q in [
        "'; DROP TABLE products; --",
        "\" OR 1=1 --",
        "a:* & !b | (c <-> d)",
        "%_\\",
        "))))((((",
        "café crème brûlée",
        "日本語のノート",
        "🙂☕",
        "the",
        "&",
        "-",
        "\"",
    ] {
        let uri = format!("/api/products?q={}", urlencode(q));
        let response = ctx.app.get(&uri).send().await;
        response.assert_status(StatusCode::OK);
        let body: Value = response.json();
        assert!(body["total"].is_i64(), "{q}: {body}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(count, 64);
    ctx.cleanup().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn bad_list_parameters_are_400_problems() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    for uri in [
        "/api/products?page=0",
        "/api/products?page=-1",
        "/api/products?page=abc",
        "/api/products?page=10001",
        "/api/products?page=99999999999999999999",
        "/api/products?per_page=0",
        "/api/products?per_page=101",
        "/api/products?per_page=1.5",
        "/api/products?sort=cheapest",
        "/api/products?sort=relevance",
        "/api/products?category=Not%20A%20Slug",
        "/api/products?category=%27%3B%20drop",
    ] {
        let response = ctx.app.get(uri).send().await;
        let problem = response.assert_problem(StatusCode::BAD_REQUEST, "invalid-query");
        assert!(problem.detail.is_some(), "{uri}");
    }
    let long = "x".repeat(201);
    ctx.app
        .get(&format!("/api/products?q={long}"))
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid-query");
    ctx.cleanup().await;
}

#[tokio::test]
async fn detail_by_id_and_by_slug() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let by_slug = ctx.app.get("/api/products/cork-yoga-mat").send().await;
    by_slug.assert_status(StatusCode::OK);
    let product: Value = by_slug.json();
    assert_eq!(product["name"], "Cork Yoga Mat");
    assert_eq!(product["category"], "fitness");
    assert_eq!(product["price_cents"], 7900);
    assert_eq!(product["currency"], "USD");
    assert_eq!(product["image_url"], "/images/fitness/cork-yoga-mat.svg");
    let id = product["id"].as_str().unwrap();
    let by_id: Value = ctx
        .app
        .get(&format!("/api/products/{id}"))
        .send()
        .await
        .json();
    assert_eq!(by_id, product);
    ctx.cleanup().await;
}

#[tokio::test]
async fn unknown_products_are_404_problems() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    for uri in [
        "/api/products/00000000-0000-0000-0000-000000000000",
        "/api/products/no-such-product",
        "/api/products/NOT%20A%20SLUG",
        "/api/products/%27%20OR%201%3D1",
    ] {
        ctx.app
            .get(uri)
            .send()
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    ctx.app
        .get("/api/nothing-here")
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.app
        .put("/api/products")
        .send()
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    ctx.cleanup().await;
}

#[tokio::test]
async fn placeholder_images_are_served_locally() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let product: Value = ctx
        .app
        .get("/api/products/fountain-pen-fine")
        .send()
        .await
        .json();
    let response = ctx
        .app
        .get(product["image_url"].as_str().unwrap())
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("image/svg+xml"));
    assert!(response.text().contains("Fountain Pen Fine"));
    for uri in [
        "/images/stationery/fountain-pen-fine.png",
        "/images/..%2Fetc/passwd.svg",
        "/images/a/%3Cscript%3E.svg",
    ] {
        ctx.app
            .get(uri)
            .send()
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not-found");
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn a_batch_read_answers_in_the_order_asked_and_leaves_unknown_ids_out() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let id_of = |slug: &'static str| {
        let app = &ctx.app;
        async move {
            let product: Value = app
                .get(&format!("/api/products/{slug}"))
                .send()
                .await
                .json();
            product["id"].as_str().unwrap().to_owned()
        }
    };
    let (mat, kettle) = (
        id_of("cork-yoga-mat").await,
        id_of("gooseneck-pour-over-kettle").await,
    );
    let unknown = "00000000-0000-0000-0000-000000000000";
    let response = ctx
        .app
        .get(&format!(
            "/api/products:batchGet?ids={kettle},{unknown},{mat},{kettle}"
        ))
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    let batch: Value = response.json();
    let products = batch["products"].as_array().unwrap();
    let ids: Vec<&str> = products.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [kettle.as_str(), mat.as_str()]);
    let mat_alone: Value = ctx
        .app
        .get(&format!("/api/products/{mat}"))
        .send()
        .await
        .json();
    assert_eq!(products[1], mat_alone);
    ctx.cleanup().await;
}

#[tokio::test]
async fn a_batch_read_is_current_where_a_cached_read_is_not() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let cached: Value = ctx
        .app
        .get("/api/products/cork-yoga-mat")
        .send()
        .await
        .json();
    let id = cached["id"].as_str().unwrap();
    // Cached now; a change made behind the service's back (no
    // invalidation) stays unseen by the cached read.
    ctx.app.get(&format!("/api/products/{id}")).send().await;
    sqlx::query("UPDATE products SET price_cents = 8900 WHERE slug = 'cork-yoga-mat'")
        .execute(&ctx.pool)
        .await
        .unwrap();
    let still: Value = ctx
        .app
        .get(&format!("/api/products/{id}"))
        .send()
        .await
        .json();
    assert_eq!(still["price_cents"], 7900);
    let batch: Value = ctx
        .app
        .get(&format!("/api/products:batchGet?ids={id}"))
        .send()
        .await
        .json();
    assert_eq!(batch["products"][0]["price_cents"], 8900);
    ctx.cleanup().await;
}

#[tokio::test]
async fn bad_batch_ids_are_400_problems_naming_the_parameter() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let many: Vec<String> = (0..101)
        .map(|n| format!("00000000-0000-0000-0000-{n:012}"))
        .collect();
    for uri in [
        "/api/products:batchGet?ids=kettle".to_owned(),
        "/api/products:batchGet?ids=".to_owned(),
        "/api/products:batchGet?ids=00000000-0000-0000-0000-000000000000,,".to_owned(),
        format!("/api/products:batchGet?ids={}", many.join(",")),
    ] {
        let problem = ctx
            .app
            .get(&uri)
            .send()
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid-query");
        assert!(
            !problem.errors.is_empty() && problem.errors.iter().all(|e| e.field == "ids"),
            "{uri}: {problem:?}"
        );
    }
    ctx.app
        .get("/api/products:batchGet")
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid-query");
    ctx.cleanup().await;
}
