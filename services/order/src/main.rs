//! order-service binary: serves the API and runs the event workers.
//! Configured by environment variables (PORT, ADMIN_PORT, DATABASE_URL,
//! AMQP_URL, EVENTS_EXCHANGE, PRODUCT_URL, TOKEN_PUBLIC_KEY, LOG_FORMAT, RUST_LOG).

use order_service::{
    AppState, DATABASE, DEFAULT_PORT, DEFAULT_PRODUCT_URL, MIGRATOR, SERVICE_NAME, app,
    catalog::Catalog, metrics::OrderMetrics, readiness, start_events,
};
use storekeeper_kit::{
    Metrics, ServiceConfig, admin,
    config::env_or,
    db,
    events::{EventMetrics, EventsConfig},
    server, telemetry,
};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ServiceConfig::from_env(SERVICE_NAME, DEFAULT_PORT, DATABASE)?;
    telemetry::init(config.name, config.log_format);
    let verifier = config.token_verifier()?;
    let events_config = EventsConfig::from_env(&config.amqp_url)?;
    let product_url: String = env_or("PRODUCT_URL", DEFAULT_PRODUCT_URL.to_owned())?;
    let pool = db::connect(&config.database_url, &MIGRATOR).await?;
    let metrics = Metrics::new();
    let state = AppState {
        pool: pool.clone(),
        verifier,
        catalog: Catalog::new(server::http_client()?, &product_url),
        metrics: OrderMetrics::register(&metrics),
    };
    let shutdown = CancellationToken::new();
    let workers = start_events(
        &state,
        &events_config,
        &EventMetrics::register(&metrics),
        &shutdown,
    );
    let admin = admin::router(metrics.clone(), readiness(&pool, &config.amqp_url));
    let served = server::serve(app(state), admin, &config, &metrics).await;
    shutdown.cancel();
    for worker in workers {
        if let Err(err) = worker.await {
            tracing::error!(error = %err, "event worker panicked");
        }
    }
    pool.close().await;
    Ok(served?)
}
