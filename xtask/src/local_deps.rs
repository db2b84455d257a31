//! The local servers and tools, through `bootstrap/local/deps.sh` (the
//! same script a newcomer runs by hand).

use anyhow::{Context, Result};

use crate::{layout, process};

/// Starts or waits for PostgreSQL, Redis and RabbitMQ (and installs what
/// the flags ask for) with the bootstrap script.
pub async fn deps(flags: &[&str]) -> Result<()> {
    let script = layout::root().join("bootstrap/local/deps.sh");
    let script = script.to_str().context("repository path is not UTF-8")?;
    process::run("bash", &[&[script], flags].concat()).await
}
