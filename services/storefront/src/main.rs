//! The storefront binary: the kit's runner serves the shop.
//!
//! It opens nothing, so `/readyz` is ready as soon as it listens: every page
//! degrades on its own when a backend is down, so tying readiness to the
//! backends would only turn one service's outage into the whole shop's.

use std::process::ExitCode;

use storefront::{AppState, app, config::Config};
use storekeeper_contract::ShopService;
use storekeeper_kit::Runner;

fn main() -> ExitCode {
    Runner::new(ShopService::Storefront).serve(async |setup| {
        let config = Config::new(setup.config().clone(), setup.vars())?;
        if config.session_key_generated {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key, so sessions end when the storefront restarts"
            );
        }
        Ok(app(AppState::new(&config, setup.metrics())?))
    })
}
