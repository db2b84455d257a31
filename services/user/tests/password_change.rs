//! `PUT /api/users/me/password`: the current password is required (and
//! throttled like a login), the new one follows the registration rules, and
//! a change ends every other login of the account.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use storekeeper_kit::testing::TestResponse;
use support::{Ctx, PASSWORD, Tokens};
use user_service::{Settings, config::ThrottleConfig};

/// A new password built at run time (no literal password in the source).
fn new_password() -> String {
    format!("{}-{}", "Fresh Horse", 8)
}

async fn change(ctx: &Ctx, access_token: &str, current: &str, new: &str) -> TestResponse {
    ctx.app
        .put("/api/users/me/password")
        .bearer(access_token)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
}

#[tokio::test]
async fn a_change_ends_every_other_login_and_returns_a_new_one() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let here = ctx.tokens("ann@example.com").await;
    let other_tab = ctx.tokens("ann@example.com").await;
    let new = new_password();

    let response = change(&ctx, &here.access_token, PASSWORD, &new).await;
    response.assert_status(StatusCode::OK);
    let fresh: Tokens = response.json();
    assert!(ctx.keys.verifier.verify(&fresh.access_token).is_ok());

    for old in [&here.refresh_token, &other_tab.refresh_token] {
        ctx.refresh(old)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    ctx.refresh(&fresh.refresh_token)
        .await
        .assert_status(StatusCode::OK);
    ctx.login("ann@example.com", PASSWORD)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    ctx.login("ann@example.com", &new)
        .await
        .assert_status(StatusCode::OK);
    let (reasons,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM refresh_families WHERE revoked_reason = 'password-change'",
    )
    .fetch_one(&ctx.pool)
    .await
    .unwrap();
    assert_eq!(reasons, 2);
    assert!(ctx.metrics_text().contains("user_password_changes_total 1"));
}

#[tokio::test]
async fn bad_input_is_422_by_field_and_a_token_is_required() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let tokens = ctx.tokens("ann@example.com").await;
    let problem = change(&ctx, &tokens.access_token, "not it at all", &new_password())
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "current_password");
    let problem = change(&ctx, &tokens.access_token, PASSWORD, "short")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "new_password");
    let problem = change(&ctx, &tokens.access_token, PASSWORD, PASSWORD)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(problem.errors[0].message.contains("differ"));
    let problem = change(&ctx, &tokens.access_token, "", "")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors.len(), 2);
    ctx.app
        .put("/api/users/me/password")
        .json(&json!({"current_password": PASSWORD, "new_password": new_password()}))
        .send()
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    ctx.app
        .put("/api/users/me/password")
        .bearer(&tokens.access_token)
        .json(&json!({"current_password": 7}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    // Nothing changed: the old password and the login still work.
    ctx.refresh(&tokens.refresh_token)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_a_login() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::with_settings(
        pool,
        Settings {
            throttle: ThrottleConfig {
                max_failures_per_account: 2,
                window: Duration::from_mins(1),
                ..ThrottleConfig::default()
            },
            ..Settings::default()
        },
    );
    ctx.register("ann@example.com").await;
    let tokens = ctx.tokens("ann@example.com").await;
    for guess in ["first guess 1", "second guess 2"] {
        change(&ctx, &tokens.access_token, guess, &new_password())
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    let response = change(&ctx, &tokens.access_token, PASSWORD, &new_password()).await;
    response.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert!(response.header("retry-after").is_some());
}
