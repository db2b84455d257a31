//! product-service binary: `product-service [serve]` runs the API;
//! `product-service seed` loads the sample catalog (idempotent) and exits.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use product_service::{
    AppState, DATABASE, DEFAULT_PORT, MIGRATOR, SERVICE_NAME, app, cache::CatalogCache, inventory,
    readiness, seed,
};
use storekeeper_kit::{Metrics, ServiceConfig, admin, cache, db, events, server, telemetry};

/// Storekeeper product-service. Configured by environment variables
/// (PORT, ADMIN_PORT, DATABASE_URL, REDIS_URL, REDIS_PREFIX, TOKEN_PUBLIC_KEY, LOG_FORMAT, RUST_LOG).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Command {
    /// Serve the API and the admin endpoints (the default).
    Serve,
    /// Apply migrations, upsert the sample catalog by slug, and exit.
    Seed,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = ServiceConfig::from_env(SERVICE_NAME, DEFAULT_PORT, DATABASE)?;
    telemetry::init(config.name, config.log_format);
    let metrics = Metrics::new();
    let pool = db::connect(&config.database_url, &MIGRATOR).await?;
    let redis = cache::Cache::connect(&config.redis_url, &config.redis_prefix)?;
    let catalog_cache = CatalogCache::new(redis.clone(), &metrics);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Seed => {
            let report = seed::load(&pool).await.context("seeding the catalog")?;
            catalog_cache.invalidate(&report.changed).await;
            tracing::info!(
                categories = report.categories,
                products = report.products,
                changed = report.changed.len(),
                "sample catalog loaded"
            );
        }
        Command::Serve => {
            let verifier = config.token_verifier()?;
            let readiness =
                readiness(&pool, &redis).with(events::broker::readiness_check(&config.amqp_url));
            let shutdown = events::CancellationToken::new();
            let events_config = events::EventsConfig::from_env(&config.amqp_url)?;
            let workers = inventory::start_events(
                &pool,
                Some(catalog_cache.clone()),
                &events_config,
                &events::EventMetrics::register(&metrics),
                &shutdown,
            );
            let state = AppState {
                pool: pool.clone(),
                cache: catalog_cache,
                verifier,
            };
            let served = server::serve(
                app(state),
                admin::router(metrics.clone(), readiness),
                &config,
                &metrics,
            )
            .await;
            shutdown.cancel();
            join_workers(workers).await;
            served?;
        }
    }
    pool.close().await;
    Ok(())
}

/// Waits for the event workers to stop after shutdown.
async fn join_workers(workers: Vec<tokio::task::JoinHandle<()>>) {
    for worker in workers {
        if let Err(err) = worker.await {
            tracing::error!(error = %err, "event worker panicked");
        }
    }
}
