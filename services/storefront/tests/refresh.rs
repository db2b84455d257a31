//! Transparent token refresh, what the storefront tells user-service at
//! login, and where a login sends the shopper afterwards. Access tokens live 15 minutes, too long to wait for in a test, so
//! a small stand-in user-service hands out tokens that are already stale,
//! counts refreshes and records the forwarded client address; a stand-in
//! order-service accepts only the refreshed token. Everything on the
//! storefront side is the real router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use axum::{
    Json, Router,
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use serde_json::json;
use storefront::{AppState, app, config::Config};
use storekeeper_contract::{ShopService, env};
use storekeeper_kit::{
    config::Vars,
    testing::{TestApp, TestResponse},
};

#[derive(Clone, Default)]
struct Fake {
    refreshes: Arc<AtomicUsize>,
    refuse_refresh: Arc<AtomicBool>,
    forwarded_for: Arc<Mutex<Vec<Option<String>>>>,
    registered_for: Arc<Mutex<Vec<Option<String>>>>,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned()
}

async fn backends(fake: &Fake) -> (String, String) {
    let users = Router::new()
        .route(
            "/api/users/login",
            post({
                let fake = fake.clone();
                move |headers: HeaderMap| async move {
                    let forwarded = headers
                        .get("x-forwarded-for")
                        .map(|value| value.to_str().unwrap().to_owned());
                    fake.forwarded_for.lock().unwrap().push(forwarded);
                    Json(json!({"access_token": "stale", "refresh_token": "r1", "expires_in": 0}))
                }
            }),
        )
        .route(
            "/api/users",
            post({
                let fake = fake.clone();
                move |headers: HeaderMap| async move {
                    let forwarded = headers
                        .get("x-forwarded-for")
                        .map(|value| value.to_str().unwrap().to_owned());
                    fake.registered_for.lock().unwrap().push(forwarded);
                    (
                        StatusCode::CREATED,
                        Json(json!({"id": "u1", "email": "ann@example.com", "name": "Ann", "role": "customer"})),
                    )
                }
            }),
        )
        .route(
            "/api/users/me",
            get(|| async {
                Json(json!({"id": "u1", "email": "ann@example.com", "name": "Ann", "role": "customer"}))
            }),
        )
        .route(
            "/api/users/refresh",
            post({
                let fake = fake.clone();
                move || async move {
                    if fake.refuse_refresh.load(Ordering::SeqCst) {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    fake.refreshes.fetch_add(1, Ordering::SeqCst);
                    Ok(Json(json!({
                        "access_token": "fresh",
                        "refresh_token": "r2",
                        "expires_in": 900
                    })))
                }
            }),
        );
    let orders = Router::new()
        .route(
            "/api/orders",
            get(|headers: HeaderMap| async move {
                if bearer(&headers) == "fresh" {
                    Ok(Json(
                        json!({"items": [], "page": 1, "per_page": 50, "total": 0}),
                    ))
                } else {
                    Err(StatusCode::UNAUTHORIZED)
                }
            }),
        )
        .route("/api/cart", get(|| async { Json(json!({"items": []})) }));
    (serve(users).await, serve(orders).await)
}

fn cookie(response: &TestResponse) -> Option<String> {
    response
        .header("set-cookie")
        .map(|set| set.split(';').next().unwrap().to_owned())
}

fn csrf(html: &str) -> String {
    let marker = r#"name="_csrf" value=""#;
    let start = html.find(marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn url_env(callee: ShopService) -> &'static str {
    callee.url_env().unwrap()
}

/// Logs in through the storefront; returns the session cookie.
async fn logged_in_shop(fake: &Fake) -> (TestApp, String) {
    logged_in_behind(fake, "0").await
}

/// Posts the login form with `next` from a fresh session.
async fn log_in_with_next(shop: &TestApp, next: &str) -> TestResponse {
    let page = shop.get("/login").send().await;
    let session = cookie(&page).unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("_csrf", csrf(&page.text()).as_str()),
            ("email", "ann@example.com"),
            ("password", "pw"),
            ("next", next),
        ])
        .finish();
    shop.post("/login")
        .header("cookie", &session)
        .raw_body("application/x-www-form-urlencoded", body)
        .send()
        .await
}

/// Logs in through a storefront behind `hops` trusted proxies, with a
/// forwarded chain whose left part the shopper forged.
async fn logged_in_behind(fake: &Fake, hops: &str) -> (TestApp, String) {
    let (users, orders) = backends(fake).await;
    let vars: HashMap<&str, &str> = HashMap::from([
        (url_env(ShopService::User), users.as_str()),
        (url_env(ShopService::Order), orders.as_str()),
        (url_env(ShopService::Product), "http://127.0.0.1:9"),
        (url_env(ShopService::Payment), "http://127.0.0.1:9"),
        (env::TRUSTED_PROXY_HOPS, hops),
    ]);
    let config = Config::from_source(&Vars(vars)).unwrap();
    let shop = TestApp::new(app(AppState::new(
        &config,
        &storekeeper_kit::Metrics::new(),
    )
    .unwrap()));
    let page = shop.get("/login").send().await;
    let session = cookie(&page).unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("_csrf", csrf(&page.text()).as_str()),
            ("email", "ann@example.com"),
            ("password", "pw"),
            ("next", "/orders"),
        ])
        .finish();
    let response = shop
        .post("/login")
        .header("cookie", &session)
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.7")
        .raw_body("application/x-www-form-urlencoded", body)
        .send()
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(response.header("location"), Some("/orders"));
    (shop, cookie(&response).unwrap())
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_before_the_call() {
    let fake = Fake::default();
    let (shop, session) = logged_in_shop(&fake).await;
    let page = shop.get("/orders").header("cookie", &session).send().await;
    page.assert_status(StatusCode::OK);
    assert!(page.text().contains("No orders yet"), "{}", page.text());
    assert_eq!(fake.refreshes.load(Ordering::SeqCst), 1);

    let renewed = cookie(&page).expect("the refreshed tokens are saved");
    let again = shop.get("/orders").header("cookie", &renewed).send().await;
    again.assert_status(StatusCode::OK);
    assert_eq!(
        fake.refreshes.load(Ordering::SeqCst),
        1,
        "the fresh token is reused"
    );
}

#[tokio::test]
async fn a_refused_refresh_logs_out_and_asks_to_log_in_again() {
    let fake = Fake::default();
    let (shop, session) = logged_in_shop(&fake).await;
    fake.refuse_refresh.store(true, Ordering::SeqCst);
    let response = shop.get("/orders").header("cookie", &session).send().await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(response.header("location"), Some("/login?next=%2Forders"));
    let logged_out = cookie(&response).unwrap();
    let login = shop
        .get("/login?next=%2Forders")
        .header("cookie", &logged_out)
        .send()
        .await;
    let html = login.text();
    assert!(html.contains("Your session has ended"), "{html}");
    assert!(html.contains(r#"href="/login""#), "shown as logged out");
}

#[tokio::test]
async fn login_forwards_only_the_address_the_trusted_proxy_saw() {
    let behind_ingress = Fake::default();
    logged_in_behind(&behind_ingress, "1").await;
    assert_eq!(
        *behind_ingress.forwarded_for.lock().unwrap(),
        [Some("203.0.113.7".to_owned())],
        "the forged 6.6.6.6 is dropped; user-service trusts one hop"
    );

    let exposed = Fake::default();
    logged_in_shop(&exposed).await;
    assert_eq!(
        *exposed.forwarded_for.lock().unwrap(),
        [Some("127.0.0.1".to_owned())],
        "without trusted proxies the header is not believed: the socket peer is the shopper"
    );
}

/// Ways out of a site through a "local" redirect parameter (as the form
/// field's value, before URL-encoding).
const BYPASSES: &[&str] = &[
    "https://evil.example",
    "javascript:alert(1)",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\u{0b}/evil.example",
    "/\u{0}/evil.example",
    "/%09/evil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "/\u{ff0f}evil.example",
    " //evil.example",
];

#[tokio::test]
async fn after_login_only_local_paths_are_followed() {
    let fake = Fake::default();
    let (shop, session) = logged_in_shop(&fake).await;
    for bad in BYPASSES {
        let response = log_in_with_next(&shop, bad).await;
        response.assert_status(StatusCode::SEE_OTHER);
        assert_eq!(response.header("location"), Some("/"), "{bad:?}");
        // Already logged in, the login page sends the shopper on at once.
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", bad)
            .finish();
        let response = shop
            .get(&format!("/login?{query}"))
            .header("cookie", &session)
            .send()
            .await;
        response.assert_status(StatusCode::SEE_OTHER);
        assert_eq!(response.header("location"), Some("/"), "{bad:?}");
    }
    for good in ["/orders?page=2", "/products/blue-kettle#reviews"] {
        let response = log_in_with_next(&shop, good).await;
        assert_eq!(response.header("location"), Some(good));
    }
    // The raw tab of the issue's example, exactly as a link carries it.
    let response = shop
        .get("/login?next=/%09/evil.example")
        .header("cookie", &session)
        .send()
        .await;
    assert_eq!(response.header("location"), Some("/"));
}

#[tokio::test]
async fn registration_forwards_the_shoppers_address_too() {
    let fake = Fake::default();
    let (shop, _) = logged_in_behind(&fake, "1").await;
    let page = shop.get("/register").send().await;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("_csrf", csrf(&page.text()).as_str()),
            ("name", "Ann"),
            ("email", "ann@example.com"),
            ("password", "long enough 1"),
            ("next", "/\t/evil.example"),
        ])
        .finish();
    let response = shop
        .post("/register")
        .header("cookie", cookie(&page).unwrap())
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
        .raw_body("application/x-www-form-urlencoded", body)
        .send()
        .await;
    response.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(response.header("location"), Some("/"));
    assert_eq!(
        *fake.registered_for.lock().unwrap(),
        [Some("203.0.113.9".to_owned())],
        "user-service limits registrations per shopper address"
    );
}
