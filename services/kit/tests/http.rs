//! The common HTTP stack, driven through `testing::TestApp`: extractor
//! rejections, fallbacks, panics, timeouts, request ids, metrics labels and
//! the auth extractors — all problem+json, never a bare 500.

// Helpers outside `#[test]` functions may unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::{
    Router,
    extract::FromRef,
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use storekeeper_kit::{
    AdminUser, ApiError, AuthUser, Metrics, Role,
    auth::TokenVerifier,
    extract::{Json, Path, Query},
    server::HttpSettings,
    telemetry::RequestId,
    testing::{TestApp, TestKeys, tampered},
};
use uuid::Uuid;

#[derive(Clone)]
struct State {
    verifier: TokenVerifier,
}

impl FromRef<State> for TokenVerifier {
    fn from_ref(state: &State) -> Self {
        state.verifier.clone()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    name: String,
    quantity: u32,
}

#[derive(Debug, Deserialize)]
struct Page {
    page: u32,
}

async fn create(Json(item): Json<Item>) -> (StatusCode, Json<Item>) {
    (StatusCode::CREATED, Json(item))
}

async fn show(Path(id): Path<Uuid>) -> String {
    id.to_string()
}

async fn list(Query(page): Query<Page>) -> String {
    page.page.to_string()
}

async fn me(user: AuthUser) -> String {
    user.id.to_string()
}

async fn admin_only(AdminUser(user): AdminUser) -> String {
    user.id.to_string()
}

async fn maybe(user: Option<AuthUser>) -> String {
    user.map_or_else(|| "anonymous".to_owned(), |u| u.id.to_string())
}

async fn boom() -> &'static str {
    panic!("kaboom")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

/// Waits four times, 200 ms in all: within the 300 ms limit, so it answers
/// although the limit's timer is set on its first wait and polled on each.
async fn patient() -> &'static str {
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    "in time"
}

async fn request_id(id: RequestId) -> String {
    id.0
}

async fn failing() -> Result<(), ApiError> {
    Err(anyhow::anyhow!("disk on fire")
        .context("saving item")
        .into())
}

fn router(keys: &TestKeys) -> Router {
    Router::new()
        .route("/items", post(create).get(list))
        .route("/items/{id}", get(show))
        .route("/me", get(me))
        .route("/admin", get(admin_only))
        .route("/maybe", get(maybe))
        .route("/boom", get(boom))
        .route("/slow", get(slow))
        .route("/patient", get(patient))
        .route("/failing", get(failing))
        .route("/request-id", get(request_id))
        .with_state(State {
            verifier: keys.verifier.clone(),
        })
}

fn app() -> (TestApp, TestKeys) {
    let keys = TestKeys::generate();
    let settings = HttpSettings {
        body_limit: 1024,
        request_timeout: Duration::from_millis(300),
    };
    (
        TestApp::with_settings(router(&keys), Metrics::new(), settings),
        keys,
    )
}

#[tokio::test]
async fn valid_json_is_accepted() {
    let (app, _) = app();
    let response = app
        .post("/items")
        .json(&json!({"name": "mug", "quantity": 2}))
        .send()
        .await;
    response.assert_status(StatusCode::CREATED);
    assert_eq!(response.json::<serde_json::Value>()["name"], "mug");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (app, _) = app();
    let problem = app
        .post("/items")
        .raw_body("application/json", r#"{"name": "mug", "quantity": "#)
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "bad-request");
    assert!(problem.detail.unwrap().contains("malformed JSON"));
}

#[tokio::test]
async fn wrong_type_is_422_naming_the_field() {
    let (app, _) = app();
    let problem = app
        .post("/items")
        .json(&json!({"name": "mug", "quantity": -1}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "quantity");
}

#[tokio::test]
async fn missing_field_is_422_naming_the_field() {
    let (app, _) = app();
    let problem = app
        .post("/items")
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(problem.errors[0].field, "name");
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_415() {
    let (app, _) = app();
    app.post("/items")
        .raw_body("text/plain", r#"{"name":"mug","quantity":1}"#)
        .send()
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    app.post("/items")
        .body(r#"{"name":"mug","quantity":1}"#)
        .send()
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let (app, _) = app();
    let name = "x".repeat(4096);
    app.post("/items")
        .json(&json!({"name": name, "quantity": 1}))
        .send()
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
}

#[tokio::test]
async fn bad_query_is_400_and_bad_path_is_404() {
    let (app, _) = app();
    app.get("/items?page=1")
        .send()
        .await
        .assert_status(StatusCode::OK);
    app.get("/items?page=minus-one")
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid-query");
    app.get("/items")
        .send()
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid-query");
    app.get("/items/not-a-uuid")
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let (app, _) = app();
    app.get("/nowhere")
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not-found");
    let response = app.delete("/items").send().await;
    response.assert_problem(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    let allow = response.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn panics_and_internal_errors_are_generic_500s() {
    let (app, _) = app();
    let problem = app
        .get("/boom")
        .send()
        .await
        .assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!format!("{problem:?}").contains("kaboom"));
    assert!(problem.request_id.is_some());
    let text = app.metrics().encode().unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/boom",status="500"} 1"#),
        "{text}"
    );
    let problem = app
        .get("/failing")
        .send()
        .await
        .assert_problem(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    assert!(!format!("{problem:?}").contains("fire"));
}

#[tokio::test]
async fn slow_requests_time_out_with_503() {
    let (app, _) = app();
    let started = std::time::Instant::now();
    let response = app.get("/slow").send().await;
    let elapsed = started.elapsed();
    let id = response.header("x-request-id").unwrap().to_owned();
    let problem = response.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "timeout");
    assert_eq!(problem.request_id.as_deref(), Some(id.as_str()));
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    let response = app.get("/patient").send().await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.text(), "in time");
}

#[tokio::test]
async fn request_id_is_generated_or_propagated() {
    let (app, _) = app();
    let response = app.get("/nowhere").send().await;
    let generated = response.header("x-request-id").unwrap().to_owned();
    assert!(Uuid::parse_str(&generated).is_ok(), "{generated}");
    let problem = response.assert_problem(StatusCode::NOT_FOUND, "not-found");
    assert_eq!(problem.request_id.as_deref(), Some(generated.as_str()));

    let response = app
        .get("/nowhere")
        .header("x-request-id", "caller-42")
        .send()
        .await;
    assert_eq!(response.header("x-request-id"), Some("caller-42"));
}

#[tokio::test]
async fn handlers_extract_the_id_the_response_carries() {
    let (app, _) = app();
    let response = app.get("/request-id").send().await;
    response.assert_status(StatusCode::OK);
    let echoed = response.header("x-request-id").unwrap().to_owned();
    assert!(Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    assert_eq!(response.text(), echoed);

    let response = app
        .get("/request-id")
        .header("x-request-id", "caller-43")
        .send()
        .await;
    assert_eq!(response.text(), "caller-43");
}

#[tokio::test]
async fn metrics_use_route_templates() {
    let (app, _) = app();
    let id = Uuid::new_v4();
    app.get(&format!("/items/{id}"))
        .send()
        .await
        .assert_status(StatusCode::OK);
    app.get("/random/path/123").send().await;
    let text = app.metrics().encode().unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/items/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(!text.contains(&id.to_string()));
    assert!(text.contains("http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn auth_accepts_valid_tokens() {
    let (app, keys) = app();
    let (user, token) = keys.customer();
    let response = app.get("/me").bearer(&token).send().await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.text(), user.to_string());
    let (admin, token) = keys.admin();
    let response = app.get("/admin").bearer(&token).send().await;
    assert_eq!(response.text(), admin.to_string());
}

#[tokio::test]
async fn auth_rejects_missing_malformed_expired_tampered_and_forged_tokens() {
    let (app, keys) = app();
    let (user, token) = keys.customer();
    let cases = [
        ("missing", None),
        ("wrong scheme", Some(format!("Basic {token}"))),
        ("empty", Some("Bearer ".to_owned())),
        ("garbage", Some("Bearer not.a.token".to_owned())),
        (
            "expired",
            Some(format!("Bearer {}", keys.expired(user, Role::Customer))),
        ),
        ("tampered", Some(format!("Bearer {}", tampered(&token)))),
        (
            "forged",
            Some(format!("Bearer {}", keys.forged(user, Role::Admin))),
        ),
    ];
    for (case, header) in cases {
        for path in ["/me", "/admin"] {
            let mut request = app.get(path);
            if let Some(header) = &header {
                request = request.header("authorization", header);
            }
            let response = request.send().await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{case} {path}");
            assert!(
                response
                    .header("www-authenticate")
                    .unwrap()
                    .starts_with("Bearer")
            );
            let problem = response.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
            if case == "expired" {
                assert_eq!(
                    problem.detail.as_deref(),
                    Some("the access token has expired")
                );
            }
        }
    }
}

#[tokio::test]
async fn customers_are_forbidden_on_admin_routes() {
    let (app, keys) = app();
    let (_, token) = keys.customer();
    app.get("/admin")
        .bearer(&token)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn optional_auth_allows_anonymous_but_not_bad_tokens() {
    let (app, keys) = app();
    assert_eq!(app.get("/maybe").send().await.text(), "anonymous");
    let (user, token) = keys.customer();
    assert_eq!(
        app.get("/maybe").bearer(&token).send().await.text(),
        user.to_string()
    );
    app.get("/maybe")
        .bearer("junk")
        .send()
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
}
