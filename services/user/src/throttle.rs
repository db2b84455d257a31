//! Login and registration throttling in Redis, in fixed windows that start
//! at the first attempt.
//!
//! Every login attempt is counted, per account and per client IP, *before*
//! the password is verified, with one atomic `INCR` per counter: of a burst
//! of simultaneous guesses only the first `limit` get a number within the
//! limit and reach Argon2, the rest get a 429 with `Retry-After` until the
//! window ends. Counting afterwards (only the failures) let every attempt
//! of a parallel burst pass the check before the first failure was written.
//! A successful login clears the account's counter and takes its own
//! attempt back from the IP's, so both count failures (and attempts in
//! flight), and a shared address with many good logins is never blocked.
//!
//! Registrations are counted per client IP the same way, before the
//! password is hashed. An attempt refused because the hashing queue was
//! full (503) is taken back: it was never checked.
//!
//! If Redis is down the throttle fails open (logins keep working, the outage
//! is logged by the cache): locking every shopper out because a cache is
//! down would be worse. The bounded hashing queue (`password`) still caps
//! the work a flood can cause then.

use std::net::IpAddr;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use storekeeper_kit::cache::Cache;

use crate::config::ThrottleConfig;

/// Takes one attempt back from a counter, if the counter still exists (a
/// plain `DECR` on an expired key would create one without an expiry).
const GIVE_BACK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(redis.call('GET', KEYS[1])) > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
";

/// Whether an attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead (the attempt has been counted).
    Allowed,
    /// Too many recent attempts.
    Blocked {
        /// Seconds until the window ends.
        retry_after: u64,
        /// `account` or `ip`.
        scope: &'static str,
    },
}

/// One counter after an increment.
#[derive(Debug, Clone, Copy)]
struct Count {
    value: u64,
    ttl_ms: i64,
}

/// The login and registration throttle. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    cache: Cache,
    config: ThrottleConfig,
}

impl Throttle {
    /// A throttle over `cache` with `config` limits.
    pub(crate) fn new(cache: Cache, config: ThrottleConfig) -> Self {
        Self { cache, config }
    }

    /// The account key holds a digest, not the address: no emails in Redis.
    fn account_key(&self, email: &str) -> String {
        let digest = Sha256::digest(email.as_bytes());
        let digest = URL_SAFE_NO_PAD.encode(digest);
        self.cache.key(&format!("login:fail:account:{digest}"))
    }

    fn ip_key(&self, ip: IpAddr) -> String {
        self.cache.key(&format!("login:fail:ip:{ip}"))
    }

    fn registration_key(&self, ip: IpAddr) -> String {
        self.cache.key(&format!("register:ip:{ip}"))
    }

    /// Increments each key (setting the window's expiry on the first
    /// attempt) in one transaction; `None` when Redis did not answer.
    async fn count(&self, keys: &[(&str, u64)]) -> Option<Vec<Count>> {
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for (key, window_ms) in keys {
            pipeline
                .cmd("INCR")
                .arg(*key)
                .cmd("PEXPIRE")
                .arg(*key)
                .arg(*window_ms)
                .arg("NX")
                .ignore()
                .cmd("PTTL")
                .arg(*key);
        }
        match self.cache.query_pipeline::<Vec<i64>>(&pipeline).await {
            Ok(values) => Some(
                values
                    .chunks_exact(2)
                    .map(|pair| Count {
                        value: u64::try_from(pair[0]).unwrap_or(0),
                        ttl_ms: pair[1],
                    })
                    .collect(),
            ),
            Err(err) => {
                tracing::debug!(error = %err, "could not count an attempt; letting it through");
                None
            }
        }
    }

    /// Counts a login attempt for `email` from `ip` and decides whether it
    /// may go on to the password check.
    pub(crate) async fn login_attempt(&self, email: &str, ip: IpAddr) -> Verdict {
        let window_ms = millis(self.config.window);
        let (account_key, ip_key) = (self.account_key(email), self.ip_key(ip));
        let Some(counts) = self
            .count(&[(&account_key, window_ms), (&ip_key, window_ms)])
            .await
        else {
            return Verdict::Allowed;
        };
        let window_secs = self.config.window.as_secs();
        let limits = [
            (self.config.max_failures_per_account, "account"),
            (self.config.max_failures_per_ip, "ip"),
        ];
        counts
            .iter()
            .zip(limits)
            .find(|(count, (limit, _))| count.value > u64::from(*limit))
            .map_or(Verdict::Allowed, |(count, (_, scope))| Verdict::Blocked {
                retry_after: retry_after_secs(count.ttl_ms, window_secs),
                scope,
            })
    }

    /// After a successful login: clears the account's counter and takes
    /// this attempt back from the IP's (the IP's earlier failures stay: one
    /// good password must not launder a spraying IP).
    pub(crate) async fn login_succeeded(&self, email: &str, ip: IpAddr) {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("DEL")
            .arg(self.account_key(email))
            .ignore()
            .cmd("EVAL")
            .arg(GIVE_BACK)
            .arg(1)
            .arg(self.ip_key(ip))
            .ignore();
        if let Err(err) = self.cache.query_pipeline::<()>(&pipeline).await {
            tracing::debug!(error = %err, "could not clear login attempts");
        }
    }

    /// A counted login that was never checked (the hashing queue was full):
    /// takes the attempt back from both counters, so a shopper retrying a
    /// 503 is never locked out because the service was busy.
    pub(crate) async fn login_unchecked(&self, email: &str, ip: IpAddr) {
        self.give_back(&[self.account_key(email), self.ip_key(ip)])
            .await;
    }

    /// A counted registration that was never hashed (the queue was full):
    /// takes the attempt back.
    pub(crate) async fn registration_unhashed(&self, ip: IpAddr) {
        self.give_back(&[self.registration_key(ip)]).await;
    }

    async fn give_back(&self, keys: &[String]) {
        let mut pipeline = redis::pipe();
        for key in keys {
            pipeline.cmd("EVAL").arg(GIVE_BACK).arg(1).arg(key).ignore();
        }
        if let Err(err) = self.cache.query_pipeline::<()>(&pipeline).await {
            tracing::debug!(error = %err, "could not give attempts back");
        }
    }

    /// Counts a registration from `ip` and decides whether it may go on to
    /// hashing the password.
    pub(crate) async fn registration_attempt(&self, ip: IpAddr) -> Verdict {
        let window = self.config.registration_window;
        let key = self.registration_key(ip);
        let Some(counts) = self.count(&[(&key, millis(window))]).await else {
            return Verdict::Allowed;
        };
        counts
            .first()
            .filter(|count| count.value > u64::from(self.config.max_registrations_per_ip))
            .map_or(Verdict::Allowed, |count| Verdict::Blocked {
                retry_after: retry_after_secs(count.ttl_ms, window.as_secs()),
                scope: "ip",
            })
    }
}

fn millis(window: std::time::Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
}

/// Seconds to wait, from a `PTTL` answer (-1: no expiry, -2: gone).
fn retry_after_secs(ttl_ms: i64, window_secs: u64) -> u64 {
    match u64::try_from(ttl_ms) {
        Ok(ms) => ms.div_ceil(1000).max(1),
        Err(_) => window_secs.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(1, 900), 1);
        assert_eq!(retry_after_secs(1500, 900), 2);
        assert_eq!(retry_after_secs(-1, 900), 900);
    }
}
