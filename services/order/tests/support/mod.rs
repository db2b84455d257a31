//! Fixtures, used by every test file as `mod support;`. [`Shop`] is the
//! whole checkout saga in one process: product-, order- and payment-service
//! with their own fresh databases, product-service's API on a real socket
//! (order-service calls it over HTTP), and every service's outbox relay and
//! consumer on an exchange of the test's own. The other services' tests use
//! one `#[sqlx::test]` database each; the saga needs three, so `Shop`
//! creates and drops them itself.

// Fixtures fail loudly; not every test binary uses every helper.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc
)]

use std::time::Duration;

use axum::http::StatusCode;
use order_service::{catalog::Catalog, metrics::OrderMetrics};
use payment_service::metrics::PaymentMetrics;
use serde_json::{Value, json};
use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};
use storekeeper_kit::{
    Metrics,
    cache::Cache,
    events::{CancellationToken, EventMetrics, EventsConfig},
    server::{HttpSettings, layers},
    testing::{TestApp, TestKeys, TestResponse, unique_redis_prefix},
};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The server every test database lives on.
const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own for one service in one test.
pub struct TestDb {
    pub name: String,
    pub pool: PgPool,
}

impl TestDb {
    async fn create(service: &str, migrator: &Migrator) -> Self {
        let name = format!("saga_test_{}_{service}", Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&format!("{SERVER}/{name}"))
            .await
            .unwrap();
        migrator.run(&pool).await.unwrap();
        Self { name, pool }
    }

    async fn drop_database(self) {
        self.pool.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// Which service's workers (relay + consumer) to start or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Product,
    Order,
    Payment,
}

/// A running saga.
pub struct Shop {
    pub keys: TestKeys,
    pub order: TestApp,
    pub payment: TestApp,
    pub orders_db: TestDb,
    pub payments_db: TestDb,
    pub products_db: TestDb,
    /// The exchange and queues of this test, straight to the broker.
    pub events: EventsConfig,
    /// What the services' workers use (the broker, or a proxy in front of it).
    pub worker_events: EventsConfig,
    pub order_metrics: Metrics,
    order_state: order_service::AppState,
    payment_state: payment_service::AppState,
    workers: Vec<(Service, CancellationToken, Vec<JoinHandle<()>>)>,
    server: CancellationToken,
    category: Uuid,
}

/// A shopper: id and access token.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub id: Uuid,
    pub token: String,
}

pub const ADDRESS: fn() -> Value = || json!({"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"});

impl Shop {
    /// Everything up, talking straight to the broker.
    pub async fn start() -> Self {
        let events = EventsConfig::ephemeral();
        Self::start_with(events.clone(), events).await
    }

    /// Everything up; the services' workers use `worker_events` (e.g. via a proxy).
    pub async fn start_with(events: EventsConfig, worker_events: EventsConfig) -> Self {
        let (orders_db, payments_db, products_db) = tokio::join!(
            TestDb::create("orders", &order_service::MIGRATOR),
            TestDb::create("payments", &payment_service::MIGRATOR),
            TestDb::create("products", &product_service::MIGRATOR),
        );
        let keys = TestKeys::generate();
        let server = CancellationToken::new();
        let product_url = serve_products(&products_db.pool, &keys, server.clone()).await;

        let order_metrics = Metrics::new();
        let order_state = order_service::AppState {
            pool: orders_db.pool.clone(),
            verifier: keys.verifier.clone(),
            catalog: Catalog::new(reqwest::Client::new(), &product_url),
            metrics: OrderMetrics::register(&order_metrics),
        };
        let payment_metrics = Metrics::new();
        let payment_state = payment_service::AppState {
            pool: payments_db.pool.clone(),
            verifier: keys.verifier.clone(),
            metrics: PaymentMetrics::register(&payment_metrics),
        };
        let category = Uuid::new_v4();
        sqlx::query("INSERT INTO categories (id, slug, name) VALUES ($1, 'saga', 'Saga')")
            .bind(category)
            .execute(&products_db.pool)
            .await
            .unwrap();
        let mut shop = Self {
            order: TestApp::with_metrics(
                order_service::app(order_state.clone()),
                order_metrics.clone(),
            ),
            payment: TestApp::with_metrics(
                payment_service::app(payment_state.clone()),
                payment_metrics,
            ),
            keys,
            orders_db,
            payments_db,
            products_db,
            events,
            worker_events,
            order_metrics,
            order_state,
            payment_state,
            workers: Vec::new(),
            server,
            category,
        };
        // Declare every queue before anything is published, so no event
        // is routed to nowhere.
        let metrics = EventMetrics::register(&Metrics::new());
        order_service::saga_consumer(&shop.order_state, &shop.events, &metrics)
            .declare()
            .await
            .unwrap();
        payment_service::charge_consumer(&shop.payment_state, &shop.events, &metrics)
            .declare()
            .await
            .unwrap();
        product_service::inventory::consumer(&shop.products_db.pool, None, &shop.events, &metrics)
            .declare()
            .await
            .unwrap();
        for service in [Service::Product, Service::Order, Service::Payment] {
            shop.start_workers(service);
        }
        shop
    }

    /// Starts a service's relay and consumer.
    pub fn start_workers(&mut self, service: Service) {
        let token = CancellationToken::new();
        let metrics = EventMetrics::register(&Metrics::new());
        let config = &self.worker_events;
        let handles = match service {
            Service::Order => {
                order_service::start_events(&self.order_state, config, &metrics, &token)
            }
            Service::Payment => {
                payment_service::start_events(&self.payment_state, config, &metrics, &token)
            }
            Service::Product => product_service::inventory::start_events(
                &self.products_db.pool,
                None,
                config,
                &metrics,
                &token,
            ),
        };
        self.workers.push((service, token, handles));
    }

    /// Stops a service's relay and consumer (as a crash or a deploy would)
    /// and waits until they are gone.
    pub async fn stop_workers(&mut self, service: Service) {
        let (stopping, kept): (Vec<_>, Vec<_>) =
            self.workers.drain(..).partition(|(s, _, _)| *s == service);
        self.workers = kept;
        for (_, token, handles) in stopping {
            token.cancel();
            for handle in handles {
                handle.await.unwrap();
            }
        }
    }

    /// Stops everything and drops the databases.
    pub async fn finish(mut self) {
        for service in [Service::Product, Service::Order, Service::Payment] {
            self.stop_workers(service).await;
        }
        self.server.cancel();
        tokio::join!(
            self.orders_db.drop_database(),
            self.payments_db.drop_database(),
            self.products_db.drop_database()
        );
    }

    pub fn shopper(&self) -> Shopper {
        let (id, token) = self.keys.customer();
        Shopper { id, token }
    }

    pub fn admin(&self) -> String {
        self.keys.admin().1
    }

    /// Adds a product to the catalog; returns its id.
    pub async fn product(&self, name: &str, price_cents: i64, stock: i32) -> Uuid {
        let id = Uuid::new_v4();
        let slug = format!("p-{}", id.simple());
        sqlx::query(
            "INSERT INTO products (id, slug, name, price_cents, currency, image_url, stock, category_id) \
             VALUES ($1, $2, $3, $4, 'USD', '/images/x.svg', $5, $6)",
        )
        .bind(id)
        .bind(slug)
        .bind(name)
        .bind(price_cents)
        .bind(stock)
        .bind(self.category)
        .execute(&self.products_db.pool)
        .await
        .unwrap();
        id
    }

    pub async fn stock(&self, product: Uuid) -> i32 {
        sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
            .bind(product)
            .fetch_one(&self.products_db.pool)
            .await
            .unwrap()
    }

    pub async fn add_to_cart(&self, shopper: &Shopper, product: Uuid, quantity: i32) {
        self.order
            .post("/api/cart/items")
            .bearer(&shopper.token)
            .json(&json!({"product_id": product, "quantity": quantity}))
            .send()
            .await
            .assert_status(StatusCode::OK);
    }

    /// Tokenizes a card for the shopper; returns the payment method id.
    pub async fn card(&self, shopper: &Shopper, number: &str) -> Uuid {
        let response = self
            .payment
            .post("/api/payments/methods")
            .bearer(&shopper.token)
            .json(&json!({"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"}))
            .send()
            .await;
        response.assert_status(StatusCode::CREATED);
        response.json::<Value>()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub async fn checkout(&self, shopper: &Shopper, key: &str, method: Uuid) -> TestResponse {
        self.order
            .post("/api/orders")
            .bearer(&shopper.token)
            .header("Idempotency-Key", key)
            .json(&json!({"payment_method_id": method, "shipping_address": ADDRESS()}))
            .send()
            .await
    }

    /// Cart + card + checkout in one go; returns the order id.
    pub async fn buy(&self, shopper: &Shopper, product: Uuid, quantity: i32, card: &str) -> Uuid {
        self.add_to_cart(shopper, product, quantity).await;
        let method = self.card(shopper, card).await;
        let response = self
            .checkout(shopper, &Uuid::new_v4().to_string(), method)
            .await;
        response.assert_status(StatusCode::CREATED);
        response.json::<Value>()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub async fn order_json(&self, token: &str, id: Uuid) -> Value {
        let response = self
            .order
            .get(&format!("/api/orders/{id}"))
            .bearer(token)
            .send()
            .await;
        response.assert_status(StatusCode::OK);
        response.json()
    }

    /// Waits until the order is PAID or CANCELLED (or REFUNDED).
    pub async fn settled(&self, token: &str, id: Uuid) -> Value {
        self.settled_within(token, id, Duration::from_secs(30))
            .await
    }

    pub async fn settled_within(&self, token: &str, id: Uuid, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let order = self.order_json(token, id).await;
            if matches!(
                order["status"].as_str(),
                Some("PAID" | "CANCELLED" | "REFUNDED")
            ) {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} still {}",
                order["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Counts orders by status, straight from the database.
    pub async fn statuses(&self) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY status ORDER BY status")
            .fetch_all(&self.orders_db.pool)
            .await
            .unwrap()
    }

    /// Waits until no order is PENDING or AWAITING_PAYMENT.
    pub async fn all_settled(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM orders WHERE status IN ('PENDING', 'AWAITING_PAYMENT')",
            )
            .fetch_one(&self.orders_db.pool)
            .await
            .unwrap();
            if open == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{open} orders still open: {:?}",
                self.statuses().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `check` holds (eventually-consistent effects such as a stock release).
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Serves product-service's real API on a free port; returns its URL.
async fn serve_products(pool: &PgPool, keys: &TestKeys, stop: CancellationToken) -> String {
    let metrics = Metrics::new();
    let redis = Cache::connect("redis://127.0.0.1:6379", &unique_redis_prefix()).unwrap();
    let state = product_service::AppState {
        pool: pool.clone(),
        cache: product_service::cache::CatalogCache::new(redis, &metrics),
        verifier: keys.verifier.clone(),
    };
    let app = layers(
        product_service::app(state),
        HttpSettings::default(),
        &metrics,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .unwrap();
    });
    url
}
