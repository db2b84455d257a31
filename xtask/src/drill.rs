//! `cargo xtask drill`: the fault drill. It starts a shop of its own (the
//! five binaries, `drill_` databases, a RabbitMQ vhost and a Redis prefix of
//! its own, order-service's deadline cut to seconds), has several shoppers
//! place checkouts through the APIs while it restarts RabbitMQ, restarts
//! PostgreSQL and `kill -9`s each service in turn, then waits past the
//! order reaper's deadline and checks the three databases against each
//! other: every order ended, nothing reserved, charged or refunded twice,
//! no money kept for a cancelled order, and the stock adds up. Any failure
//! figure above zero makes it exit non-zero.
//!
//! It restarts the machine's shared servers, so it is not part of
//! `cargo xtask test`; whatever happens (a failure, Ctrl-C) it makes sure
//! PostgreSQL, Redis and RabbitMQ answer again before it returns.

mod deliveries;
mod faults;
mod report;
mod shop;
mod shoppers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::{Semaphore, watch};

use crate::local_deps;
use faults::Fault;
use report::{Figures, Journey, Snapshot};
use shop::Shop;
use shoppers::{Progress, ShopperSettings};

/// What `cargo xtask drill` was asked for.
#[derive(Debug, clap::Args)]
pub struct DrillOptions {
    /// Checkouts to place.
    #[arg(long, default_value_t = 200)]
    pub orders: usize,
    /// Concurrent shoppers.
    #[arg(long, default_value_t = 8)]
    pub shoppers: usize,
    /// order-service's ORDER_DEADLINE_SECS in the drill's shop: how long an
    /// order may stay open before the reaper cancels it.
    #[arg(long, default_value_t = 30)]
    pub deadline_secs: u64,
    /// How long after the deadline the figures may take to settle (events
    /// in retry queues, refunds on their way) before the drill fails.
    #[arg(long, default_value_t = 120)]
    pub settle_secs: u64,
    /// Only crash the services; leave PostgreSQL and RabbitMQ running (no
    /// root needed, harmless to other work on the machine).
    #[arg(long)]
    pub skip_server_restarts: bool,
}

/// Runs the drill, then makes sure the servers answer again whatever
/// happened; fails when any failure figure is above zero.
pub async fn run(options: &DrillOptions) -> Result<()> {
    if options.orders == 0 || options.shoppers == 0 {
        bail!("--orders and --shoppers must be at least 1");
    }
    local_deps::deps(&[]).await?;
    let (cancel, cancelled) = watch::channel(false);
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("drill: interrupted; finishing the current step, then restoring the servers");
            let _ = cancel.send(true);
        }
    });
    let outcome = drill(options, cancelled).await;
    interrupt.abort();
    let restored = faults::restore_servers().await;
    let figures = outcome?;
    restored?;
    let failing = figures.failure_total();
    if failing > 0 {
        bail!(
            "the drill found {failing} failure(s); see the figures above and the logs in {}",
            shop::log_dir().display()
        );
    }
    println!("drill passed: every failure figure is 0");
    Ok(())
}

/// Starts the shop, places the orders under faults, waits out the deadline
/// and reports; stops the shop on every path.
async fn drill(options: &DrillOptions, cancelled: watch::Receiver<bool>) -> Result<Figures> {
    faults::reset_vhost(shop::VHOST).await?;
    let mut shop = Shop::start(options.deadline_secs).await?;
    let outcome = exercise(options, &mut shop, cancelled).await;
    if outcome.is_err() {
        shop::print_log_hint();
    }
    let stopped = shop.stop().await;
    let figures = outcome?;
    stopped?;
    Ok(figures)
}

async fn exercise(
    options: &DrillOptions,
    shop: &mut Shop,
    cancelled: watch::Receiver<bool>,
) -> Result<Figures> {
    let initial = report::read_stock(&shop.databases).await?;
    let schedule = Fault::schedule(options.skip_server_restarts);
    println!(
        "drill: {} checkouts by {} shoppers; faults in turn: {}",
        options.orders,
        options.shoppers,
        schedule
            .iter()
            .map(|fault| fault.label())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let tickets = Arc::new(Semaphore::new(0));
    let progress = Arc::new(Progress::default());
    let settings = Arc::new(ShopperSettings {
        products: initial.keys().cloned().collect(),
        tickets: Arc::clone(&tickets),
        progress: Arc::clone(&progress),
        cancelled: cancelled.clone(),
    });
    let mut tasks = Vec::new();
    for n in 0..options.shoppers {
        let settings = Arc::clone(&settings);
        tasks.push(tokio::spawn(async move {
            shoppers::shopper(n, &settings).await
        }));
    }

    let started = Instant::now();
    let conducted = conduct(
        options.orders,
        &schedule,
        shop,
        &tickets,
        &progress,
        cancelled,
    )
    .await;
    // Whatever happened, let the shoppers finish and collect what they saw.
    tickets.close();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.context("a shopper task panicked")?);
    }
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut retried = 0;
    // A shopper's own error is the cause when the conductor stopped too.
    for outcome in outcomes {
        let outcome = outcome?;
        accepted.extend(outcome.accepted);
        refused.extend(outcome.refused);
        retried += outcome.retried;
    }
    let recoveries = conducted?;
    println!(
        "drill: {} checkouts accepted, {} refused, in {:.1} s; {retried} requests needed a retry",
        accepted.len(),
        refused.len(),
        started.elapsed().as_secs_f64()
    );
    for reason in refused.iter().take(5) {
        println!("  refused: {reason}");
    }

    let figures = settle(options, shop, &initial, &accepted).await?;
    let mut delivered = deliveries::deliveries(None).await?;
    deliveries::add_deliveries(&mut delivered, &shop.deliveries_before_crashes);
    let journey = Journey {
        recoveries,
        retried,
        refused: refused.len(),
        deliveries: delivered,
    };
    report::print(&figures, &journey);
    Ok(figures)
}

/// Hands out the checkouts in batches, one batch per fault plus a last one
/// with none, and injects each fault once its batch is under way, so every
/// fault lands among checkouts and sagas in flight. Returns how long each
/// fault took to recover from.
async fn conduct(
    orders: usize,
    schedule: &[Fault],
    shop: &mut Shop,
    tickets: &Semaphore,
    progress: &Progress,
    cancelled: watch::Receiver<bool>,
) -> Result<Vec<(Fault, Duration)>> {
    let batches = batch_sizes(orders, schedule.len() + 1);
    let mut handed_out = 0;
    let mut recoveries = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        tickets.add_permits(*batch);
        handed_out += batch;
        if let Some(fault) = schedule.get(i) {
            // Strike once about a third of this batch is placed.
            let strike_at = handed_out - batch + batch.div_ceil(3);
            wait_until(progress, strike_at, &cancelled).await;
            if *cancelled.borrow() || progress.gave_up() {
                break;
            }
            println!("drill: {} ...", fault.label());
            let took = fault.inject(shop).await?;
            recoveries.push((*fault, took));
        }
        wait_until(progress, handed_out, &cancelled).await;
        if *cancelled.borrow() || progress.gave_up() {
            break;
        }
    }
    if *cancelled.borrow() {
        bail!("interrupted");
    }
    if progress.gave_up() {
        bail!("a shopper gave up");
    }
    Ok(recoveries)
}

/// Waits until `count` checkouts have ended (accepted or refused), a
/// shopper gave up, or the drill is interrupted.
async fn wait_until(progress: &Progress, count: usize, cancelled: &watch::Receiver<bool>) {
    while progress.ended() < count && !progress.gave_up() && !*cancelled.borrow() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `total` split into `parts` batches as even as can be (the first ones
/// take the remainder).
fn batch_sizes(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// Waits past the deadline of the last order, then reads the figures until
/// every failure figure is 0 or the settle time is up, and returns the last
/// reading.
async fn settle(
    options: &DrillOptions,
    shop: &Shop,
    initial: &report::Stock,
    accepted: &[String],
) -> Result<Figures> {
    // The reaper looks every deadline/30 (at least 1 s); give it two looks.
    let deadline = Duration::from_secs(options.deadline_secs);
    let reaper_slack = (deadline / 15).max(Duration::from_secs(2));
    let past_deadline = deadline + reaper_slack;
    println!(
        "drill: waiting {} s, past the last order's deadline ({} s) ...",
        past_deadline.as_secs(),
        options.deadline_secs
    );
    tokio::time::sleep(past_deadline).await;
    let give_up = Instant::now() + Duration::from_secs(options.settle_secs);
    let token = shop.admin_token().await?;
    loop {
        let snapshot = Snapshot::read(&shop.databases, &token, initial, accepted).await?;
        let figures = Figures::compute(&snapshot);
        let failing = figures.failure_total();
        if failing == 0 || Instant::now() >= give_up {
            return Ok(figures);
        }
        println!(
            "drill: {failing} failure figure(s) still above 0 ({}); settling ...",
            figures.failing_labels().join(", ")
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_order_once() {
        assert_eq!(batch_sizes(200, 8), vec![25; 8]);
        assert_eq!(batch_sizes(10, 3), vec![4, 3, 3]);
        assert_eq!(batch_sizes(2, 5), vec![1, 1, 0, 0, 0]);
        assert_eq!(batch_sizes(7, 0), vec![7]);
    }
}
