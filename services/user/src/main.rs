//! user-service binary: the kit's runner serves the API; start-up reads the
//! signing key and throttle settings and makes sure the admin account exists.

use std::process::ExitCode;

use anyhow::Context as _;
use storekeeper_contract::ShopService;
use storekeeper_kit::Runner;
use user_service::{AppState, MIGRATOR, app, config::UserConfig, users};

fn main() -> ExitCode {
    Runner::new(ShopService::User).serve(async |setup| {
        let config = UserConfig::from_source(setup.vars(), setup.config())?;
        let pool = setup.database(&MIGRATOR).await?;
        let state = AppState::new(
            pool.clone(),
            setup.cache()?,
            config.signer,
            setup.metrics(),
            config.settings,
        )?;
        if let Some(admin) = &config.admin {
            users::ensure_admin(&pool, &state.passwords, admin)
                .await
                .context("creating the admin account")?;
        }
        Ok(app(state))
    })
}
