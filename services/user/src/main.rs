//! user-service binary: read config, connect, ensure the admin, serve.

use anyhow::Context as _;
use storekeeper_kit::{Metrics, Readiness, admin, cache, db, server, telemetry};
use user_service::{AppState, MIGRATOR, Settings, config::UserConfig, users};

fn main() -> std::process::ExitCode {
    server::exit_code(run())
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let config = UserConfig::from_env()?;
    let service = &config.service;
    telemetry::init(service.name, service.log_format);
    let pool = db::connect_with(
        &service.database_url,
        &MIGRATOR,
        service.database_max_connections,
    )
    .await?;
    let cache = cache::Cache::connect(&service.redis_url, &service.redis_prefix)?;
    let metrics = Metrics::new();
    let settings = Settings {
        throttle: config.throttle,
        refresh_ttl: config.refresh_ttl,
        trusted_proxy_hops: service.trusted_proxy_hops,
    };
    let state = AppState::new(
        pool.clone(),
        cache.clone(),
        config.signer.clone(),
        &metrics,
        settings,
    )?;
    if let Some(admin) = &config.admin {
        users::ensure_admin(&pool, &state.passwords, admin)
            .await
            .context("creating the admin account")?;
    }
    let readiness = Readiness::new()
        .with(db::readiness_check(&pool))
        .with(cache::readiness_check(&cache));
    server::serve(
        user_service::app(state),
        admin::router(metrics.clone(), readiness),
        service,
        &metrics,
    )
    .await?;
    pool.close().await;
    Ok(())
}
