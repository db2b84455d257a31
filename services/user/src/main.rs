//! user-service binary: the kit's runner serves the API; start-up reads the
//! signing key and throttle settings and makes sure the admin account exists.

use std::process::ExitCode;

use anyhow::Context as _;
use storekeeper_contract::ShopService;
use storekeeper_kit::Runner;
use user_service::{AppState, MIGRATOR, Settings, app, config::UserConfig, users};

fn main() -> ExitCode {
    Runner::new(ShopService::User).serve(async |setup| {
        let config = UserConfig::from_source(setup.vars(), setup.config())?;
        let settings = Settings {
            throttle: config.throttle,
            refresh_ttl: config.refresh_ttl,
            trusted_proxy_hops: setup.config().trusted_proxy_hops,
        };
        let pool = setup.database(&MIGRATOR).await?;
        let cache = setup.cache()?;
        let state = AppState::new(
            pool.clone(),
            cache,
            config.signer,
            setup.metrics(),
            settings,
        )?;
        if let Some(admin) = &config.admin {
            users::ensure_admin(&pool, &state.passwords, admin)
                .await
                .context("creating the admin account")?;
        }
        Ok(app(state))
    })
}
