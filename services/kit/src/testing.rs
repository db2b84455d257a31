//! Test helpers (feature `testing`): drive a service's real router
//! in-process, with the production middleware stack, and check
//! problem+json answers.
//!
//! ```ignore
//! let app = TestApp::new(user_service::app(state));
//! let response = app.post("/api/users").json(&body).send().await;
//! response.assert_problem(StatusCode::CONFLICT, "conflict");
//! ```

// Test helpers fail loudly: a panic with a message is the right outcome
// when a test fixture cannot be built.
#![allow(clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::ConnectInfo,
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};
use storekeeper_contract::ShopService;
use tower::ServiceExt;
use uuid::Uuid;

use crate::{
    auth::{Claims, KeyPair, Role, TokenSigner, TokenVerifier},
    config::{DatabaseConfig, ServiceConfig},
    db,
    metrics::Metrics,
    problem::{PROBLEM_JSON, Problem},
    server::{HttpSettings, layers},
};

/// A router wrapped in the production layers, called without a socket.
#[derive(Clone)]
pub struct TestApp {
    router: Router,
    metrics: Metrics,
}

impl TestApp {
    /// Wraps `router` with default [`HttpSettings`] and a fresh registry.
    pub fn new(router: Router) -> Self {
        Self::with_metrics(router, Metrics::new())
    }

    /// Wraps `router`, recording HTTP metrics into `metrics` (pass the
    /// registry the app state uses to see business counters too).
    pub fn with_metrics(router: Router, metrics: Metrics) -> Self {
        Self::with_settings(router, metrics, HttpSettings::default())
    }

    /// Wraps `router` with explicit settings (e.g. a small body limit).
    pub fn with_settings(router: Router, metrics: Metrics, settings: HttpSettings) -> Self {
        Self {
            router: layers(router, settings, &metrics),
            metrics,
        }
    }

    /// The registry the HTTP metrics go to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts a request.
    pub fn request(&self, method: Method, uri: &str) -> TestRequest {
        TestRequest {
            router: self.router.clone(),
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        }
    }

    /// Starts a GET.
    pub fn get(&self, uri: &str) -> TestRequest {
        self.request(Method::GET, uri)
    }

    /// Starts a POST.
    pub fn post(&self, uri: &str) -> TestRequest {
        self.request(Method::POST, uri)
    }

    /// Starts a PATCH.
    pub fn patch(&self, uri: &str) -> TestRequest {
        self.request(Method::PATCH, uri)
    }

    /// Starts a PUT.
    pub fn put(&self, uri: &str) -> TestRequest {
        self.request(Method::PUT, uri)
    }

    /// Starts a DELETE.
    pub fn delete(&self, uri: &str) -> TestRequest {
        self.request(Method::DELETE, uri)
    }
}

/// A request being built.
pub struct TestRequest {
    router: Router,
    builder: http::request::Builder,
    body: Body,
    peer: SocketAddr,
}

impl TestRequest {
    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        let name = HeaderName::try_from(name.as_ref()).expect("valid header name");
        let value = HeaderValue::try_from(value.as_ref()).expect("valid header value");
        self.builder = self.builder.header(name, value);
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sends `value` as a JSON body.
    #[must_use]
    pub fn json<T: Serialize>(self, value: &T) -> Self {
        let bytes = serde_json::to_vec(value).expect("serializable body");
        self.raw_body("application/json", bytes)
    }

    /// Sends raw bytes with the given content type (malformed JSON tests).
    #[must_use]
    pub fn raw_body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self = self.header("content-type", content_type);
        self.body = Body::from(body.into());
        self
    }

    /// Sends raw bytes with no content type.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::from(body.into());
        self
    }

    /// The client address the app sees (`ConnectInfo`).
    #[must_use]
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// Sends the request through the router.
    pub async fn send(self) -> TestResponse {
        let mut request = self.builder.body(self.body).expect("valid request");
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self
            .router
            .oneshot(request)
            .await
            .expect("infallible router");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("readable body").to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// A collected response.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (panics with the body on failure).
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not the expected JSON ({err}): {}", self.text()))
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// Asserts a problem+json response with this status and `type` kind
    /// (the last URI segment, e.g. `validation`); returns the problem.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, kind: &str) -> Problem {
        self.assert_status(status);
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(PROBLEM_JSON),
            "not problem+json: {}",
            self.text()
        );
        let problem: Problem = self.json();
        assert_eq!(problem.kind(), kind, "unexpected problem type: {problem:?}");
        assert_eq!(problem.status, status.as_u16());
        problem
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A throw-away key pair with its signer and verifier, to mint tokens.
#[derive(Clone)]
pub struct TestKeys {
    /// The PEMs.
    pub pair: KeyPair,
    /// Signs tokens.
    pub signer: TokenSigner,
    /// Verifies them; put it in the app state.
    pub verifier: TokenVerifier,
}

impl TestKeys {
    /// Generates fresh keys.
    pub fn generate() -> Self {
        let pair = KeyPair::generate().expect("key generation");
        let signer = TokenSigner::from_pem(&pair.private_pem).expect("fresh private key");
        let verifier = TokenVerifier::from_pem(&pair.public_pem).expect("fresh public key");
        Self {
            pair,
            signer,
            verifier,
        }
    }

    /// A valid token for `user` with `role`.
    pub fn token(&self, user: Uuid, role: Role) -> String {
        self.signer.sign(user, role).expect("signing").token
    }

    /// A valid customer token for a random user; returns (user id, token).
    pub fn customer(&self) -> (Uuid, String) {
        let user = Uuid::new_v4();
        (user, self.token(user, Role::Customer))
    }

    /// A valid admin token for a random user; returns (user id, token).
    pub fn admin(&self) -> (Uuid, String) {
        let user = Uuid::new_v4();
        (user, self.token(user, Role::Admin))
    }

    /// A correctly signed token that expired an hour ago.
    pub fn expired(&self, user: Uuid, role: Role) -> String {
        let mut claims = Claims::new(user, role, std::time::Duration::ZERO);
        claims.exp -= 3600;
        claims.iat -= 7200;
        self.signer.sign_claims(&claims).expect("signing")
    }

    /// A token signed by some other key (a forgery).
    pub fn forged(&self, user: Uuid, role: Role) -> String {
        Self::generate().token(user, role)
    }
}

/// `token` with its payload altered (role escalated) but the old signature.
pub fn tampered(token: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let payload = engine.decode(&parts[1]).expect("jwt payload");
    let mut claims: serde_json::Value = serde_json::from_slice(&payload).expect("jwt claims");
    claims["role"] = "admin".into();
    claims["sub"] = Uuid::new_v4().to_string().into();
    parts[1] = engine.encode(serde_json::to_vec(&claims).expect("claims"));
    parts.join(".")
}

/// A Redis key prefix no other test uses.
pub fn unique_redis_prefix() -> String {
    format!("test:{}:", Uuid::new_v4().simple())
}

/// A TCP port nothing listens on (for "dependency down" tests).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// A port free to listen on, below Linux's default range for outgoing
/// connections (32768–60999): a port picked there and released can be
/// taken by a connection the test opens (to PostgreSQL, say) before the
/// server it was meant for binds it.
pub fn listen_port() -> u16 {
    for _ in 0..1000 {
        let port = 20_000 + (Uuid::new_v4().as_u128() % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// The PostgreSQL server test databases are created on.
const TEST_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A throw-away database for one test (a UUID in its name, so suites
/// running side by side never meet), migrated, and reached through the
/// production pool: [`db`]'s options with the default
/// `DATABASE_MAX_CONNECTIONS`. A test that would starve the pool in
/// production starves it here too — unlike `#[sqlx::test]`'s pool of 5.
/// Dropping it drops the database (`WITH (FORCE)`, so connections still
/// open do not keep it), on success and on panic alike.
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// The production-sized pool on it.
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates and migrates a database for `service` (which must own one),
    /// with the pool a replica of it gets.
    pub async fn create(service: ShopService, migrator: &Migrator) -> Self {
        let database = service.database().expect("the service owns a database");
        let production = ServiceConfig::for_tests(service)
            .database
            .expect("the service owns a database");
        Self::with_config(database, production, Some(migrator)).await
    }

    /// A database for the kit's own tests, which no service owns: `migrator`
    /// applied if given, and the pool every service gets by default.
    pub async fn for_kit(migrator: Option<&Migrator>) -> Self {
        let production = ServiceConfig::for_tests(ShopService::Order)
            .database
            .expect("order-service owns a database");
        Self::with_config("kit", production, migrator).await
    }

    async fn with_config(
        label: &str,
        production: DatabaseConfig,
        migrator: Option<&Migrator>,
    ) -> Self {
        let name = format!("test_{}_{label}", Uuid::new_v4().simple());
        let admin = admin_pool().await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .expect("creating a test database");
        admin.close().await;
        let config = DatabaseConfig {
            url: format!("{TEST_SERVER}/{name}"),
            ..production
        };
        let pool = db::connect(&config).await.expect("connecting");
        if let Some(migrator) = migrator {
            db::apply_migrations(&pool, migrator)
                .await
                .expect("migrating");
        }
        Self { name, pool }
    }

    /// Closes the pool, then drops the database.
    pub async fn drop_database(self) {
        self.pool.close().await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on;
        // a thread of its own with a runtime of its own drops the database.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database on");
            runtime.block_on(async {
                let admin = admin_pool().await;
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("the test database {} was not dropped", self.name);
        }
    }
}

async fn admin_pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{TEST_SERVER}/postgres"))
        .await
        .expect("the test PostgreSQL server")
}
