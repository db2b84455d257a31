//! order-service binary: `order-service [serve]` serves the API and runs
//! the outbox relay, the saga consumer, the reaper and the idempotency-key
//! pruner;
//! `order-service migrate` applies the migrations and exits.

use std::process::ExitCode;

use order_service::{
    AppState, MIGRATOR, app, catalog::Catalog, config::OrderConfig, metrics::OrderMetrics,
    start_events,
};
use storekeeper_contract::ShopService;
use storekeeper_kit::{Command, Runner, server};

fn main() -> ExitCode {
    let runner = Runner::new(ShopService::Order);
    if runner.command() == Command::Migrate {
        return runner.migrate(&MIGRATOR);
    }
    runner.serve(async |setup| {
        let product_url = setup.config().url_of(ShopService::Product)?;
        let own = OrderConfig::from_source(setup.vars())?;
        let state = AppState {
            verifier: setup.config().token_verifier()?,
            catalog: Catalog::new(server::http_client()?, product_url.as_str()),
            pool: setup.database(&MIGRATOR).await?,
            metrics: OrderMetrics::register(setup.metrics()),
            deadline: own.deadline,
        };
        setup.start_event_workers(|events| {
            start_events(&state, &events.config, &events.metrics, &events.shutdown)
        })?;
        Ok(app(state))
    })
}
