//! Login, refresh rotation with reuse detection, and logout.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::json;
use storekeeper_kit::Role;
use support::{Ctx, PASSWORD, Tokens};

#[tokio::test]
async fn login_issues_a_verifiable_access_token_and_a_refresh_token() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let user = ctx.register("ann@example.com").await;
    let tokens = ctx.tokens("  ANN@example.com").await;
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(tokens.token_type, "Bearer");
    let claims = ctx.keys.verifier.verify(&tokens.access_token).unwrap();
    assert_eq!(claims.sub.to_string(), user["id"].as_str().unwrap());
    assert_eq!(claims.role, Role::Customer);
    assert_eq!(claims.exp - claims.iat, 900);
    assert!(tokens.refresh_token.len() >= 43);
    let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.len(), 32);
    assert_ne!(stored[0].0, tokens.refresh_token.as_bytes());
    assert!(
        ctx.metrics_text()
            .contains(r#"user_logins_total{outcome="succeeded"} 1"#)
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let wrong = ctx
        .login("ann@example.com", "wrong-password-1")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    let unknown = ctx
        .login("bob@example.com", PASSWORD)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    assert_eq!(wrong.detail, unknown.detail);
    assert!(
        ctx.metrics_text()
            .contains(r#"user_logins_total{outcome="failed"} 2"#)
    );
}

#[tokio::test]
async fn login_bad_input_is_4xx() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let problem = ctx
        .login("", "")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors.len(), 2);
    let problem = ctx
        .app
        .post("/api/users/login")
        .json(&json!({"email": "ann@example.com"}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "password");
    ctx.app
        .post("/api/users/login")
        .json(&json!({"email": "ann@example.com", "password": 12_345_678_901_u64}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    ctx.app
        .post("/api/users/login")
        .raw_body("application/json", "{")
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    ctx.app
        .post("/api/users/login")
        .json(&json!({"email": "a@b.co", "password": "p".repeat(70_000)}))
        .send()
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let first = ctx.tokens("ann@example.com").await;
    let other_login = ctx.tokens("ann@example.com").await;

    let response = ctx.refresh(&first.refresh_token).await;
    response.assert_status(StatusCode::OK);
    let second: Tokens = response.json();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(ctx.keys.verifier.verify(&second.access_token).is_ok());

    // The rotated token is replayed after the 10 s grace window: the whole
    // family is revoked...
    age_rotations(&ctx, 11).await;
    let problem = ctx
        .refresh(&first.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(problem.detail.unwrap().contains("already used"));
    // ...so even the legitimate newest token no longer works.
    ctx.refresh(&second.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    // Another login (another family) is unaffected.
    ctx.refresh(&other_login.refresh_token)
        .await
        .assert_status(StatusCode::OK);

    let (reason,): (String,) =
        sqlx::query_as("SELECT revoked_reason FROM refresh_families WHERE revoked_at IS NOT NULL")
            .fetch_one(&ctx.pool)
            .await
            .unwrap();
    assert_eq!(reason, "reuse");
    assert!(
        ctx.metrics_text()
            .contains(r#"user_token_refreshes_total{outcome="reused"} 1"#)
    );
}

/// Moves every rotation `seconds` into the past (the grace window is
/// measured on the database's clock).
async fn age_rotations(ctx: &Ctx, seconds: i32) {
    sqlx::query("UPDATE refresh_tokens SET rotated_at = rotated_at - make_interval(secs => $1)")
        .bind(f64::from(seconds))
        .execute(&ctx.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_get_the_same_successor() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let first = ctx.tokens("ann@example.com").await;

    // Two tabs present the same token at the same moment.
    let tabs: Vec<_> = (0..2)
        .map(|_| {
            let app = ctx.app.clone();
            let token = first.refresh_token.clone();
            tokio::spawn(async move {
                app.post("/api/users/refresh")
                    .json(&json!({"refresh_token": token}))
                    .send()
                    .await
            })
        })
        .collect();
    let mut successors = Vec::new();
    for tab in tabs {
        let response = tab.await.unwrap();
        response.assert_status(StatusCode::OK);
        let tokens: Tokens = response.json();
        assert!(ctx.keys.verifier.verify(&tokens.access_token).is_ok());
        successors.push(tokens.refresh_token);
    }
    assert_eq!(successors[0], successors[1], "both tabs hold one successor");
    assert_ne!(successors[0], first.refresh_token);
    // A third, later look within the window gets it too.
    let again: Tokens = ctx.refresh(&first.refresh_token).await.json();
    assert_eq!(again.refresh_token, successors[0]);
    let metrics = ctx.metrics_text();
    assert!(
        metrics.contains(r#"user_token_refreshes_total{outcome="succeeded"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"user_token_refreshes_total{outcome="grace"} 2"#),
        "{metrics}"
    );
    // The family lives on: the successor rotates normally.
    let next: Tokens = ctx.refresh(&successors[0]).await.json();
    assert_ne!(next.refresh_token, successors[0]);
    let (revoked,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL")
            .fetch_one(&ctx.pool)
            .await
            .unwrap();
    assert_eq!(revoked, 0);
    // The stored successor is sealed: not the token's bytes.
    let (sealed,): (Vec<u8>,) = sqlx::query_as(
        "SELECT successor_sealed FROM refresh_tokens WHERE successor_hash = sha256($1)",
    )
    .bind(successors[0].as_bytes())
    .fetch_one(&ctx.pool)
    .await
    .unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&successors[0]).unwrap();
    assert_eq!(sealed.len(), raw.len());
    assert_ne!(sealed, raw);
}

#[tokio::test]
async fn the_grace_window_never_hands_out_a_superseded_successor() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let first = ctx.tokens("ann@example.com").await;
    let second: Tokens = ctx.refresh(&first.refresh_token).await.json();
    let third: Tokens = ctx.refresh(&second.refresh_token).await.json();
    // Within the window, but the family has moved on twice: that is reuse.
    ctx.refresh(&first.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    ctx.refresh(&third.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn reuse_after_a_configured_window_revokes_the_family() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::with_settings(
        pool,
        user_service::Settings {
            refresh_reuse_grace: std::time::Duration::from_secs(1),
            ..user_service::Settings::default()
        },
    );
    ctx.register("ann@example.com").await;
    let first = ctx.tokens("ann@example.com").await;
    let second: Tokens = ctx.refresh(&first.refresh_token).await.json();
    let within: Tokens = ctx.refresh(&first.refresh_token).await.json();
    assert_eq!(within.refresh_token, second.refresh_token);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let problem = ctx
        .refresh(&first.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(problem.detail.unwrap().contains("already used"));
    ctx.refresh(&second.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn refresh_picks_up_role_changes() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let tokens = ctx.tokens("ann@example.com").await;
    sqlx::query("UPDATE users SET role = 'admin'")
        .execute(&ctx.pool)
        .await
        .unwrap();
    let refreshed: Tokens = ctx.refresh(&tokens.refresh_token).await.json();
    let claims = ctx.keys.verifier.verify(&refreshed.access_token).unwrap();
    assert_eq!(claims.role, Role::Admin);
}

#[tokio::test]
async fn refresh_rejects_garbage_expired_and_malformed_input() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    for token in [
        "",
        "garbage",
        "A".repeat(43).as_str(),
        "'; DROP TABLE users; --",
    ] {
        ctx.refresh(token)
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let tokens = ctx.tokens("ann@example.com").await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(&ctx.pool)
        .await
        .unwrap();
    ctx.refresh(&tokens.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    ctx.app
        .post("/api/users/refresh")
        .json(&json!({}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    ctx.app
        .post("/api/users/refresh")
        .json(&json!({"refresh_token": 7}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn logout_revokes_the_family_and_is_idempotent() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let tokens = ctx.tokens("ann@example.com").await;
    let rotated: Tokens = ctx.refresh(&tokens.refresh_token).await.json();
    let logout = |token: String| {
        let app = ctx.app.clone();
        async move {
            app.post("/api/users/logout")
                .json(&json!({"refresh_token": token}))
                .send()
                .await
        }
    };
    logout(rotated.refresh_token.clone())
        .await
        .assert_status(StatusCode::NO_CONTENT);
    ctx.refresh(&rotated.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    logout(rotated.refresh_token)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    logout("unknown".to_owned())
        .await
        .assert_status(StatusCode::NO_CONTENT);
    ctx.app
        .post("/api/users/logout")
        .json(&json!({"token": "x"}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

#[tokio::test]
async fn a_new_login_prunes_expired_families() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let old = ctx.tokens("ann@example.com").await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(&ctx.pool)
        .await
        .unwrap();
    ctx.tokens("ann@example.com").await;
    let (families,): (i64,) = sqlx::query_as("SELECT count(*) FROM refresh_families")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(families, 1);
    ctx.refresh(&old.refresh_token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn every_json_route_rejects_bad_bodies_with_problems() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    for route in [
        "/api/users",
        "/api/users/login",
        "/api/users/refresh",
        "/api/users/logout",
    ] {
        let post = || ctx.app.post(route);
        post()
            .raw_body("application/json", "{\"refresh_token\": ")
            .send()
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
        post()
            .raw_body("application/json", "")
            .send()
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
        post()
            .json(&json!({}))
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        post()
            .json(&json!({"email": [], "password": {}, "name": 1, "refresh_token": null}))
            .send()
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
        post()
            .body("{}")
            .send()
            .await
            .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
        post()
            .json(&json!({"refresh_token": "r".repeat(80_000)}))
            .send()
            .await
            .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
        ctx.app
            .get(route)
            .send()
            .await
            .assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    }
}

#[tokio::test]
async fn weaker_password_hashes_are_upgraded_at_login() {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version, password_hash::SaltString};
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(1024, 1, 1, None).unwrap(),
    )
    .hash_password(
        PASSWORD.as_bytes(),
        &SaltString::generate(&mut rand::rngs::OsRng),
    )
    .unwrap()
    .to_string();
    sqlx::query("UPDATE users SET password_hash = $1")
        .bind(&weak)
        .execute(&ctx.pool)
        .await
        .unwrap();
    ctx.tokens("ann@example.com").await;
    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    ctx.tokens("ann@example.com").await;
}
