//! The drill's shoppers. Each registers, logs in and saves two cards (one
//! that pays, one the simulated provider declines), then, for every ticket
//! it gets, does what a shopper's browser does around a checkout: loads the
//! storefront, checks who is logged in, fills the cart with one to three
//! products and places the order — one in ten with the declined card.
//!
//! Faults make requests fail, so each request is retried (with backoff,
//! for up to three minutes) as a careful client would: the order with the
//! same `Idempotency-Key` every time, so however many attempts it takes,
//! the shopper is told of exactly one order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::distributions::Alphanumeric;
use rand::seq::SliceRandom;
use rand::{Rng, thread_rng};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use storekeeper_contract::ShopService;

/// The card the simulated provider always accepts.
const GOOD_CARD: &str = "4242424242424242";
/// The card it always declines (`card_declined`).
const DECLINED_CARD: &str = "4000000000000002";
/// How long one request is retried before the shopper gives up.
const RETRY_FOR: Duration = Duration::from_mins(3);
const PASSWORD: &str = "drill-shopper-password-1";

/// How far the shoppers are, for the conductor.
#[derive(Default)]
pub struct Progress {
    ended: AtomicUsize,
    gave_up: AtomicBool,
}

impl Progress {
    /// Checkouts that ended (accepted or refused).
    pub fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }

    /// Whether a shopper stopped with an error.
    pub fn gave_up(&self) -> bool {
        self.gave_up.load(Ordering::SeqCst)
    }
}

/// What every shopper shares.
pub struct ShopperSettings {
    /// Ids of the products on sale.
    pub products: Vec<String>,
    /// One permit per checkout to place; closed when there are no more.
    pub tickets: Arc<Semaphore>,
    /// Counts what ended.
    pub progress: Arc<Progress>,
    /// Becomes true on Ctrl-C.
    pub cancelled: watch::Receiver<bool>,
}

/// What one shopper saw.
pub struct ShopperOutcome {
    /// Ids of the orders the API accepted (201), one per checkout.
    pub accepted: Vec<String>,
    /// Why checkouts were refused (a 4xx other than a retryable one).
    pub refused: Vec<String>,
    /// Requests that needed more than one attempt.
    pub retried: usize,
}

/// Shopper `n`: shops until the tickets run out.
pub async fn shopper(n: usize, settings: &ShopperSettings) -> Result<ShopperOutcome> {
    let outcome = shop(n, settings).await;
    if outcome.is_err() {
        settings.progress.gave_up.store(true, Ordering::SeqCst);
    }
    outcome.with_context(|| format!("shopper {n}"))
}

async fn shop(n: usize, settings: &ShopperSettings) -> Result<ShopperOutcome> {
    let mut api = Api {
        http: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .context("building an HTTP client")?,
        token: String::new(),
        retried: 0,
        cancelled: settings.cancelled.clone(),
    };
    api.sign_up(n).await?;
    let good_card = api.save_card(GOOD_CARD).await?;
    let declined_card = api.save_card(DECLINED_CARD).await?;
    let mut outcome = ShopperOutcome {
        accepted: Vec::new(),
        refused: Vec::new(),
        retried: 0,
    };
    while let Ok(ticket) = settings.tickets.acquire().await {
        ticket.forget();
        let (lines, card) = {
            let mut rng = thread_rng();
            let count = rng.gen_range(1..=3);
            let lines: Vec<(String, u32)> = settings
                .products
                .choose_multiple(&mut rng, count)
                .map(|id| (id.clone(), rng.gen_range(1..=2)))
                .collect();
            let card = if rng.gen_ratio(1, 10) {
                &declined_card
            } else {
                &good_card
            };
            (lines, card.clone())
        };
        match api.checkout(&lines, &card).await? {
            Ok(order_id) => outcome.accepted.push(order_id),
            Err(reason) => outcome.refused.push(reason),
        }
        settings.progress.ended.fetch_add(1, Ordering::SeqCst);
    }
    outcome.retried = api.retried;
    Ok(outcome)
}

/// One shopper's view of the shop's APIs.
struct Api {
    http: Client,
    token: String,
    retried: usize,
    cancelled: watch::Receiver<bool>,
}

fn url(svc: ShopService, path: &str) -> String {
    format!("{}{path}", svc.local_url())
}

impl Api {
    /// Sends the request `build` makes until it gets an answer worth
    /// acting on: a transport error, a 5xx, a 429 and (when `conflict_retries`)
    /// a 409 are tried again with backoff. Returns the status and body.
    async fn send(
        &mut self,
        what: &str,
        conflict_retries: bool,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<(StatusCode, Value)> {
        let give_up = Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(100);
        let mut attempts = 0;
        loop {
            if *self.cancelled.borrow() {
                bail!("interrupted");
            }
            attempts += 1;
            if attempts == 2 {
                self.retried += 1;
            }
            let failure = match build(&self.http).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry = status.is_server_error()
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || (conflict_retries && status == StatusCode::CONFLICT);
                    if !retry {
                        let body = response.json().await.unwrap_or(Value::Null);
                        return Ok((status, body));
                    }
                    status.to_string()
                }
                Err(err) => err.to_string(),
            };
            if Instant::now() >= give_up {
                bail!("{what}: still failing after {attempts} attempts: {failure}");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Registers shopper `n` and logs in.
    async fn sign_up(&mut self, n: usize) -> Result<()> {
        let nonce: u32 = thread_rng().r#gen();
        let email = format!("drill-{nonce}-{n}@example.test");
        // user-service trusts one proxy hop here, so each shopper shows up
        // as a client address of its own and the per-address registration
        // limit applies to it, not to the whole drill. The address is only
        // a header value; nothing is sent to it.
        let client_address = format!("127.0.{}.{}", n / 250, n % 250 + 2);
        let account = json!({"email": email, "password": PASSWORD, "name": "Drill Shopper"});
        let (status, body) = self
            .send("register", false, |http| {
                http.post(url(ShopService::User, "/api/users"))
                    .header("x-forwarded-for", &client_address)
                    .json(&account)
            })
            .await?;
        // 409: an earlier attempt registered it before its answer was lost.
        if !(status.is_success() || status == StatusCode::CONFLICT) {
            bail!("register: {status} {body}");
        }
        let login = json!({"email": email, "password": PASSWORD});
        let (status, body) = self
            .send("log in", false, |http| {
                http.post(url(ShopService::User, "/api/users/login"))
                    .header("x-forwarded-for", &client_address)
                    .json(&login)
            })
            .await?;
        if !status.is_success() {
            bail!("log in: {status} {body}");
        }
        body["access_token"]
            .as_str()
            .context("login answered without an access token")?
            .clone_into(&mut self.token);
        Ok(())
    }

    /// Saves a card; returns its payment method id.
    async fn save_card(&mut self, number: &str) -> Result<String> {
        let card = json!({"card_number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"});
        let token = self.token.clone();
        let (status, body) = self
            .send("save a card", false, |http| {
                http.post(url(ShopService::Payment, "/api/payments/methods"))
                    .bearer_auth(&token)
                    .json(&card)
            })
            .await?;
        if !status.is_success() {
            bail!("save a card: {status} {body}");
        }
        id_of(&body).context("the saved card has no id")
    }

    /// One checkout; `Ok(Err(reason))` when the order was refused.
    async fn checkout(
        &mut self,
        lines: &[(String, u32)],
        card: &str,
    ) -> Result<std::result::Result<String, String>> {
        let token = self.token.clone();
        self.expect_ok("load the storefront", |http| {
            http.get(url(ShopService::Storefront, "/"))
        })
        .await?;
        self.expect_ok("check the login", |http| {
            http.get(url(ShopService::User, "/api/users/me"))
                .bearer_auth(&token)
        })
        .await?;
        for (product, quantity) in lines {
            // A retried add whose first attempt took effect adds twice; the
            // order then carries the larger quantity, which the report reads
            // from the order itself.
            let line = json!({"product_id": product, "quantity": quantity});
            self.expect_ok("add to the cart", |http| {
                http.post(url(ShopService::Order, "/api/cart/items"))
                    .bearer_auth(&token)
                    .json(&line)
            })
            .await?;
        }
        let key: String = thread_rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        let order = json!({
            "payment_method_id": card,
            "shipping_address": {
                "name": "Drill Shopper",
                "line1": "1 Fault Street",
                "city": "Testville",
                "postal_code": "12345",
                "country": "US"
            }
        });
        let (status, body) = self
            .send("place the order", true, |http| {
                http.post(url(ShopService::Order, "/api/orders"))
                    .bearer_auth(&token)
                    .header("idempotency-key", &key)
                    .json(&order)
            })
            .await?;
        if status.is_success() {
            return Ok(Ok(id_of(&body).context("the order has no id")?));
        }
        if status.is_client_error() {
            return Ok(Err(format!("{status}: {body}")));
        }
        bail!("place the order: {status} {body}")
    }

    async fn expect_ok(
        &mut self,
        what: &str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<()> {
        let (status, body) = self.send(what, false, build).await?;
        if !status.is_success() {
            bail!("{what}: {status} {body}");
        }
        Ok(())
    }
}

fn id_of(body: &Value) -> Option<String> {
    body["id"].as_str().map(str::to_owned)
}
