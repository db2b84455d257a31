//! The drill's own shop: the five binaries as `cargo xtask up` runs them,
//! on `drill_` databases, the `storekeeper-drill` RabbitMQ vhost and the
//! Redis prefix of a throw-away stack (`drill_<pid>:`, fresh every run), with
//! order-service's deadline cut to seconds; and the one thing `cargo xtask
//! up` never does, crashing a service with SIGKILL and starting it again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use tokio::process::Command;

use storekeeper_contract::{ShopService, admin, env};

use super::deliveries::{self, Deliveries};
use crate::layout;
use crate::local_state::LocalState;
use crate::process::{Logs, Running};
use crate::stack;

/// Put before every database and role name of the drill's shop.
const DATABASE_PREFIX: &str = "drill_";

/// The RabbitMQ vhost the drill's shop publishes and consumes in; deleted
/// and created afresh at every start.
pub const VHOST: &str = "storekeeper-drill";

/// Where the drill's service logs go (`.local/drill-logs`).
pub fn log_dir() -> PathBuf {
    layout::state_dir().join("drill-logs")
}

/// Tells where to look after a failure.
pub fn print_log_hint() {
    println!(
        "drill: service logs are in {} (a crashed process's log is kept as <service>.crashed.log)",
        log_dir().display()
    );
}

/// The drill's databases, reached as the PostgreSQL administrator.
pub struct Databases {
    admin: PgConnectOptions,
}

impl Databases {
    /// Connects to `service`'s drill database.
    pub async fn connect(&self, service: ShopService) -> Result<PgConnection> {
        let name = database_name(service)?;
        self.admin
            .clone()
            .database(&name)
            .connect()
            .await
            .with_context(|| format!("connecting to database {name}"))
    }
}

fn database_name(service: ShopService) -> Result<String> {
    let db = service
        .database()
        .with_context(|| format!("{service} has no database"))?;
    Ok(format!("{DATABASE_PREFIX}{db}"))
}

/// The running shop.
pub struct Shop {
    running: Vec<(ShopService, Running)>,
    bin: PathBuf,
    state: LocalState,
    deadline_secs: u64,
    /// Deliveries counted by the processes the drill killed.
    pub deliveries_before_crashes: Deliveries,
    /// Its databases, for the report.
    pub databases: Databases,
}

impl Shop {
    /// Builds the services, makes fresh databases, loads the catalog and
    /// starts the five services, each once the ones it calls are ready (the
    /// caller resets the vhost first: `faults::reset_vhost`).
    pub async fn start(deadline_secs: u64) -> Result<Self> {
        ensure_ports_free()?;
        stack::build(false).await?;
        let logs = log_dir();
        if logs.exists() {
            std::fs::remove_dir_all(&logs)
                .with_context(|| format!("clearing {}", logs.display()))?;
        }
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

        let databases: Vec<String> = ShopService::ALL
            .iter()
            .filter_map(|s| s.database())
            .map(|db| format!("{DATABASE_PREFIX}{db}"))
            .collect();
        let names: Vec<&str> = databases.iter().map(String::as_str).collect();
        let state = LocalState::load_or_create(&layout::state_dir(), &names)?;
        stack::prepare_databases(&state, &names, true).await?;
        let admin: PgConnectOptions = layout::postgres_admin_url()
            .parse()
            .context("POSTGRES_ADMIN_URL is not a PostgreSQL URL")?;

        let mut shop = Self {
            running: Vec::new(),
            bin: stack::binary_dir(false),
            state,
            deadline_secs,
            deliveries_before_crashes: Deliveries::new(),
            databases: Databases { admin },
        };
        let seed = shop
            .command(ShopService::Product)
            .arg("seed")
            .status()
            .await
            .context("running `product-service seed`")?;
        if !seed.success() {
            bail!("loading the sample catalog failed ({seed})");
        }
        for svc in ShopService::ALL {
            if let Err(err) = shop.launch(svc).await {
                print_log_hint();
                shop.stop().await?;
                return Err(err);
            }
        }
        Ok(shop)
    }

    /// The command that runs `svc` in this shop: a throw-away stack's
    /// environment, then the drill's vhost and deadline.
    fn command(&self, svc: ShopService) -> Command {
        let mut command = Command::new(self.bin.join(svc.package()));
        command.env_remove(env::DATABASE_URL).envs(stack::env_for(
            svc,
            &self.state,
            DATABASE_PREFIX,
        ));
        if svc.uses_broker() {
            command.env(
                env::AMQP_URL,
                format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}"),
            );
        }
        if svc == ShopService::Order {
            command.env(env::ORDER_DEADLINE_SECS, self.deadline_secs.to_string());
        }
        command
    }

    /// Logs in as the shop's admin (the admin ports' dead-letter routes
    /// want an admin token); returns the access token.
    pub async fn admin_token(&self) -> Result<String> {
        let login = serde_json::json!({
            "email": self.state.admin_email,
            "password": self.state.admin_password,
        });
        let response = reqwest::Client::new()
            .post(format!("{}/api/users/login", ShopService::User.local_url()))
            .json(&login)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("logging in as the admin")?;
        let body: serde_json::Value = response.json().await.context("reading the admin login")?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("the admin login has no access token")
    }

    /// Starts `svc` and waits until it is ready.
    async fn launch(&mut self, svc: ShopService) -> Result<()> {
        let running = Running::spawn(svc.name(), self.command(svc), Logs::Folder(&log_dir()))?;
        self.running.push((svc, running));
        self.wait_ready(svc).await
    }

    /// Kills `svc` with SIGKILL (no shutdown, no flush: whatever it was
    /// doing stops between two instructions), starts it again and waits
    /// until it is ready; returns how long it was away.
    pub async fn crash_and_restart(&mut self, svc: ShopService) -> Result<Duration> {
        let index = self
            .running
            .iter()
            .position(|(s, _)| *s == svc)
            .with_context(|| format!("{svc} is not running"))?;
        if svc.uses_broker() {
            // Its counters die with it: keep them.
            let counted = deliveries::deliveries(Some(svc)).await?;
            deliveries::add_deliveries(&mut self.deliveries_before_crashes, &counted);
        }
        let (_, running) = self.running.remove(index);
        let started = Instant::now();
        let pid = running
            .pid()
            .with_context(|| format!("{svc} has already exited"))?
            .to_string();
        let killed = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .await
            .context("running kill")?;
        if !killed.success() {
            bail!("kill -KILL {pid} ({svc}) failed ({killed})");
        }
        // Reaps the killed process (it is dead already; nothing to wait for).
        running.stop().await?;
        let log = log_dir().join(format!("{}.log", svc.name()));
        let kept = log_dir().join(format!("{}.crashed.log", svc.name()));
        std::fs::rename(&log, &kept).with_context(|| format!("keeping {}", log.display()))?;
        let respawned = Running::spawn(svc.name(), self.command(svc), Logs::Folder(&log_dir()))?;
        self.running.insert(index, (svc, respawned));
        self.wait_ready(svc).await?;
        Ok(started.elapsed())
    }

    async fn wait_ready(&mut self, svc: ShopService) -> Result<()> {
        let url = format!(
            "http://127.0.0.1:{}{}",
            svc.local_admin_port(),
            admin::READYZ_PATH
        );
        let client = reqwest::Client::new();
        for _ in 0..120 {
            if let Some((_, running)) = self.running.iter_mut().find(|(s, _)| *s == svc) {
                running.ensure_alive()?;
            }
            if let Ok(resp) = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && resp.status().is_success()
            {
                println!("drill: {} is ready", svc.name());
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("{} was not ready within 60 s ({url})", svc.name())
    }

    /// Stops the services in reverse start order, each with SIGTERM.
    pub async fn stop(mut self) -> Result<()> {
        while let Some((_, running)) = self.running.pop() {
            running.stop().await?;
        }
        Ok(())
    }
}

/// The drill's shop listens on the ports of `cargo xtask up`; refuses to
/// start beside another local shop (its checks would reach that one).
fn ensure_ports_free() -> Result<()> {
    let taken: Vec<String> = ShopService::ALL
        .iter()
        .flat_map(|svc| [svc.port(), svc.local_admin_port()])
        .filter(|port| std::net::TcpListener::bind(("0.0.0.0", *port)).is_err())
        .map(|port| port.to_string())
        .collect();
    if !taken.is_empty() {
        bail!(
            "ports {} are in use: stop the local shop (`cargo xtask up`, `e2e`) before the drill",
            taken.join(", ")
        );
    }
    Ok(())
}
