//! order-service's API: cart edits, checkout input checks, idempotency
//! keys, and one shopper never reaching another's cart or orders.

// Test fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::{Value, json};
use shop_tests::{ADDRESS, Shop};
use uuid::Uuid;

#[tokio::test]
async fn the_cart_adds_changes_and_removes_lines_within_bounds() {
    let shop = Shop::start().await;
    let ann = shop.shopper();
    let mug = shop.product("Mug", 900, 10).await;
    shop.add_to_cart(&ann, mug, 2).await;
    shop.add_to_cart(&ann, mug, 3).await;
    let cart: Value = shop
        .order
        .get("/api/cart")
        .bearer(&ann.token)
        .send()
        .await
        .json();
    assert_eq!(cart["items"][0]["quantity"], 5);

    let add = |body: Value| {
        shop.order
            .post("/api/cart/items")
            .bearer(&ann.token)
            .json(&body)
            .send()
    };
    add(json!({"product_id": mug, "quantity": 0}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    add(json!({"product_id": mug, "quantity": 95}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let problem = add(json!({"product_id": Uuid::new_v4(), "quantity": 1}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "product_id");
    add(json!({"product_id": "not-a-uuid", "quantity": 1}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");

    let line = format!("/api/cart/items/{mug}");
    let patched: Value = shop
        .order
        .patch(&line)
        .bearer(&ann.token)
        .json(&json!({"quantity": 7}))
        .send()
        .await
        .json();
    assert_eq!(patched["items"][0]["quantity"], 7);
    shop.order
        .patch(&line)
        .bearer(&ann.token)
        .json(&json!({"quantity": 100}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    shop.order
        .patch(&format!("/api/cart/items/{}", Uuid::new_v4()))
        .bearer(&ann.token)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    shop.order
        .delete(&line)
        .bearer(&ann.token)
        .send()
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let cart: Value = shop
        .order
        .get("/api/cart")
        .bearer(&ann.token)
        .send()
        .await
        .json();
    assert_eq!(cart["items"], json!([]));
    shop.order
        .get("/api/cart")
        .send()
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    shop.finish().await;
}

#[tokio::test]
async fn checkout_checks_its_input_and_never_takes_client_prices() {
    let shop = Shop::start().await;
    let bea = shop.shopper();
    let teapot = shop.product("Pot", 2_500, 10).await;
    let method = shop.card(&bea, "4242424242424242").await;

    let empty = shop.checkout(&bea, "k-empty", method).await;
    empty.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    shop.add_to_cart(&bea, teapot, 1).await;

    let post = |key: Option<&str>, body: Value| {
        let mut request = shop
            .order
            .post("/api/orders")
            .bearer(&bea.token)
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    let good = json!({"payment_method_id": method, "shipping_address": ADDRESS()});
    post(None, good.clone())
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "idempotency-key-missing");
    let mut bad_address = good.clone();
    bad_address["shipping_address"]["country"] = json!("Britain");
    bad_address["shipping_address"]["name"] = json!("");
    let problem = post(Some("k-bad"), bad_address)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["shipping_address.name", "shipping_address.country"]
    );
    let mut priced = good.clone();
    priced["total_cents"] = json!(1);
    post(Some("k-price"), priced)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");

    // The refused requests did not use up the key: it still works.
    let placed = post(Some("k-bad"), good.clone()).await;
    placed.assert_status(StatusCode::CREATED);
    assert_eq!(placed.json::<Value>()["total_cents"], 2_500);
    shop.finish().await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer_and_refuse_another_body() {
    let shop = Shop::start().await;
    let cy = shop.shopper();
    let vase = shop.product("Vase", 3_300, 10).await;
    shop.add_to_cart(&cy, vase, 1).await;
    let method = shop.card(&cy, "4242424242424242").await;
    let first = shop.checkout(&cy, "order-42", method).await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = shop.checkout(&cy, "order-42", method).await;
    again.assert_status(StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "byte-for-byte the first response");

    let other_method = shop.card(&cy, "4242424242424242").await;
    shop.checkout(&cy, "order-42", other_method)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused");
    // Keys belong to a shopper: another shopper's identical key is theirs.
    let dee = shop.shopper();
    shop.checkout(&dee, "order-42", method)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    shop.finish().await;
}

#[tokio::test]
async fn a_full_cart_takes_no_new_line_but_more_of_a_line_it_holds() {
    let shop = Shop::start().await;
    let ann = shop.shopper();
    let mut products = Vec::new();
    for n in 0..=50 {
        products.push(shop.product(&format!("Thing {n}"), 100, 10).await);
    }
    for product in &products[..50] {
        shop.add_to_cart(&ann, *product, 1).await;
    }
    let add = |product: Uuid, quantity: i32| {
        shop.order
            .post("/api/cart/items")
            .bearer(&ann.token)
            .json(&json!({"product_id": product, "quantity": quantity}))
            .send()
    };
    let problem = add(products[50], 1)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    assert!(
        problem.detail.as_deref().unwrap_or_default().contains("50"),
        "{problem:?}"
    );
    let cart: Value = add(products[0], 2).await.json();
    let items = cart["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    assert_eq!(items[0]["product_id"], products[0].to_string());
    assert_eq!(items[0]["quantity"], 3);
    let problem = add(products[0], 97)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "quantity");
    shop.finish().await;
}

#[tokio::test]
async fn shoppers_cannot_see_each_others_carts_or_orders() {
    let shop = Shop::start().await;
    let eve = shop.shopper();
    let fox = shop.shopper();
    let admin = shop.admin();
    let jar = shop.product("Jar", 400, 10).await;
    let id = shop.buy(&eve, jar, 1, "4242424242424242").await;
    shop.add_to_cart(&eve, jar, 4).await;

    let fox_cart: Value = shop
        .order
        .get("/api/cart")
        .bearer(&fox.token)
        .send()
        .await
        .json();
    assert_eq!(fox_cart["items"], json!([]));
    shop.order
        .patch(&format!("/api/cart/items/{jar}"))
        .bearer(&fox.token)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    shop.order
        .get(&format!("/api/orders/{id}"))
        .bearer(&fox.token)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    let fox_orders: Value = shop
        .order
        .get("/api/orders")
        .bearer(&fox.token)
        .send()
        .await
        .json();
    assert_eq!(fox_orders["total"], 0);
    let payments: Value = shop
        .payment
        .get(&format!("/api/payments?order_id={id}"))
        .bearer(&fox.token)
        .send()
        .await
        .json();
    assert_eq!(payments["items"], json!([]));

    let eve_orders: Value = shop
        .order
        .get("/api/orders")
        .bearer(&eve.token)
        .send()
        .await
        .json();
    assert_eq!(eve_orders["total"], 1);
    assert_eq!(eve_orders["items"][0]["id"], id.to_string());
    let all: Value = shop
        .order
        .get("/api/orders?per_page=5")
        .bearer(&admin)
        .send()
        .await
        .json();
    assert_eq!(all["total"], 1);
    shop.order
        .get(&format!("/api/orders/{id}"))
        .bearer(&admin)
        .send()
        .await
        .assert_status(StatusCode::OK);
    shop.order
        .get("/api/orders?per_page=0")
        .bearer(&admin)
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    shop.order
        .get("/api/orders/nope")
        .bearer(&eve.token)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    let doc: Value = shop.order.get("/openapi.json").send().await.json();
    assert!(doc["paths"]["/api/orders"]["post"].is_object());
    shop.finish().await;
}
