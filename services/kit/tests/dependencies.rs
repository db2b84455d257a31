//! The data-layer helpers against the real PostgreSQL, Redis and RabbitMQ
//! on this machine: readiness naming a down dependency, the degraded cache,
//! and a full serve/shutdown cycle.

// Helpers outside `#[test]` functions may unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::{Router, http::StatusCode, routing::get};
use storekeeper_contract::ShopService;
use storekeeper_kit::testing::TestDatabase;
use storekeeper_kit::{
    Metrics, Readiness, ServiceConfig,
    admin::{self, ReadinessReport},
    cache::{self, Cache},
    db,
    events::{broker, testing::AMQP_URL},
    testing::{TestApp, closed_port, unique_redis_prefix},
};
use tokio_util::sync::CancellationToken;

fn live_cache() -> Cache {
    Cache::connect("redis://127.0.0.1:6379", &unique_redis_prefix()).unwrap()
}

fn dead_cache() -> Cache {
    Cache::connect(&format!("redis://127.0.0.1:{}", closed_port()), "dead:").unwrap()
}

#[tokio::test]
async fn readyz_is_200_when_everything_answers() {
    let database = TestDatabase::for_kit(None).await;
    let pool = database.pool.clone();
    let readiness = Readiness::new()
        .with(db::readiness_check(&pool))
        .with(cache::readiness_check(&live_cache()));
    let app = TestApp::new(admin::router(Metrics::new(), readiness));
    let response = app.get("/readyz").send().await;
    response.assert_status(StatusCode::OK);
    let report: ReadinessReport = response.json();
    assert!(report.is_ready());
    assert_eq!(report.checks["postgres"], "ok");
    assert_eq!(report.checks["redis"], "ok");
}

#[tokio::test]
async fn a_redis_outage_is_degraded_but_ready() {
    let database = TestDatabase::for_kit(None).await;
    let pool = database.pool.clone();
    let readiness = Readiness::new()
        .with(db::readiness_check(&pool))
        .with(cache::readiness_check(&dead_cache()));
    let metrics = Metrics::new();
    let app = TestApp::new(admin::router(metrics.clone(), readiness));
    let started = std::time::Instant::now();
    let response = app.get("/readyz").send().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    response.assert_status(StatusCode::OK);
    let report: ReadinessReport = response.json();
    assert_eq!(report.status, "degraded");
    assert!(report.is_ready());
    assert_eq!(report.degraded, ["redis"]);
    assert_eq!(report.checks["postgres"], "ok");
    assert!(report.checks["redis"].starts_with("down: "), "{report:?}");
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("dependency_up{dependency=\"redis\",required=\"false\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("dependency_up{dependency=\"postgres\",required=\"true\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_own_database_is_not_ready() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nowhere", closed_port());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(&url)
        .unwrap();
    let readiness = Readiness::new()
        .with(db::readiness_check(&pool))
        .with(cache::readiness_check(&live_cache()));
    let app = TestApp::new(admin::router(Metrics::new(), readiness));
    let response = app.get("/readyz").send().await;
    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let report: ReadinessReport = response.json();
    assert_eq!(report.status, "unavailable");
    assert!(
        report.checks["postgres"].starts_with("down: "),
        "{report:?}"
    );
    assert_eq!(report.checks["redis"], "ok");
}

#[tokio::test]
async fn a_broker_outage_is_named_and_the_service_stays_ready() {
    let up = Readiness::new()
        .with(broker::readiness_check(AMQP_URL))
        .run()
        .await;
    assert_eq!(up.checks["rabbitmq"], "ok");
    let down_url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port());
    let down = Readiness::new()
        .with(broker::readiness_check(&down_url))
        .run()
        .await;
    assert_eq!(down.status, "degraded");
    assert!(down.is_ready());
    assert_eq!(down.degraded, ["rabbitmq"]);
    assert!(down.checks["rabbitmq"].starts_with("down: "), "{down:?}");
}

#[tokio::test]
async fn readyz_times_out_slow_checks() {
    let slow = admin::Check::new("slowpoke", || async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok(())
    });
    let readiness = Readiness::new()
        .with(slow)
        .timeout(Duration::from_millis(100));
    let report = readiness.run().await;
    assert!(!report.is_ready());
    assert!(
        report.checks["slowpoke"].contains("no answer"),
        "{report:?}"
    );
}

#[tokio::test]
async fn healthz_and_metrics_answer() {
    let metrics = Metrics::new();
    metrics.counter("widgets_sold", "Widgets sold").inc();
    let app = TestApp::new(admin::router(metrics, Readiness::new()));
    assert_eq!(app.get("/healthz").send().await.text(), "ok");
    let response = app.get("/metrics").send().await;
    response.assert_status(StatusCode::OK);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .contains("openmetrics")
    );
    assert!(response.text().contains("widgets_sold_total 1"));
}

#[tokio::test]
async fn cache_round_trips_with_its_prefix() {
    let cache = live_cache();
    assert!(cache.key("p:1").starts_with("test:"));
    cache
        .set_json("p:1", &vec![1, 2, 3], Duration::from_secs(30))
        .await;
    assert_eq!(cache.get_json::<Vec<i32>>("p:1").await, Some(vec![1, 2, 3]));
    cache.delete(&["p:1"]).await.unwrap();
    assert_eq!(cache.get_json::<Vec<i32>>("p:1").await, None);
}

#[tokio::test]
async fn a_dead_redis_degrades_to_misses_quickly() {
    let cache = dead_cache();
    let started = std::time::Instant::now();
    cache.set_json("k", &1, Duration::from_secs(5)).await;
    assert_eq!(cache.get_json::<i32>("k").await, None);
    assert!(cache.delete(&["k"]).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_malformed_redis_url_is_a_start_up_error() {
    let err = Cache::connect("http://nope", "x:").unwrap_err();
    assert!(err.to_string().starts_with("invalid REDIS_URL"), "{err}");
}

#[tokio::test]
async fn serve_answers_then_drains_and_returns_on_shutdown() {
    let mut config = ServiceConfig::for_tests(ShopService::Storefront);
    config.host = [127, 0, 0, 1].into();
    config.port = closed_port();
    config.admin_port = closed_port();
    let metrics = Metrics::new();
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            "done"
        }),
    );
    let admin = admin::router(metrics.clone(), Readiness::new());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let (config, metrics, shutdown) = (config.clone(), metrics.clone(), shutdown.clone());
        async move {
            storekeeper_kit::server::serve_until(app, admin, &config, &metrics, shutdown).await
        }
    });
    let client = storekeeper_kit::server::http_client().unwrap();
    let health = format!("http://127.0.0.1:{}/healthz", config.admin_port);
    let mut up = false;
    for _ in 0..50 {
        if client.get(&health).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "admin port never answered");

    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("http://127.0.0.1:{}/slow", config.port);
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    assert_eq!(in_flight.await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    let refused = client
        .get(format!("http://127.0.0.1:{}/slow", config.port))
        .send()
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn outgoing_calls_carry_the_request_id() {
    use storekeeper_kit::telemetry::RequestBuilderExt as _;
    // A downstream service that echoes the request id it received.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let downstream = format!("http://{}/echo", listener.local_addr().unwrap());
    let echo = Router::new().route(
        "/echo",
        get(|headers: http::HeaderMap| async move {
            headers
                .get("x-request-id")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        }),
    );
    tokio::spawn(async move { axum::serve(listener, echo).await });

    let client = storekeeper_kit::server::http_client().unwrap();
    let app = TestApp::new(Router::new().route(
        "/call",
        get(move || {
            let (client, url) = (client.clone(), downstream.clone());
            async move {
                let response = client.get(url).with_request_id().send().await.unwrap();
                response.text().await.unwrap()
            }
        }),
    ));
    let response = app
        .get("/call")
        .header("x-request-id", "trace-me-1")
        .send()
        .await;
    assert_eq!(response.text(), "trace-me-1");
    let response = app.get("/call").send().await;
    assert_eq!(
        Some(response.text().as_str()),
        response.header("x-request-id")
    );
}
