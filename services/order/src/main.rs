//! order-service binary: the kit's runner serves the API and runs the
//! outbox relay, the saga consumer and the idempotency-key pruner.

use std::process::ExitCode;

use order_service::{
    AppState, MIGRATOR, app, catalog::Catalog, metrics::OrderMetrics, start_events,
};
use storekeeper_contract::ShopService;
use storekeeper_kit::{Runner, server};

fn main() -> ExitCode {
    Runner::new(ShopService::Order).serve(async |setup| {
        let product_url = setup.config().url_of(ShopService::Product)?;
        let state = AppState {
            verifier: setup.config().token_verifier()?,
            catalog: Catalog::new(server::http_client()?, product_url.as_str()),
            pool: setup.database(&MIGRATOR).await?,
            metrics: OrderMetrics::register(setup.metrics()),
        };
        setup.start_event_workers(|events| {
            start_events(&state, &events.config, &events.metrics, &events.shutdown)
        })?;
        Ok(app(state))
    })
}
