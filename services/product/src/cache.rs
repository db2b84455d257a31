//! Cache-aside for product reads, with invalidation that cannot serve stale data.
//!
//! Key scheme (every key starts with the service's `REDIS_PREFIX`):
//!
//! | key | holds |
//! | --- | --- |
//! | `ver:gen` | catalog generation: bumped by every product write |
//! | `ver:product:{id}` | the product's version: bumped by every write to it |
//! | `product:{id}:v{ver}` | the detail response body (JSON) |
//! | `slug:{slug}:g{gen}` | the detail response body, looked up by slug |
//! | `list:{sha256 of the canonical query}:g{gen}` | a list page's response body |
//! | `categories:g{gen}` | the category list's response body |
//!
//! Writers never delete data keys; they move the counters, which sends every
//! reader to keys that do not exist yet. A reader reads the counter and the
//! data in one round trip (a Lua script) *before* it reads PostgreSQL, and
//! fills the key named after the counter it saw. So a reader racing a writer
//! can only ever fill a key nobody will read again, which plain
//! delete-on-write cannot promise. Old data keys expire through their TTL.
//!
//! Counter values come from Redis' clock (microseconds, and always at least
//! the old value + 1), and a missing counter is re-created from the clock.
//! So a counter that expired or was evicted never comes back with a value
//! it had before, and no old data key can be mistaken for a current one.
//! Counters live a day after their last write, far longer than any data key.
//!
//! Redis being down is never an error for a reader: the lookup counts as an
//! `error`, the read goes to PostgreSQL, and kit's `Cache` logs the outage
//! once at warn. A write whose invalidation fails is logged and counted;
//! the TTLs bound how long such an entry can outlive it.
//!
//! In front of Redis sits kit's near-cache ([`NearCache`]): bodies held in
//! process, filed under the counter key they were read with, and dropped
//! when Redis reports that counter changed (client-side caching tracks the
//! `ver:` keys only, so invalidations come from writes, not from fills). A
//! write is visible at once on the replica that made it and within
//! [`storekeeper_kit::cache::LEASE`] on every other; with the tracking
//! connection down the near-cache is flushed and bypassed.

use std::{sync::Arc, time::Duration};

use axum::body::Bytes;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use redis::{ErrorKind, FromRedisValue, Script, ServerErrorKind};
use sha2::{Digest, Sha256};
use storekeeper_kit::{
    Metrics,
    cache::{Cache, CallError, NearCache, Ticket},
};
use uuid::Uuid;

use crate::listing::ListQuery;

/// How long a detail body may stay cached.
pub(crate) const DETAIL_TTL: Duration = Duration::from_mins(5);
/// How long a list page may stay cached.
pub(crate) const LIST_TTL: Duration = Duration::from_mins(1);

/// Most response bytes the near-cache holds.
const NEAR_BUDGET_BYTES: usize = 8 << 20;

/// Where the counters live (after the service prefix); the near-cache
/// tracks exactly these keys.
const COUNTERS: &str = "ver:";

/// How long a counter lives after its last write (must exceed every data TTL).
const COUNTER_TTL_SECS: u64 = 24 * 60 * 60;

/// Reads counter `KEYS[1]` (creating it from the clock when absent, with
/// TTL `ARGV[2]`), then the data key `ARGV[1] .. counter`.
/// Returns `{data key, data or nil}`.
const LOOKUP_SCRIPT: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then
  local t = redis.call('TIME')
  n = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', KEYS[1], n, 'EX', ARGV[2])
end
local key = ARGV[1] .. n
return {key, redis.call('GET', key)}
";

/// Moves every counter in `KEYS` to max(now in microseconds, old + 1), TTL `ARGV[1]`.
const BUMP_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for _, key in ipairs(KEYS) do
  local old = tonumber(redis.call('GET', key) or '0') or 0
  redis.call('SET', key, string.format('%.0f', math.max(now, old + 1)), 'EX', ARGV[1])
end
return #KEYS
";

/// What was looked up, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// One product (by id or slug).
    Detail,
    /// A page of the product list.
    List,
    /// The category list.
    Categories,
}

/// How a lookup went, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    /// Served from the in-process near-cache.
    Near,
    /// Served from Redis.
    Hit,
    /// Not cached; served from PostgreSQL and cached.
    Miss,
    /// Redis failed; served from PostgreSQL.
    Error,
}

impl Kind {
    /// Every kind, in declaration order (the index of the counter handles).
    const ALL: [Self; 3] = [Self::Detail, Self::List, Self::Categories];

    /// The metric label value.
    fn as_str(self) -> &'static str {
        match self {
            Self::Detail => "detail",
            Self::List => "list",
            Self::Categories => "categories",
        }
    }
}

impl Outcome {
    /// Every outcome, in declaration order (the index of the counter handles).
    const ALL: [Self; 4] = [Self::Near, Self::Hit, Self::Miss, Self::Error];

    /// The metric label value.
    fn as_str(self) -> &'static str {
        match self {
            Self::Near => "near",
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LookupLabels {
    kind: &'static str,
    outcome: &'static str,
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// The response body, from the near-cache.
    Near(Bytes),
    /// The response body, from Redis.
    Hit(Bytes),
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
    near: Option<NearSlot>,
}

/// Where a filled body also goes in the near-cache, and the permission.
#[derive(Debug)]
struct NearSlot {
    ticket: Ticket,
    counter: String,
    slot: String,
}

/// A Lua script and its SHA1, for EVALSHA.
#[derive(Clone, Debug)]
struct Lua {
    source: &'static str,
    sha: String,
}

impl Lua {
    fn new(source: &'static str) -> Self {
        Self {
            source,
            sha: Script::new(source).get_hash().to_owned(),
        }
    }
}

/// The product read cache. Cheap to clone: handlers clone the app state
/// on every request, and cloning these parts one by one (the Redis
/// client's connection info, the key strings) cost allocations per read.
#[derive(Clone, Debug)]
pub struct CatalogCache {
    inner: Arc<Parts>,
}

/// What every clone of a [`CatalogCache`] shares.
#[derive(Debug)]
struct Parts {
    cache: Cache,
    near: NearCache,
    generation: String,
    lookup_script: Lua,
    bump_script: Lua,
    /// `product_cache_lookups_total`, one handle per kind and outcome, so
    /// a lookup counts without a label lookup.
    lookups: [[Counter; Outcome::ALL.len()]; Kind::ALL.len()],
    invalidation_failures: Counter,
}

impl CatalogCache {
    /// Wraps kit's Redis connection, starts the near-cache (inside Tokio)
    /// and registers the cache metrics
    /// (`product_cache_lookups_total{kind,outcome}`,
    /// `product_cache_invalidation_failures_total`).
    pub fn new(cache: Cache, metrics: &Metrics) -> Self {
        let family: Family<LookupLabels, Counter> = metrics.register(
            "product_cache_lookups",
            "Product cache lookups by kind (detail, list, categories) and outcome (near, hit, miss, error)",
            Family::default(),
        );
        let lookups = Kind::ALL.map(|kind| {
            Outcome::ALL.map(|outcome| {
                family
                    .get_or_create(&LookupLabels {
                        kind: kind.as_str(),
                        outcome: outcome.as_str(),
                    })
                    .clone()
            })
        });
        let invalidation_failures = metrics.counter(
            "product_cache_invalidation_failures",
            "Product writes whose cache invalidation failed (Redis unavailable)",
        );
        let inner = Parts {
            near: cache.near_cache(COUNTERS, NEAR_BUDGET_BYTES),
            generation: cache.key_of(&[COUNTERS, "gen"]),
            cache,
            lookup_script: Lua::new(LOOKUP_SCRIPT),
            bump_script: Lua::new(BUMP_SCRIPT),
            lookups,
            invalidation_failures,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The in-process near-cache in front of Redis.
    pub fn near(&self) -> &NearCache {
        &self.inner.near
    }

    /// The counter key of one product.
    fn version_key(&self, id: Uuid) -> String {
        self.version_key_of(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
    }

    /// The counter key of the product whose id reads `id`.
    fn version_key_of(&self, id: &str) -> String {
        self.inner.cache.key_of(&[COUNTERS, "product:", id])
    }

    /// Looks up a product's detail body by id.
    pub async fn product(&self, id: Uuid) -> Lookup {
        let mut buffer = Uuid::encode_buffer();
        let id = id.hyphenated().encode_lower(&mut buffer);
        let data_prefix = self.inner.cache.key_of(&["product:", id, ":v"]);
        self.lookup(
            Kind::Detail,
            &self.version_key_of(id),
            &data_prefix,
            DETAIL_TTL,
        )
        .await
    }

    /// Looks up a product's detail body by slug (the caller checked the slug's format).
    pub(crate) async fn product_by_slug(&self, slug: &str) -> Lookup {
        self.lookup(
            Kind::Detail,
            &self.inner.generation,
            &self.inner.cache.key_of(&["slug:", slug, ":g"]),
            DETAIL_TTL,
        )
        .await
    }

    /// Looks up the category list's body (categories change only when the
    /// catalog is seeded, which bumps the generation).
    pub(crate) async fn categories(&self) -> Lookup {
        self.lookup(
            Kind::Categories,
            &self.inner.generation,
            &self.inner.cache.key("categories:g"),
            DETAIL_TTL,
        )
        .await
    }

    /// Looks up a list page's body.
    pub(crate) async fn list(&self, query: &ListQuery) -> Lookup {
        // A query that cannot be serialized (never expected) bypasses the
        // cache rather than sharing a key with other queries.
        let Ok(canonical) = serde_json::to_vec(query) else {
            return Lookup::Unavailable;
        };
        let digest = hex::encode(Sha256::digest(&canonical));
        self.lookup(
            Kind::List,
            &self.inner.generation,
            &self.inner.cache.key_of(&["list:", &digest, ":g"]),
            LIST_TTL,
        )
        .await
    }

    /// Stores a body read from PostgreSQL after a miss, in Redis and (unless
    /// a write was reported meanwhile) in the near-cache; failures are ignored.
    pub async fn fill(&self, key: FillKey, body: Bytes) {
        let ttl_ms = u64::try_from(key.ttl.as_millis()).unwrap_or(u64::MAX);
        let _: Result<redis::Value, _> = self
            .inner
            .cache
            .query(
                redis::cmd("SET")
                    .arg(&key.key)
                    .arg(body.as_ref())
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await;
        if let Some(near) = key.near {
            self.inner
                .near
                .insert(near.ticket, &near.counter, &near.slot, body, key.ttl);
        }
    }

    /// Makes every cached read of these products, and every cached list,
    /// slug lookup and category list, unreachable (even when `ids` is empty). Call after each committed product write
    /// (the checkout saga's stock changes included).
    pub async fn invalidate(&self, ids: &[Uuid]) {
        let mut keys: Vec<String> = ids.iter().map(|id| self.version_key(*id)).collect();
        keys.push(self.inner.generation.clone());
        let args = [COUNTER_TTL_SECS.to_string()];
        let bumped = self.run::<i64>(&self.inner.bump_script, &keys, &args).await;
        self.inner.near.invalidate(&keys);
        if let Err(err) = bumped {
            self.inner.invalidation_failures.inc();
            tracing::warn!(error = %err, products = ?ids, "cache invalidation failed; entries expire by TTL");
        }
    }

    async fn lookup(&self, kind: Kind, counter: &str, data_prefix: &str, ttl: Duration) -> Lookup {
        if let Some(body) = self.inner.near.get(counter, data_prefix) {
            self.count(kind, Outcome::Near);
            return Lookup::Near(body);
        }
        let ticket = self.inner.near.ticket();
        let keys = [counter.to_owned()];
        let args = [data_prefix.to_owned(), COUNTER_TTL_SECS.to_string()];
        let outcome = match self
            .run::<(String, Option<Vec<u8>>)>(&self.inner.lookup_script, &keys, &args)
            .await
        {
            Ok((_, Some(body))) => {
                let body = Bytes::from(body);
                if let Some(ticket) = ticket {
                    self.inner
                        .near
                        .insert(ticket, counter, data_prefix, body.clone(), ttl);
                }
                Lookup::Hit(body)
            }
            Ok((key, None)) => Lookup::Miss(FillKey {
                key,
                ttl,
                near: ticket.map(|ticket| NearSlot {
                    ticket,
                    counter: counter.to_owned(),
                    slot: data_prefix.to_owned(),
                }),
            }),
            Err(err) => {
                tracing::debug!(error = %err, "cache lookup failed");
                Lookup::Unavailable
            }
        };
        let label = match outcome {
            Lookup::Near(_) | Lookup::Hit(_) => Outcome::Hit,
            Lookup::Miss(_) => Outcome::Miss,
            Lookup::Unavailable => Outcome::Error,
        };
        self.count(kind, label);
        outcome
    }

    fn count(&self, kind: Kind, outcome: Outcome) {
        self.inner.lookups[kind as usize][outcome as usize].inc();
    }

    /// EVALSHA, falling back to EVAL once after a Redis restart flushed the script.
    async fn run<T: FromRedisValue>(
        &self,
        script: &Lua,
        keys: &[String],
        args: &[String],
    ) -> Result<T, CallError> {
        let command = |verb: &str, body: &str| {
            let mut command = redis::cmd(verb);
            command.arg(body).arg(keys.len()).arg(keys).arg(args);
            command
        };
        match self
            .inner
            .cache
            .query(&command("EVALSHA", &script.sha))
            .await
        {
            Err(CallError::Redis(err))
                if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
            {
                self.inner
                    .cache
                    .query(&command("EVAL", script.source))
                    .await
            }
            result => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` indexes the counter table by discriminant, which must match
    /// the position in `ALL` that built it, or hits would count as misses.
    #[test]
    fn the_counter_table_follows_declaration_order() {
        for (index, kind) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{}", kind.as_str());
        }
        for (index, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, index, "{}", outcome.as_str());
        }
    }
}
