//! The storefront binary: read config, build the app, serve.

use storefront::{AppState, app, config::Config};
use storekeeper_kit::{Metrics, Readiness, admin, server, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(config.service.name, config.service.log_format);
    if config.session_key_generated {
        tracing::warn!(
            "SESSION_KEY is not set: using a random key, so sessions end when the storefront restarts"
        );
    }
    let metrics = Metrics::new();
    let state = AppState::new(&config, &metrics)?;
    // The storefront is ready as soon as it listens: every page degrades on
    // its own when a backend is down, so tying readiness to the backends would
    // only turn one service's outage into the whole shop's.
    let readiness = Readiness::new();
    server::serve(
        app(state),
        admin::router(metrics.clone(), readiness),
        &config.service,
        &metrics,
    )
    .await?;
    Ok(())
}
