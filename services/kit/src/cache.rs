//! Redis: a connection that never stops the service from starting, and
//! best-effort JSON cache helpers.
//!
//! Redis holds nothing that must survive a restart (caches and throttle
//! counters; docs/architecture.md, "Data"), so a
//! Redis outage degrades a service instead of breaking it: the connection is
//! made lazily, every call has a short time limit, cache reads that fail are
//! misses, cache writes that fail are skipped, and the outage is logged once
//! when it starts and once when it ends. `/readyz` reports it as degraded
//! and stays ready.
//!
//! Every key is namespaced with the service's prefix (`REDIS_PREFIX`), which
//! is also how tests sharing one Redis server stay apart.
//!
//! [`Cache::near_cache`] adds an in-process copy invalidated by Redis
//! (module `near`), for reads that must not cost a round trip.

mod near;

pub use near::{HEARTBEAT, LEASE, NearCache, Ticket};

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{
    Client, RedisError, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::admin::Check;

/// Longest any single Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(800);

/// Why Redis could not be set up (only a malformed URL: an unreachable
/// server is not an error at start).
#[derive(Debug, thiserror::Error)]
#[error("invalid REDIS_URL: {0}")]
pub struct CacheError(#[from] RedisError);

/// A Redis connection with a key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    client: Client,
    connection: ConnectionManager,
    prefix: Arc<str>,
    degraded: Arc<AtomicBool>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Redis answered with an error, or the connection failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

impl Cache {
    /// Prepares a lazy connection; fails only on a malformed URL.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            client,
            connection,
            prefix: prefix.into(),
            degraded: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The full key for `key`: the service prefix plus `key`.
    pub fn key(&self, key: &str) -> String {
        self.key_of(&[key])
    }

    /// The full key for `parts` joined: built with one allocation and no
    /// formatting machinery, for keys made on every cached read.
    pub fn key_of(&self, parts: &[&str]) -> String {
        let length = self.prefix.len() + parts.iter().map(|part| part.len()).sum::<usize>();
        let mut key = String::with_capacity(length);
        key.push_str(&self.prefix);
        for part in parts {
            key.push_str(part);
        }
        key
    }

    /// An in-process near-cache for entries filed under counter keys that
    /// start with `counter_prefix` (after the service prefix), holding at
    /// most `budget_bytes` of bodies. Starts its tracking connection in the
    /// background (call inside Tokio); until tracking is on, it is bypassed.
    pub fn near_cache(&self, counter_prefix: &str, budget_bytes: usize) -> NearCache {
        NearCache::start(&self.client, self.key(counter_prefix), budget_bytes)
    }

    /// The name of the near-cache tracking connection in `CLIENT LIST`
    /// (for operators, and for tests that cut it with `CLIENT KILL`).
    pub fn near_cache_connection_name(&self, counter_prefix: &str) -> String {
        near::connection_name(&self.key(counter_prefix))
    }

    /// The prefix every key of this cache starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs one command (keys must already be prefixed with [`Cache::key`]),
    /// with the time limit. Errors are returned, for callers that must tell
    /// "miss" from "Redis down" (rate limits, token records).
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, CallError> {
        let mut connection = self.connection.clone();
        let result =
            match tokio::time::timeout(CALL_TIMEOUT, command.query_async(&mut connection)).await {
                Ok(result) => result.map_err(CallError::from),
                Err(_) => Err(CallError::Timeout(CALL_TIMEOUT)),
            };
        self.note_health(result.as_ref().err());
        result
    }

    /// Runs a pipeline (keys prefixed by the caller), with the time limit.
    pub async fn query_pipeline<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T, CallError> {
        let mut connection = self.connection.clone();
        let result =
            match tokio::time::timeout(CALL_TIMEOUT, pipeline.query_async(&mut connection)).await {
                Ok(result) => result.map_err(CallError::from),
                Err(_) => Err(CallError::Timeout(CALL_TIMEOUT)),
            };
        self.note_health(result.as_ref().err());
        result
    }

    /// Logs the start and the end of an outage, not every failed call.
    fn note_health(&self, error: Option<&CallError>) {
        match error {
            Some(CallError::Redis(err)) if !is_connection_problem(err) => {}
            Some(err) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %err, "redis unavailable; serving without cache");
                }
            }
            None => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis reachable again");
                }
            }
        }
    }

    /// Reads a cached JSON value; any failure is a miss.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let raw: Option<Vec<u8>> = self
            .query(redis::cmd("GET").arg(self.key(key)))
            .await
            .ok()
            .flatten();
        serde_json::from_slice(&raw?).ok()
    }

    /// Caches a JSON value for `ttl`; failures are logged (once) and ignored.
    pub async fn set_json<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        let _: Result<Value, _> = self
            .query(
                redis::cmd("SET")
                    .arg(self.key(key))
                    .arg(bytes)
                    .arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
            )
            .await;
    }

    /// Deletes keys (unprefixed names). Returns whether Redis confirmed it,
    /// so writers can decide what a failed invalidation means for them.
    pub async fn delete(&self, keys: &[&str]) -> Result<(), CallError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("DEL");
        for key in keys {
            command.arg(self.key(key));
        }
        self.query::<Value>(&command).await.map(|_| ())
    }

    /// Round-trips a `PING`.
    pub async fn ping(&self) -> Result<(), CallError> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }
}

fn is_connection_problem(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

/// The `/readyz` check: Redis answers `PING`. Optional: Redis holds
/// nothing that must survive, so without it the service serves degraded
/// (cache misses, throttles open) and stays ready.
pub fn readiness_check(cache: &Cache) -> Check {
    let cache = cache.clone();
    Check::new("redis", move || {
        let cache = cache.clone();
        async move { cache.ping().await.map_err(|err| err.to_string()) }
    })
    .optional()
}
