//! The whole shop on one machine: the same five binaries as in a cluster,
//! pointed at the local PostgreSQL, Redis and RabbitMQ. `cargo xtask up`
//! runs it in the foreground; `cargo xtask e2e` runs a throw-away copy with
//! its own databases for the browser test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgConnection};
use tokio::net::TcpStream;
use tokio::process::Command;

use storekeeper_contract::{ShopService, admin, env};

use crate::layout::{self, DEPENDENCIES};
use crate::local_state::LocalState;
use crate::process::{self, Logs, Running};

/// How to run a stack.
pub struct Options<'a> {
    /// Build and run release binaries.
    pub release: bool,
    /// Put before every database and role name, so a test stack never
    /// touches the developer's data.
    pub database_prefix: &'a str,
    /// Drop and recreate the databases first (a clean, repeatable stack).
    pub fresh_databases: bool,
    /// Where service output goes.
    pub logs: Logs<'a>,
}

/// A running stack; stop it with [`Stack::stop`].
pub struct Stack {
    running: Vec<Running>,
    /// The generated credentials, for printing the admin login.
    pub state: LocalState,
}

impl Stack {
    /// Builds, prepares and starts the five services, each once the ones
    /// it calls are ready.
    pub async fn start(options: &Options<'_>) -> Result<Self> {
        check_dependencies().await?;
        for svc in ShopService::ALL {
            check_ports_free(svc)?;
        }
        build(options.release).await?;
        let databases: Vec<String> = ShopService::ALL
            .iter()
            .filter_map(|s| s.database())
            .map(|db| format!("{}{db}", options.database_prefix))
            .collect();
        let names: Vec<&str> = databases.iter().map(String::as_str).collect();
        let state = LocalState::load_or_create(&layout::state_dir(), &names)?;
        prepare_databases(&state, &names, options.fresh_databases).await?;
        let bin = binary_dir(options.release);

        let product = ShopService::Product;
        let seed = Command::new(bin.join(product.package()))
            .envs(env_for(product, &state, options.database_prefix))
            .arg("seed")
            .status()
            .await
            .context("running `product-service seed`")?;
        if !seed.success() {
            bail!("loading the sample catalog failed ({seed})");
        }

        let mut stack = Self {
            running: Vec::new(),
            state,
        };
        for svc in ShopService::ALL {
            let mut command = Command::new(bin.join(svc.package()));
            // `cargo xtask` inherits the test-only DATABASE_URL from
            // .cargo/config.toml; a service must only see its own.
            command.env_remove(env::DATABASE_URL).envs(env_for(
                svc,
                &stack.state,
                options.database_prefix,
            ));
            // Again right before it starts: another stack may have started
            // while this one was building.
            if let Err(err) = check_ports_free(svc) {
                stack.stop().await?;
                return Err(err);
            }
            let started = Running::spawn(svc.name(), command, options.logs)?;
            stack.running.push(started);
            if let Err(err) = stack.wait_ready(svc).await {
                stack.stop().await?;
                return Err(err);
            }
        }
        Ok(stack)
    }

    async fn wait_ready(&mut self, svc: ShopService) -> Result<()> {
        let url = format!(
            "http://127.0.0.1:{}{}",
            svc.local_admin_port(),
            admin::READYZ_PATH
        );
        let client = reqwest::Client::new();
        for _ in 0..120 {
            if let Some(last) = self.running.last_mut() {
                last.ensure_alive()?;
            }
            if let Ok(resp) = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && resp.status().is_success()
            {
                println!("{} is ready on {}", svc.name(), svc.local_url());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("{} was not ready within 60 s ({url})", svc.name())
    }

    /// Stops one service with SIGTERM and leaves the others running.
    pub async fn stop_service(&mut self, svc: ShopService) -> Result<()> {
        let index = self
            .running
            .iter()
            .position(|running| running.name == svc.name())
            .with_context(|| format!("{svc} is not running"))?;
        self.running.remove(index).stop().await
    }

    /// Stops the services in reverse start order, each with SIGTERM.
    pub async fn stop(mut self) -> Result<()> {
        while let Some(running) = self.running.pop() {
            running.stop().await?;
        }
        Ok(())
    }
}

async fn check_dependencies() -> Result<()> {
    for dep in &DEPENDENCIES {
        let addr = format!("127.0.0.1:{}", dep.port);
        let reachable = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&addr))
            .await
            .is_ok_and(|r| r.is_ok());
        if !reachable {
            bail!(
                "{} is not reachable on {addr}; start it with `bootstrap/local/deps.sh`",
                dep.name
            );
        }
    }
    Ok(())
}

/// Fails when one of the service's ports is taken: another local stack
/// (`cargo xtask up`, `e2e`, `prometheus-check`) runs, and its services
/// would answer the readiness checks and the tests in place of this stack's.
fn check_ports_free(svc: ShopService) -> Result<()> {
    for port in [svc.port(), svc.local_admin_port()] {
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            bail!(
                "port {port} ({svc}) is in use: another local stack (cargo xtask up, e2e or prometheus-check) is running; stop it first"
            );
        }
    }
    Ok(())
}

/// Builds the five services (debug, or release).
pub async fn build(release: bool) -> Result<()> {
    let mut args = vec!["build", "--quiet"];
    if release {
        args.push("--release");
    }
    for svc in ShopService::ALL {
        args.extend(["-p", svc.package()]);
    }
    process::run("cargo", &args).await
}

/// Where [`build`] puts the binaries.
pub fn binary_dir(release: bool) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| layout::root().join("target"), PathBuf::from);
    target.join(if release { "release" } else { "debug" })
}

/// Creates each database and its owner role when missing, and sets the
/// role's password to the generated one. Names come from our own table and
/// passwords are alphanumeric, so quoting them in DDL is safe.
pub async fn prepare_databases(state: &LocalState, databases: &[&str], fresh: bool) -> Result<()> {
    let url = layout::postgres_admin_url();
    let mut conn = PgConnection::connect(&url)
        .await
        .with_context(|| format!("connecting to PostgreSQL as {url}"))?;
    for db in databases {
        let password = state
            .database_passwords
            .get(*db)
            .context("missing database password")?;
        if fresh {
            sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#))
                .execute(&mut conn)
                .await?;
        }
        let role_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(db)
                .fetch_one(&mut conn)
                .await?;
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        sqlx::query(&format!(
            r#"{verb} ROLE "{db}" LOGIN PASSWORD '{password}'"#
        ))
        .execute(&mut conn)
        .await
        .with_context(|| format!("preparing role {db}"))?;
        let db_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(db)
                .fetch_one(&mut conn)
                .await?;
        if !db_exists {
            sqlx::query(&format!(r#"CREATE DATABASE "{db}" OWNER "{db}""#))
                .execute(&mut conn)
                .await
                .with_context(|| format!("creating database {db}"))?;
            println!("created database {db}");
        }
    }
    Ok(())
}

/// The environment a service gets on this machine: exactly the variables
/// the contract says it reads, with local values. A service is given the
/// `*_URL` of the services it calls and nothing else, so a call the contract
/// does not know about fails here first, not in a cluster.
pub fn env_for(
    svc: ShopService,
    state: &LocalState,
    database_prefix: &str,
) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        (env::PORT, svc.port().to_string()),
        (env::ADMIN_PORT, svc.local_admin_port().to_string()),
        (env::LOG_FORMAT, "pretty".to_owned()),
        (
            env::RUST_LOG,
            std::env::var(env::RUST_LOG).unwrap_or_else(|_| "info".to_owned()),
        ),
        (env::TOKEN_PUBLIC_KEY, state.token_public_key.clone()),
    ];
    vars.extend(
        svc.calls()
            .iter()
            .filter_map(|callee| Some((callee.url_env()?, callee.local_url()))),
    );
    if let Some(db) = svc.database() {
        let db = format!("{database_prefix}{db}");
        let password = state
            .database_passwords
            .get(&db)
            .cloned()
            .unwrap_or_default();
        vars.push((
            env::DATABASE_URL,
            format!("postgres://{db}:{password}@127.0.0.1:5432/{db}"),
        ));
    }
    if svc.uses_redis() {
        vars.push((env::REDIS_URL, "redis://127.0.0.1:6379".to_owned()));
        if !database_prefix.is_empty() {
            // A throw-away stack's keys (login and registration throttle
            // counters, cache) are its own: this run's process id in them.
            let namespace = svc.database().unwrap_or(svc.name());
            let prefix = format!("{database_prefix}{}:{namespace}:", std::process::id());
            vars.push((env::REDIS_PREFIX, prefix));
        }
    }
    if svc.uses_broker() {
        vars.push((
            env::AMQP_URL,
            "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
        ));
        if !database_prefix.is_empty() {
            // A throw-away stack's exchange and queues are its own too: an
            // event one stack left in a queue when it stopped (a slow
            // card's charge, say) must not reach another stack, whose
            // databases do not know its order and would dead-letter it.
            vars.push((
                env::EVENTS_EXCHANGE,
                format!(
                    "{database_prefix}{}",
                    storekeeper_contract::events::EXCHANGE
                ),
            ));
            vars.push((env::EVENTS_QUEUE_PREFIX, database_prefix.to_owned()));
        }
    }
    match svc {
        ShopService::Storefront => vars.push((env::SESSION_KEY, state.session_key.clone())),
        ShopService::User => {
            // Logins reach user-service through the storefront, which passes
            // the shopper's address on in X-Forwarded-For: trust that one hop
            // so login throttling is per shopper, not per storefront.
            vars.push((env::TRUSTED_PROXY_HOPS, "1".to_owned()));
            vars.push((env::TOKEN_PRIVATE_KEY, state.token_private_key.clone()));
            vars.push((env::ADMIN_EMAIL, state.admin_email.clone()));
            vars.push((env::ADMIN_PASSWORD, state.admin_password.clone()));
        }
        ShopService::Product | ShopService::Payment | ShopService::Order => {}
    }
    vars
}

/// The log folder for a throw-away stack.
pub fn log_dir(name: &str) -> Result<PathBuf> {
    let dir = layout::state_dir().join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Prints the last lines of every service log in `dir` (after a failure).
pub fn print_log_tails(dir: &Path) {
    for svc in ShopService::ALL {
        let path = dir.join(format!("{}.log", svc.name()));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(40);
            println!("----- last lines of {} -----", path.display());
            for line in &lines[start..] {
                println!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Obviously fake credentials, for the variables' names and shapes.
    fn fake_state() -> LocalState {
        LocalState {
            token_private_key: "private".to_owned(),
            token_public_key: "public".to_owned(),
            admin_email: "admin@example.test".to_owned(),
            admin_password: "fake password".to_owned(),
            database_passwords: BTreeMap::new(),
            session_key: "key".to_owned(),
        }
    }

    fn names(svc: ShopService) -> Vec<&'static str> {
        let mut names: Vec<_> = env_for(svc, &fake_state(), "")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names.sort_unstable();
        names
    }

    fn service_urls(svc: ShopService) -> Vec<&'static str> {
        names(svc)
            .into_iter()
            .filter(|name| ShopService::ALL.iter().any(|s| s.url_env() == Some(*name)))
            .collect()
    }

    #[test]
    fn a_throw_away_stack_has_an_exchange_and_queues_of_its_own() {
        let state = fake_state();
        let events = |prefix: &str| -> Vec<(&'static str, String)> {
            env_for(ShopService::Order, &state, prefix)
                .into_iter()
                .filter(|(name, _)| name.starts_with("EVENTS_"))
                .collect()
        };
        assert!(events("").is_empty(), "the local shop keeps the defaults");
        assert_eq!(
            events("e2e_"),
            [
                (env::EVENTS_EXCHANGE, "e2e_store.events".to_owned()),
                (env::EVENTS_QUEUE_PREFIX, "e2e_".to_owned()),
            ]
        );
        assert!(
            env_for(ShopService::User, &state, "e2e_")
                .iter()
                .all(|(name, _)| !name.starts_with("EVENTS_")),
            "user-service is not on the broker"
        );
    }

    #[test]
    fn a_service_gets_the_urls_of_its_callees_only() {
        assert_eq!(service_urls(ShopService::Order), ["PRODUCT_URL"]);
        assert_eq!(
            service_urls(ShopService::Storefront),
            ["ORDER_URL", "PAYMENT_URL", "PRODUCT_URL", "USER_URL"]
        );
        for callee in [
            ShopService::User,
            ShopService::Product,
            ShopService::Payment,
        ] {
            assert!(service_urls(callee).is_empty(), "{callee}");
        }
    }

    #[test]
    fn a_throw_away_stack_has_redis_keys_of_its_own() {
        let state = fake_state();
        let prefix = |database_prefix| {
            env_for(ShopService::User, &state, database_prefix)
                .into_iter()
                .find(|(name, _)| *name == env::REDIS_PREFIX)
                .map(|(_, value)| value)
        };
        assert_eq!(prefix(""), None, "`cargo xtask up` keeps the default");
        assert_eq!(
            prefix("e2e_"),
            Some(format!("e2e_{}:users:", std::process::id()))
        );
    }

    #[test]
    fn backing_services_follow_the_contract() {
        for svc in ShopService::ALL {
            let names = names(svc);
            assert_eq!(
                names.contains(&env::DATABASE_URL),
                svc.database().is_some(),
                "{svc}"
            );
            assert_eq!(names.contains(&env::REDIS_URL), svc.uses_redis(), "{svc}");
            assert_eq!(names.contains(&env::AMQP_URL), svc.uses_broker(), "{svc}");
        }
    }
}
