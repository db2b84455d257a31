//! payment-service binary: serves the API and runs the event workers.
//! Configured by environment variables (PORT, ADMIN_PORT, DATABASE_URL,
//! AMQP_URL, EVENTS_EXCHANGE, TOKEN_PUBLIC_KEY, LOG_FORMAT, RUST_LOG).

use payment_service::{
    AppState, DATABASE, DEFAULT_PORT, MIGRATOR, SERVICE_NAME, app, metrics::PaymentMetrics,
    readiness, start_events,
};
use storekeeper_kit::{
    Metrics, ServiceConfig, admin, db,
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
    let pool = db::connect(&config.database_url, &MIGRATOR).await?;
    let metrics = Metrics::new();
    let state = AppState {
        pool: pool.clone(),
        verifier,
        metrics: PaymentMetrics::register(&metrics),
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
