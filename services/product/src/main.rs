//! product-service binary: `product-service [serve]` runs the API and the
//! inventory consumer; `product-service migrate` applies the migrations and
//! exits; `product-service seed` loads the sample catalog (idempotent) and
//! exits.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use product_service::{AppState, MIGRATOR, app, cache::CatalogCache, inventory, seed};
use storekeeper_contract::ShopService;
use storekeeper_kit::Runner;

/// Storekeeper product-service. Configured by the environment variables in
/// `storekeeper_contract::env` (PORT, DATABASE_URL, REDIS_URL, AMQP_URL, ...).
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
    /// Apply the database migrations and exit (the operator's Job runs it).
    Migrate,
    /// Apply migrations, upsert the sample catalog by slug, and exit.
    Seed,
}

fn main() -> ExitCode {
    let runner = Runner::new(ShopService::Product);
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => runner.serve(async |setup| {
            let verifier = setup.config().token_verifier()?;
            let pool = setup.database(&MIGRATOR).await?;
            let cache = CatalogCache::new(setup.cache()?, setup.metrics());
            setup.start_event_workers(|events| {
                let cache = Some(cache.clone());
                inventory::start_events(
                    &pool,
                    cache,
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
        Command::Migrate => runner.migrate(&MIGRATOR),
        Command::Seed => runner.run_once(async |setup| {
            let pool = setup.database(&MIGRATOR).await?;
            let cache = CatalogCache::new(setup.cache()?, setup.metrics());
            let report = seed::load(&pool).await.context("seeding the catalog")?;
            cache.invalidate(&report.changed).await;
            tracing::info!(
                categories = report.categories,
                products = report.products,
                changed = report.changed.len(),
                "sample catalog loaded"
            );
            Ok(())
        }),
    }
}
