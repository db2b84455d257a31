//! Every metric and label the Store's alert rules and dashboard read
//! (`operator/assets/observability/`) exists on the services' real
//! `/metrics`: the five services start as their `main`s start them (the
//! kit's runner, real PostgreSQL, Redis and RabbitMQ, the admin port), a
//! shopper registers, buys with a good card and with a declined one, a
//! poison event is dead-lettered and an unroutable one returned, and then
//! each service's admin `/metrics` is scraped and every query of the assets
//! is checked against what it offers. The operator's own `storekeeper_*`
//! metrics are checked against its registry by
//! `operator/tests/observability_assets.rs`, whose PromQL reader this test
//! shares.
//!
//! The runner builds its own async runtime, as `main` does, so each service
//! runs on a thread of its own and this is a plain `#[test]`.

// A test fails loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../operator/tests/observability_assets/queries.rs"]
mod queries;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    process::ExitCode,
    thread::JoinHandle,
    time::Duration,
};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use serde_json::{Value, json};
use storekeeper_contract::{ShopService, events::ROUTES};
use storekeeper_kit::{
    Runner,
    auth::KeyPair,
    events::{CancellationToken, EventsConfig, broker::Link, testing::publish_raw, topology},
    server,
    testing::{TestDatabase, listen_port, unique_redis_prefix},
};
use uuid::Uuid;

/// Labels Prometheus adds to every series of a Store's pods: the
/// PodMonitor's `namespace`, `store`, `service` and `pod`, and its own `job`
/// and `instance`. A query may use them on any metric; a metric must not
/// carry one of its own (Prometheus would rename it `exported_…`).
const TARGET_LABELS: [&str; 6] = ["namespace", "store", "service", "pod", "job", "instance"];

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const PASSWORD: &str = "correct-horse-7";

/// One service started by the runner on a thread.
struct Running {
    service: ShopService,
    admin_port: u16,
    thread: JoinHandle<ExitCode>,
}

/// What every service's closure needs from the test.
struct Stack {
    keys: KeyPair,
    events: EventsConfig,
    shutdown: CancellationToken,
    databases: HashMap<ShopService, String>,
    ports: HashMap<ShopService, (u16, u16)>,
}

impl Stack {
    fn url(&self, service: ShopService) -> String {
        format!("http://127.0.0.1:{}", self.ports[&service].0)
    }

    /// The environment `main` would get in a cluster, pointed at this test's
    /// databases, Redis prefix, exchange and ports.
    fn vars(&self, service: ShopService) -> HashMap<String, String> {
        let (port, admin_port) = self.ports[&service];
        let mut vars: Vec<(&str, String)> = vec![
            ("HOST", "127.0.0.1".into()),
            ("PORT", port.to_string()),
            ("ADMIN_PORT", admin_port.to_string()),
            ("TOKEN_PUBLIC_KEY", self.keys.public_pem.clone()),
            ("SHUTDOWN_TIMEOUT_SECS", "1".into()),
        ];
        if let Some(database) = self.databases.get(&service) {
            vars.push((
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:5432/{database}"),
            ));
        }
        if service.uses_redis() {
            vars.push(("REDIS_URL", REDIS_URL.into()));
            vars.push(("REDIS_PREFIX", unique_redis_prefix()));
        }
        if service.uses_broker() {
            vars.push(("AMQP_URL", AMQP_URL.into()));
            vars.push(("EVENTS_EXCHANGE", self.events.exchange.clone()));
            vars.push(("EVENTS_QUEUE_PREFIX", self.events.queue_prefix.clone()));
            vars.push(("EVENTS_MAX_ATTEMPTS", self.events.max_attempts.to_string()));
            vars.push((
                "EVENTS_RETRY_BASE_MS",
                self.events.retry_base.as_millis().to_string(),
            ));
            vars.push(("OUTBOX_POLL_MS", "100".into()));
        }
        if service == ShopService::User {
            vars.push(("TOKEN_PRIVATE_KEY", self.keys.private_pem.clone()));
        }
        for callee in service.calls() {
            let name = callee
                .url_env()
                .expect("a service that is called has a URL variable");
            vars.push((name, self.url(*callee)));
        }
        vars.into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }

    /// Starts `service` as its `main` does, on a thread of its own.
    fn start(&self, service: ShopService) -> Running {
        let (vars, shutdown) = (self.vars(service), self.shutdown.clone());
        let thread = std::thread::spawn(move || {
            let runner = Runner::new(service).with_vars(vars).with_shutdown(shutdown);
            serve(service, runner)
        });
        Running {
            service,
            admin_port: self.ports[&service].1,
            thread,
        }
    }
}

/// What each service's `main` builds for `serve`.
fn serve(service: ShopService, runner: Runner) -> ExitCode {
    match service {
        ShopService::User => runner.serve(async |setup| {
            let config =
                user_service::config::UserConfig::from_source(setup.vars(), setup.config())?;
            let pool = setup.database(&user_service::MIGRATOR).await?;
            let state = user_service::AppState::new(
                pool,
                setup.cache()?,
                config.signer,
                setup.metrics(),
                config.settings,
            )?;
            Ok(user_service::app(state))
        }),
        ShopService::Product => runner.serve(async |setup| {
            use product_service::{AppState, MIGRATOR, app, cache::CatalogCache, inventory};
            let verifier = setup.config().token_verifier()?;
            let pool = setup.database(&MIGRATOR).await?;
            let cache = CatalogCache::new(setup.cache()?, setup.metrics());
            setup.start_event_workers(|events| {
                inventory::start_events(
                    &pool,
                    Some(cache.clone()),
                    &events.config,
                    &events.metrics,
                    &events.shutdown,
                )
            })?;
            Ok(app(AppState {
                pool,
                cache,
                verifier,
            }))
        }),
        ShopService::Order => runner.serve(async |setup| {
            use order_service::{
                AppState, MIGRATOR, app, catalog::Catalog, config::OrderConfig,
                metrics::OrderMetrics, start_events,
            };
            let product_url = setup.config().url_of(ShopService::Product)?;
            let own = OrderConfig::from_source(setup.vars())?;
            let state = AppState {
                verifier: setup.config().token_verifier()?,
                catalog: Catalog::new(server::http_client()?, product_url.as_str()),
                pool: setup.database(&MIGRATOR).await?,
                metrics: OrderMetrics::register(setup.metrics()),
                deadline: own.deadline,
            };
            setup.start_event_workers(|events| {
                start_events(&state, &events.config, &events.metrics, &events.shutdown)
            })?;
            Ok(app(state))
        }),
        ShopService::Payment => runner.serve(async |setup| {
            use payment_service::{AppState, MIGRATOR, app, metrics::PaymentMetrics, start_events};
            let state = AppState {
                verifier: setup.config().token_verifier()?,
                pool: setup.database(&MIGRATOR).await?,
                metrics: PaymentMetrics::register(setup.metrics()),
            };
            setup.start_event_workers(|events| {
                start_events(&state, &events.config, &events.metrics, &events.shutdown)
            })?;
            Ok(app(state))
        }),
        ShopService::Storefront => runner.serve(async |setup| {
            let config = storefront::config::Config::from_source(setup.vars())?;
            Ok(storefront::app(storefront::AppState::new(
                &config,
                setup.metrics(),
            )?))
        }),
    }
}

/// Waits until `url` answers 200.
async fn ready(client: &reqwest::Client, url: &str) {
    for _ in 0..400 {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered 200");
}

/// `POST url` with `body` (and a bearer token); asserts `status`; the JSON.
async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &Value,
    status: u16,
) -> Value {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "POST {url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A shopper's journey and the saga's troubles, enough that every series
/// family the assets read has a series.
async fn drive(stack: &Stack, product_db: &sqlx::PgPool) {
    let client = reqwest::Client::new();
    let token = shopper(&client, stack).await;
    let product = kettle(&client, stack, product_db).await;
    // One order paid, one declined.
    let order = stack.url(ShopService::Order);
    for card in ["4242424242424242", "4000000000000002"] {
        let id = buy(&client, stack, &token, product, card).await;
        settled(&client, &format!("{order}/api/orders/{id}"), &token).await;
    }
    event_troubles(&client, stack, product_db).await;
}

/// Registers a shopper at user-service and logs in; the access token.
async fn shopper(client: &reqwest::Client, stack: &Stack) -> String {
    let user = stack.url(ShopService::User);
    let email = format!("obs-{}@example.com", Uuid::new_v4().simple());
    post(
        client,
        &format!("{user}/api/users"),
        None,
        &[],
        &json!({"email": email, "password": PASSWORD, "name": "Ada"}),
        201,
    )
    .await;
    let login = post(
        client,
        &format!("{user}/api/users/login"),
        None,
        &[],
        &json!({"email": email, "password": PASSWORD}),
        200,
    )
    .await;
    login["access_token"].as_str().unwrap().to_owned()
}

/// A product in stock, read through product-service and the storefront.
async fn kettle(client: &reqwest::Client, stack: &Stack, product_db: &sqlx::PgPool) -> Uuid {
    let category = Uuid::new_v4();
    sqlx::query("INSERT INTO categories (id, slug, name) VALUES ($1, 'obs', 'Obs')")
        .bind(category)
        .execute(product_db)
        .await
        .unwrap();
    let product = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO products (id, slug, name, price_cents, currency, image_url, stock, category_id) \
         VALUES ($1, 'obs-kettle', 'Kettle', 2500, 'USD', '/images/x.svg', 10, $2)",
    )
    .bind(product)
    .bind(category)
    .execute(product_db)
    .await
    .unwrap();
    for url in [
        format!("{}/api/products", stack.url(ShopService::Product)),
        stack.url(ShopService::Storefront),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "GET {url}");
    }
    product
}

/// Cart, card and checkout; the order's id.
async fn buy(
    client: &reqwest::Client,
    stack: &Stack,
    token: &str,
    product: Uuid,
    card: &str,
) -> String {
    let order = stack.url(ShopService::Order);
    let payment = stack.url(ShopService::Payment);
    post(
        client,
        &format!("{order}/api/cart/items"),
        Some(token),
        &[],
        &json!({"product_id": product, "quantity": 1}),
        200,
    )
    .await;
    let method = post(
        client,
        &format!("{payment}/api/payments/methods"),
        Some(token),
        &[],
        &json!({"card_number": card, "exp_month": 12, "exp_year": 2035, "cvc": "123"}),
        201,
    )
    .await;
    let address = json!({"name": "Ada Lovelace", "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"});
    let placed = post(
        client,
        &format!("{order}/api/orders"),
        Some(token),
        &[("Idempotency-Key", &Uuid::new_v4().to_string())],
        &json!({"payment_method_id": method["id"], "shipping_address": address}),
        201,
    )
    .await;
    placed["id"].as_str().unwrap().to_owned()
}

/// A poison event is dead-lettered by product.inventory, and an event no
/// queue is bound to comes back to product-service's relay.
async fn event_troubles(client: &reqwest::Client, stack: &Stack, product_db: &sqlx::PgPool) {
    publish_raw(&stack.events, "order.created", b"not an event").await;
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, payload) VALUES ($1, 'test.unrouted', '{}')",
    )
    .bind(Uuid::new_v4())
    .execute(product_db)
    .await
    .unwrap();
    let url = format!(
        "http://127.0.0.1:{}/metrics",
        stack.ports[&ShopService::Product].1
    );
    for needle in ["events_dead_letter_queue_depth{", "events_returned_total{"] {
        let mut seen = false;
        for _ in 0..200 {
            let text = client.get(&url).send().await.unwrap().text().await.unwrap();
            if text.contains(needle) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen, "{needle} never showed on product-service's /metrics");
    }
}

/// Waits until the order is PAID or CANCELLED.
async fn settled(client: &reqwest::Client, url: &str, token: &str) {
    for _ in 0..400 {
        let order: Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if matches!(order["status"].as_str(), Some("PAID" | "CANCELLED")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never settled");
}

/// Every queue and exchange the services declared on the broker.
async fn delete_broker_objects(events: &EventsConfig) {
    let link = Link::open(&events.amqp_url, "observability-test-cleanup")
        .await
        .unwrap();
    for consumer in ROUTES
        .iter()
        .flat_map(|route| route.queues)
        .collect::<BTreeSet<_>>()
    {
        let queue = events.queue_name(consumer);
        let mut names = vec![topology::dead_letter_queue(&queue)];
        names.extend(
            events
                .retry_delays()
                .into_iter()
                .map(|delay| topology::retry_queue(&queue, delay)),
        );
        names.push(queue);
        for name in names {
            let _ = link
                .channel
                .queue_delete(&name, QueueDeleteOptions::default())
                .await;
        }
    }
    for exchange in [events.dead_letter_exchange(), events.exchange.clone()] {
        let _ = link
            .channel
            .exchange_delete(&exchange, ExchangeDeleteOptions::default())
            .await;
    }
    link.close().await;
}

/// The four databases, created and migrated.
async fn databases() -> Vec<(ShopService, TestDatabase)> {
    let mut out = Vec::new();
    for (service, migrator) in [
        (ShopService::User, &user_service::MIGRATOR),
        (ShopService::Product, &product_service::MIGRATOR),
        (ShopService::Order, &order_service::MIGRATOR),
        (ShopService::Payment, &payment_service::MIGRATOR),
    ] {
        out.push((service, TestDatabase::create(service, migrator).await));
    }
    out
}

/// Waits for every service, drives the shop, and scrapes each `/metrics`
/// (after a `/readyz`, which sets `dependency_up`).
async fn scrape(
    stack: &Stack,
    running: &[Running],
    product_db: &sqlx::PgPool,
) -> BTreeMap<ShopService, BTreeMap<String, BTreeSet<String>>> {
    let client = reqwest::Client::new();
    for service in running {
        let admin = format!("http://127.0.0.1:{}/readyz", service.admin_port);
        ready(&client, &admin).await;
    }
    drive(stack, product_db).await;
    let mut scraped = BTreeMap::new();
    for service in running {
        let admin = format!("http://127.0.0.1:{}", service.admin_port);
        client.get(format!("{admin}/readyz")).send().await.unwrap();
        let text = client
            .get(format!("{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        scraped.insert(service.service, queries::exposition(&text));
    }
    scraped
}

/// What is wrong with the assets' queries against what was scraped.
fn problems(scraped: &BTreeMap<ShopService, BTreeMap<String, BTreeSet<String>>>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut all: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (service, series) in scraped {
        for (metric, labels) in series {
            // No service metric may carry a label the scrape adds.
            for label in TARGET_LABELS.iter().filter(|l| labels.contains(**l)) {
                problems.push(format!(
                    "{service}: {metric} has a label {label} of its own, which the scrape's would override"
                ));
            }
            all.entry(metric.clone())
                .or_default()
                .extend(labels.iter().cloned());
        }
    }
    // `up` is Prometheus' own, with the target labels only.
    all.insert("up".into(), BTreeSet::new());
    let queries = queries::asset_queries();
    assert!(queries.len() > 20, "only {} queries", queries.len());
    for query in &queries {
        problems.extend(queries::problems(query, &all, &TARGET_LABELS, |metric| {
            !metric.starts_with("storekeeper_")
        }));
    }
    problems
}

#[test]
fn every_metric_and_label_the_rules_and_dashboard_read_is_on_the_services_metrics() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let databases = runtime.block_on(databases());
    let tag = Uuid::new_v4().simple().to_string();
    let stack = Stack {
        keys: KeyPair::generate().unwrap(),
        events: EventsConfig {
            exchange: format!("test.{tag}"),
            queue_prefix: format!("test.{tag}."),
            max_attempts: 2,
            retry_base: Duration::from_millis(50),
            ephemeral: None,
            ..EventsConfig::ephemeral()
        },
        shutdown: CancellationToken::new(),
        databases: databases
            .iter()
            .map(|(service, db)| (*service, db.name.clone()))
            .collect(),
        ports: ShopService::ALL
            .iter()
            .map(|service| (*service, (listen_port(), listen_port())))
            .collect(),
    };
    // Callees first, so the storefront and order-service find them.
    let running: Vec<Running> = [
        ShopService::Product,
        ShopService::Payment,
        ShopService::User,
        ShopService::Order,
        ShopService::Storefront,
    ]
    .into_iter()
    .map(|service| stack.start(service))
    .collect();
    let product_db = databases
        .iter()
        .find(|(service, _)| *service == ShopService::Product)
        .map(|(_, db)| db.pool.clone())
        .unwrap();
    // Whatever the scrape found, stop the services and remove the
    // databases and the broker's queues before judging.
    let scraped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(scrape(&stack, &running, &product_db))
    }));
    stack.shutdown.cancel();
    let codes: Vec<(ShopService, ExitCode)> = running
        .into_iter()
        .map(|service| (service.service, service.thread.join().unwrap()))
        .collect();
    runtime.block_on(async {
        for (_, database) in databases {
            database.drop_database().await;
        }
        delete_broker_objects(&stack.events).await;
    });
    let scraped = scraped.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    for (service, code) in codes {
        assert_eq!(code, ExitCode::SUCCESS, "{service} did not stop cleanly");
    }
    let problems = problems(&scraped);
    assert!(problems.is_empty(), "{problems:#?}");
}
