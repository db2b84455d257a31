//! Login and registration throttling against the real Redis: kicks in per
//! account and per IP, holds against parallel bursts, answers 429 with
//! `Retry-After`, releases after the window, and trusts `X-Forwarded-For`
//! only when configured to; the bounded hashing queue sheds a registration
//! flood with 503 while logins go on.

#![allow(clippy::unwrap_used)]

mod support;

use std::{net::SocketAddr, time::Duration};

use axum::http::StatusCode;
use serde_json::json;
use storekeeper_kit::client_ip::TrustedProxyHops;
use support::{Ctx, PASSWORD};
use user_service::{Settings, config::ThrottleConfig};

fn settings(per_account: u32, per_ip: u32, window_secs: u64, hops: usize) -> Settings {
    Settings {
        throttle: ThrottleConfig {
            max_failures_per_account: per_account,
            max_failures_per_ip: per_ip,
            window: Duration::from_secs(window_secs),
            ..ThrottleConfig::default()
        },
        trusted_proxy_hops: TrustedProxyHops(hops),
        ..Settings::default()
    }
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 1, 2, last], 4000))
}

#[tokio::test]
async fn account_throttle_kicks_in_and_releases_after_the_window() {
    let (_database, pool) = support::database().await;
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

#[tokio::test]
async fn a_successful_login_clears_the_account_counter() {
    let (_database, pool) = support::database().await;
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

#[tokio::test]
async fn ip_throttle_covers_many_accounts_from_one_address() {
    let (_database, pool) = support::database().await;
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

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled() {
    let (_database, pool) = support::database().await;
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

#[tokio::test]
async fn with_redis_down_logins_still_work() {
    let (_database, pool) = support::database().await;
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

/// How many Argon2 jobs of `purpose` the hasher took on.
fn admitted(ctx: &Ctx, purpose: &str) -> u64 {
    count(ctx, purpose, "admitted")
}

fn count(ctx: &Ctx, purpose: &str, outcome: &str) -> u64 {
    let line = format!(r#"user_password_jobs_total{{purpose="{purpose}",outcome="{outcome}"}} "#);
    ctx.metrics_text()
        .lines()
        .find_map(|text| text.strip_prefix(&line))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn fifty_parallel_guesses_verify_at_most_the_limit() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::with_settings(pool, settings(5, 1000, 60, 0));
    ctx.register("ann@example.com").await;
    let mut guesses = tokio::task::JoinSet::new();
    for n in 0..50_u8 {
        let app = ctx.app.clone();
        guesses.spawn(async move {
            app.post("/api/users/login")
                .peer(peer(n))
                .json(&json!({"email": "ann@example.com", "password": format!("guess number {n}")}))
                .send()
                .await
        });
    }
    let (mut refused, mut throttled) = (0, 0);
    while let Some(response) = guesses.join_next().await {
        let response = response.unwrap();
        match response.status {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                response.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
                let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry_after), "{retry_after}");
                throttled += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((refused, throttled), (5, 45));
    assert_eq!(admitted(&ctx, "login"), 5, "only 5 passwords were verified");
    // The right password is refused too until the window ends.
    ctx.login_from("ann@example.com", PASSWORD, peer(200))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert_eq!(admitted(&ctx, "login"), 5);
}

#[tokio::test]
async fn good_logins_from_one_address_never_use_up_its_limit() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::with_settings(pool, settings(100, 3, 60, 0));
    ctx.register("ann@example.com").await;
    for _ in 0..6 {
        ctx.login_from("ann@example.com", PASSWORD, peer(1))
            .await
            .assert_status(StatusCode::OK);
    }
    for _ in 0..3 {
        ctx.login_from("ann@example.com", "wrong-password-1", peer(1))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    ctx.login_from("ann@example.com", PASSWORD, peer(1))
        .await
        .assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
}

async fn register_from(
    ctx: &Ctx,
    email: &str,
    from: SocketAddr,
) -> storekeeper_kit::testing::TestResponse {
    ctx.app
        .post("/api/users")
        .peer(from)
        .json(&json!({"email": email, "password": PASSWORD, "name": "Ann Lee"}))
        .send()
        .await
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let (_database, pool) = support::database().await;
    let mut settings = settings(5, 20, 60, 0);
    settings.throttle.max_registrations_per_ip = 2;
    let ctx = Ctx::with_settings(pool, settings);
    for n in 0..2 {
        register_from(&ctx, &format!("user{n}@example.com"), peer(1))
            .await
            .assert_status(StatusCode::CREATED);
    }
    // Invalid forms are answered before the throttle and do not count.
    register_from(&ctx, "not an email", peer(2))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let response = register_from(&ctx, "user2@example.com", peer(1)).await;
    let problem = response.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited");
    assert!(problem.detail.unwrap().contains("too many new accounts"));
    let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(
        admitted(&ctx, "account"),
        2,
        "the refused one was never hashed"
    );
    register_from(&ctx, "user2@example.com", peer(2))
        .await
        .assert_status(StatusCode::CREATED);
    assert!(
        ctx.metrics_text()
            .contains("user_registrations_throttled_total 1")
    );
}

#[tokio::test]
async fn a_registration_flood_gets_503_and_logins_go_on() {
    let (_database, pool) = support::database().await;
    let mut settings = settings(5, 1000, 60, 0);
    settings.throttle.max_registrations_per_ip = 1000;
    settings.hash_queue = user_service::config::HashQueue {
        login: 4,
        account: 2,
    };
    let ctx = Ctx::with_settings(pool, settings);
    ctx.register("ann@example.com").await;
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..60_u8 {
        let app = ctx.app.clone();
        flood.spawn(async move {
            app.post("/api/users")
                .peer(peer(n))
                .json(&json!({"email": format!("flood{n}@example.com"), "password": PASSWORD, "name": "Flood"}))
                .send()
                .await
        });
    }
    // A shopper logs in while the flood is on.
    ctx.login_from("ann@example.com", PASSWORD, peer(250))
        .await
        .assert_status(StatusCode::OK);
    let (mut created, mut busy) = (0_u64, 0_u64);
    while let Some(response) = flood.join_next().await {
        let response = response.unwrap();
        match response.status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                response.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "busy");
                assert_eq!(response.header("retry-after"), Some("1"));
                busy += 1;
            }
            other => panic!("unexpected {other}: {}", response.text()),
        }
    }
    assert_eq!(created + busy, 60);
    assert!(
        busy >= 30,
        "the queue stayed bounded: {created} created, {busy} refused"
    );
    assert_eq!(count(&ctx, "account", "busy"), busy);
    assert_eq!(count(&ctx, "login", "busy"), 0);
    let (accounts,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&ctx.pool)
        .await
        .unwrap();
    assert_eq!(u64::try_from(accounts).unwrap(), created + 1);
}

#[tokio::test]
async fn a_busy_answer_is_not_counted_against_the_shopper() {
    let (_database, pool) = support::database().await;
    let mut settings = settings(2, 2, 60, 0);
    settings.throttle.max_registrations_per_ip = 1;
    // No places at all: every password job is refused as busy.
    settings.hash_queue = user_service::config::HashQueue {
        login: 0,
        account: 0,
    };
    let ctx = Ctx::with_settings(pool, settings);
    for _ in 0..5 {
        ctx.login_from("ann@example.com", PASSWORD, peer(1))
            .await
            .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "busy");
        register_from(&ctx, "ann@example.com", peer(1))
            .await
            .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "busy");
    }
    assert_eq!(count(&ctx, "login", "busy"), 5);
    assert_eq!(count(&ctx, "account", "busy"), 5);
}
