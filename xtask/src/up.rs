//! `cargo xtask up`: the local shop (and, if asked, a local Prometheus)
//! until Ctrl-C.

use anyhow::{Context, Result};
use storekeeper_contract::ShopService;

use crate::process::Logs;
use crate::prometheus;
use crate::stack::{Options, Stack};

/// `cargo xtask up`: start everything (with `prometheus`, a local
/// Prometheus too), print where to shop, stop on Ctrl-C.
pub async fn up(release: bool, prometheus: bool) -> Result<()> {
    let options = Options {
        release,
        database_prefix: "",
        fresh_databases: false,
        logs: Logs::Terminal,
    };
    let stack = Stack::start(&options).await?;
    let prometheus = if prometheus {
        match prometheus::start_for_up().await {
            Ok(prometheus) => Some(prometheus),
            Err(err) => {
                stack.stop().await?;
                return Err(err);
            }
        }
    } else {
        None
    };
    println!();
    println!("  Storekeeper is running.");
    println!("  Storefront:  {}", ShopService::Storefront.local_url());
    println!(
        "  Admin login: {} / {}",
        stack.state.admin_email, stack.state.admin_password
    );
    if let Some(prometheus) = &prometheus {
        println!("  Alerts:      {}", prometheus.alerts_page().await);
    }
    println!("  Press Ctrl-C to stop.");
    println!();
    let waited = tokio::signal::ctrl_c().await.context("waiting for Ctrl-C");
    println!("stopping...");
    if let Some(prometheus) = prometheus {
        prometheus.stop().await?;
    }
    stack.stop().await?;
    waited
}
