//! `cargo xtask bench memory`: the five services' resident memory, release
//! builds on fresh databases, read from each one's own `/metrics`
//! (`process_resident_memory_bytes`): once idle after start-up, and once
//! idle again after a short load that touches every service (accounts and
//! logins, catalog reads, storefront pages, checkouts through the saga).

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result, bail};
use reqwest::Client;
use serde_json::{Value, json};
use storekeeper_contract::ShopService;

use super::load_average;
use crate::local_deps::deps;
use crate::process::Logs;
use crate::stack::{self, Options, Stack};

const PREFIX: &str = "bench_";
/// Shoppers in the short load; each registers, logs in and checks out.
const SHOPPERS: usize = 3;
/// Orders each shopper places.
const ORDERS_EACH: usize = 3;
/// How long the services get to settle before "idle" memory is read.
const SETTLE: Duration = Duration::from_secs(5);
/// The goal every service is held to.
const GOAL_MIB: f64 = 20.0;

/// Starts a release stack of its own, measures, prints, stops it.
pub async fn run() -> Result<()> {
    deps(&[]).await?;
    let logs = stack::log_dir("bench-memory-logs")?;
    let stack = Stack::start(&Options {
        release: true,
        database_prefix: PREFIX,
        fresh_databases: true,
        logs: Logs::Folder(&logs),
    })
    .await?;
    let outcome = measure().await;
    if outcome.is_err() {
        stack::print_log_tails(&logs);
    }
    stack.stop().await?;
    outcome
}

async fn measure() -> Result<()> {
    let client = Client::new();
    tokio::time::sleep(SETTLE).await;
    let started = resident_all(&client).await?;
    let load_before = load_average()?;
    short_load(&client).await?;
    let load_after = load_average()?;
    tokio::time::sleep(SETTLE).await;
    let loaded = resident_all(&client).await?;
    println!();
    println!(
        "{:<12} {:>22} {:>22}",
        "service", "idle after start-up", "idle after load"
    );
    let mut over = Vec::new();
    for ((svc, start), (_, after)) in started.iter().zip(&loaded) {
        println!("{:<12} {:>18.1} MiB {:>18.1} MiB", svc.name(), start, after);
        if start.max(*after) >= GOAL_MIB {
            over.push(svc.name());
        }
    }
    println!(
        "load: {SHOPPERS} shoppers × {ORDERS_EACH} orders; load average {load_before} → {load_after}"
    );
    if !over.is_empty() {
        bail!("at or over {GOAL_MIB} MiB: {}", over.join(", "));
    }
    Ok(())
}

/// Every service's resident memory in MiB, from its admin `/metrics`.
async fn resident_all(client: &Client) -> Result<Vec<(ShopService, f64)>> {
    let mut all = Vec::new();
    for svc in ShopService::ALL {
        let url = format!("http://127.0.0.1:{}/metrics", svc.local_admin_port());
        let text = client.get(&url).send().await?.text().await?;
        all.push((svc, resident_mib(&text).with_context(|| url.clone())?));
    }
    Ok(all)
}

/// `process_resident_memory_bytes` from a Prometheus text page, in MiB.
fn resident_mib(metrics: &str) -> Option<f64> {
    let bytes: f64 = metrics.lines().find_map(|line| {
        line.strip_prefix("process_resident_memory_bytes ")?
            .trim()
            .parse()
            .ok()
    })?;
    Some(bytes / (1024.0 * 1024.0))
}

/// A few shoppers through every service: storefront pages, catalog reads,
/// registration and login, cart, card and order, until the orders are paid.
async fn short_load(client: &Client) -> Result<()> {
    let storefront = ShopService::Storefront.local_url();
    let product = ShopService::Product.local_url();
    let listing: Value = ok_json(client.get(format!("{product}/api/products?per_page=12"))).await?;
    let items = listing["items"]
        .as_array()
        .context("no products in the bench catalog")?;
    for _ in 0..10 {
        ok(client.get(format!("{storefront}/"))).await?;
        ok(client.get(format!("{product}/api/categories"))).await?;
        for item in items {
            let slug = item["slug"].as_str().context("a product without slug")?;
            ok(client.get(format!("{storefront}/products/{slug}"))).await?;
            ok(client.get(format!("{product}/api/products/{slug}"))).await?;
        }
    }
    // One unit of a different product per order: the sample catalog holds
    // a few units of each, fewer than the orders, so buying one product
    // every time ran it out and the last orders were cancelled.
    let in_stock: Vec<&Value> = items
        .iter()
        .filter(|item| item["stock"].as_i64().is_some_and(|stock| stock > 0))
        .map(|item| &item["id"])
        .collect();
    if in_stock.len() < SHOPPERS * ORDERS_EACH {
        bail!(
            "the bench catalog has {} products in stock on its first page; {} orders need one each",
            in_stock.len(),
            SHOPPERS * ORDERS_EACH
        );
    }
    let mut products = in_stock.into_iter();
    let mut orders = Vec::new();
    for shopper in 0..SHOPPERS {
        let token = register_and_login(client, shopper).await?;
        for _ in 0..ORDERS_EACH {
            let product = products.next().context("counted above")?;
            orders.push((token.clone(), checkout(client, &token, product).await?));
        }
    }
    for (token, id) in &orders {
        wait_paid(client, token, id).await?;
    }
    Ok(())
}

async fn register_and_login(client: &Client, shopper: usize) -> Result<String> {
    let users = ShopService::User.local_url();
    let ip = Ipv4Addr::new(10, 78, 0, u8::try_from(shopper).unwrap_or(u8::MAX)).to_string();
    let email = format!("memory-{shopper}@example.test");
    let password = format!("Memory-pass-{shopper}");
    ok(client
        .post(format!("{users}/api/users"))
        .header("x-forwarded-for", &ip)
        .json(&json!({"email": email, "password": password, "name": "Memory bench"})))
    .await?;
    let tokens = ok_json(
        client
            .post(format!("{users}/api/users/login"))
            .header("x-forwarded-for", &ip)
            .json(&json!({"email": email, "password": password})),
    )
    .await?;
    tokens["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("login answered no access token")
}

/// Cart, card, order; returns the order's id.
async fn checkout(client: &Client, token: &str, product: &Value) -> Result<String> {
    let order_url = ShopService::Order.local_url();
    let payment = ShopService::Payment.local_url();
    ok(client
        .post(format!("{order_url}/api/cart/items"))
        .bearer_auth(token)
        .json(&json!({"product_id": product, "quantity": 1})))
    .await?;
    let method = ok_json(
        client
            .post(format!("{payment}/api/payments/methods"))
            .bearer_auth(token)
            .json(&json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"})),
    )
    .await?;
    let order = ok_json(
        client
            .post(format!("{order_url}/api/orders"))
            .bearer_auth(token)
            .header("idempotency-key", format!("memory-{}", rand::random::<u64>()))
            .json(&json!({"payment_method_id": method["id"], "shipping_address": {
                "name": "Bench", "line1": "1 Load St", "city": "Testville", "postal_code": "12345", "country": "US"}})),
    )
    .await?;
    order["id"]
        .as_str()
        .map(str::to_owned)
        .context("the order has no id")
}

async fn wait_paid(client: &Client, token: &str, id: &str) -> Result<()> {
    let url = format!("{}/api/orders/{id}", ShopService::Order.local_url());
    for _ in 0..100 {
        let order = ok_json(client.get(&url).bearer_auth(token)).await?;
        match order["status"].as_str() {
            Some("PAID") => return Ok(()),
            Some("CANCELLED") => bail!("order {id} was cancelled"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    bail!("order {id} was not paid within 10 s")
}

async fn ok(request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
    let response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        bail!("{} answered {status}", response.url());
    }
    Ok(response)
}

async fn ok_json(request: reqwest::RequestBuilder) -> Result<Value> {
    Ok(ok(request).await?.json().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_from_metrics() {
        let page = "# TYPE process_resident_memory_bytes gauge\n# UNIT process_resident_memory_bytes bytes\nprocess_resident_memory_bytes 10485760\nprocess_open_fds 12\n";
        assert_eq!(resident_mib(page), Some(10.0));
        assert_eq!(resident_mib("process_open_fds 12\n"), None);
    }
}
