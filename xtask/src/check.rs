//! What CI runs (`cargo xtask test`) and the real-browser journey against a
//! throw-away stack (`cargo xtask e2e`); the local Prometheus check
//! (`cargo xtask prometheus-check`) is in `prometheus`.

use anyhow::{Context, Result};
use storekeeper_contract::ShopService;

use crate::layout;
use crate::local_deps;
use crate::process::{self, Logs};
use crate::stack::{self, Options, Stack};

/// The README's test command: local servers (and Chromium, promtool,
/// Prometheus and the offline linters) present, then the linters of
/// everything that is not Rust, formatting, lints, every test, the browser
/// journey and the local Prometheus check.
pub async fn test() -> Result<()> {
    local_deps::deps(&["--browser", "--promtool", "--prometheus", "--lint"]).await?;
    process::run("bash", &["bootstrap/local/lint.sh"]).await?;
    process::run("cargo", &["fmt", "--all", "--", "--check"]).await?;
    process::run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )
    .await?;
    process::run("cargo", &["test", "--workspace"]).await?;
    e2e().await?;
    crate::prometheus::check().await
}

/// Starts a fresh stack with its own `e2e_` databases and runs the browser
/// test (which is `#[ignore]`d in plain `cargo test` because it needs this
/// stack) against it; prints the service logs when it fails.
pub async fn e2e() -> Result<()> {
    local_deps::deps(&["--browser"]).await?;
    let logs = stack::log_dir("e2e-logs")?;
    let options = Options {
        release: false,
        database_prefix: "e2e_",
        fresh_databases: true,
        logs: Logs::Folder(&logs),
    };
    let stack = match Stack::start(&options).await {
        Ok(stack) => stack,
        Err(err) => {
            stack::print_log_tails(&logs);
            return Err(err);
        }
    };
    let outcome = tokio::process::Command::new("cargo")
        .args([
            "test",
            "-p",
            "storefront",
            "--test",
            "browser",
            "--",
            "--ignored",
            "--test-threads=1",
        ])
        .env("STOREFRONT_URL", ShopService::Storefront.local_url())
        .env("ADMIN_EMAIL", &stack.state.admin_email)
        .env("ADMIN_PASSWORD", &stack.state.admin_password)
        .current_dir(layout::root())
        .status()
        .await
        .context("running the browser test");
    stack.stop().await?;
    let status = outcome?;
    if !status.success() {
        stack::print_log_tails(&logs);
        anyhow::bail!(
            "the browser journey failed ({status}); screenshots and HTML are in target/browser-failures/"
        );
    }
    Ok(())
}
