//! One way for every service to start, serve and stop.
//!
//! A service's `main` names the service and hands [`Runner::serve`] the
//! code that builds its API [`Router`]. The runner reads the
//! [`ServiceConfig`] (a bad value prints one line and exits 1), starts
//! logging, runs the build code with a [`Setup`] — through which the service
//! opens what it uses: its database (pool of `DATABASE_MAX_CONNECTIONS`,
//! migrations applied, or only checked when `DATABASE_MIGRATE_ON_START` is
//! `false`), Redis, the broker for its event workers — then
//! serves the API and the admin endpoints until SIGTERM or Ctrl-C, stops
//! and joins the workers, and closes the pool.
//!
//! `/readyz` checks what the service opened: `postgres` for its database,
//! `redis` for Redis, `rabbitmq` for the broker. A service on the broker
//! also serves its dead letters on the admin port (list and replay, for an
//! admin token only: the admin port is reachable from the whole cluster for
//! scraping). [`ShopService`] decides
//! what a service may open, and a served service must open all of it, so
//! the probes and the contract cannot drift apart.
//!
//! A service with a database also answers `<service> migrate`
//! ([`Runner::migrate`]): apply the migrations once and exit, which the
//! operator runs as a Job before it rolls the service's pods.
//!
//! ```ignore
//! fn main() -> ExitCode {
//!     let runner = Runner::new(ShopService::Payment);
//!     match runner.command() {
//!         Command::Migrate => runner.migrate(&MIGRATOR),
//!         Command::Serve => runner.serve(async |setup| {
//!             let state = AppState { pool: setup.database(&MIGRATOR).await?, .. };
//!             setup.start_event_workers(|events| start_events(&state, &events.config, &events.metrics, &events.shutdown))?;
//!             Ok(app(state))
//!         }),
//!     }
//! }
//! ```

use std::process::ExitCode;

use anyhow::Context as _;
use axum::{Router, extract::Request, middleware::Next, response::Response};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use sqlx::{PgPool, migrate::Migrator};
use storekeeper_contract::{ShopService, env};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    AdminUser, Metrics, Readiness, ServiceConfig, admin,
    cache::{self, Cache, CacheError},
    config::{ConfigError, ProcessEnv, Source, Vars},
    db::{self, DbError},
    events::{EventMetrics, EventsConfig, broker, dead_letter_routes, dead_letters::DeadLetters},
    secret_files::SecretFiles,
    server, telemetry,
};

/// What a service binary was asked to do on its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the API and the admin endpoints (the default).
    Serve,
    /// Apply the service's database migrations and exit (the operator runs
    /// this once per rollout, as a Job, before it rolls the pods).
    Migrate,
}

/// The command line every service shares.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

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

    /// The command on the process's command line (`serve` when none); a bad
    /// argument prints clap's usage error and exits 2.
    pub fn command(&self) -> Command {
        let cli = Cli::command()
            .name(self.service.package())
            .about(format!("Storekeeper {}", self.service.package()));
        Cli::from_arg_matches(&cli.get_matches())
            .map_or(Command::Serve, |cli| cli.command.unwrap_or(Command::Serve))
    }

    /// Applies the service's migrations to its database and exits: what
    /// `<service> migrate` does. Safe to run again (applied migrations are
    /// skipped) and while an older release serves (expand, then contract).
    pub fn migrate(self, migrator: &'static Migrator) -> ExitCode {
        self.run_once(async |setup| {
            let service = setup.service;
            let config = setup
                .config
                .database
                .as_ref()
                .ok_or_else(|| setup.not_in_contract(DATABASE))?;
            let pool = db::connect(config).await?;
            let applied = db::apply_migrations(&pool, migrator).await;
            pool.close().await;
            applied?;
            tracing::info!(service = service.package(), "migrations applied");
            Ok(())
        })
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
            let admin = setup.admin_router()?;
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
        let vars: Vars<Box<dyn Source>> = Vars(Box::new(SecretFiles::resolve(self.vars.0)?));
        let config = ServiceConfig::from_source(&vars, self.service)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let tracing = runtime.block_on(async { telemetry::init(&config.telemetry()) })?;
        let metrics = Metrics::new();
        metrics.register(
            "storekeeper_log_records_dropped",
            "Log records not exported over OTLP because the export queue was full",
            tracing.dropped_log_records(),
        );
        let result = runtime.block_on(async move {
            let mut setup = Setup {
                service: self.service,
                config,
                vars,
                metrics,
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
        });
        tracing.shutdown();
        result
    }
}

/// Lets a request through only with an admin's bearer token (401/403
/// problem otherwise, from the extractor).
async fn require_admin(_admin: AdminUser, request: Request, next: Next) -> Response {
    next.run(request).await
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
    /// A variable the runner reads itself is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    /// `DATABASE_MAX_CONNECTIONS`), applies `migrator` — or, with
    /// `DATABASE_MIGRATE_ON_START=false`, only checks that it was applied —
    /// and adds the `postgres` readiness check. Asking again returns the
    /// same pool.
    pub async fn database(&mut self, migrator: &Migrator) -> Result<PgPool, SetupError> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let config = self
            .config
            .database
            .as_ref()
            .ok_or_else(|| self.not_in_contract(DATABASE))?;
        let migrate = self.vars.or(env::DATABASE_MIGRATE_ON_START, true)?;
        let pool = db::connect(config).await?;
        let ready = if migrate {
            db::apply_migrations(&pool, migrator).await
        } else {
            db::verify_migrations(&pool, migrator, self.service.package()).await
        };
        if let Err(err) = ready {
            pool.close().await;
            return Err(err.into());
        }
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

    /// The admin port's routes: probes and metrics, plus the dead-letter
    /// endpoints (admin token required) when the service is on the broker.
    fn admin_router(&self) -> Result<Router, ConfigError> {
        let admin = admin::router(self.metrics.clone(), self.readiness.clone());
        let Some(events) = &self.events else {
            return Ok(admin);
        };
        let dead_letters =
            DeadLetters::for_service(self.service, events.config.clone(), events.metrics.clone());
        let guarded = dead_letter_routes::router(dead_letters).layer(
            axum::middleware::from_fn_with_state(self.config.token_verifier()?, require_admin),
        );
        Ok(admin.merge(guarded))
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

    /// The kit's own migrations (the events tables), as a service embeds its.
    static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

    fn with_database(database_url: &str, migrate_on_start: &str) -> Runner {
        Runner::new(ShopService::Order).with_vars(HashMap::from([
            (env::DATABASE_URL.to_owned(), database_url.to_owned()),
            (
                env::DATABASE_MIGRATE_ON_START.to_owned(),
                migrate_on_start.to_owned(),
            ),
        ]))
    }

    fn admin_sql(sql: &str) {
        std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-qc", sql])
            .status()
            .map(|s| assert!(s.success(), "{sql}"))
            .unwrap();
    }

    #[test]
    fn a_replica_that_does_not_migrate_waits_for_the_migrate_command() {
        let name = format!("kit_runner_{}", uuid::Uuid::new_v4().simple());
        admin_sql(&format!("CREATE DATABASE \"{name}\""));
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let open = async |setup: &mut Setup| {
            setup.database(&MIGRATOR).await?;
            Ok(())
        };
        let err = with_database(&url, "false").run(open).unwrap_err();
        assert!(
            err.to_string()
                .contains("run `order-service migrate` first"),
            "{err}"
        );
        assert_eq!(
            with_database(&url, "false").migrate(&MIGRATOR),
            ExitCode::SUCCESS
        );
        with_database(&url, "false").run(open).unwrap();
        let err = with_database(&url, "maybe").run(open).unwrap_err();
        assert!(
            err.to_string().contains(env::DATABASE_MIGRATE_ON_START),
            "{err}"
        );
        admin_sql(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"));
    }

    #[test]
    fn dead_letters_on_the_admin_port_need_an_admin_token() {
        use axum::{body::Body, http::StatusCode};
        use tower::ServiceExt as _;

        use crate::auth::{KeyPair, Role, TokenSigner};

        let keys = KeyPair::generate().unwrap();
        let signer = TokenSigner::from_pem(&keys.private_pem).unwrap();
        let runner = Runner::new(ShopService::Order).with_vars(HashMap::from([(
            env::TOKEN_PUBLIC_KEY.to_owned(),
            keys.public_pem.clone(),
        )]));
        let status_with = async |admin: &Router, token: Option<String>| {
            let mut request = Request::get("/admin/dead-letters");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let response = admin
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            response.status()
        };
        runner
            .run(async |setup| {
                setup.start_event_workers(|_| Vec::new())?;
                let admin = setup.admin_router()?;
                assert_eq!(status_with(&admin, None).await, StatusCode::UNAUTHORIZED);
                let shopper = signer.sign(uuid::Uuid::new_v4(), Role::Customer).unwrap();
                assert_eq!(
                    status_with(&admin, Some(shopper.token)).await,
                    StatusCode::FORBIDDEN
                );
                let admin_token = signer.sign(uuid::Uuid::new_v4(), Role::Admin).unwrap();
                assert_eq!(
                    status_with(&admin, Some(admin_token.token)).await,
                    StatusCode::OK,
                    "an admin reaches the dead letters (the local broker answers)"
                );
                Ok(())
            })
            .unwrap();
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
