//! payment-service binary: the kit's runner serves the API and runs the
//! outbox relay and the charge consumer.

use std::process::ExitCode;

use payment_service::{AppState, MIGRATOR, app, metrics::PaymentMetrics, start_events};
use storekeeper_contract::ShopService;
use storekeeper_kit::Runner;

fn main() -> ExitCode {
    Runner::new(ShopService::Payment).serve(async |setup| {
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
