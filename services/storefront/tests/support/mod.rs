//! Stand-in backends for the storefront's tests: serve an axum router on a
//! free port, point the real storefront at it, and drive its forms.

// Fixtures fail loudly; not every test binary uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use axum::{
    Router,
    http::HeaderMap,
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};
use storefront::{AppState, app, config::Config};
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    config::Vars,
    testing::{TestApp, TestResponse},
};

pub mod checkout;

pub const FORM: &str = "application/x-www-form-urlencoded";

/// Serves `router` on a free localhost port; returns its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// The real storefront with `backends` at these URLs and every other
/// backend on a port nothing listens on.
pub fn shop(backends: &[(ShopService, &str)]) -> TestApp {
    TestApp::new(storefront(backends))
}

/// The storefront's router, as `shop` builds it, for serving on a port.
pub fn storefront(backends: &[(ShopService, &str)]) -> Router {
    let down = format!(
        "http://127.0.0.1:{}",
        storekeeper_kit::testing::closed_port()
    );
    let mut vars: HashMap<String, String> = ShopService::Storefront
        .calls()
        .iter()
        .map(|callee| (callee.url_env().unwrap().to_owned(), down.clone()))
        .collect();
    for (service, url) in backends {
        vars.insert(service.url_env().unwrap().to_owned(), (*url).to_owned());
    }
    let config = Config::from_source(&Vars(vars)).unwrap();
    app(AppState::new(&config, &storekeeper_kit::Metrics::new()).unwrap())
}

/// A user-service that logs anyone in as Ann, with `role`.
pub fn users_as(role: &'static str) -> Router {
    Router::new()
        .route(
            "/api/users/login",
            post(|| async {
                axum::Json(json!({"access_token": "a", "refresh_token": "r", "expires_in": 900}))
            }),
        )
        .route(
            "/api/users/me",
            get(move || async move {
                axum::Json(json!({"email": "ann@example.com", "name": "Ann", "role": role}))
            }),
        )
}

/// The session cookie (`name=value`) a response set, if it set one.
pub fn cookie(response: &TestResponse) -> Option<String> {
    response
        .header("set-cookie")
        .map(|set| set.split(';').next().unwrap().to_owned())
}

/// The CSRF token in a page's forms.
pub fn csrf(html: &str) -> String {
    field(html, "_csrf")
}

/// The value of the hidden or text field `name` in a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// A form body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The bearer token of a request.
pub fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_owned()
}

/// A validation problem naming `field`, as the APIs answer one.
pub fn field_problem(field: &str, message: &str) -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({
            "type": "https://storekeeper.dev/problems/validation",
            "title": "Unprocessable Entity",
            "status": 422,
            "detail": "the request has invalid fields",
            "errors": [{"field": field, "message": message}],
        })),
    )
}

/// A logged-in shopper's browser: the cookie it holds.
pub struct Shopper {
    pub cookie: String,
}

impl Shopper {
    /// Logs in through the storefront's form (the stand-in user-service
    /// accepts any password).
    pub async fn log_in(shop: &TestApp) -> Self {
        let page = shop.get("/login").send().await;
        let session = cookie(&page).unwrap();
        let body = form(&[
            ("_csrf", &csrf(&page.text())),
            ("email", "ann@example.com"),
            ("password", "any password"),
        ]);
        let response = shop
            .post("/login")
            .header("cookie", &session)
            .raw_body(FORM, body)
            .send()
            .await;
        response.assert_status(StatusCode::SEE_OTHER);
        Self {
            cookie: cookie(&response).unwrap(),
        }
    }

    /// GETs `path`, keeping any cookie the answer sets.
    pub async fn get(&mut self, shop: &TestApp, path: &str) -> TestResponse {
        let response = shop.get(path).header("cookie", &self.cookie).send().await;
        self.keep(&response);
        response
    }

    /// Posts `pairs` (plus the CSRF token of `page`) to `path`.
    pub async fn post(
        &mut self,
        shop: &TestApp,
        page: &str,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> TestResponse {
        let shown = self.get(shop, page).await;
        let token = csrf(&shown.text());
        let mut all = vec![("_csrf", token.as_str())];
        all.extend_from_slice(pairs);
        let response = shop
            .post(path)
            .header("cookie", &self.cookie)
            .raw_body(FORM, form(&all))
            .send()
            .await;
        self.keep(&response);
        response
    }

    fn keep(&mut self, response: &TestResponse) {
        if let Some(cookie) = cookie(response) {
            self.cookie = cookie;
        }
    }
}
