//! The storefront's real router, in-process, with kit's production layers
//! and every backend pointed at a closed port: what a shopper gets when the
//! APIs are down, and the protections that hold whatever the backends do
//! (security headers, CSRF, login redirects, the session cookie's flags).

// Test helpers fail loudly: a panic with the page is the right outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use axum::http::{StatusCode, header};
use storefront::{AppState, app, config::Config};
use storekeeper_contract::{ShopService, env};
use storekeeper_kit::{config::Vars, testing::TestApp, testing::TestResponse};

/// A localhost port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn shop(extra: &[(&str, &str)]) -> TestApp {
    let down = format!("http://127.0.0.1:{}", closed_port());
    let mut vars: HashMap<String, String> = ShopService::Storefront
        .calls()
        .iter()
        .filter_map(|callee| callee.url_env())
        .map(|name| (name.to_owned(), down.clone()))
        .collect();
    for (name, value) in extra {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    let config = Config::from_source(&Vars(vars)).unwrap();
    let metrics = storekeeper_kit::Metrics::new();
    TestApp::with_metrics(app(AppState::new(&config, &metrics).unwrap()), metrics)
}

/// The session cookie (`name=value`) a response set.
fn session_cookie(response: &TestResponse) -> String {
    let set = response.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token in a page's forms.
fn csrf_token(html: &str) -> String {
    let marker = r#"name="_csrf" value=""#;
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A fresh session: its cookie and CSRF token, from the login page.
async fn session(shop: &TestApp) -> (String, String) {
    let page = shop.get("/login").send().await;
    page.assert_status(StatusCode::OK);
    (session_cookie(&page), csrf_token(&page.text()))
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let shop = shop(&[]);
    for path in ["/", "/static/app.css", "/no-such-page", "/login"] {
        let response = shop.get(path).send().await;
        let csp = response
            .header("content-security-policy")
            .unwrap_or_default();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            response.header("referrer-policy"),
            Some("strict-origin-when-cross-origin"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn pages_have_no_inline_script_or_style() {
    let shop = shop(&[]);
    for path in ["/", "/login", "/register", "/cart", "/no-such-page"] {
        let html = shop.get(path).send().await.text();
        assert!(!html.contains("<script>"), "{path} has an inline script");
        assert!(!html.contains("<style"), "{path} has an inline style");
        assert!(!html.contains(" style="), "{path} has a style attribute");
        assert!(!html.contains("onclick"), "{path} has an inline handler");
    }
}

#[tokio::test]
async fn home_still_renders_when_the_catalog_is_down() {
    let response = shop(&[]).get("/").send().await;
    response.assert_status(StatusCode::OK);
    let html = response.text();
    assert!(
        html.contains("The catalog is taking a short break"),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/cart""#),
        "the cart link is still there"
    );
    assert!(
        html.contains(r#"role="search""#),
        "the search box is still there"
    );
    assert!(html.contains("Skip to main content"));
    assert!(
        !html.contains("reqwest") && !html.contains("127.0.0.1"),
        "no internals leak"
    );
}

#[tokio::test]
async fn pages_are_counted_by_route_and_outages_by_service() {
    let shop = shop(&[]);
    shop.get("/products/some-thing").send().await;
    let text = shop.metrics().encode().unwrap();
    assert!(
        text.contains(r#"route="/products/{slug}",status="503""#),
        "{text}"
    );
    assert!(
        text.contains(r#"storefront_backend_unavailable_total{service="product-service"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_product_page_with_the_catalog_down_is_a_friendly_503() {
    let response = shop(&[]).get("/products/anything").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let html = response.text();
    assert!(html.contains("be right back"), "{html}");
    assert!(
        html.contains("The catalog is taking a short break"),
        "{html}"
    );
    assert!(html.contains(r#"href="/cart""#));
}

#[tokio::test]
async fn unknown_pages_get_the_shops_404_page() {
    let shop = shop(&[]);
    for (method, path) in [
        ("GET", "/no/such/page"),
        ("POST", "/cart"),
        ("GET", "/logout"),
    ] {
        let request = shop.request(method.parse().unwrap(), path);
        let response = request.send().await;
        assert!(
            matches!(
                response.status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::FORBIDDEN
            ),
            "{method} {path}: {}",
            response.status
        );
        assert!(
            response
                .header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{method} {path} should be a page"
        );
    }
    let html = shop.get("/no/such/page").send().await.text();
    assert!(html.contains("find that page"), "{html}");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_rejected() {
    let shop = shop(&[]);
    let body = form(&[("product_id", "x"), ("quantity", "1")]);
    let response = shop
        .post("/cart/items")
        .raw_body(FORM, body.clone())
        .send()
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert!(response.text().contains("This form has expired"));

    let (cookie, _) = session(&shop).await;
    let response = shop
        .post("/cart/items")
        .header("cookie", &cookie)
        .raw_body(FORM, body)
        .send()
        .await;
    response.assert_status(StatusCode::FORBIDDEN);

    let forged = form(&[("_csrf", "forged"), ("email", "a@b.c"), ("password", "x")]);
    let response = shop
        .post("/login")
        .header("cookie", &cookie)
        .raw_body(FORM, forged)
        .send()
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_from_another_session_does_not_work() {
    let shop = shop(&[]);
    let (_, their_token) = session(&shop).await;
    let (my_cookie, _) = session(&shop).await;
    let body = form(&[
        ("_csrf", &their_token),
        ("email", "a@b.c"),
        ("password", "x"),
    ]);
    let response = shop
        .post("/login")
        .header("cookie", &my_cookie)
        .raw_body(FORM, body)
        .send()
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logged_out_shoppers_are_sent_to_login_and_back() {
    let shop = shop(&[]);
    for (path, next) in [
        ("/orders", "%2Forders"),
        ("/checkout", "%2Fcheckout"),
        (
            "/orders/0b8c6490-0000-4000-8000-000000000000",
            "%2Forders%2F0b8c6490",
        ),
        ("/admin/products", "%2Fadmin%2Fproducts"),
    ] {
        let response = shop.get(path).send().await;
        response.assert_status(StatusCode::SEE_OTHER);
        let location = response.header("location").unwrap();
        assert!(
            location.starts_with(&format!("/login?next={next}")),
            "{path} → {location}"
        );
    }
    let login = shop.get("/login?next=%2Forders").send().await.text();
    assert!(login.contains(r#"name="next" value="/orders""#), "{login}");
    let evil = shop
        .get("/login?next=https://evil.example")
        .send()
        .await
        .text();
    assert!(
        evil.contains(r#"name="next" value="/""#),
        "no open redirect"
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site() {
    let response = shop(&[]).get("/").send().await;
    let set = response.header("set-cookie").unwrap().to_owned();
    assert!(set.starts_with("sk_session="), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Lax"), "{set}");
    assert!(set.contains("Path=/"), "{set}");
    assert!(!set.contains("Secure"), "plain HTTP locally: {set}");
    assert!(!set.contains("csrf"), "the content is encrypted: {set}");

    let secure = shop(&[(env::COOKIE_SECURE, "true")]).get("/").send().await;
    assert!(secure.header("set-cookie").unwrap().contains("Secure"));

    let behind_tls = shop(&[])
        .get("/")
        .header("x-forwarded-proto", "https")
        .send()
        .await;
    assert!(behind_tls.header("set-cookie").unwrap().contains("Secure"));
}

#[tokio::test]
async fn a_tampered_session_cookie_starts_a_new_session() {
    let shop = shop(&[]);
    let (cookie, token) = session(&shop).await;
    let tampered = format!("{cookie}x");
    let body = form(&[("_csrf", &token), ("email", "a@b.c"), ("password", "x")]);
    let response = shop
        .post("/login")
        .header("cookie", &tampered)
        .raw_body(FORM, body)
        .send()
        .await;
    response.assert_status(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_with_user_service_down_keeps_the_form() {
    let shop = shop(&[]);
    let (cookie, token) = session(&shop).await;
    let body = form(&[
        ("_csrf", &token),
        ("email", "ann@example.com"),
        ("password", "secret-password"),
        ("next", "/orders"),
    ]);
    let response = shop
        .post("/login")
        .header("cookie", &cookie)
        .raw_body(FORM, body)
        .send()
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text();
    assert!(html.contains("Sign-in is taking a short break"), "{html}");
    assert!(html.contains(r#"value="ann@example.com""#), "email kept");
    assert!(!html.contains("secret-password"), "password never echoed");
    assert!(html.contains(r#"name="next" value="/orders""#));
}

#[tokio::test]
async fn registration_errors_are_shown_next_to_the_fields() {
    let shop = shop(&[]);
    let (cookie, token) = session(&shop).await;
    let body = form(&[
        ("_csrf", &token),
        ("name", "Ann"),
        ("email", "not-an-email"),
        ("password", "short"),
    ]);
    let response = shop
        .post("/register")
        .header("cookie", &cookie)
        .raw_body(FORM, body)
        .send()
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text();
    assert!(html.contains(r#"id="email-error""#), "{html}");
    assert!(html.contains(r#"id="password-error""#), "{html}");
    assert!(!html.contains(r#"id="name-error""#), "{html}");
    assert!(html.contains(r#"aria-invalid="true""#));
    assert!(html.contains(r#"value="Ann""#) && html.contains(r#"value="not-an-email""#));
}

#[tokio::test]
async fn adding_to_the_cart_with_the_catalog_down_explains_itself() {
    let shop = shop(&[]);
    let (cookie, token) = session(&shop).await;
    let body = form(&[("_csrf", &token), ("product_id", "p-1"), ("quantity", "2")]);
    let response = shop
        .post("/cart/items")
        .header("cookie", &cookie)
        .raw_body(FORM, body)
        .send()
        .await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response
            .text()
            .contains("The catalog is taking a short break")
    );
}

#[tokio::test]
async fn a_bad_quantity_is_a_clear_message() {
    let shop = shop(&[]);
    let (cookie, token) = session(&shop).await;
    let body = form(&[
        ("_csrf", &token),
        ("product_id", "p-1"),
        ("quantity", "1000"),
    ]);
    let response = shop
        .post("/cart/items")
        .header("cookie", &cookie)
        .raw_body(FORM, body)
        .send()
        .await;
    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().contains("quantity from 1 to 99"));
}

#[tokio::test]
async fn an_empty_guest_cart_renders() {
    let response = shop(&[]).get("/cart").send().await;
    response.assert_status(StatusCode::OK);
    assert!(response.text().contains("Your cart is empty"));
}

#[tokio::test]
async fn static_files_and_images_are_served_from_this_origin() {
    let shop = shop(&[]);
    let css = shop.get("/static/app.css").send().await;
    css.assert_status(StatusCode::OK);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.header("cache-control").unwrap().contains("max-age"));
    let js = shop.get("/static/app.js").send().await;
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    shop.get("/static/nope.css")
        .send()
        .await
        .assert_status(StatusCode::NOT_FOUND);

    let image = shop.get("/images/kitchen/kettle.svg").send().await;
    image.assert_status(StatusCode::OK);
    assert_eq!(image.header("content-type"), Some("image/svg+xml"));
    assert!(image.text().contains("<svg"), "the placeholder stands in");
    shop.get("/images/../admin").send().await;
    let escape = shop.get("/images/a%2F..%2Fb").send().await;
    assert_ne!(escape.status, StatusCode::OK);
}

#[tokio::test]
async fn the_order_status_endpoint_needs_a_login() {
    let shop = shop(&[]);
    let response = shop
        .get("/orders/0b8c6490-0000-4000-8000-000000000000/status")
        .send()
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    let response = shop.get("/orders/not-a-uuid/status").send().await;
    response.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn html_is_not_cached_and_is_utf8() {
    let response = shop(&[]).get("/").send().await;
    assert_eq!(
        response.header(header::CACHE_CONTROL.as_str()),
        Some("no-store")
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

#[tokio::test]
async fn control_characters_in_next_are_never_a_500() {
    let shop = shop(&[]);
    for next in [
        "/\u{0b}",
        "/\t/evil.example",
        "/\u{0}",
        "/a\r\nSet-Cookie: x=1",
    ] {
        let query = form(&[("next", next)]);
        let page = shop.get(&format!("/login?{query}")).send().await;
        page.assert_status(StatusCode::OK);
        assert!(page.text().contains(r#"name="next" value="/""#), "{next:?}");
        let register = shop.get(&format!("/register?{query}")).send().await;
        register.assert_status(StatusCode::OK);

        let (cookie, token) = session(&shop).await;
        let body = form(&[
            ("_csrf", &token),
            ("email", "ann@example.com"),
            ("password", "secret-password"),
            ("next", next),
        ]);
        let response = shop
            .post("/login")
            .header("cookie", &cookie)
            .raw_body(FORM, body)
            .send()
            .await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            response.text().contains(r#"name="next" value="/""#),
            "{next:?}"
        );
    }
}
