//! `cargo xtask bench`: product-service against a bare axum server in the
//! same process tree, driven by wrk on this machine. The bare server is the
//! yardstick: figures are printed as requests/s, p50/p99 and a ratio to it
//! (per round of every endpoint, then the median over the rounds),
//! plus each process's resident memory idle and after load and the load
//! average around each run (the machine is shared). The same "hello"
//! behind kit's full middleware stack shows what the stack alone costs.
//!
//! `cargo xtask bench logins` floods user-service with parallel logins
//! ([`logins`]); `cargo xtask bench memory` reports every service's idle
//! memory ([`memory`]); `cargo xtask bench operator` the operator's with
//! 100 Stores.

mod logins;
mod memory;

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use storekeeper_contract::{ShopService, admin, env};
use storekeeper_kit::{
    Metrics,
    server::{self, HttpSettings},
    telemetry::{self, LogFormat, Settings},
};
use tokio::process::Command;

use crate::layout;
use crate::local_deps::deps;
use crate::local_state::LocalState;
use crate::process::{self, Logs, Running};
use crate::stack;

const HELLO_PORT: u16 = 7999;
const KIT_HELLO_PORT: u16 = 7998;
const PRODUCT_PORT: u16 = 7902;
const PRODUCT_ADMIN_PORT: u16 = 7903;
const DATABASE: &str = "bench_products";

fn hello_router() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| async { "hello" }))
}

async fn listen(port: u16) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))
}

/// Serves a bare axum "hello": the baseline every figure is divided by.
pub async fn hello(port: u16) -> Result<()> {
    axum::serve(listen(port).await?, hello_router())
        .await
        .context("serving hello")
}

/// Serves the same "hello" the way a service serves its API: kit's
/// middleware stack and logging (`RUST_LOG` from the environment). Its
/// ratio to [`hello`] is what the stack costs.
pub async fn kit_hello(port: u16) -> Result<()> {
    let _tracing = telemetry::init(&Settings::new("bench-hello", LogFormat::Json))?;
    let app = server::layers(hello_router(), HttpSettings::default(), &Metrics::new());
    axum::serve(
        listen(port).await?,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .context("serving hello through kit")
}

/// One measured endpoint.
struct Figures {
    name: String,
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The 1-minute load average when the run started and ended.
    load_before: String,
    load_after: String,
}

/// What `cargo xtask bench` measures besides product-service.
#[derive(Debug, Clone, Subcommand)]
pub enum Target {
    /// user-service under a flood of parallel logins: peak memory,
    /// logins/s, p50/p99 and every login's outcome.
    Logins(logins::LoginOptions),
    /// Every service's resident memory, idle after start-up and after a
    /// short load.
    Memory,
    /// The operator binary as its image ships it (the `operator` profile)
    /// with 100 Stores installed and upgraded at once on the simulated
    /// cluster: API requests per Store and its peak resident memory.
    Operator,
}

/// Runs the product-service bench (`rounds` interleaved rounds), or `target`.
pub async fn run(rounds: u32, target: Option<Target>) -> Result<()> {
    match target {
        None => products(rounds).await,
        Some(Target::Logins(options)) => logins::run(&options).await,
        Some(Target::Memory) => memory::run().await,
        Some(Target::Operator) => operator().await,
    }
}

/// Builds `storekeeper` with the image's profile, then runs the
/// hundred-Store benchmark (`operator/tests/rollout.rs`) against it.
async fn operator() -> Result<()> {
    let args = ["build", "--profile", "operator", "-p", "storekeeper"];
    process::run("cargo", &args).await?;
    let binary = layout::root().join("target/operator/storekeeper");
    let binary = binary
        .to_str()
        .context("the repository's path is not UTF-8")?;
    let args = [
        "test",
        "--release",
        "-p",
        "storekeeper",
        "--test",
        "rollout",
        "hundred",
        "--",
        "--ignored",
        "--nocapture",
    ];
    process::run_with("cargo", &args, &[("STOREKEEPER_BINARY", binary)]).await
}

/// Builds release binaries, starts both servers, measures, prints.
async fn products(rounds: u32) -> Result<()> {
    deps(&["--wrk"]).await?;
    process::run(
        "cargo",
        &[
            "build",
            "--quiet",
            "--release",
            "-p",
            "xtask",
            "-p",
            ShopService::Product.package(),
        ],
    )
    .await?;
    let bin = layout::root().join("target/release");
    let logs = stack::log_dir("bench-logs")?;
    let state = LocalState::load_or_create(&layout::state_dir(), &[DATABASE])?;
    stack::prepare_databases(&state, &[DATABASE], true).await?;
    let password = state
        .database_passwords
        .get(DATABASE)
        .context("missing bench password")?;
    let product_env = [
        (env::PORT, PRODUCT_PORT.to_string()),
        (env::ADMIN_PORT, PRODUCT_ADMIN_PORT.to_string()),
        (
            env::DATABASE_URL,
            format!("postgres://{DATABASE}:{password}@127.0.0.1:5432/{DATABASE}"),
        ),
        (env::REDIS_URL, "redis://127.0.0.1:6379".to_owned()),
        (env::REDIS_PREFIX, "bench:".to_owned()),
        (env::TOKEN_PUBLIC_KEY, state.token_public_key.clone()),
        (env::LOG_FORMAT, "json".to_owned()),
        (env::RUST_LOG, "warn".to_owned()),
    ];
    let seed = Command::new(bin.join(ShopService::Product.package()))
        .env_remove(env::DATABASE_URL)
        .envs(product_env.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("seed")
        .status()
        .await
        .context("seeding the bench catalog")?;
    if !seed.success() {
        bail!("seeding the bench catalog failed ({seed})");
    }

    let mut hello_cmd = Command::new(bin.join("xtask"));
    hello_cmd.args(["hello", &HELLO_PORT.to_string()]);
    let hello = Running::spawn("hello", hello_cmd, Logs::Folder(&logs))?;
    let mut kit_cmd = Command::new(bin.join("xtask"));
    kit_cmd
        .args(["hello", "--kit", &KIT_HELLO_PORT.to_string()])
        .env(env::RUST_LOG, "warn");
    let kit = Running::spawn("kit-hello", kit_cmd, Logs::Folder(&logs))?;
    let mut product_cmd = Command::new(bin.join(ShopService::Product.package()));
    product_cmd
        .env_remove(env::DATABASE_URL)
        .envs(product_env.iter().map(|(k, v)| (*k, v.as_str())));
    let product = Running::spawn("product", product_cmd, Logs::Folder(&logs))?;
    let outcome = measure(&hello, &kit, &product, rounds).await;
    product.stop().await?;
    kit.stop().await?;
    hello.stop().await?;
    outcome
}

async fn measure(hello: &Running, kit: &Running, product: &Running, rounds: u32) -> Result<()> {
    wait_ok(&format!("http://127.0.0.1:{HELLO_PORT}/")).await?;
    wait_ok(&format!("http://127.0.0.1:{KIT_HELLO_PORT}/")).await?;
    wait_ok(&format!(
        "http://127.0.0.1:{PRODUCT_ADMIN_PORT}{}",
        admin::READYZ_PATH
    ))
    .await?;
    let base = format!("http://127.0.0.1:{PRODUCT_PORT}");
    let listing: serde_json::Value = reqwest::get(format!("{base}/api/products?per_page=1"))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = listing["items"][0]["id"]
        .as_str()
        .context("no product in the bench catalog")?;
    let categories: serde_json::Value = reqwest::get(format!("{base}/api/categories"))
        .await?
        .json()
        .await?;
    let category = first_category_slug(&categories).context("no category in the bench catalog")?;

    let idle = [
        (hello.name, rss_kib(hello)?),
        (kit.name, rss_kib(kit)?),
        (product.name, rss_kib(product)?),
    ];
    let targets = [
        (
            "bare axum GET /".to_owned(),
            format!("http://127.0.0.1:{HELLO_PORT}/"),
        ),
        (
            "kit stack GET / (same handler)".to_owned(),
            format!("http://127.0.0.1:{KIT_HELLO_PORT}/"),
        ),
        (
            "GET /api/products/{id} (cached)".to_owned(),
            format!("{base}/api/products/{id}"),
        ),
        (
            "GET /api/products?category=&page=2".to_owned(),
            format!("{base}/api/products?category={category}&page=2&per_page=12"),
        ),
        (
            "GET /api/products?q=wireless".to_owned(),
            format!("{base}/api/products?q=wireless"),
        ),
    ];
    // The machine's speed drifts by more than the differences measured
    // (other work, CPU steal), so every round runs every endpoint back to
    // back and compares it with that round's bare server.
    let mut table = Vec::new();
    for round in 1..=rounds {
        let mut figures = Vec::new();
        for (name, url) in &targets {
            figures.push(wrk(name, url).await?);
        }
        print_round(round, &figures);
        table.push(figures);
    }
    print_summary(&table);
    let loaded = [
        (hello.name, peak_rss_kib(hello)?),
        (kit.name, peak_rss_kib(kit)?),
        (product.name, peak_rss_kib(product)?),
    ];

    println!();
    for ((name, idle), (_, peak)) in idle.iter().zip(loaded.iter()) {
        println!(
            "{name:<10} RSS idle {:>6.1} MiB, peak under load {:>6.1} MiB",
            kib_to_mib(*idle),
            kib_to_mib(*peak)
        );
    }
    Ok(())
}

/// One round's figures, each endpoint against the round's bare server.
fn print_round(round: u32, figures: &[Figures]) {
    let Some(baseline) = figures.first().map(|f| f.requests_per_second) else {
        return;
    };
    println!();
    println!(
        "round {round:<34} {:>12} {:>9} {:>9} {:>9}  load average before → after",
        "requests/s", "p50 ms", "p99 ms", "vs bare"
    );
    for f in figures {
        println!(
            "{:<40} {:>12.0} {:>9.2} {:>9.2} {:>9.2}  {} → {}",
            f.name,
            f.requests_per_second,
            f.p50_ms,
            f.p99_ms,
            f.requests_per_second / baseline,
            f.load_before,
            f.load_after,
        );
    }
}

/// Every endpoint's median over the rounds: requests/s, and the ratio to
/// bare axum (each round's own) with its lowest and highest.
fn print_summary(table: &[Vec<Figures>]) {
    let Some(first) = table.first() else {
        return;
    };
    println!();
    println!(
        "median of {:<30} {:>12} {:>9} {:>15}",
        format!("{} rounds", table.len()),
        "requests/s",
        "vs bare",
        "lowest–highest"
    );
    for (index, endpoint) in first.iter().enumerate() {
        let throughput = median(table.iter().map(|round| round[index].requests_per_second));
        let ratios: Vec<f64> = table
            .iter()
            .map(|round| round[index].requests_per_second / round[0].requests_per_second)
            .collect();
        let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{:<40} {:>12.0} {:>9.2} {:>9.2}–{:.2}",
            endpoint.name,
            throughput,
            median(ratios.iter().copied()),
            lowest,
            highest,
        );
    }
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

fn first_category_slug(categories: &serde_json::Value) -> Option<String> {
    let list = categories.get("items").unwrap_or(categories);
    list.get(0)?.get("slug")?.as_str().map(str::to_owned)
}

async fn wait_ok(url: &str) -> Result<()> {
    for _ in 0..100 {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{url} did not answer within 20 s")
}

/// Runs wrk (2 threads, 32 connections, 10 s after a 2 s warm-up) and reads
/// its summary.
async fn wrk(name: &str, url: &str) -> Result<Figures> {
    Command::new("wrk")
        .args(["-t2", "-c32", "-d2s", url])
        .output()
        .await
        .context("warming up with wrk")?;
    let load_before = load_average()?;
    let output = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", url])
        .output()
        .await
        .context("running wrk")?;
    let load_after = load_average()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") {
        bail!("{name}: some responses were not 2xx:\n{text}");
    }
    Ok(Figures {
        name: name.to_owned(),
        requests_per_second: field(&text, "Requests/sec:")
            .and_then(|v| v.parse().ok())
            .context("wrk printed no Requests/sec")?,
        p50_ms: field(&text, "50%")
            .and_then(parse_duration_ms)
            .context("wrk printed no p50")?,
        p99_ms: field(&text, "99%")
            .and_then(parse_duration_ms)
            .context("wrk printed no p99")?,
        load_before,
        load_after,
    })
}

/// The 1-minute load average, as /proc/loadavg prints it.
fn load_average() -> Result<String> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    text.split_whitespace()
        .next()
        .map(str::to_owned)
        .context("empty /proc/loadavg")
}

fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(label).map(str::trim))
}

/// wrk prints durations as `812.00us`, `1.20ms` or `1.01s`.
fn parse_duration_ms(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        "m" => Some(number * 60_000.0),
        _ => None,
    }
}

fn rss_kib(process: &Running) -> Result<u64> {
    status_field(process, "VmRSS:")
}

fn peak_rss_kib(process: &Running) -> Result<u64> {
    status_field(process, "VmHWM:")
}

fn status_field(process: &Running, label: &str) -> Result<u64> {
    let pid = process.pid().context("process has exited")?;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc status")?;
    field(&status, label)
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {label} in /proc/{pid}/status"))
}

#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_value() {
        assert!((median([3.0, 1.0, 2.0].into_iter()) - 2.0).abs() < f64::EPSILON);
        assert!((median([4.0, 1.0, 2.0, 3.0].into_iter()) - 2.5).abs() < f64::EPSILON);
        assert!(median(std::iter::empty()).is_nan());
    }

    #[test]
    fn reads_wrk_durations() {
        assert_eq!(parse_duration_ms("812.00us"), Some(0.812));
        assert_eq!(parse_duration_ms("1.50ms"), Some(1.5));
        assert_eq!(parse_duration_ms("2.00s"), Some(2000.0));
        assert_eq!(parse_duration_ms("fast"), None);
    }

    #[test]
    fn reads_labelled_fields() {
        let text = "  Latency Distribution\n     50%  300.00us\n     99%    1.20ms\nRequests/sec:  51234.56\n";
        assert_eq!(field(text, "50%"), Some("300.00us"));
        assert_eq!(field(text, "Requests/sec:"), Some("51234.56"));
    }
}
