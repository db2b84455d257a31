//! user-service binary: `user-service [serve]` serves the API (start-up
//! reads the signing key and throttle settings and makes sure the admin
//! account exists); `user-service migrate` applies the migrations and exits.

use std::process::ExitCode;

use anyhow::Context as _;
use storekeeper_contract::ShopService;
use storekeeper_kit::{Command, Runner};
use user_service::{AppState, MIGRATOR, app, config::UserConfig, users};

fn main() -> ExitCode {
    let runner = Runner::new(ShopService::User);
    if runner.command() == Command::Migrate {
        return runner.migrate(&MIGRATOR);
    }
    runner.serve(async |setup| {
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
