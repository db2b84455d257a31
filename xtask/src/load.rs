//! `cargo xtask load`: drives the Online Boutique shopper mix through the
//! storefront of a running local shop (`cargo xtask up`) and prints
//! requests/s, p50/p99 per page and errors, then each service's resident
//! memory idle and at its peak under the load, and the CPU it spent, read
//! from the `process_*` metrics on its admin port, and the CPU the load
//! generator itself spent. It runs from a release build of xtask (see
//! [`crate::optimized`]): it shares the machine with the shop.
//!
//! Each virtual shopper is signed in before the clock starts (the same
//! account in every run, registered the first time: see [`accounts`]),
//! then loops over a weighted mix — browse a
//! product 10, view the cart 3, add to cart 2, home 1, checkout 1 — as a
//! browser would: cookies kept, the form's CSRF token sent back, redirects
//! not followed (each request is timed on its own: a checkout is two, the
//! form `GET /checkout` and its `POST /checkout`). Online Boutique's "set
//! currency" is left out: this shop sells in one currency per product.
//!
//! By default each shopper sends its next request as soon as the last one
//! is answered, which finds the shop's saturated rate and its tail there;
//! `--rate` offers a fixed rate instead and times every request from when
//! it was due (see [`pace`]).
//!
//! Before the mix starts, every product on the home page is topped up to
//! [`restock::STOCK_AT_START`] units, so no run finds what earlier runs
//! bought missing.

mod accounts;
mod pace;
mod restock;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand::seq::SliceRandom;
use reqwest::{Client, Response};

use storekeeper_contract::{ShopService, admin};

use accounts::Shopper;
use pace::Pace;

use crate::optimized;

/// What `cargo xtask load` was asked for.
#[derive(Debug, clap::Args)]
pub struct LoadOptions {
    /// Storefront base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Concurrent shoppers.
    #[arg(long, default_value_t = 8)]
    pub users: usize,
    /// How long to drive the mix, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Offer this many requests a second in all, spread evenly over the
    /// shoppers, each request timed from when it was due (default: every
    /// shopper as fast as the shop answers). A shopper waits for each
    /// answer, so give it enough shoppers to be mostly idle (24 for
    /// 1,800/s), or their own queues are what gets timed.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Leave the stock as it is (for a shop that is not the local one:
    /// restocking logs in as the local admin).
    #[arg(long)]
    pub no_restock: bool,
}

/// The pages of the mix, with Online Boutique's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Page {
    Product,
    Cart,
    AddToCart,
    Home,
    /// The form a checkout starts with: not in the mix, a step of
    /// [`Page::Checkout`].
    CheckoutForm,
    Checkout,
}

const MIX: [(Page, u32); 5] = [
    (Page::Product, 10),
    (Page::Cart, 3),
    (Page::AddToCart, 2),
    (Page::Home, 1),
    (Page::Checkout, 1),
];

impl Page {
    fn pick(rng: &mut impl Rng) -> Self {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut roll = rng.gen_range(0..total);
        for (page, weight) in MIX {
            if roll < weight {
                return page;
            }
            roll -= weight;
        }
        Page::Home
    }

    fn label(self) -> &'static str {
        match self {
            Page::Product => "GET /products/{slug}",
            Page::Cart => "GET /cart",
            Page::AddToCart => "POST /cart/items",
            Page::Home => "GET /",
            Page::CheckoutForm => "GET /checkout",
            Page::Checkout => "POST /checkout",
        }
    }
}

/// Latencies and failures of one page, across all shoppers.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: usize,
    /// Add-to-cart steps that could not run: every product page this
    /// shopper had seen was sold out (no add-to-cart form).
    skipped: usize,
}

/// Runs the mix and prints the figures.
pub async fn run(options: &LoadOptions) -> Result<()> {
    let slugs = product_slugs(&options.url).await?;
    if !options.no_restock {
        let topped_up = restock::restock(&slugs).await?;
        println!(
            "restocked {topped_up} of {} products to {} units",
            slugs.len(),
            restock::STOCK_AT_START
        );
    }
    let shoppers = accounts::sign_in_all(&options.url, options.users).await?;
    let metrics_client = Client::new();
    let idle = sample_all(&metrics_client).await;
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let sampler = tokio::spawn(peak_until(metrics_client.clone(), deadline));
    let own_cpu_before = optimized::own_cpu_seconds();
    let started = Instant::now();
    let count = shoppers.len();
    let mut tasks = Vec::new();
    for (index, signed_in) in shoppers.into_iter().enumerate() {
        let url = options.url.clone();
        let slugs = slugs.clone();
        let pacing = options.rate.map_or_else(Pace::closed_loop, |rate| {
            Pace::offered(rate, count, index, started.into())
        });
        tasks.push(tokio::spawn(async move {
            shopper(signed_in, url, slugs, pacing, deadline).await
        }));
    }
    let mut all: BTreeMap<Page, Samples> = BTreeMap::new();
    for task in tasks {
        for (page, samples) in task.await.context("a shopper task panicked")?? {
            let entry = all.entry(page).or_default();
            entry.latencies.extend(samples.latencies);
            entry.errors += samples.errors;
            entry.skipped += samples.skipped;
        }
    }
    report(&all, started.elapsed(), options.rate);
    let own_cpu = own_cpu_before
        .zip(optimized::own_cpu_seconds())
        .map(|(before, after)| after - before);
    let peak = sampler.await.context("the memory sampler panicked")?;
    let after = sample_all(&metrics_client).await;
    report_processes(&idle, &peak, &after);
    if let Some(seconds) = own_cpu {
        println!("{:<12} {:>13} {:>13} {seconds:>13.2}", "this load", "", "");
    }
    Ok(())
}

/// A service's `process_*` figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcessFigures {
    resident_bytes: f64,
    cpu_seconds: f64,
}

/// Reads a service's figures from its admin `/metrics`; `None` when the
/// service is not local or not up (the mix may target a remote storefront).
async fn sample(client: &Client, admin_port: u16) -> Option<ProcessFigures> {
    let text = client
        .get(format!(
            "http://127.0.0.1:{admin_port}{}",
            admin::METRICS_PATH
        ))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(ProcessFigures {
        resident_bytes: metric_value(&text, "process_resident_memory_bytes")?,
        cpu_seconds: metric_value(&text, "process_cpu_seconds_total")?,
    })
}

async fn sample_all(client: &Client) -> Vec<Option<ProcessFigures>> {
    let mut out = Vec::with_capacity(ShopService::ALL.len());
    for service in ShopService::ALL {
        out.push(sample(client, service.local_admin_port()).await);
    }
    out
}

/// Samples every half second until `deadline`; keeps each service's highest RSS.
async fn peak_until(client: Client, deadline: Instant) -> Vec<Option<f64>> {
    let mut peak: Vec<Option<f64>> = vec![None; ShopService::ALL.len()];
    while Instant::now() < deadline {
        for (high, now) in peak.iter_mut().zip(sample_all(&client).await) {
            if let Some(now) = now {
                *high = Some(high.map_or(now.resident_bytes, |h| h.max(now.resident_bytes)));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    peak
}

/// The value of an unlabelled metric in Prometheus text.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()
}

fn report_processes(
    idle: &[Option<ProcessFigures>],
    peak: &[Option<f64>],
    after: &[Option<ProcessFigures>],
) {
    const MIB: f64 = 1024.0 * 1024.0;
    println!();
    println!(
        "{:<12} {:>13} {:>13} {:>13}",
        "service", "idle RSS MiB", "peak RSS MiB", "CPU s used"
    );
    for (((service, idle), peak), after) in ShopService::ALL.iter().zip(idle).zip(peak).zip(after) {
        let (Some(idle), Some(after)) = (idle, after) else {
            println!(
                "{:<12} (no admin metrics on port {})",
                service.name(),
                service.local_admin_port()
            );
            continue;
        };
        println!(
            "{:<12} {:>13.1} {:>13.1} {:>13.2}",
            service.name(),
            idle.resident_bytes / MIB,
            peak.unwrap_or(after.resident_bytes)
                .max(after.resident_bytes)
                / MIB,
            after.cpu_seconds - idle.cpu_seconds
        );
    }
}

async fn product_slugs(base: &str) -> Result<Vec<String>> {
    let home = reqwest::get(format!("{base}/"))
        .await
        .with_context(|| {
            format!("the storefront at {base} does not answer; start it with `cargo xtask up`")
        })?
        .text()
        .await?;
    let slugs: Vec<String> = home
        .split("href=\"/products/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    if slugs.is_empty() {
        bail!("the home page lists no products; is the catalog loaded?");
    }
    Ok(slugs)
}

async fn shopper(
    Shopper { client, csrf }: Shopper,
    base: String,
    slugs: Vec<String>,
    mut pacing: Pace,
    deadline: Instant,
) -> Result<BTreeMap<Page, Samples>> {
    let mut samples: BTreeMap<Page, Samples> = BTreeMap::new();
    let mut product_ids = Vec::new();
    let mut visited_products = false;
    while Instant::now() < deadline {
        let (page, slug) = {
            let mut rng = rand::thread_rng();
            (
                Page::pick(&mut rng),
                slugs.choose(&mut rng).cloned().unwrap_or_default(),
            )
        };
        if page == Page::AddToCart && product_ids.is_empty() {
            if visited_products {
                samples.entry(page).or_default().skipped += 1;
            }
            continue;
        }
        let mut begun = pacing.turn().await;
        let outcome = match page {
            Page::Product => get(&client, &format!("{base}/products/{slug}"))
                .await
                .map(|html| {
                    visited_products = true;
                    if let Some(id) = hidden_value(&html, "product_id") {
                        product_ids.push(id);
                    }
                }),
            Page::Cart => get(&client, &format!("{base}/cart")).await.map(drop),
            Page::Home => get(&client, &format!("{base}/")).await.map(drop),
            Page::AddToCart => {
                let id = product_ids.last().map_or("", String::as_str);
                let form = [
                    ("_csrf", csrf.as_str()),
                    ("product_id", id),
                    ("quantity", "1"),
                ];
                post(&client, &format!("{base}/cart/items"), &form).await
            }
            // Never picked: a step of `Checkout`.
            Page::CheckoutForm => continue,
            Page::Checkout => {
                let form = checkout_form(&client, &base).await;
                let entry = samples.entry(Page::CheckoutForm).or_default();
                if form.is_ok() {
                    entry.latencies.push(begun.elapsed());
                } else {
                    entry.errors += 1;
                }
                // An empty cart sends the shopper back to it: no submission.
                let Ok(Some(form)) = form else {
                    continue;
                };
                begun = pacing.turn().await;
                post(&client, &format!("{base}/checkout"), &form.fields()).await
            }
        };
        let entry = samples.entry(page).or_default();
        match outcome {
            Ok(()) => entry.latencies.push(begun.elapsed()),
            Err(_) => entry.errors += 1,
        }
    }
    Ok(samples)
}

/// What a submission needs from the checkout form.
struct CheckoutForm {
    csrf: String,
    idempotency_key: String,
}

impl CheckoutForm {
    /// The form filled in with the test card that succeeds.
    fn fields(&self) -> [(&str, &str); 12] {
        [
            ("_csrf", self.csrf.as_str()),
            ("idempotency_key", self.idempotency_key.as_str()),
            ("name", "Load Shopper"),
            ("line1", "1 Test Street"),
            ("line2", ""),
            ("city", "Testville"),
            ("postal_code", "12345"),
            ("country", "US"),
            ("card_number", "4242424242424242"),
            ("exp_month", "12"),
            ("exp_year", "2035"),
            ("cvc", "123"),
        ]
    }
}

/// Opens the checkout form for its CSRF token and idempotency key; `None`
/// when the storefront sends the shopper back to an empty cart, which is
/// not an error.
async fn checkout_form(client: &Client, base: &str) -> Result<Option<CheckoutForm>> {
    let page = client.get(format!("{base}/checkout")).send().await?;
    if page.status().is_redirection() {
        return Ok(None);
    }
    let html = ok_text(page).await?;
    Ok(Some(CheckoutForm {
        csrf: hidden_value(&html, "_csrf").context("checkout form without CSRF token")?,
        idempotency_key: hidden_value(&html, "idempotency_key")
            .context("checkout form without idempotency key")?,
    }))
}

async fn get(client: &Client, url: &str) -> Result<String> {
    ok_text(client.get(url).send().await?).await
}

async fn post(client: &Client, url: &str, form: &[(&str, &str)]) -> Result<()> {
    let response = client.post(url).form(form).send().await?;
    if response.status().is_success() || response.status().is_redirection() {
        Ok(())
    } else {
        bail!("{url}: {}", response.status())
    }
}

async fn ok_text(response: Response) -> Result<String> {
    let status = response.status();
    if !status.is_success() {
        bail!("{}: {status}", response.url());
    }
    Ok(response.text().await?)
}

/// The `value` of the first hidden input named `name` in `html`.
fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

fn report(all: &BTreeMap<Page, Samples>, elapsed: Duration, offered: Option<u32>) {
    let total: usize = all.values().map(|s| s.latencies.len() + s.errors).sum();
    println!();
    println!(
        "{:<24} {:>8} {:>8} {:>9} {:>9}",
        "page", "requests", "errors", "p50 ms", "p99 ms"
    );
    for (page, samples) in all {
        let mut sorted = samples.latencies.clone();
        sorted.sort_unstable();
        println!(
            "{:<24} {:>8} {:>8} {:>9.2} {:>9.2}",
            page.label(),
            sorted.len(),
            samples.errors,
            percentile_ms(&sorted, 50),
            percentile_ms(&sorted, 99)
        );
    }
    println!();
    println!(
        "{total} requests in {:.1} s: {:.0} requests/s",
        elapsed.as_secs_f64(),
        rate(total, elapsed)
    );
    if let Some(offered) = offered {
        println!("offered {offered} requests/s, each request timed from when it was due");
        if rate(total, elapsed) < 0.95 * f64::from(offered) {
            println!(
                "warning: the shop answered fewer than the requests offered: the shoppers fell \
                 behind, and the latencies above count how far"
            );
        }
    }
    let skipped: usize = all.values().map(|s| s.skipped).sum();
    if skipped > 0 {
        println!(
            "warning: {skipped} add-to-cart steps skipped: the products visited were sold out, \
             so checkouts had empty carts. Run without --no-restock (or restock in the admin \
             pages) before comparing figures."
        );
    }
}

fn percentile_ms(sorted: &[Duration], pct: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = (sorted.len() * pct).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[allow(clippy::cast_precision_loss)]
fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hidden_inputs() {
        let html = r#"<input type="hidden" name="_csrf" value="abc123"><input type="hidden" name="product_id" value="p-1">"#;
        assert_eq!(hidden_value(html, "_csrf").as_deref(), Some("abc123"));
        assert_eq!(hidden_value(html, "product_id").as_deref(), Some("p-1"));
        assert_eq!(hidden_value(html, "missing"), None);
    }

    #[test]
    fn reads_unlabelled_metrics() {
        let text = "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.5e7\nprocess_cpu_seconds_total 2.5\n";
        assert_eq!(
            metric_value(text, "process_resident_memory_bytes"),
            Some(1.5e7)
        );
        assert_eq!(metric_value(text, "process_cpu_seconds_total"), Some(2.5));
        assert_eq!(metric_value(text, "process_cpu"), None);
    }

    #[test]
    fn the_mix_follows_the_weights() {
        let mut rng = rand::thread_rng();
        let mut counts: BTreeMap<Page, u32> = BTreeMap::new();
        for _ in 0..17_000 {
            *counts.entry(Page::pick(&mut rng)).or_default() += 1;
        }
        let product = f64::from(counts[&Page::Product]);
        let checkout = f64::from(counts[&Page::Checkout]);
        assert!((product / checkout - 10.0).abs() < 2.0, "{counts:?}");
    }

    #[test]
    fn percentiles_pick_the_right_sample() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert!((percentile_ms(&samples, 50) - 50.0).abs() < 1e-9);
        assert!((percentile_ms(&samples, 99) - 99.0).abs() < 1e-9);
        assert!(percentile_ms(&[], 99).abs() < f64::EPSILON);
    }
}
