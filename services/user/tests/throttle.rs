//! Login throttling against the real Redis: kicks in per account and per
//! IP, answers 429 with `Retry-After`, releases after the window, and
//! trusts `X-Forwarded-For` only when configured to.

#![allow(clippy::unwrap_used)]

mod support;

use std::{net::SocketAddr, time::Duration};

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use storekeeper_kit::client_ip::TrustedProxyHops;
use support::{Ctx, PASSWORD};
use user_service::{Settings, config::ThrottleConfig};

fn settings(per_account: u32, per_ip: u32, window_secs: u64, hops: usize) -> Settings {
    Settings {
        throttle: ThrottleConfig {
            max_failures_per_account: per_account,
            max_failures_per_ip: per_ip,
            window: Duration::from_secs(window_secs),
        },
        trusted_proxy_hops: TrustedProxyHops(hops),
        ..Settings::default()
    }
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 1, 2, last], 4000))
}

#[sqlx::test(migrator = "user_service::MIGRATOR")]
async fn account_throttle_kicks_in_and_releases_after_the_window(pool: PgPool) {
    let ctx = Ctx::with_settings(pool, settings(3, 100, 2, 0));
    ctx.register("ann@example.com").await;
    for _ in 0..3 {
        ctx.login("ann@example.com", "wrong-password-1")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    // Even the right password is refused now, from any address.
    let response = ctx.login_from("ann@example.com", PASSWORD, peer(9)).await;
    let problem = response.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert!(problem.detail.unwrap().contains("too many failed logins"));
    assert!(
        ctx.metrics_text()
            .contains(r#"user_logins_total{outcome="throttled"} 1"#)
    );

    tokio::time::sleep(Duration::from_millis(2100)).await;
    ctx.login("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}

#[sqlx::test(migrator = "user_service::MIGRATOR")]
async fn a_successful_login_clears_the_account_counter(pool: PgPool) {
    let ctx = Ctx::with_settings(pool, settings(3, 100, 60, 0));
    ctx.register("ann@example.com").await;
    for _ in 0..2 {
        ctx.login("ann@example.com", "wrong-password-1").await;
    }
    ctx.login("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    for _ in 0..2 {
        ctx.login("ann@example.com", "wrong-password-1")
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    ctx.login("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}

#[sqlx::test(migrator = "user_service::MIGRATOR")]
async fn ip_throttle_covers_many_accounts_from_one_address(pool: PgPool) {
    let ctx = Ctx::with_settings(pool, settings(100, 3, 60, 0));
    ctx.register("ann@example.com").await;
    for n in 0..3 {
        ctx.login_from(&format!("user{n}@example.com"), PASSWORD, peer(1))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    ctx.login_from("ann@example.com", PASSWORD, peer(1))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    // Spoofing X-Forwarded-For does not help: no proxy is trusted.
    ctx.app
        .post("/api/users/login")
        .peer(peer(1))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    // Another address is unaffected.
    ctx.login_from("ann@example.com", PASSWORD, peer(2))
        .await
        .assert_status(StatusCode::OK);
}

#[sqlx::test(migrator = "user_service::MIGRATOR")]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled(pool: PgPool) {
    let ctx = Ctx::with_settings(pool, settings(100, 2, 60, 1));
    ctx.register("ann@example.com").await;
    let attempt = |client: &'static str, password: &'static str| {
        let app = ctx.app.clone();
        async move {
            app.post("/api/users/login")
                .peer(peer(250)) // the ingress
                .header("x-forwarded-for", format!("198.51.100.1, {client}"))
                .json(&json!({"email": "ann@example.com", "password": password}))
                .send()
                .await
        }
    };
    for _ in 0..2 {
        attempt("203.0.113.7", "wrong-password-1").await;
    }
    attempt("203.0.113.7", PASSWORD)
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    attempt("203.0.113.8", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}

#[sqlx::test(migrator = "user_service::MIGRATOR")]
async fn with_redis_down_logins_still_work(pool: PgPool) {
    let ctx = Ctx::redis_down(pool, settings(1, 1, 60, 0));
    ctx.register("ann@example.com").await;
    for _ in 0..3 {
        ctx.login("ann@example.com", "wrong-password-1")
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    ctx.login("ann@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}
