//! payment-service binary: `payment-service [serve]` serves the API and
//! runs the outbox relay and the charge consumer; `payment-service migrate`
//! applies the migrations and exits.

use std::process::ExitCode;

use payment_service::{AppState, MIGRATOR, app, metrics::PaymentMetrics, start_events};
use storekeeper_contract::ShopService;
use storekeeper_kit::{Command, Runner};

fn main() -> ExitCode {
    let runner = Runner::new(ShopService::Payment);
    if runner.command() == Command::Migrate {
        return runner.migrate(&MIGRATOR);
    }
    runner.serve(async |setup| {
        let state = AppState {
            verifier: setup.config().token_verifier()?,
            pool: setup.database(&MIGRATOR).await?,
            metrics: PaymentMetrics::register(setup.metrics()),
        };
        setup.start_event_workers(|events| {
            start_events(&state, &events.config, &events.metrics, &events.shutdown)
        })?;
        Ok(app(state))
    })
}
