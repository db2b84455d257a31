//! Cache-aside for product reads, with invalidation that cannot serve stale data.
//!
//! Key scheme (every key starts with the service's `REDIS_PREFIX`):
//!
//! | key | holds |
//! | --- | --- |
//! | `gen` | catalog generation: bumped by every product write |
//! | `product:{id}:ver` | the product's version: bumped by every write to it |
//! | `product:{id}:v{ver}` | the detail response body (JSON) |
//! | `slug:{slug}:g{gen}` | the detail response body, looked up by slug |
//! | `list:g{gen}:{sha256 of the canonical query}` | a list page's response body |
//!
//! Writers never delete data keys; they bump the counters, which moves every
//! reader to keys that do not exist yet. A reader reads the counter and the
//! data in one round trip (a Lua script) *before* it reads PostgreSQL, and
//! fills the key named after the counter it saw. So a reader racing a writer
//! can only ever fill a key nobody will read again, which plain
//! delete-on-write cannot promise. Old data keys expire through their TTL.
//! Counters have no TTL: run Redis with `maxmemory-policy volatile-lru` (or
//! `noeviction`) so they are never evicted.
//!
//! Redis being down is never an error for a reader: the lookup counts as an
//! `error`, the read goes to PostgreSQL, and kit's `Cache` logs the outage
//! once at warn. A write whose invalidation fails is logged and counted;
//! the TTLs bound how long such an entry can outlive it.

use std::time::Duration;

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family},
};
use redis::{ErrorKind, ServerErrorKind};
use sha2::{Digest, Sha256};
use storekeeper_kit::{Metrics, cache::Cache, cache::CallError};
use uuid::Uuid;

use crate::listing::ListQuery;

/// How long a detail body may stay cached.
pub const DETAIL_TTL: Duration = Duration::from_mins(5);
/// How long a list page may stay cached.
pub const LIST_TTL: Duration = Duration::from_mins(1);

/// Reads counter `KEYS[1]` (0 when absent), then `ARGV[1] .. counter`.
/// Returns `{data key, data or nil}`.
const LOOKUP_SCRIPT: &str = "local n = redis.call('GET', KEYS[1]) or '0' \
     local key = ARGV[1] .. n \
     return {key, redis.call('GET', key)}";

/// What was looked up, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Kind {
    /// One product (by id or slug).
    Detail,
    /// A page of the product list.
    List,
}

/// How a lookup went, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Outcome {
    /// Served from Redis.
    Hit,
    /// Not cached; served from PostgreSQL and cached.
    Miss,
    /// Redis failed; served from PostgreSQL.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LookupLabels {
    kind: Kind,
    outcome: Outcome,
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// The cached response body.
    Hit(Vec<u8>),
    /// Not cached: read PostgreSQL, then [`CatalogCache::fill`] this key.
    Miss(FillKey),
    /// Redis is unavailable: read PostgreSQL and do not try to fill.
    Unavailable,
}

/// Where to store a body after a miss; only obtainable from a lookup.
#[derive(Debug)]
pub struct FillKey {
    key: String,
    ttl: Duration,
}

/// The product read cache. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CatalogCache {
    cache: Cache,
    script_sha: String,
    lookups: Family<LookupLabels, Counter>,
    invalidation_failures: Counter,
}

impl CatalogCache {
    /// Wraps kit's Redis connection and registers the cache metrics
    /// (`product_cache_lookups_total{kind,outcome}`,
    /// `product_cache_invalidation_failures_total`).
    pub fn new(cache: Cache, metrics: &Metrics) -> Self {
        let lookups = metrics.register(
            "product_cache_lookups",
            "Product cache lookups by kind (detail, list) and outcome (hit, miss, error)",
            Family::default(),
        );
        let invalidation_failures = metrics.counter(
            "product_cache_invalidation_failures",
            "Product writes whose cache invalidation failed (Redis unavailable)",
        );
        Self {
            cache,
            script_sha: redis::Script::new(LOOKUP_SCRIPT).get_hash().to_owned(),
            lookups,
            invalidation_failures,
        }
    }

    /// The underlying Redis connection (for the readiness check).
    pub fn redis(&self) -> &Cache {
        &self.cache
    }

    /// Looks up a product's detail body by id.
    pub async fn product(&self, id: Uuid) -> Lookup {
        self.lookup(
            Kind::Detail,
            &self.cache.key(&format!("product:{id}:ver")),
            &self.cache.key(&format!("product:{id}:v")),
            DETAIL_TTL,
        )
        .await
    }

    /// Looks up a product's detail body by slug (the caller checked the slug's format).
    pub async fn product_by_slug(&self, slug: &str) -> Lookup {
        self.lookup(
            Kind::Detail,
            &self.cache.key("gen"),
            &self.cache.key(&format!("slug:{slug}:g")),
            DETAIL_TTL,
        )
        .await
    }

    /// Looks up a list page's body.
    pub async fn list(&self, query: &ListQuery) -> Lookup {
        let canonical = serde_json::to_vec(query).unwrap_or_default();
        let digest = format!("{:x}", Sha256::digest(&canonical));
        self.lookup(
            Kind::List,
            &self.cache.key("gen"),
            &self.cache.key(&format!("list:{digest}:g")),
            LIST_TTL,
        )
        .await
    }

    /// Stores a body read from PostgreSQL after a miss; failures are ignored.
    pub async fn fill(&self, key: FillKey, body: &[u8]) {
        let ttl_ms = u64::try_from(key.ttl.as_millis()).unwrap_or(u64::MAX);
        let _: Result<redis::Value, _> = self
            .cache
            .query(
                redis::cmd("SET")
                    .arg(&key.key)
                    .arg(body)
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await;
    }

    /// Makes every cached read of these products, and every cached list and
    /// slug lookup, unreachable. Call after each committed product write
    /// (the checkout saga's stock changes included).
    pub async fn invalidate(&self, ids: &[Uuid]) {
        let mut pipeline = redis::pipe();
        for id in ids {
            pipeline
                .cmd("INCR")
                .arg(self.cache.key(&format!("product:{id}:ver")))
                .ignore();
        }
        pipeline.cmd("INCR").arg(self.cache.key("gen")).ignore();
        if let Err(err) = self.cache.query_pipeline::<()>(&pipeline).await {
            self.invalidation_failures.inc();
            tracing::warn!(error = %err, products = ?ids, "cache invalidation failed; entries expire by TTL");
        }
    }

    async fn lookup(&self, kind: Kind, counter: &str, data_prefix: &str, ttl: Duration) -> Lookup {
        let outcome = match self.run_script(counter, data_prefix).await {
            Ok((_, Some(body))) => Lookup::Hit(body),
            Ok((key, None)) => Lookup::Miss(FillKey { key, ttl }),
            Err(err) => {
                tracing::debug!(error = %err, "cache lookup failed");
                Lookup::Unavailable
            }
        };
        let label = match outcome {
            Lookup::Hit(_) => Outcome::Hit,
            Lookup::Miss(_) => Outcome::Miss,
            Lookup::Unavailable => Outcome::Error,
        };
        self.lookups
            .get_or_create(&LookupLabels {
                kind,
                outcome: label,
            })
            .inc();
        outcome
    }

    /// EVALSHA, falling back to EVAL once after a Redis restart flushed the script.
    async fn run_script(
        &self,
        counter: &str,
        data_prefix: &str,
    ) -> Result<(String, Option<Vec<u8>>), CallError> {
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(&self.script_sha)
            .arg(1)
            .arg(counter)
            .arg(data_prefix);
        match self.cache.query(&command).await {
            Err(CallError::Redis(err))
                if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
            {
                let mut command = redis::cmd("EVAL");
                command
                    .arg(LOOKUP_SCRIPT)
                    .arg(1)
                    .arg(counter)
                    .arg(data_prefix);
                self.cache.query(&command).await
            }
            result => result,
        }
    }
}
