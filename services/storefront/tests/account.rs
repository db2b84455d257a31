//! The account page and the password change, against a stand-in
//! user-service that checks what the storefront sends and hands out a new
//! login when the password changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    http::{HeaderMap, StatusCode},
    routing::{get, post, put},
};
use serde_json::{Value, json};
use storekeeper_contract::ShopService;
use storekeeper_kit::testing::TestApp;
use support::{Shopper, bearer, field_problem, serve, shop};

/// The stand-in's current password (built at run time: not a secret).
fn current_password() -> String {
    ["old", "pass", "word", "1"].join(" ")
}

#[derive(Clone, Default)]
struct Users {
    /// The access token user-service accepts now.
    live: Arc<Mutex<String>>,
    /// Bodies of the password changes it received.
    changes: Arc<Mutex<Vec<Value>>>,
}

async fn user_service(users: &Users) -> String {
    "access-1".clone_into(&mut users.live.lock().unwrap());
    let router = Router::new()
        .route(
            "/api/users/login",
            post(|| async {
                Json(json!({"access_token": "access-1", "refresh_token": "refresh-1", "expires_in": 900}))
            }),
        )
        .route(
            "/api/users/me",
            get({
                let users = users.clone();
                move |headers: HeaderMap| async move {
                    if bearer(&headers) != *users.live.lock().unwrap() {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    Ok(Json(json!({
                        "id": "u1", "email": "ann@example.com", "name": "Ann Lee", "role": "customer"
                    })))
                }
            }),
        )
        .route(
            "/api/users/me/password",
            put({
                let users = users.clone();
                move |headers: HeaderMap, Json(body): Json<Value>| async move {
                    if bearer(&headers) != *users.live.lock().unwrap() {
                        return Err((StatusCode::UNAUTHORIZED, Json(json!({}))));
                    }
                    users.changes.lock().unwrap().push(body.clone());
                    if body["current_password"] != current_password().as_str() {
                        return Err(field_problem(
                            "current_password",
                            "is not your current password",
                        ));
                    }
                    if body["new_password"].as_str().unwrap_or_default().len() < 10 {
                        return Err(field_problem(
                            "new_password",
                            "must be at least 10 characters",
                        ));
                    }
                    // Every other login ends; this one gets a fresh pair.
                    "access-2".clone_into(&mut users.live.lock().unwrap());
                    Ok(Json(json!({
                        "access_token": "access-2", "refresh_token": "refresh-2",
                        "token_type": "Bearer", "expires_in": 900
                    })))
                }
            }),
        );
    serve(router).await
}

async fn logged_in() -> (TestApp, Shopper, Users) {
    let users = Users::default();
    let url = user_service(&users).await;
    let shop = shop(&[(ShopService::User, url.as_str())]);
    let shopper = Shopper::log_in(&shop).await;
    (shop, shopper, users)
}

#[tokio::test]
async fn the_account_page_shows_the_profile() {
    let (shop, mut shopper, _) = logged_in().await;
    let page = shopper.get(&shop, "/account").await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    assert!(html.contains("ann@example.com"), "{html}");
    assert!(html.contains("Ann Lee"), "{html}");
    assert!(html.contains(">Customer<"), "{html}");
    assert!(html.contains(r#"href="/account/password""#), "{html}");
    assert!(
        html.contains(r#"<a href="/account">Account</a>"#),
        "the header links here"
    );
}

#[tokio::test]
async fn the_account_pages_need_a_login() {
    let shop = shop(&[]);
    for (path, next) in [
        ("/account", "%2Faccount"),
        ("/account/password", "%2Faccount%2Fpassword"),
    ] {
        let response = shop.get(path).send().await;
        response.assert_status(StatusCode::SEE_OTHER);
        assert_eq!(
            response.header("location"),
            Some(format!("/login?next={next}").as_str())
        );
    }
    let home = shop.get("/").send().await.text();
    assert!(
        !home.contains(r#"href="/account""#),
        "no Account link when logged out"
    );
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_with_the_new_login() {
    let (shop, mut shopper, users) = logged_in().await;
    let new_password = ["brand", "new", "pass", "phrase"].join(" ");
    let response = shopper
        .post(
            &shop,
            "/account/password",
            "/account/password",
            &[
                ("current_password", &current_password()),
                ("new_password", &new_password),
            ],
        )
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(response.header("location"), Some("/account"));
    assert_eq!(
        *users.changes.lock().unwrap(),
        [json!({"current_password": current_password(), "new_password": new_password})]
    );
    // user-service now accepts only the new access token: the page loads
    // because the session holds it.
    let page = shopper.get(&shop, "/account").await;
    page.assert_status(StatusCode::OK);
    let html = page.text();
    assert!(html.contains("Your password is changed"), "{html}");
    assert!(html.contains("logged out"), "{html}");
}

#[tokio::test]
async fn a_wrong_current_password_is_shown_on_its_field() {
    let (shop, mut shopper, _) = logged_in().await;
    let new_password = ["brand", "new", "pass", "phrase"].join(" ");
    let response = shopper
        .post(
            &shop,
            "/account/password",
            "/account/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", &new_password),
            ],
        )
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text();
    assert!(html.contains(r#"id="current_password-error""#), "{html}");
    assert!(html.contains("Is not your current password"), "{html}");
    assert!(
        !html.contains("not it at all"),
        "passwords are never echoed"
    );
    assert!(!html.contains(&new_password), "passwords are never echoed");
}

#[tokio::test]
async fn empty_fields_and_weak_passwords_are_explained() {
    let (shop, mut shopper, users) = logged_in().await;
    let response = shopper
        .post(&shop, "/account/password", "/account/password", &[])
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text();
    assert!(html.contains(r#"id="current_password-error""#), "{html}");
    assert!(html.contains(r#"id="new_password-error""#), "{html}");
    assert!(users.changes.lock().unwrap().is_empty(), "not sent");

    let response = shopper
        .post(
            &shop,
            "/account/password",
            "/account/password",
            &[
                ("current_password", &current_password()),
                ("new_password", "short"),
            ],
        )
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.text().contains("Must be at least 10 characters"),
        "user-service's rule lands on the field"
    );
}

#[tokio::test]
async fn a_refused_login_sends_the_shopper_to_log_in_again() {
    let (shop, mut shopper, users) = logged_in().await;
    // Ended elsewhere (another browser changed the password).
    "access-elsewhere".clone_into(&mut users.live.lock().unwrap());
    let response = shopper
        .post(
            &shop,
            "/account/password",
            "/account/password",
            &[
                ("current_password", &current_password()),
                ("new_password", "long enough 12"),
            ],
        )
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(
        response.header("location"),
        Some("/login?next=%2Faccount%2Fpassword")
    );
}
