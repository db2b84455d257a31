//! Registration and `/me`: success paths, every bad-input path, and what
//! is stored.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use storekeeper_kit::{Role, testing::tampered};
use support::{Ctx, PASSWORD};
use uuid::Uuid;

#[tokio::test]
async fn register_creates_a_customer_with_a_normalized_email() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let user = ctx.register("  Ann@Example.COM ").await;
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["name"], "Ann Lee");
    assert_eq!(user["role"], "customer");
    assert!(Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    assert!(ctx.metrics_text().contains("user_registrations_total 1"));
}

#[tokio::test]
async fn the_password_is_stored_only_as_an_argon2id_hash() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let (hash,): (String,) =
        sqlx::query_as("SELECT password_hash FROM users WHERE email = 'ann@example.com'")
            .fetch_one(&ctx.pool)
            .await
            .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let row: (String,) = sqlx::query_as("SELECT row_to_json(users)::text FROM users")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert!(!row.0.contains(PASSWORD), "{}", row.0);
}

#[tokio::test]
async fn a_taken_email_is_409_whatever_its_case() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    ctx.app
        .post("/api/users")
        .json(&json!({"email": "ANN@example.com", "password": "another-pass-9", "name": "Ann"}))
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn invalid_fields_are_422_naming_each_field() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let cases = [
        (
            json!({"email": "nope", "password": PASSWORD, "name": "Ann"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@b.co", "password": "short", "name": "Ann"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@b.co", "password": "alllowercaseletters", "name": "Ann"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@b.co", "password": "x".repeat(129) + "1", "name": "Ann"}),
            vec!["password"],
        ),
        (
            json!({"email": "annie@b.co", "password": "annie@b.co-123", "name": "Ann"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@b.co", "password": PASSWORD, "name": "   "}),
            vec!["name"],
        ),
        (
            json!({"email": "", "password": "", "name": ""}),
            vec!["email", "password", "name"],
        ),
    ];
    for (body, fields) in cases {
        let problem = ctx
            .app
            .post("/api/users")
            .json(&body)
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        let got: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, fields, "{body}");
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn malformed_bodies_get_4xx_problems() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let post = || ctx.app.post("/api/users");
    post()
        .raw_body("application/json", "{\"email\": \"a@b.co\",")
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    let problem = post()
        .json(&json!({"email": "a@b.co", "password": PASSWORD}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "name");
    let problem = post()
        .json(&json!({"email": 42, "password": PASSWORD, "name": "Ann"}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "email");
    post()
        .json(&json!(["not", "an", "object"]))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    post()
        .raw_body("text/plain", "email=a@b.co")
        .send()
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    post()
        .json(&json!({"email": "a@b.co", "password": PASSWORD, "name": "x".repeat(100_000)}))
        .send()
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    ctx.app
        .put("/api/users")
        .send()
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    ctx.app
        .get("/api/users/nobody")
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn me_returns_the_callers_account() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let user = ctx.register("ann@example.com").await;
    let tokens = ctx.tokens("ann@example.com").await;
    let response = ctx
        .app
        .get("/api/users/me")
        .bearer(&tokens.access_token)
        .send()
        .await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.json::<Value>(), user);
}

#[tokio::test]
async fn me_rejects_missing_malformed_expired_tampered_and_forged_tokens() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let user = ctx.register("ann@example.com").await;
    let id = Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    let tokens = ctx.tokens("ann@example.com").await;
    let headers = [
        None,
        Some("Bearer".to_owned()),
        Some("Token abc".to_owned()),
        Some("Bearer not-a-jwt".to_owned()),
        Some(format!("Bearer {}", ctx.keys.expired(id, Role::Customer))),
        Some(format!("Bearer {}", tampered(&tokens.access_token))),
        Some(format!("Bearer {}", ctx.keys.forged(id, Role::Customer))),
        Some(format!("Bearer {}", tokens.refresh_token)),
    ];
    for header in headers {
        let mut request = ctx.app.get("/api/users/me");
        if let Some(header) = &header {
            request = request.header("authorization", header);
        }
        let response = request.send().await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{header:?}: {}",
            response.text()
        );
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn me_for_a_deleted_account_is_404() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let (_, token) = ctx.keys.customer();
    ctx.app
        .get("/api/users/me")
        .bearer(&token)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}
