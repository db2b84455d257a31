//! `cargo xtask bench logins`: a release user-service on a fresh database,
//! `--parallel` accounts, then rounds of that many logins fired at once.
//! Each login honours a 503's `Retry-After` and tries again, so every one
//! ends with a clear answer. Prints per round the first answers, how many
//! logged in, logins/s, p50/p99, the peak resident memory of the round and
//! the memory once the service is idle again.

use std::{
    net::Ipv4Addr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Args;
use reqwest::{Client, StatusCode, header};
use storekeeper_contract::{ShopService, admin, env};
use tokio::process::Command;

use super::{kib_to_mib, load_average, peak_rss_kib, rss_kib, wait_ok};
use crate::layout;
use crate::local_deps::deps;
use crate::local_state::LocalState;
use crate::process::{self, Logs, Running};
use crate::stack;

const PORT: u16 = 7911;
const ADMIN_PORT: u16 = 7912;
const PREFIX: &str = "bench_";
/// A login answered 503 again and again gives up after this many tries.
const MAX_ATTEMPTS: usize = 120;
/// How long the service gets to settle before "idle" memory is read.
const SETTLE: Duration = Duration::from_secs(3);

/// `cargo xtask bench logins` options.
#[derive(Debug, Clone, Args)]
pub struct LoginOptions {
    /// Accounts created, and logins fired at once in each round.
    #[arg(long, default_value_t = 200)]
    pub parallel: usize,
    /// Rounds of logins (the second shows the memory is handed back and
    /// taken again, not kept growing).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Run this user-service binary instead of building the working tree's
    /// (to compare two builds).
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// Builds and starts user-service, measures, prints, stops it.
pub async fn run(options: &LoginOptions) -> Result<()> {
    deps(&[]).await?;
    let user = ShopService::User;
    let binary = if let Some(binary) = &options.binary {
        binary.clone()
    } else {
        process::run(
            "cargo",
            &["build", "--quiet", "--release", "-p", user.package()],
        )
        .await?;
        stack::binary_dir(true).join(user.package())
    };
    let database = format!(
        "{PREFIX}{}",
        user.database().context("user has a database")?
    );
    let state = LocalState::load_or_create(&layout::state_dir(), &[&database])?;
    stack::prepare_databases(&state, &[&database], true).await?;
    let logs = stack::log_dir("bench-logs")?;
    let mut command = Command::new(binary);
    command
        .env_remove(env::DATABASE_URL)
        .envs(stack::env_for(user, &state, PREFIX))
        .env(env::PORT, PORT.to_string())
        .env(env::ADMIN_PORT, ADMIN_PORT.to_string())
        .env(env::LOG_FORMAT, "json")
        .env(env::RUST_LOG, "warn");
    let service = Running::spawn(user.name(), command, Logs::Folder(&logs))?;
    let outcome = measure(&service, options).await;
    service.stop().await?;
    outcome
}

/// What one login (or registration) ended with.
struct Ended {
    /// The first answer's status.
    first: StatusCode,
    /// The last answer's status: success, or why it stopped.
    last: StatusCode,
    attempts: usize,
    /// From the first request to the last answer, retries included.
    total: Duration,
    /// The last request alone (queue wait and hashing).
    last_request: Duration,
}

/// One round's figures.
struct Round {
    ended: Vec<Ended>,
    wall: Duration,
    peak_kib: u64,
    idle_kib: u64,
    load_before: String,
    load_after: String,
}

async fn measure(service: &Running, options: &LoginOptions) -> Result<()> {
    wait_ok(&format!(
        "http://127.0.0.1:{ADMIN_PORT}{}",
        admin::READYZ_PATH
    ))
    .await?;
    tokio::time::sleep(SETTLE).await;
    let started_kib = rss_kib(service)?;
    let client = Client::builder()
        .pool_max_idle_per_host(options.parallel)
        .build()?;
    let base = format!("http://127.0.0.1:{PORT}/api/users");

    let registered = Instant::now();
    let accounts: Vec<usize> = (0..options.parallel).collect();
    for chunk in accounts.chunks(4) {
        let created = all_at_once(
            chunk.iter().map(|&i| {
                let body = serde_json::json!({
                    "email": email(i), "password": password(i), "name": format!("Bench {i}")
                });
                (base.clone(), body, client_ip(i))
            }),
            &client,
        )
        .await?;
        if let Some(bad) = created.iter().find(|e| e.last != StatusCode::CREATED) {
            bail!("registering a bench account answered {}", bad.last);
        }
    }
    let registration = registered.elapsed();
    tokio::time::sleep(SETTLE).await;
    let registered_kib = rss_kib(service)?;

    let mut rounds = Vec::new();
    for _ in 0..options.rounds {
        reset_peak(service)?;
        let load_before = load_average()?;
        let began = Instant::now();
        let ended = all_at_once(
            (0..options.parallel).map(|i| {
                let body = serde_json::json!({ "email": email(i), "password": password(i) });
                (format!("{base}/login"), body, client_ip(i))
            }),
            &client,
        )
        .await?;
        let wall = began.elapsed();
        let load_after = load_average()?;
        let peak_kib = peak_rss_kib(service)?;
        tokio::time::sleep(SETTLE).await;
        rounds.push(Round {
            ended,
            wall,
            peak_kib,
            idle_kib: rss_kib(service)?,
            load_before,
            load_after,
        });
    }

    println!();
    println!(
        "user-service RSS idle after start-up {:.1} MiB; {} accounts registered in {:.1} s, then idle {:.1} MiB",
        kib_to_mib(started_kib),
        options.parallel,
        registration.as_secs_f64(),
        kib_to_mib(registered_kib),
    );
    for (index, round) in rounds.iter().enumerate() {
        print_round(index + 1, round);
    }
    let failed: usize = rounds
        .iter()
        .flat_map(|r| &r.ended)
        .filter(|e| e.last != StatusCode::OK)
        .count();
    if failed > 0 {
        bail!("{failed} logins did not succeed");
    }
    Ok(())
}

fn print_round(number: usize, round: &Round) {
    let count = |pick: fn(&Ended) -> bool| round.ended.iter().filter(|e| pick(e)).count();
    let ok = count(|e| e.last == StatusCode::OK);
    let first_ok = count(|e| e.first == StatusCode::OK);
    let first_busy = count(|e| e.first == StatusCode::SERVICE_UNAVAILABLE);
    let attempts: usize = round.ended.iter().map(|e| e.attempts).sum();
    let mut last: Vec<Duration> = round.ended.iter().map(|e| e.last_request).collect();
    let mut total: Vec<Duration> = round.ended.iter().map(|e| e.total).collect();
    println!(
        "round {number}: {} logins at once; first answers {first_ok} × 200, {first_busy} × 503 busy (problem+json, Retry-After), {} other",
        round.ended.len(),
        round.ended.len() - first_ok - first_busy,
    );
    println!(
        "  logged in {ok}/{} in {:.1} s = {:.1} logins/s ({attempts} requests); answered request p50 {:.0} ms p99 {:.0} ms; login incl. retries p50 {:.0} ms p99 {:.0} ms",
        round.ended.len(),
        round.wall.as_secs_f64(),
        secs_rate(ok, round.wall),
        percentile_ms(&mut last, 0.50),
        percentile_ms(&mut last, 0.99),
        percentile_ms(&mut total, 0.50),
        percentile_ms(&mut total, 0.99),
    );
    let mut last_answers = std::collections::BTreeMap::<u16, usize>::new();
    for ended in &round.ended {
        *last_answers.entry(ended.last.as_u16()).or_default() += 1;
    }
    let last_answers: Vec<String> = last_answers
        .iter()
        .map(|(status, count)| format!("{count} × {status}"))
        .collect();
    println!("  last answers: {}", last_answers.join(", "));
    println!(
        "  RSS peak {:.1} MiB, idle after {:.1} MiB; load average {} → {}",
        kib_to_mib(round.peak_kib),
        kib_to_mib(round.idle_kib),
        round.load_before,
        round.load_after,
    );
}

#[allow(clippy::cast_precision_loss)]
fn secs_rate(count: usize, over: Duration) -> f64 {
    count as f64 / over.as_secs_f64()
}

/// The `share` percentile (nearest rank) in milliseconds; sorts `values`.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn percentile_ms(values: &mut [Duration], share: f64) -> f64 {
    values.sort_unstable();
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() as f64 * share).ceil() as usize).clamp(1, values.len());
    values[rank - 1].as_secs_f64() * 1000.0
}

/// Sends `body` to `url` as the client at `ip` until it is answered with
/// anything but a 503: a 503 must be problem+json with `Retry-After`, which
/// is waited out before the next try.
async fn answered(client: Client, url: String, body: serde_json::Value, ip: Ipv4Addr) -> Ended {
    let began = Instant::now();
    let mut first = None;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = Instant::now();
        let response = client
            .post(&url)
            .header("x-forwarded-for", ip.to_string())
            .json(&body)
            .send()
            .await;
        let last_request = sent.elapsed();
        let (status, retry_after) = match response {
            Ok(response) => (response.status(), clear_retry_after(&response)),
            Err(_) => (StatusCode::BAD_GATEWAY, None),
        };
        let first = *first.get_or_insert(status);
        match retry_after {
            Some(wait) if status == StatusCode::SERVICE_UNAVAILABLE && attempts < MAX_ATTEMPTS => {
                tokio::time::sleep(wait).await;
            }
            _ => {
                return Ended {
                    first,
                    last: status,
                    attempts,
                    total: began.elapsed(),
                    last_request,
                };
            }
        }
    }
}

/// The wait a 503 asks for, if it says so clearly: problem+json with a
/// `Retry-After` in seconds.
fn clear_retry_after(response: &reqwest::Response) -> Option<Duration> {
    let headers = response.headers();
    let problem = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    let seconds: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    problem.then(|| Duration::from_secs(seconds))
}

/// Runs every request at once, each on its own task.
async fn all_at_once(
    requests: impl Iterator<Item = (String, serde_json::Value, Ipv4Addr)>,
    client: &Client,
) -> Result<Vec<Ended>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (url, body, ip) in requests {
        tasks.spawn(answered(client.clone(), url, body, ip));
    }
    let mut ended = Vec::new();
    while let Some(one) = tasks.join_next().await {
        ended.push(one.context("a login task panicked")?);
    }
    Ok(ended)
}

fn email(index: usize) -> String {
    format!("bench-{index}@example.test")
}

fn password(index: usize) -> String {
    format!("Bench-pass-{index}")
}

/// A shopper address of its own per account, passed the way the storefront
/// passes it, so the per-address throttle counts each shopper apart.
fn client_ip(index: usize) -> Ipv4Addr {
    let [.., high, low] = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    Ipv4Addr::new(10, 77, high, low)
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) of the process.
fn reset_peak(process: &Running) -> Result<()> {
    let pid = process.pid().context("process has exited")?;
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of {pid}"))
}
