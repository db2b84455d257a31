//! The run's shopper accounts. Shopper `n` is `load-shopper-n@example.test`
//! in every run, and every shopper is signed in before the run's clock
//! starts, one after another.
//!
//! user-service counts each login attempt against the client's address
//! until it succeeds (20 per 15 minutes) and each registration (20 per
//! 10 minutes), and the generator sends them all from one address. So an
//! account that exists only logs in and a new one only registers, which
//! needs to know which exist: `.local/load-shoppers.json` records, per
//! storefront URL, how many shoppers have accounts there. A record that
//! is wrong (a database dropped since) costs one refused attempt per
//! shopper, then the other way is tried. Signing in one at a time keeps
//! the attempts in flight (counted until they succeed) to one. Against a
//! shop on this machine, every [`SHOPPERS_PER_ADDRESS`] shoppers send from
//! their own loopback address (`127.0.0.1`, `127.0.0.2`, ...), as that many
//! browsers would, so a run of more shoppers than one address may register
//! in ten minutes still finds them all signed in.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use reqwest::Client;
use reqwest::redirect::Policy;

use super::{get, hidden_value, post};
use crate::layout;

/// The password of every load shopper (an obviously fake test value).
const SHOPPER_PASSWORD: &str = "load-test-password-1";

/// Shoppers that share one loopback address: fewer than the registrations
/// user-service allows one address in ten minutes (20).
const SHOPPERS_PER_ADDRESS: usize = 16;

/// A shopper with a session: its client (cookies kept, redirects not
/// followed, so each request is timed on its own) and the session's CSRF
/// token.
pub struct Shopper {
    /// The shopper's browser.
    pub client: Client,
    /// The token the session's forms carry.
    pub csrf: String,
}

/// Signs shoppers `0..users` in to the storefront at `base`, registering
/// the accounts it does not have yet.
pub async fn sign_in_all(base: &str, users: usize) -> Result<Vec<Shopper>> {
    let record = record_path();
    let mut known = read_record(&record);
    let existing = known.get(base).copied().unwrap_or(0);
    let mut shoppers = Vec::with_capacity(users);
    let mut outcome = Ok(());
    for n in 0..users {
        match signed_in(base, n, n < existing).await {
            Ok(shopper) => shoppers.push(shopper),
            Err(err) => {
                outcome = Err(err);
                break;
            }
        }
    }
    // Also after a refusal (registrations are limited per address): the
    // accounts made so far exist, and the next run logs them in.
    if shoppers.len() > existing {
        known.insert(base.to_owned(), shoppers.len());
        write_record(&record, &known)?;
    }
    outcome.map(|()| shoppers)
}

/// Shopper `n`, signed in, with its session's CSRF token.
async fn signed_in(base: &str, n: usize, exists: bool) -> Result<Shopper> {
    let mut client = Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10));
    if is_loopback(base) {
        client = client.local_address(loopback_address(n));
    }
    let client = client.build()?;
    sign_in(&client, base, n, exists).await?;
    // The session may rotate its token on login; read the current one.
    let cart = get(&client, &format!("{base}/cart")).await?;
    let csrf = hidden_value(&cart, "_csrf").context("no CSRF token after signing in")?;
    Ok(Shopper { client, csrf })
}

/// The two ways a shopper gets a session.
#[derive(Clone, Copy)]
enum Way {
    Login,
    Register,
}

impl Way {
    /// Submits the storefront's form for this way (its page, for the CSRF
    /// token, then the post).
    async fn submit(self, client: &Client, base: &str, email: &str) -> Result<()> {
        let (path, name) = match self {
            Self::Login => ("login", None),
            Self::Register => ("register", Some("Load Shopper")),
        };
        let url = format!("{base}/{path}");
        let page = get(client, &url).await?;
        let csrf = hidden_value(&page, "_csrf")
            .with_context(|| format!("the {path} page has no CSRF token"))?;
        let mut form = vec![
            ("_csrf", csrf.as_str()),
            ("next", "/"),
            ("email", email),
            ("password", SHOPPER_PASSWORD),
        ];
        form.extend(name.map(|name| ("name", name)));
        post(client, &url, &form).await
    }
}

/// Logs shopper `n` in when its account should exist, registers it when
/// not, and tries the other way when the first is refused.
async fn sign_in(client: &Client, base: &str, n: usize, exists: bool) -> Result<()> {
    let email = format!("load-shopper-{n}@example.test");
    let (first, then) = if exists {
        (Way::Login, Way::Register)
    } else {
        (Way::Register, Way::Login)
    };
    let Err(refused) = first.submit(client, base, &email).await else {
        return Ok(());
    };
    then.submit(client, base, &email)
        .await
        .map_err(|also| anyhow!("{email} could not sign in: {refused:#}; then {also:#}"))
}

/// Whether `base` is a shop on this machine, reached over loopback.
fn is_loopback(base: &str) -> bool {
    reqwest::Url::parse(base)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .is_some_and(|host| {
            // IPv4 literals only: `localhost` may resolve to ::1, which a
            // 127.0.0.x source cannot reach.
            host.parse::<Ipv4Addr>()
                .is_ok_and(|address| address.is_loopback())
        })
}

/// The loopback address shopper `n` sends from.
fn loopback_address(n: usize) -> IpAddr {
    let group = u8::try_from(n / SHOPPERS_PER_ADDRESS).unwrap_or(u8::MAX - 1);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, group.saturating_add(1)))
}

fn record_path() -> PathBuf {
    layout::state_dir().join("load-shoppers.json")
}

/// Shoppers with accounts, by storefront URL; empty when there is no
/// readable record (every shopper then registers first).
fn read_record(path: &Path) -> BTreeMap<String, usize> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn write_record(path: &Path, known: &BTreeMap<String, usize>) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(known)?)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sixteen_shoppers_share_a_loopback_address() {
        assert_eq!(loopback_address(0).to_string(), "127.0.0.1");
        assert_eq!(loopback_address(15).to_string(), "127.0.0.1");
        assert_eq!(loopback_address(16).to_string(), "127.0.0.2");
        assert_eq!(loopback_address(40).to_string(), "127.0.0.3");
        assert_eq!(loopback_address(100_000).to_string(), "127.0.0.255");
    }

    #[test]
    fn only_a_shop_on_this_machine_gets_loopback_addresses() {
        assert!(is_loopback("http://127.0.0.1:3000"));
        assert!(is_loopback("http://127.0.0.1:3000/"));
        assert!(!is_loopback("http://localhost:3000/"));
        assert!(!is_loopback("https://shop.example.test"));
        assert!(!is_loopback("not a url"));
    }

    #[test]
    fn the_record_keeps_each_storefront_apart_and_a_bad_one_reads_as_empty() {
        let dir = std::env::temp_dir().join(format!("load-shoppers-{}", std::process::id()));
        let path = dir.join("nested").join("load-shoppers.json");
        assert!(read_record(&path).is_empty(), "no file yet");

        let known = BTreeMap::from([
            ("http://127.0.0.1:3000".to_owned(), 12),
            ("https://shop.example.test".to_owned(), 4),
        ]);
        write_record(&path, &known).unwrap();
        assert_eq!(read_record(&path), known);

        std::fs::write(&path, "not json").unwrap();
        assert!(read_record(&path).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
