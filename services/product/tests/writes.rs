//! Admin writes: create, update, delete, their validation, and who may call them.

mod support;

use http::StatusCode;
use serde_json::{Value, json};
use storekeeper_kit::{Role, testing::tampered};
use support::{Ctx, new_product};
use uuid::Uuid;

#[tokio::test]
async fn admin_creates_updates_and_deletes() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let token = ctx.admin_token();

    let response = ctx
        .app
        .post("/api/products")
        .bearer(&token)
        .json(&json!({
            "name": "Espresso Tamper, 58 mm",
            "description": "Stainless steel base, walnut handle.",
            "price_cents": 3500,
            "currency": "eur",
            "stock": 12,
            "category": "coffee-tea",
        }))
        .send()
        .await;
    response.assert_status(StatusCode::CREATED);
    let created: Value = response.json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        response.header("location"),
        Some(format!("/api/products/{id}").as_str())
    );
    assert_eq!(created["slug"], "espresso-tamper-58-mm");
    assert_eq!(created["currency"], "EUR");
    assert_eq!(created["category_name"], "Coffee & Tea");
    assert_eq!(
        created["image_url"],
        "/images/coffee-tea/espresso-tamper-58-mm.svg"
    );

    let version = ctx.stock_etag(&id).await;
    let response = ctx
        .app
        .patch(&format!("/api/products/{id}"))
        .bearer(&token)
        .header("if-match", &version)
        .json(&json!({ "price_cents": 3900, "stock": 0, "category": "kitchen" }))
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    let updated: Value = response.json();
    assert_eq!(updated["price_cents"], 3900);
    assert_eq!(updated["stock"], 0);
    assert_eq!(updated["category"], "kitchen");
    assert_eq!(updated["name"], created["name"]);
    assert_ne!(updated["updated_at"], created["updated_at"]);

    ctx.app
        .delete(&format!("/api/products/{id}"))
        .bearer(&token)
        .send()
        .await
        .assert_status(StatusCode::NO_CONTENT);
    ctx.app
        .get(&format!("/api/products/{id}"))
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.app
        .delete(&format!("/api/products/{id}"))
        .bearer(&token)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.cleanup().await;
}

#[tokio::test]
async fn duplicate_slug_is_409() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let token = ctx.admin_token();
    let mut body = new_product("cork-yoga-mat");
    let problem = ctx
        .app
        .post("/api/products")
        .bearer(&token)
        .json(&body)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    assert!(problem.detail.unwrap().contains("cork-yoga-mat"));

    body["slug"] = json!("fresh-slug");
    let created = ctx.create(&body).await;
    let id = created["id"].as_str().unwrap();
    ctx.app
        .patch(&format!("/api/products/{id}"))
        .bearer(&token)
        .json(&json!({ "slug": "foam-roller" }))
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
    ctx.cleanup().await;
}

#[tokio::test]
async fn invalid_fields_are_422_naming_each_field() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let token = ctx.admin_token();
    let problem = ctx
        .app
        .post("/api/products")
        .bearer(&token)
        .json(&json!({
            "name": "",
            "slug": "Bad Slug!",
            "price_cents": 0,
            "currency": "DOLLARS",
            "stock": -3,
            "image_url": "javascript:alert(1)",
            "category": "kitchen",
        }))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let mut fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "currency",
            "image_url",
            "name",
            "price_cents",
            "slug",
            "stock"
        ]
    );

    let mut body = new_product("orphan");
    body["category"] = json!("no-such-category");
    let problem = ctx
        .app
        .post("/api/products")
        .bearer(&token)
        .json(&body)
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "category");

    let id = ctx.create(&new_product("patched")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for patch in [
        json!({}),
        json!({ "price_cents": -1 }),
        json!({ "category": "no-such-category" }),
        json!({ "name": "   " }),
    ] {
        ctx.app
            .patch(&format!("/api/products/{id}"))
            .bearer(&token)
            .json(&patch)
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn malformed_bodies_are_4xx_problems() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let token = ctx.admin_token();
    let post = || ctx.app.post("/api/products").bearer(&token);

    post()
        .raw_body("application/json", "{\"name\": ")
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    post()
        .raw_body("application/json", "not json at all")
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    post()
        .raw_body("text/plain", "{}")
        .send()
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");

    let mut wrong_type = new_product("typed");
    wrong_type["price_cents"] = json!("nineteen ninety-nine");
    let problem = post()
        .json(&wrong_type)
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "price_cents");

    let mut fractional = new_product("fractional");
    fractional["price_cents"] = json!(19.99);
    post()
        .json(&fractional)
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");

    let problem = post()
        .json(&json!({ "name": "No price" }))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "price_cents");

    let mut unknown = new_product("unknown-field");
    unknown["colour"] = json!("red");
    post()
        .json(&unknown)
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");

    let mut huge = new_product("huge");
    huge["description"] = json!("x".repeat(200_000));
    post()
        .json(&huge)
        .send()
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");

    let mut overflow = new_product("overflow");
    overflow["stock"] = json!(1_u64 << 40);
    post()
        .json(&overflow)
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");

    ctx.app
        .patch("/api/products/not-a-uuid")
        .bearer(&token)
        .json(&json!({ "stock": 1 }))
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.app
        .patch(&format!("/api/products/{}", Uuid::new_v4()))
        .bearer(&token)
        .json(&json!({ "stock_delta": 1 }))
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    ctx.cleanup().await;
}

#[tokio::test]
async fn writes_need_a_valid_admin_token() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    let (user, customer) = ctx.keys.customer();
    let target = format!("/api/products/{}", Uuid::new_v4());
    let body = new_product("guarded");
    let unauthorized = [
        None,
        Some("not-a-jwt".to_owned()),
        Some(ctx.keys.expired(user, Role::Admin)),
        Some(ctx.keys.forged(user, Role::Admin)),
        Some(tampered(&customer)),
    ];
    for token in &unauthorized {
        for (method, uri) in [
            ("POST", "/api/products"),
            ("PATCH", target.as_str()),
            ("DELETE", target.as_str()),
        ] {
            let mut request = match method {
                "POST" => ctx.app.post(uri).json(&body),
                "PATCH" => ctx.app.patch(uri).json(&json!({ "stock": 1 })),
                _ => ctx.app.delete(uri),
            };
            if let Some(token) = token {
                request = request.bearer(token);
            }
            let response = request.send().await;
            response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
            assert!(
                response
                    .header("www-authenticate")
                    .unwrap()
                    .starts_with("Bearer")
            );
        }
    }
    ctx.app
        .post("/api/products")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .json(&body)
        .send()
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    for (method, uri) in [
        ("POST", "/api/products"),
        ("PATCH", target.as_str()),
        ("DELETE", target.as_str()),
    ] {
        let request = match method {
            "POST" => ctx.app.post(uri).json(&body),
            "PATCH" => ctx.app.patch(uri).json(&json!({ "stock": 1 })),
            _ => ctx.app.delete(uri),
        };
        request
            .bearer(&customer)
            .send()
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(count, 64, "no write went through");
    ctx.cleanup().await;
}

#[tokio::test]
async fn stock_can_never_go_below_zero() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool).seeded().await;
    // The reservation the checkout saga runs: conditional, atomic.
    let reserve = |n: i32| {
        sqlx::query(
            "UPDATE products SET stock = stock - $1 WHERE slug = 'kettlebell-16kg' AND stock >= $1",
        )
        .bind(n)
        .execute(&ctx.pool)
    };
    assert_eq!(reserve(22).await.unwrap().rows_affected(), 1);
    assert_eq!(reserve(1).await.unwrap().rows_affected(), 0);
    let err = sqlx::query("UPDATE products SET stock = -1 WHERE slug = 'kettlebell-16kg'")
        .execute(&ctx.pool)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().constraint(),
        Some("products_stock_non_negative")
    );
    ctx.cleanup().await;
}
