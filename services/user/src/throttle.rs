//! Login throttling in Redis: failed logins are counted per account and per
//! client IP in fixed windows; once a counter reaches its limit, logins for
//! that account (or from that IP) get a 429 with `Retry-After` until the
//! window ends.
//!
//! The counters are checked *before* the password is verified, so a locked
//! account cannot be used to test passwords. If Redis is down the throttle
//! fails open (logins keep working, the outage is logged by the cache):
//! locking every shopper out because a cache is down would be worse.

use std::net::IpAddr;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use storekeeper_kit::cache::Cache;

use crate::config::ThrottleConfig;

/// Whether a login attempt may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead.
    Allowed,
    /// Too many recent failures.
    Blocked {
        /// Seconds until the window ends.
        retry_after: u64,
        /// `account` or `ip`.
        scope: &'static str,
    },
}

/// The login throttle. Cheap to clone.
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

    /// Decides whether `email` may try to log in from `ip`.
    pub(crate) async fn check(&self, email: &str, ip: IpAddr) -> Verdict {
        let (account_key, ip_key) = (self.account_key(email), self.ip_key(ip));
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("GET")
            .arg(&account_key)
            .cmd("PTTL")
            .arg(&account_key)
            .cmd("GET")
            .arg(&ip_key)
            .cmd("PTTL")
            .arg(&ip_key);
        let Ok((account_failures, account_ttl, ip_failures, ip_ttl)) = self
            .cache
            .query_pipeline::<(Option<u32>, i64, Option<u32>, i64)>(&pipeline)
            .await
        else {
            return Verdict::Allowed;
        };
        let blocked = |failures: Option<u32>, limit: u32, ttl_ms: i64, scope| {
            (failures.unwrap_or(0) >= limit).then(|| Verdict::Blocked {
                retry_after: retry_after_secs(ttl_ms, self.config.window.as_secs()),
                scope,
            })
        };
        blocked(
            account_failures,
            self.config.max_failures_per_account,
            account_ttl,
            "account",
        )
        .or_else(|| blocked(ip_failures, self.config.max_failures_per_ip, ip_ttl, "ip"))
        .unwrap_or(Verdict::Allowed)
    }

    /// Counts a failed login against both the account and the IP; the
    /// window starts at the first failure.
    pub(crate) async fn record_failure(&self, email: &str, ip: IpAddr) {
        let window_ms = u64::try_from(self.config.window.as_millis()).unwrap_or(u64::MAX);
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for key in [self.account_key(email), self.ip_key(ip)] {
            pipeline
                .cmd("INCR")
                .arg(&key)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(window_ms)
                .arg("NX")
                .ignore();
        }
        if let Err(err) = self.cache.query_pipeline::<()>(&pipeline).await {
            tracing::debug!(error = %err, "could not record a failed login");
        }
    }

    /// Clears the account's failures after a successful login (the IP's
    /// stay: one good password must not launder a spraying IP).
    pub(crate) async fn reset_account(&self, email: &str) {
        if let Err(err) = self
            .cache
            .query::<i64>(redis::cmd("DEL").arg(self.account_key(email)))
            .await
        {
            tracing::debug!(error = %err, "could not reset login failures");
        }
    }
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
