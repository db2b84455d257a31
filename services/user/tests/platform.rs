//! What surrounds the routes: the OpenAPI document matches the real
//! routes, secrets never reach the logs, and the admin bootstrap is
//! idempotent.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use storekeeper_kit::Role;
use support::{Ctx, PASSWORD};
use user_service::{config::AdminBootstrap, users};

#[tokio::test]
async fn openapi_lists_exactly_the_real_routes() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let response = ctx.app.get("/openapi.json").send().await;
    response.assert_status(StatusCode::OK);
    let doc: Value = response.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let expected = [
        ("GET", "/api/users/me"),
        ("POST", "/api/users"),
        ("POST", "/api/users/login"),
        ("POST", "/api/users/logout"),
        ("POST", "/api/users/refresh"),
        ("PUT", "/api/users/me/password"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    // Each documented operation hits a real route: the metrics record its
    // template (an unknown route would be recorded as `unmatched`).
    for (method, path) in &documented {
        let response = ctx
            .app
            .request(method.parse::<Method>().unwrap(), path)
            .json(&json!({}))
            .send()
            .await;
        assert_ne!(response.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            response.status.is_client_error(),
            "{method} {path}: {}",
            response.text()
        );
    }
    let metrics = ctx.metrics_text();
    for (method, path) in &documented {
        let label = format!(r#"method="{method}",route="{path}""#);
        assert!(metrics.contains(&label), "{label} not in {metrics}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_logs() {
    let (_database, pool) = support::database().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let ctx = Ctx::new(pool);
    ctx.register("ann@example.com").await;
    ctx.login("ann@example.com", "a-wrong-Secret-42").await;
    let tokens = ctx.tokens("ann@example.com").await;
    let next: support::Tokens = ctx.refresh(&tokens.refresh_token).await.json();
    ctx.refresh(&tokens.refresh_token).await; // within the grace window: logged
    ctx.refresh(&next.refresh_token).await;
    ctx.refresh(&tokens.refresh_token).await; // reuse: logged as a warning
    ctx.app
        .post("/api/users")
        .json(&json!({"email": "bad", "password": "another-Secret-43", "name": "x"}))
        .send()
        .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("logged in"),
        "logging was not captured: {logs}"
    );
    assert!(logs.contains("refresh token reuse detected"));
    assert!(logs.contains("within the grace window"));
    for secret in [
        PASSWORD,
        "a-wrong-Secret-42",
        "another-Secret-43",
        tokens.refresh_token.as_str(),
        next.refresh_token.as_str(),
        tokens.access_token.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test]
async fn admin_bootstrap_is_idempotent_and_follows_the_configured_password() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let admin = AdminBootstrap {
        email: " Root@Example.com".to_owned(),
        password: "first-Admin-pass-1".to_owned(),
    };
    let id = users::ensure_admin(&ctx.pool, &ctx.state.passwords, &admin)
        .await
        .unwrap();
    let again = users::ensure_admin(&ctx.pool, &ctx.state.passwords, &admin)
        .await
        .unwrap();
    assert_eq!(id, again);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    let response = ctx.login("root@example.com", "first-Admin-pass-1").await;
    response.assert_status(StatusCode::OK);
    let token: Value = response.json();
    let claims = ctx
        .keys
        .verifier
        .verify(token["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!((claims.sub, claims.role), (id, Role::Admin));

    // A rotated secret takes effect at the next start.
    let rotated = AdminBootstrap {
        password: "second-Admin-pass-2".to_owned(),
        ..admin
    };
    users::ensure_admin(&ctx.pool, &ctx.state.passwords, &rotated)
        .await
        .unwrap();
    ctx.login("root@example.com", "first-Admin-pass-1")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    ctx.login("root@example.com", "second-Admin-pass-2")
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn admin_bootstrap_promotes_an_existing_customer_and_rejects_bad_emails() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    ctx.register("boss@example.com").await;
    let admin = AdminBootstrap {
        email: "boss@example.com".to_owned(),
        password: PASSWORD.to_owned(),
    };
    users::ensure_admin(&ctx.pool, &ctx.state.passwords, &admin)
        .await
        .unwrap();
    let (role,): (String,) = sqlx::query_as("SELECT role FROM users")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(role, "admin");
    let bad = AdminBootstrap {
        email: "not-an-email".to_owned(),
        password: PASSWORD.to_owned(),
    };
    let err = users::ensure_admin(&ctx.pool, &ctx.state.passwords, &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid ADMIN_EMAIL"), "{err}");
}
