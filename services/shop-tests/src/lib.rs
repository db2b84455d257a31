//! shop-tests: the tests that span several services. [`Shop`] is the whole
//! checkout saga in one process: product-, order- and payment-service with
//! their own fresh databases, product-service's API on a real socket
//! (order-service calls it over HTTP), and every service's outbox relay and
//! consumer on an exchange of the test's own, each database behind the pool a
//! replica gets in production (`kit::testing::TestDatabase`). The tests live in `tests/`; the checkout
//! benchmark (`tests/bench_checkout.rs`) drives the release binaries.

// A fixture fails loudly: a panic naming what broke is the right outcome
// when a test shop cannot be built.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::time::Duration;

use axum::http::StatusCode;
use order_service::{catalog::Catalog, metrics::OrderMetrics};
use payment_service::metrics::PaymentMetrics;
use serde_json::{Value, json};
use sqlx::PgPool;
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    Metrics,
    cache::Cache,
    events::{CancellationToken, EventMetrics, EventsConfig},
    server::{HttpSettings, layers},
    testing::{TestApp, TestDatabase, TestKeys, TestResponse, unique_redis_prefix},
};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// order-service's default `ORDER_DEADLINE_SECS`: no test order lives
/// that long, so the reaper never fires unless a test shortens it.
const DEADLINE: Duration = Duration::from_mins(15);

/// Which service's workers (relay + consumer) to start or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// product-service: relay and `product.inventory`.
    Product,
    /// order-service: relay, `order.saga` and its background tasks.
    Order,
    /// payment-service: relay and `payment.charges`.
    Payment,
}

/// A running saga.
pub struct Shop {
    /// Mints the tokens every service accepts.
    pub keys: TestKeys,
    /// order-service's API.
    pub order: TestApp,
    /// payment-service's API.
    pub payment: TestApp,
    /// order-service's database.
    pub orders_db: TestDatabase,
    /// payment-service's database.
    pub payments_db: TestDatabase,
    /// product-service's database.
    pub products_db: TestDatabase,
    /// The exchange and queues of this test, straight to the broker.
    pub events: EventsConfig,
    /// What the services' workers use (the broker, or a proxy in front of it).
    pub worker_events: EventsConfig,
    /// order-service's registry (business counters).
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
    /// The user id.
    pub id: Uuid,
    /// A customer access token for it.
    pub token: String,
}

/// A valid shipping address.
pub const ADDRESS: fn() -> Value = || json!({"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"});

impl Shop {
    /// Everything up, talking straight to the broker.
    pub async fn start() -> Self {
        let events = EventsConfig::ephemeral();
        Self::start_with(events.clone(), events).await
    }

    /// Everything up; the services' workers use `worker_events` (e.g. via a proxy).
    pub async fn start_with(events: EventsConfig, worker_events: EventsConfig) -> Self {
        Self::start_with_deadline(events, worker_events, DEADLINE).await
    }

    /// Everything up, with order-service's reaper cancelling orders still
    /// open `deadline` after they were placed.
    pub async fn start_with_deadline(
        events: EventsConfig,
        worker_events: EventsConfig,
        deadline: Duration,
    ) -> Self {
        let (orders_db, payments_db, products_db) = tokio::join!(
            TestDatabase::create(ShopService::Order, &order_service::MIGRATOR),
            TestDatabase::create(ShopService::Payment, &payment_service::MIGRATOR),
            TestDatabase::create(ShopService::Product, &product_service::MIGRATOR),
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
            deadline,
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
        let (captures, _) = payment_service::capture::channel();
        payment_service::charge_consumer(&shop.payment_state, &shop.events, &metrics, captures)
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

    /// A new shopper with a customer token.
    pub fn shopper(&self) -> Shopper {
        let (id, token) = self.keys.customer();
        Shopper { id, token }
    }

    /// An admin token.
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

    /// The product's stock, straight from the database.
    pub async fn stock(&self, product: Uuid) -> i32 {
        sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
            .bind(product)
            .fetch_one(&self.products_db.pool)
            .await
            .unwrap()
    }

    /// Adds units to the shopper's cart (asserts 200).
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

    /// `POST /api/orders` with `key` as the `Idempotency-Key`.
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

    /// `GET /api/orders/{id}` as the holder of `token` (asserts 200).
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

    /// Waits up to `limit` until the order is PAID, CANCELLED or REFUNDED.
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
