//! The faults the drill injects, and how it puts the machine's servers
//! back. RabbitMQ and PostgreSQL are restarted for real — the broker's node
//! stops and starts, PostgreSQL shuts down (fast: open transactions are
//! rolled back, every connection is cut) and starts — through systemd where
//! it runs, otherwise with the commands that start them on a machine
//! without it (`bootstrap/local/deps.sh`'s). Server commands run in a
//! process group of their own, so a Ctrl-C at the terminal cannot stop one
//! half-way; their output goes to `servers.log` in the drill's log folder.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::net::TcpStream;
use tokio::process::Command;

use storekeeper_contract::ShopService;

use super::shop::{self, Shop};
use crate::layout::DEPENDENCIES;
use crate::local_deps;

/// PostgreSQL's and RabbitMQ's ports on 127.0.0.1.
const POSTGRES_PORT: u16 = 5432;
const RABBITMQ_PORT: u16 = 5672;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Stop and start the RabbitMQ node.
    RestartBroker,
    /// Stop (fast) and start PostgreSQL.
    RestartDatabase,
    /// `kill -9` a service and start it again.
    Crash(ShopService),
}

impl Fault {
    /// The faults of a drill, in the order they strike: the broker, the
    /// database, then every service.
    pub fn schedule(skip_server_restarts: bool) -> Vec<Self> {
        let servers = if skip_server_restarts {
            Vec::new()
        } else {
            vec![Self::RestartBroker, Self::RestartDatabase]
        };
        servers
            .into_iter()
            .chain(ShopService::ALL.into_iter().map(Self::Crash))
            .collect()
    }

    /// What it is, for people.
    pub fn label(self) -> String {
        match self {
            Self::RestartBroker => "restart RabbitMQ".to_owned(),
            Self::RestartDatabase => "restart PostgreSQL".to_owned(),
            Self::Crash(svc) => format!("kill -9 {} and start it again", svc.name()),
        }
    }

    /// Injects it and waits until what it hit answers again; returns how
    /// long that took.
    pub async fn inject(self, shop: &mut Shop) -> Result<Duration> {
        let started = Instant::now();
        match self {
            Self::RestartBroker => restart_rabbitmq().await?,
            Self::RestartDatabase => restart_postgres().await?,
            Self::Crash(svc) => {
                shop.crash_and_restart(svc).await?;
            }
        }
        Ok(started.elapsed())
    }
}

/// Whether systemd manages services on this machine (sd_booted's test).
fn systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

async fn restart_rabbitmq() -> Result<()> {
    if systemd() {
        server_command("systemctl", &["restart", "rabbitmq-server"]).await?;
    } else {
        server_command("rabbitmqctl", &["stop"]).await?;
        server_command("rabbitmq-server", &["-detached"]).await?;
    }
    wait_port("RabbitMQ", RABBITMQ_PORT, Duration::from_mins(2)).await?;
    server_command("rabbitmqctl", &["await_startup"]).await
}

async fn restart_postgres() -> Result<()> {
    if systemd() {
        server_command("systemctl", &["restart", "postgresql"]).await?;
    } else {
        let version = postgres_version()?;
        server_command(
            "pg_ctlcluster",
            &[
                "--skip-systemctl-redirect",
                "--mode",
                "fast",
                &version,
                "main",
                "restart",
            ],
        )
        .await?;
    }
    wait_port("PostgreSQL", POSTGRES_PORT, Duration::from_mins(1)).await
}

/// The one PostgreSQL version under /etc/postgresql (as deps.sh assumes).
fn postgres_version() -> Result<String> {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .context("reading /etc/postgresql (is PostgreSQL installed from Debian's packages?)")?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one PostgreSQL version in /etc/postgresql, found {versions:?}"),
    }
}

/// Deletes the drill's vhost (and every queue in it) if it is there, and
/// creates it again with guest's permissions.
pub async fn reset_vhost(vhost: &str) -> Result<()> {
    // Absent on a first run: that failure is the expected outcome.
    let _ = server_command("rabbitmqctl", &["delete_vhost", vhost]).await;
    server_command("rabbitmqctl", &["add_vhost", vhost]).await?;
    server_command(
        "rabbitmqctl",
        &["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
    )
    .await
}

/// Makes sure PostgreSQL, Redis and RabbitMQ answer (starting any that does
/// not), twice a few seconds apart, so a server that was still stopping the
/// first time is started the second.
pub async fn restore_servers() -> Result<()> {
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        local_deps::deps(&[]).await?;
    }
    for dep in &DEPENDENCIES {
        if !port_open(dep.port).await {
            bail!(
                "{} does not answer on 127.0.0.1:{} after the drill; start it with bootstrap/local/deps.sh",
                dep.name,
                dep.port
            );
        }
    }
    println!("drill: PostgreSQL, Redis and RabbitMQ answer again");
    Ok(())
}

/// Runs a server command in its own process group, its output appended to
/// `servers.log`; fails naming the command and the log.
async fn server_command(program: &str, args: &[&str]) -> Result<()> {
    let log_path = shop::log_dir().join("servers.log");
    std::fs::create_dir_all(shop::log_dir()).context("creating the drill's log folder")?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let err = log.try_clone().context("duplicating a log file handle")?;
    let line = format!("{program} {}", args.join(" "));
    println!("$ {line}");
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .status()
        .await
        .with_context(|| format!("cannot start `{program}`"))?;
    if !status.success() {
        bail!(
            "`{line}` failed ({status}); its output is in {} (it needs root)",
            log_path.display()
        );
    }
    Ok(())
}

async fn port_open(port: u16) -> bool {
    tokio::time::timeout(
        Duration::from_secs(2),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

async fn wait_port(name: &str, port: u16, within: Duration) -> Result<()> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if port_open(port).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("{name} did not answer on 127.0.0.1:{port} within {within:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_restarts_the_servers_then_crashes_every_service() {
        let all = Fault::schedule(false);
        assert_eq!(all.len(), 2 + ShopService::ALL.len());
        assert_eq!(all[..2], [Fault::RestartBroker, Fault::RestartDatabase]);
        let services_only = Fault::schedule(true);
        assert!(
            services_only
                .iter()
                .all(|fault| matches!(fault, Fault::Crash(_)))
        );
        assert_eq!(services_only.len(), ShopService::ALL.len());
    }
}
