//! One way for every service to start, serve and stop.
//!
//! A service's `main` names the service and hands [`Runner::serve`] the
//! code that builds its API [`Router`]. The runner reads the
//! [`ServiceConfig`] (a bad value prints one line and exits 1), starts
//! logging, runs the build code with a [`Setup`] — through which the service
//! opens what it uses: its database (pool of `DATABASE_MAX_CONNECTIONS`,
//! migrations applied), Redis, the broker for its event workers — then
//! serves the API and the admin endpoints until SIGTERM or Ctrl-C, stops
//! and joins the workers, and closes the pool.
//!
//! `/readyz` checks what the service opened: `postgres` for its database,
//! `redis` for Redis, `rabbitmq` for the broker. [`ShopService`] decides
//! what a service may open, and a served service must open all of it, so
//! the probes and the contract cannot drift apart.
//!
//! ```ignore
//! fn main() -> ExitCode {
//!     Runner::new(ShopService::Payment).serve(async |setup| {
//!         let state = AppState { pool: setup.database(&MIGRATOR).await?, .. };
//!         setup.start_event_workers(|events| start_events(&state, &events.config, &events.metrics, &events.shutdown))?;
//!         Ok(app(state))
//!     })
//! }
//! ```

use std::process::ExitCode;

use anyhow::Context as _;
use axum::Router;
use sqlx::{PgPool, migrate::Migrator};
use storekeeper_contract::ShopService;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    Metrics, Readiness, ServiceConfig, admin,
    cache::{self, Cache, CacheError},
    config::{ProcessEnv, Source, Vars},
    db::{self, DbError},
    events::{EventMetrics, EventsConfig, broker},
    server, telemetry,
};

/// Starts one shop service: configuration, logging, what it opens, serving,
/// shutdown. Build it with [`Runner::new`], then call [`Runner::serve`] (or
/// [`Runner::run_once`] for a one-off command such as a seed).
pub struct Runner {
    service: ShopService,
    vars: Vars<Box<dyn Source>>,
    shutdown: CancellationToken,
}

impl Runner {
    /// A runner for `service`, reading the process environment.
    pub fn new(service: ShopService) -> Self {
        Self {
            service,
            vars: Vars(Box::new(ProcessEnv)),
            shutdown: CancellationToken::new(),
        }
    }

    /// Reads variables from `source` instead of the process environment
    /// (the 2024 edition makes `std::env::set_var` unsafe).
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn with_vars(mut self, source: impl Source + 'static) -> Self {
        self.vars = Vars(Box::new(source));
        self
    }

    /// Stops serving when `shutdown` is cancelled, as on SIGTERM.
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Serves the API `build` returns, and the admin endpoints, until
    /// SIGTERM or Ctrl-C; then drains in-flight requests, stops and joins
    /// the workers and closes the pool. Any failure is one line on stderr
    /// and exit status 1.
    pub fn serve<B>(self, build: B) -> ExitCode
    where
        B: AsyncFnOnce(&mut Setup) -> anyhow::Result<Router>,
    {
        server::exit_code(self.run(async move |setup: &mut Setup| {
            let app = build(setup).await?;
            setup.check_everything_opened()?;
            let admin = admin::router(setup.metrics.clone(), setup.readiness.clone());
            let signal = tokio::spawn(cancel_on_signal(setup.shutdown.clone()));
            let served = server::serve_until(
                app,
                admin,
                &setup.config,
                &setup.metrics,
                setup.shutdown.clone(),
            )
            .await;
            signal.abort();
            Ok(served?)
        }))
    }

    /// Runs `job` once with the same configuration, logging and resources
    /// as [`Runner::serve`], then exits: for commands such as a seed.
    pub fn run_once<J>(self, job: J) -> ExitCode
    where
        J: AsyncFnOnce(&mut Setup) -> anyhow::Result<()>,
    {
        server::exit_code(self.run(job))
    }

    fn run<J>(self, job: J) -> anyhow::Result<()>
    where
        J: AsyncFnOnce(&mut Setup) -> anyhow::Result<()>,
    {
        let config = ServiceConfig::from_source(&self.vars, self.service)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async move {
            telemetry::init(config.name, config.log_format);
            let mut setup = Setup {
                service: self.service,
                config,
                vars: self.vars,
                metrics: Metrics::new(),
                shutdown: self.shutdown,
                readiness: Readiness::new(),
                pool: None,
                cache: None,
                events: None,
                workers: Vec::new(),
            };
            let result = job(&mut setup).await;
            setup.finish().await;
            result
        })
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    server::shutdown_signal().await;
    shutdown.cancel();
}

/// What a service's start-up code gets from the [`Runner`]: its
/// configuration and metrics, a reader for its own extra variables, and
/// the way to open its database, Redis and event workers. Each one opened
/// is checked by `/readyz` and closed or stopped at shutdown.
pub struct Setup {
    service: ShopService,
    config: ServiceConfig,
    vars: Vars<Box<dyn Source>>,
    metrics: Metrics,
    shutdown: CancellationToken,
    readiness: Readiness,
    pool: Option<PgPool>,
    cache: Option<Cache>,
    events: Option<EventWiring>,
    workers: Vec<JoinHandle<()>>,
}

/// What event workers (the outbox relay, the consumers) start with: the
/// broker settings, the event counters, and the token they stop on.
#[derive(Debug, Clone)]
pub struct EventWiring {
    /// `AMQP_URL` and the `EVENTS_*` settings.
    pub config: EventsConfig,
    /// Published, consumed, retried, dead-lettered; registered once.
    pub metrics: EventMetrics,
    /// Cancelled at shutdown, after the API stopped serving.
    pub shutdown: CancellationToken,
}

/// Why a service could not open what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The service asked for something the contract says it does not use
    /// (the operator would not give it the variables to reach it).
    #[error("{service} does not use {part} according to storekeeper_contract::ShopService")]
    NotInContract {
        /// The service.
        service: ShopService,
        /// What it asked for.
        part: &'static str,
    },
    /// The contract says the service uses something it never opened, so
    /// `/readyz` would not check it.
    #[error(
        "{service} uses {part} according to storekeeper_contract::ShopService, but its start-up never opened it"
    )]
    NeverOpened {
        /// The service.
        service: ShopService,
        /// What it did not open.
        part: &'static str,
    },
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// `REDIS_URL` is malformed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

const DATABASE: &str = "a database";
const REDIS: &str = "Redis";
const BROKER: &str = "the broker";

impl Setup {
    /// The settings every service shares.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Reads the service's own variables (beyond [`ServiceConfig`]); a bad
    /// value fails start-up with the same one-line error.
    pub fn vars(&self) -> &Vars<Box<dyn Source>> {
        &self.vars
    }

    /// The registry the service adds its business metrics to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The service's own database: connects (pool of
    /// `DATABASE_MAX_CONNECTIONS`), applies `migrator`, and adds the
    /// `postgres` readiness check. Asking again returns the same pool.
    pub async fn database(&mut self, migrator: &Migrator) -> Result<PgPool, SetupError> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let config = self
            .config
            .database
            .as_ref()
            .ok_or_else(|| self.not_in_contract(DATABASE))?;
        let pool = db::connect(config, migrator).await?;
        self.readiness.add(db::readiness_check(&pool));
        self.pool = Some(pool.clone());
        Ok(pool)
    }

    /// Redis, under the service's key prefix (a down Redis never stops
    /// start-up), with the `redis` readiness check.
    pub fn cache(&mut self) -> Result<Cache, SetupError> {
        if let Some(cache) = &self.cache {
            return Ok(cache.clone());
        }
        let config = self
            .config
            .redis
            .as_ref()
            .ok_or_else(|| self.not_in_contract(REDIS))?;
        let cache = Cache::connect(&config.url, &config.prefix)?;
        self.readiness.add(cache::readiness_check(&cache));
        self.cache = Some(cache.clone());
        Ok(cache)
    }

    /// Starts the service's event workers with `start`, which spawns them
    /// and returns their handles; the runner cancels
    /// [`EventWiring::shutdown`] after serving stops, waits for each, and
    /// logs any that panicked. Adds the `rabbitmq` readiness check.
    pub fn start_event_workers<F>(&mut self, start: F) -> Result<(), SetupError>
    where
        F: FnOnce(&EventWiring) -> Vec<JoinHandle<()>>,
    {
        let wiring = self.events.clone().map_or_else(|| self.open_broker(), Ok)?;
        self.workers.extend(start(&wiring));
        Ok(())
    }

    fn open_broker(&mut self) -> Result<EventWiring, SetupError> {
        let config = self
            .config
            .events
            .clone()
            .ok_or_else(|| self.not_in_contract(BROKER))?;
        self.readiness
            .add(broker::readiness_check(&config.amqp_url));
        let wiring = EventWiring {
            config,
            metrics: EventMetrics::register(&self.metrics),
            shutdown: self.shutdown.clone(),
        };
        self.events = Some(wiring.clone());
        Ok(wiring)
    }

    fn not_in_contract(&self, part: &'static str) -> SetupError {
        SetupError::NotInContract {
            service: self.service,
            part,
        }
    }

    fn check_everything_opened(&self) -> Result<(), SetupError> {
        let unopened = [
            (
                self.config.database.is_some() && self.pool.is_none(),
                DATABASE,
            ),
            (self.config.redis.is_some() && self.cache.is_none(), REDIS),
            (
                self.config.events.is_some() && self.events.is_none(),
                BROKER,
            ),
        ];
        match unopened.into_iter().find(|(unopened, _)| *unopened) {
            Some((_, part)) => Err(SetupError::NeverOpened {
                service: self.service,
                part,
            }),
            None => Ok(()),
        }
    }

    async fn finish(self) {
        self.shutdown.cancel();
        for worker in self.workers {
            if let Err(err) = worker.await {
                tracing::error!(error = %err, "worker panicked");
            }
        }
        if let Some(pool) = self.pool {
            pool.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn order_service() -> Runner {
        Runner::new(ShopService::Order).with_vars(HashMap::<String, String>::new())
    }

    #[test]
    fn opening_what_the_contract_does_not_list_is_refused() {
        let err = order_service()
            .run(async |setup| {
                setup.cache()?;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "order-service does not use Redis according to storekeeper_contract::ShopService"
        );
    }

    #[test]
    fn serving_without_opening_what_the_contract_lists_is_refused() {
        let err = order_service()
            .run(async |setup| Ok(setup.check_everything_opened()?))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "order-service uses a database according to storekeeper_contract::ShopService, \
             but its start-up never opened it"
        );
    }
}
