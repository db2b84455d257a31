//! Issuer and audience (`TOKEN_ISSUER`, `TOKEN_AUDIENCE`,
//! `TOKEN_CLAIMS_REQUIRED`) through the real router: what a login signs,
//! and which tokens `/me` accepts at each step of switching them on.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use base64::{Engine, prelude::BASE64_URL_SAFE_NO_PAD};
use serde_json::Value;
use storekeeper_kit::auth::{Claims, TokenScope};
use support::Ctx;
use uuid::Uuid;

const SHOP: &str = "storekeeper:shop/main";
const OTHER: &str = "storekeeper:shop/other";

fn scope(required: bool) -> TokenScope {
    TokenScope {
        issuer: Some(SHOP.to_owned()),
        audience: Some(SHOP.to_owned()),
        required,
    }
}

/// The claims of a compact JWT, read without checking it.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&BASE64_URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Registers ann@example.com; returns her id.
async fn ann(ctx: &Ctx) -> Uuid {
    let user = ctx.register("ann@example.com").await;
    Uuid::parse_str(user["id"].as_str().unwrap()).unwrap()
}

/// A token for `user` signed with the app's key and these claims.
fn token(ctx: &Ctx, user: Uuid, iss: Option<&str>, aud: Option<&str>) -> String {
    let claims = Claims {
        iss: iss.map(str::to_owned),
        aud: aud.map(str::to_owned),
        ..Claims::new(
            user,
            storekeeper_kit::Role::Customer,
            Duration::from_mins(5),
        )
    };
    ctx.keys.signer.sign_claims(&claims).unwrap()
}

async fn me_status(ctx: &Ctx, token: &str) -> StatusCode {
    ctx.app
        .get("/api/users/me")
        .bearer(token)
        .send()
        .await
        .status
}

#[tokio::test]
async fn logins_carry_the_issuer_and_audience_only_when_configured() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool.clone());
    ann(&ctx).await;
    let plain = payload(&ctx.tokens("ann@example.com").await.access_token);
    assert!(
        plain.get("iss").is_none() && plain.get("aud").is_none(),
        "{plain}"
    );

    let ctx = Ctx::with_scope(pool, scope(false));
    let tokens = ctx.tokens("ann@example.com").await;
    let scoped = payload(&tokens.access_token);
    assert_eq!(
        (scoped["iss"].as_str(), scoped["aud"].as_str()),
        (Some(SHOP), Some(SHOP))
    );
    assert_eq!(me_status(&ctx, &tokens.access_token).await, StatusCode::OK);
}

#[tokio::test]
async fn another_shops_issuer_or_audience_is_401() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::with_scope(pool, scope(false));
    let id = ann(&ctx).await;
    for (iss, aud) in [
        (Some(OTHER), Some(SHOP)),
        (Some(SHOP), Some(OTHER)),
        (Some(OTHER), None),
        (None, Some(OTHER)),
    ] {
        let response = ctx
            .app
            .get("/api/users/me")
            .bearer(&token(&ctx, id, iss, aud))
            .send()
            .await;
        response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(
            response.text().contains("not issued for this shop"),
            "{iss:?} {aud:?}: {}",
            response.text()
        );
    }
}

#[tokio::test]
async fn tokens_without_them_pass_until_they_are_required() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::with_scope(pool.clone(), scope(false));
    let id = ann(&ctx).await;
    let bare = token(&ctx, id, None, None);
    assert_eq!(
        me_status(&ctx, &bare).await,
        StatusCode::OK,
        "a token from before"
    );

    let strict = Ctx::with_scope(pool, scope(true));
    let bare = token(&strict, id, None, None);
    assert_eq!(me_status(&strict, &bare).await, StatusCode::UNAUTHORIZED);
    let half = token(&strict, id, Some(SHOP), None);
    assert_eq!(me_status(&strict, &half).await, StatusCode::UNAUTHORIZED);
    let full = token(&strict, id, Some(SHOP), Some(SHOP));
    assert_eq!(me_status(&strict, &full).await, StatusCode::OK);
}

#[tokio::test]
async fn an_unconfigured_service_accepts_a_scoped_token() {
    let (_database, pool) = support::database().await;
    // Verifiers go first: one that knows no audience yet must not refuse
    // the tokens of an issuer that already signs one.
    let ctx = Ctx::new(pool);
    let id = ann(&ctx).await;
    let scoped = token(&ctx, id, Some(SHOP), Some(SHOP));
    assert_eq!(me_status(&ctx, &scoped).await, StatusCode::OK);
}
