//! Checkout benchmark: the three release binaries as separate processes on
//! this machine, driven at a fixed rate of checkouts.
//!
//! ```sh
//! cargo build --release -p order-service -p payment-service -p product-service
//! BENCH_RATE=50 BENCH_SECONDS=60 \
//!   cargo test --release -p shop-tests --test bench_checkout -- --ignored --nocapture
//! ```
//!
//! `BENCH_BIN_DIR` names the directory with the binaries (default
//! `$CARGO_TARGET_DIR/release`, else `target/release`). Each checkout is
//! one shopper buying one of `BENCH_PRODUCTS` (default 50) products: add to
//! cart, tokenize a card, `POST /api/orders`. Reported:
//! orders/s reaching PAID, p50/p99 from the order's creation to PAID (server
//! timestamps), the same split into the saga's steps (each handler's
//! transaction, and each hop from an outbox write to the next consumer's
//! transaction start, read from the three databases), the outbox lag (write
//! to confirmed publish) of each service, the peak RSS, CPU time (from the
//! start of the drive to the last PAID) and thread count of each process,
//! and the load average before and after the run.

// A benchmark harness fails loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::print_stdout
)]

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sqlx::{PgPool, postgres::PgPoolOptions};
use storekeeper_kit::auth::{KeyPair, Role, TokenSigner};
use tokio::sync::Semaphore;
use uuid::Uuid;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BENCH_BIN_DIR") {
        return dir.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
    PathBuf::from(target).join("release")
}

struct Proc {
    name: &'static str,
    child: Child,
    db: String,
}

impl Proc {
    fn peak_rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time (user + system, all threads) so far, and the thread count,
    /// from `/proc/<pid>/stat`, whose times are in USER_HZ: 100 per second
    /// on Linux whatever the kernel's tick.
    fn cpu(&self) -> (Duration, u64) {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the parenthesised command name (which may hold
        // spaces) start with the state, field 3: utime, stime and
        // num_threads, fields 14, 15 and 20, sit at 11, 12 and 17.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let at = |index: usize| -> u64 {
            fields
                .get(index)
                .and_then(|field| field.parse().ok())
                .unwrap_or(0)
        };
        (Duration::from_millis((at(11) + at(12)) * 10), at(17))
    }
}

async fn create_db(name: &str) {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{SERVER}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

async fn drop_db(name: &str) {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{SERVER}/postgres"))
        .await
        .unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
}

async fn wait_ready(http: &reqwest::Client, admin_port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http
            .get(format!("http://127.0.0.1:{admin_port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "service on admin port {admin_port} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn lag(pool: &PgPool) -> (f64, f64, i64) {
    sqlx::query_as(
        "SELECT COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at)), 0)::float8 * 1000, \
                COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at)), 0)::float8 * 1000, \
                count(*) FILTER (WHERE published_at IS NULL) FROM outbox",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// One shopper's checkout; returns whether `POST /api/orders` answered 201.
async fn checkout(http: &reqwest::Client, signer: &TokenSigner, product: Uuid) -> bool {
    let token = signer.sign(Uuid::new_v4(), Role::Customer).unwrap().token;
    let cart = http
        .post("http://127.0.0.1:18001/api/cart/items")
        .bearer_auth(&token)
        .json(&json!({"product_id": product, "quantity": 1}))
        .send()
        .await;
    if !cart.is_ok_and(|r| r.status().is_success()) {
        return false;
    }
    let method: Value = match http
        .post("http://127.0.0.1:18002/api/payments/methods")
        .bearer_auth(&token)
        .json(&json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}))
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => return false,
    };
    let order = http
        .post("http://127.0.0.1:18001/api/orders")
        .bearer_auth(&token)
        .header("Idempotency-Key", Uuid::new_v4().to_string())
        .json(&json!({"payment_method_id": method["id"], "shipping_address": {
            "name": "Bench", "line1": "1 Load St", "city": "Testville", "postal_code": "12345", "country": "US"}}))
        .send()
        .await;
    order.is_ok_and(|r| r.status().as_u16() == 201)
}

async fn start_services(tag: &str, public_pem: &str) -> Vec<Proc> {
    let dir = bin_dir();
    let mut procs = Vec::new();
    for (name, port, admin_port) in SPECS {
        let db = format!("bench_{}_{tag}", name.replace('-', "_"));
        create_db(&db).await;
        let child = Command::new(dir.join(name))
            .env("PORT", port.to_string())
            .env("ADMIN_PORT", admin_port.to_string())
            .env("DATABASE_URL", format!("{SERVER}/{db}"))
            .env("TOKEN_PUBLIC_KEY", public_pem)
            .env("PRODUCT_URL", "http://127.0.0.1:13002")
            .env("REDIS_PREFIX", format!("bench:{tag}:"))
            .env("EVENTS_EXCHANGE", format!("bench.{tag}"))
            .env("EVENTS_QUEUE_PREFIX", format!("bench.{tag}."))
            .env("RUST_LOG", "warn")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", dir.join(name).display()));
        procs.push(Proc { name, child, db });
    }
    procs
}

/// (product-service, order-service, payment-service): name, port, admin port.
const SPECS: [(&str, u16, u16); 3] = [
    ("product-service", 13002, 19102),
    ("order-service", 18001, 19101),
    ("payment-service", 18002, 19103),
];

/// A catalog of `BENCH_PRODUCTS` products (default 50) with ample stock.
async fn seed_products(products: &PgPool) -> Vec<Uuid> {
    let category = Uuid::new_v4();
    sqlx::query("INSERT INTO categories (id, slug, name) VALUES ($1, 'bench', 'Bench')")
        .bind(category)
        .execute(products)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..env_or("BENCH_PRODUCTS", 50) {
        let product = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO products (id, slug, name, price_cents, currency, image_url, stock, category_id) \
             VALUES ($1, $2, 'Bench item', 1999, 'USD', '/x.svg', 1000000, $3)",
        )
        .bind(product)
        .bind(format!("bench-item-{n}"))
        .bind(category)
        .execute(products)
        .await
        .unwrap();
        ids.push(product);
    }
    ids
}

/// Starts `rate` checkouts a second for `seconds`; returns how many were accepted.
async fn drive(
    http: &reqwest::Client,
    signer: &Arc<TokenSigner>,
    products: &[Uuid],
    rate: u64,
    seconds: u64,
) -> usize {
    let limit = Arc::new(Semaphore::new(512));
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..rate * seconds {
        interval.tick().await;
        let product = products[usize::try_from(n).unwrap() % products.len()];
        let (http, signer) = (http.clone(), signer.clone());
        let permit = limit.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let ok = checkout(&http, &signer, product).await;
            drop(permit);
            ok
        });
    }
    tasks.join_all().await.into_iter().filter(|ok| *ok).count()
}

async fn wait_settled(orders: &PgPool) {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orders WHERE status NOT IN ('PAID', 'CANCELLED')",
        )
        .fetch_one(orders)
        .await
        .unwrap();
        if open == 0 || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// When each event of an order was written to its outbox and when the
/// consumer that handled it began its transaction (epoch seconds), keyed by
/// (order id, event type).
type Timeline = HashMap<(Uuid, String), (f64, Option<f64>)>;

/// Every outbox row of `pool`'s database with the start of the transaction
/// that consumed it in `consumed_in` (the next service's database).
async fn timeline(pool: &PgPool, consumed_in: &PgPool, into: &mut Timeline) {
    let consumed: HashMap<Uuid, f64> = sqlx::query_as::<_, (Uuid, f64)>(
        "SELECT event_id, extract(epoch FROM processed_at)::float8 FROM processed_events",
    )
    .fetch_all(consumed_in)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let rows: Vec<(Uuid, Uuid, String, f64)> = sqlx::query_as(
        "SELECT event_id, (payload::json->>'correlation_id')::uuid, event_type, \
         extract(epoch FROM created_at)::float8 FROM outbox",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (event_id, order, event_type, written) in rows {
        into.insert(
            (order, event_type),
            (written, consumed.get(&event_id).copied()),
        );
    }
}

/// The value below which `percent` % of `sorted` lies (nearest rank).
fn percentile(sorted: &[f64], percent: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Splits each PAID order's time into the saga's steps and prints p50, p99
/// and max of each: where the time between the request and PAID goes.
async fn breakdown(pools: &[PgPool]) {
    let (products, orders, payments) = (&pools[0], &pools[1], &pools[2]);
    let mut events = Timeline::new();
    timeline(orders, products, &mut events).await;
    timeline(products, orders, &mut events).await;
    // payment.requested is consumed in payments, payment.succeeded in orders.
    let mut to_payments = Timeline::new();
    timeline(orders, payments, &mut to_payments).await;
    timeline(payments, orders, &mut events).await;
    let paid: Vec<(Uuid, f64, f64)> = sqlx::query_as(
        "SELECT id, extract(epoch FROM created_at)::float8, extract(epoch FROM updated_at)::float8 \
         FROM orders WHERE status = 'PAID'",
    )
    .fetch_all(orders)
    .await
    .unwrap();
    let steps = [
        "request -> order.created written (checkout)",
        "order.created -> product tx starts (order relay, broker)",
        "product tx -> inventory.reserved written",
        "inventory.reserved -> order tx starts (product relay, broker)",
        "order tx -> payment.requested written",
        "payment.requested -> payment tx starts (order relay, broker)",
        "payment tx -> payment.succeeded written",
        "payment.succeeded -> order tx starts (payment relay, broker)",
        "order tx -> PAID",
    ];
    let mut samples = vec![Vec::new(); steps.len()];
    for (order, created, paid_at) in paid {
        let at = |map: &Timeline, event: &str| map.get(&(order, event.to_owned())).copied();
        let (
            Some((created_written, Some(reserving))),
            Some((reserved_written, Some(requesting))),
            Some((requested_written, Some(charging))),
            Some((succeeded_written, Some(paying))),
        ) = (
            at(&events, "order.created"),
            at(&events, "inventory.reserved"),
            at(&to_payments, "payment.requested"),
            at(&events, "payment.succeeded"),
        )
        else {
            continue;
        };
        let times = [
            created,
            created_written,
            reserving,
            reserved_written,
            requesting,
            requested_written,
            charging,
            succeeded_written,
            paying,
            paid_at,
        ];
        for (step, pair) in times.windows(2).enumerate() {
            samples[step].push((pair[1] - pair[0]) * 1000.0);
        }
    }
    println!(
        "where the time goes (ms, {} PAID orders):",
        samples[0].len()
    );
    println!("  {:<62} {:>7} {:>7} {:>7}", "step", "p50", "p99", "max");
    for (name, mut values) in steps.into_iter().zip(samples) {
        values.sort_by(f64::total_cmp);
        println!(
            "  {name:<62} {:>7.1} {:>7.1} {:>7.1}",
            percentile(&values, 50),
            percentile(&values, 99),
            values.last().copied().unwrap_or(0.0)
        );
    }
}

/// The load average, as `uptime` shows it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn report(procs: &[Proc], pools: &[PgPool], accepted: usize, cpu_before: &[Duration]) -> i64 {
    let (paid, first, last, p50, p99, max): (i64, Option<f64>, Option<f64>, f64, f64, f64) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM min(created_at))::float8, extract(epoch FROM max(updated_at))::float8, \
         COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)), 0)::float8 * 1000, \
         COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)), 0)::float8 * 1000, \
         COALESCE(max(extract(epoch FROM updated_at - created_at)), 0)::float8 * 1000 \
         FROM orders WHERE status = 'PAID'",
    )
    .fetch_one(&pools[1])
    .await
    .unwrap();
    let span = last.unwrap_or(0.0) - first.unwrap_or(0.0);
    println!(
        "accepted (201): {accepted}   PAID: {paid}   PAID/s over the run: {:.1}",
        paid as f64 / span.max(1e-9)
    );
    println!("POST /api/orders -> PAID: p50 {p50:.1} ms   p99 {p99:.1} ms   max {max:.1} ms");
    breakdown(pools).await;
    for ((proc, pool), before) in procs.iter().zip(pools).zip(cpu_before) {
        let (lag50, lag99, backlog) = lag(pool).await;
        let (rss, hwm) = proc.peak_rss_kib();
        let (cpu, threads) = proc.cpu();
        let cpu = cpu.saturating_sub(*before);
        println!(
            "{:<16} outbox lag p50 {lag50:.1} ms  p99 {lag99:.1} ms  backlog {backlog}   RSS {} MiB (peak {} MiB)   CPU {:.1} s ({:.2} ms per order), {threads} threads",
            proc.name,
            rss / 1024,
            hwm / 1024,
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / accepted.max(1) as f64,
        );
    }
    paid
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: needs release binaries; see the module docs"]
async fn checkout_at_a_fixed_rate() {
    let rate: u64 = env_or("BENCH_RATE", 50);
    let seconds: u64 = env_or("BENCH_SECONDS", 60);
    let tag = Uuid::new_v4().simple().to_string();
    let keys = KeyPair::generate().unwrap();
    let signer = Arc::new(TokenSigner::from_pem(&keys.private_pem).unwrap());
    let procs = start_services(&tag, &keys.public_pem).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    for (_, _, admin_port) in SPECS {
        wait_ready(&http, admin_port).await;
    }
    let mut pools = Vec::new();
    for proc in &procs {
        pools.push(
            PgPoolOptions::new()
                .max_connections(2)
                .connect(&format!("{SERVER}/{}", proc.db))
                .await
                .unwrap(),
        );
    }
    // No pause for the consumers to declare their queues: the relays
    // publish `mandatory`, so an event no queue takes yet stays in the
    // outbox and is published again once one does.
    let products = seed_products(&pools[0]).await;
    let load_before = load_average();
    let cpu_before: Vec<Duration> = procs.iter().map(|proc| proc.cpu().0).collect();
    let started = Instant::now();
    let accepted = drive(&http, &signer, &products, rate, seconds).await;
    println!(
        "\n== checkout benchmark: {rate}/s for {seconds}s ({} checkouts, driven in {:.1}s) ==",
        rate * seconds,
        started.elapsed().as_secs_f64()
    );
    wait_settled(&pools[1]).await;
    println!(
        "load average before: {load_before}   after: {}",
        load_average()
    );
    let paid = report(&procs, &pools, accepted, &cpu_before).await;
    for pool in pools {
        pool.close().await;
    }
    for mut proc in procs {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(proc.child.id().to_string())
            .status();
        let _ = proc.child.wait();
        drop_db(&proc.db).await;
    }
    assert!(paid > 0, "no order reached PAID");
    assert_eq!(
        usize::try_from(paid).unwrap(),
        accepted,
        "every accepted order reaches PAID"
    );
}
