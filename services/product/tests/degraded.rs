//! product-service as `main` runs it (the kit's runner, its database, Redis
//! and the broker), with RabbitMQ unreachable: the pod stays ready, says it
//! is degraded, and catalog reads still answer.
//!
//! The runner builds its own async runtime, as `main` does, so this is a
//! plain `#[test]`.

// Fixtures fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use product_service::{AppState, MIGRATOR, app, cache::CatalogCache, inventory, seed};
use sqlx::{Connection, PgConnection};
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    Runner, admin::ReadinessReport, auth::KeyPair, events::CancellationToken, server,
    testing::closed_port,
};

use uuid::Uuid;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own, dropped at the end.
struct TestDatabase(String);

impl TestDatabase {
    fn create() -> Self {
        let name = format!("product_degraded_{}", Uuid::new_v4().simple());
        admin_query(&format!("CREATE DATABASE \"{name}\""));
        Self(name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin_query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.0
        ));
    }
}

fn admin_query(sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = PgConnection::connect(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut connection).await.unwrap();
    });
}

/// What the probe saw.
struct Seen {
    readyz_status: u16,
    report: ReadinessReport,
    products_status: u16,
    products: serde_json::Value,
}

/// Waits for `/readyz`, reads the catalog, then stops the service.
async fn probe(port: u16, admin_port: u16, stop: CancellationToken) -> Option<Seen> {
    let client = server::http_client().unwrap();
    let mut seen = None;
    for _ in 0..100 {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{admin_port}/readyz"))
            .send()
            .await
        {
            let readyz_status = response.status().as_u16();
            let report = response.json().await.unwrap();
            let products = client
                .get(format!("http://127.0.0.1:{port}/api/products?q=mug"))
                .send()
                .await
                .unwrap();
            seen = Some(Seen {
                readyz_status,
                report,
                products_status: products.status().as_u16(),
                products: products.json().await.unwrap(),
            });
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    seen
}

#[test]
fn a_broker_outage_keeps_the_service_ready_and_reads_answering() {
    let database = TestDatabase::create();
    let (port, admin_port) = (closed_port(), closed_port());
    let stop = CancellationToken::new();
    let seen = Arc::new(Mutex::new(None));
    let vars: HashMap<String, String> = [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", port.to_string()),
        ("ADMIN_PORT", admin_port.to_string()),
        ("DATABASE_URL", format!("{SERVER}/{}", database.0)),
        ("REDIS_URL", "redis://127.0.0.1:6379".to_owned()),
        ("REDIS_PREFIX", format!("test:{}:", Uuid::new_v4().simple())),
        (
            "AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port()),
        ),
        ("TOKEN_PUBLIC_KEY", KeyPair::generate().unwrap().public_pem),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();

    // What `main` builds for `serve`, plus the sample catalog.
    let code = Runner::new(ShopService::Product)
        .with_vars(vars)
        .with_shutdown(stop.clone())
        .serve(async |setup| {
            let verifier = setup.config().token_verifier()?;
            let pool = setup.database(&MIGRATOR).await?;
            seed::load(&pool).await?;
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
            let seen = seen.clone();
            tokio::spawn(async move {
                *seen.lock().unwrap() = probe(port, admin_port, stop).await;
            });
            Ok(app(AppState {
                pool,
                cache,
                verifier,
            }))
        });
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let seen = seen.lock().unwrap().take().expect("the service answered");
    assert_eq!(seen.readyz_status, 200, "{:?}", seen.report);
    assert_eq!(seen.report.status, "degraded");
    assert_eq!(seen.report.degraded, ["rabbitmq"]);
    assert_eq!(seen.report.checks["postgres"], "ok");
    assert_eq!(seen.report.checks["redis"], "ok");
    assert!(seen.report.checks["rabbitmq"].starts_with("down: "));
    assert_eq!(seen.products_status, 200);
    assert!(
        seen.products["total"].as_i64().unwrap() > 0,
        "{}",
        seen.products
    );
}
