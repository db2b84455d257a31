//! A near-cache: response bodies held in process, each filed under the
//! Redis *counter* key whose value named it, and dropped as soon as Redis
//! reports that the counter changed — so a cached read costs no round trip.
//!
//! Redis' client-side caching does the reporting: a dedicated RESP3
//! connection runs `CLIENT TRACKING ON BCAST PREFIX <counter prefix>`, so
//! every change to a counter key, whoever makes it, pushes an `invalidate`
//! message to that connection. The connection's reader applies it before it
//! delivers any later reply on the same connection. A `PING` every
//! [`HEARTBEAT`] therefore proves, when its `PONG` arrives, that every
//! change completed before the `PING` was sent has been applied. Entries are
//! served only within [`LEASE`] of the last such proof, which bounds how
//! long any replica can serve a body after another replica's write: that is
//! the documented window. The replica that writes drops its own entries at
//! once ([`NearCache::invalidate`]).
//!
//! When the tracking connection drops, everything is flushed and the
//! near-cache is bypassed (callers go to Redis) until a new connection has
//! tracking on, has been flushed again (invalidations may have been lost in
//! between) and has answered a heartbeat.
//!
//! A reader that fetched a body from Redis files it only with a [`Ticket`]
//! taken before the fetch; any invalidation or flush in between voids the
//! ticket, so a body fetched before a write is never filed after that
//! write's invalidation arrived.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock, RwLockWriteGuard, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::body::Bytes;
use redis::{
    AsyncConnectionConfig, Client, ProtocolVersion, PushInfo, PushKind, RedisResult, Value,
    aio::MultiplexedConnection,
};

/// How often the tracking connection proves it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(50);
/// How long after a heartbeat was sent entries may still be served: the
/// longest a replica can serve a body after another replica's write.
pub const LEASE: Duration = Duration::from_millis(250);
/// Longest a heartbeat or a connection attempt may take.
const CALL_TIMEOUT: Duration = Duration::from_millis(200);
/// Pause between attempts to re-establish tracking.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// The in-process cache. Cheap to clone; tracking stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct NearCache {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("serving", &self.is_serving())
            .finish_non_exhaustive()
    }
}

/// Permission to file bodies fetched after it was taken; void once an
/// invalidation or flush happened since.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
}

struct Shared {
    origin: Instant,
    /// Microseconds since `origin` until which entries may be served (0: bypass).
    fresh_until: AtomicU64,
    /// Bumped by every invalidation and flush; voids older tickets.
    epoch: AtomicU64,
    /// The id of the tracking connection entries are trusted from (0: none).
    tracking: AtomicU64,
    budget_bytes: usize,
    entries: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Counter key → (slot → entry).
    by_counter: HashMap<String, HashMap<String, Entry>>,
    bytes: usize,
}

struct Entry {
    body: Bytes,
    expires: Instant,
}

impl NearCache {
    /// Starts tracking counter keys under `counter_prefix` (complete, with
    /// the service prefix) on its own connection to `client`'s server.
    /// Holds at most `budget_bytes` of bodies. Must run inside Tokio.
    pub(super) fn start(client: &Client, counter_prefix: String, budget_bytes: usize) -> Self {
        let shared = Arc::new(Shared::new(budget_bytes));
        tokio::spawn(track(
            client.clone(),
            counter_prefix,
            Arc::downgrade(&shared),
        ));
        Self { shared }
    }

    /// Whether entries are being served now (tracking is on and its last
    /// heartbeat is recent).
    pub fn is_serving(&self) -> bool {
        self.shared.is_fresh(Instant::now())
    }

    /// The body filed under `counter` and `slot`, when serving.
    pub fn get(&self, counter: &str, slot: &str) -> Option<Bytes> {
        let now = Instant::now();
        if !self.shared.is_fresh(now) {
            return None;
        }
        let entries = self
            .shared
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = entries.by_counter.get(counter)?.get(slot)?;
        (entry.expires > now).then(|| entry.body.clone())
    }

    /// A ticket for filing what is about to be fetched; `None` while the
    /// near-cache is bypassed.
    pub fn ticket(&self) -> Option<Ticket> {
        self.is_serving().then(|| Ticket {
            epoch: self.shared.epoch.load(Ordering::Acquire),
        })
    }

    /// Files `body` under `counter` and `slot` for at most `ttl`, unless an
    /// invalidation or flush happened since `ticket` was taken or the budget
    /// is spent.
    pub fn insert(&self, ticket: Ticket, counter: &str, slot: &str, body: Bytes, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.shared.write();
        if self.shared.epoch.load(Ordering::Acquire) != ticket.epoch {
            return;
        }
        let size = counter.len() + slot.len() + body.len();
        entries.remove(counter, slot);
        if entries.bytes + size > self.shared.budget_bytes {
            entries.purge_expired(now);
            if entries.bytes + size > self.shared.budget_bytes {
                return;
            }
        }
        entries.bytes += size;
        entries
            .by_counter
            .entry(counter.to_owned())
            .or_default()
            .insert(
                slot.to_owned(),
                Entry {
                    body,
                    expires: now + ttl,
                },
            );
    }

    /// Drops every entry filed under these counters, at once: what the
    /// replica that changed them calls after the change.
    pub fn invalidate(&self, counters: &[String]) {
        self.shared.invalidate(counters.iter().map(String::as_str));
    }
}

impl Shared {
    fn new(budget_bytes: usize) -> Self {
        Self {
            origin: Instant::now(),
            fresh_until: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            tracking: AtomicU64::new(0),
            budget_bytes,
            entries: RwLock::new(Entries::default()),
        }
    }

    fn now_micros(&self, now: Instant) -> u64 {
        u64::try_from(now.duration_since(self.origin).as_micros()).unwrap_or(u64::MAX)
    }

    fn is_fresh(&self, now: Instant) -> bool {
        self.now_micros(now) < self.fresh_until.load(Ordering::Acquire)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn invalidate<'a>(&self, counters: impl Iterator<Item = &'a str>) {
        let mut entries = self.write();
        for counter in counters {
            if let Some(slots) = entries.by_counter.remove(counter) {
                let freed: usize = slots
                    .iter()
                    .map(|(slot, entry)| counter.len() + slot.len() + entry.body.len())
                    .sum();
                entries.bytes -= freed;
            }
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops every entry (and voids every ticket).
    fn clear(&self) {
        let mut entries = self.write();
        *entries = Entries::default();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops trusting tracking connection `connection`: flush and bypass.
    fn lose(&self, connection: u64) {
        let mut entries = self.write();
        if self.tracking.load(Ordering::Acquire) != connection {
            return;
        }
        self.tracking.store(0, Ordering::Release);
        self.fresh_until.store(0, Ordering::Release);
        *entries = Entries::default();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Trusts tracking connection `connection` from now on (after a flush:
    /// invalidations may have been missed while there was none).
    fn trust(&self, connection: u64) {
        let mut entries = self.write();
        *entries = Entries::default();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.tracking.store(connection, Ordering::Release);
    }

    /// A heartbeat sent at `sent` on `connection` was answered.
    fn renew(&self, connection: u64, sent: Instant) {
        // Under the lock, so a concurrent `lose` cannot be undone.
        let _entries = self.write();
        if self.tracking.load(Ordering::Acquire) == connection {
            let until = self
                .now_micros(sent)
                .saturating_add(u64::try_from(LEASE.as_micros()).unwrap_or(u64::MAX));
            self.fresh_until.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// Applies a push message from tracking connection `connection`.
    fn on_push(&self, connection: u64, push: PushInfo) {
        match push.kind {
            PushKind::Invalidate => {
                let mut keys = Vec::new();
                let mut everything = false;
                for value in push.data {
                    match value {
                        Value::Array(items) => keys.extend(items.into_iter().filter_map(key)),
                        Value::Nil => everything = true,
                        other => keys.extend(key(other)),
                    }
                }
                if everything {
                    self.clear();
                } else {
                    self.invalidate(keys.iter().map(String::as_str));
                }
            }
            PushKind::Disconnection => self.lose(connection),
            _ => {}
        }
    }
}

impl Entries {
    /// Drops the entry under `counter` and `slot`, if any.
    fn remove(&mut self, counter: &str, slot: &str) {
        let Some(slots) = self.by_counter.get_mut(counter) else {
            return;
        };
        if let Some(old) = slots.remove(slot) {
            self.bytes -= counter.len() + slot.len() + old.body.len();
        }
        if slots.is_empty() {
            self.by_counter.remove(counter);
        }
    }

    fn purge_expired(&mut self, now: Instant) {
        let mut freed = 0;
        self.by_counter.retain(|counter, slots| {
            slots.retain(|slot, entry| {
                let keep = entry.expires > now;
                if !keep {
                    freed += counter.len() + slot.len() + entry.body.len();
                }
                keep
            });
            !slots.is_empty()
        });
        self.bytes -= freed;
    }
}

fn key(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

/// Keeps a tracking connection up for as long as the near-cache lives.
async fn track(client: Client, prefix: String, shared: Weak<Shared>) {
    static CONNECTIONS: AtomicU64 = AtomicU64::new(1);
    let reported_down = AtomicBool::new(false);
    loop {
        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        match connect(&client, &prefix, &shared, connection).await {
            Ok(redis) => {
                let Some(live) = shared.upgrade() else { return };
                live.trust(connection);
                drop(live);
                if reported_down.swap(false, Ordering::Relaxed) {
                    tracing::info!(prefix, "near-cache tracking re-established");
                }
                heartbeat(redis, &shared, connection).await;
                let Some(live) = shared.upgrade() else { return };
                live.lose(connection);
            }
            Err(err) => {
                if !reported_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(prefix, error = %err, "near-cache tracking unavailable; reads go to redis");
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
        if shared.strong_count() == 0 {
            return;
        }
    }
}

/// Opens a RESP3 connection whose push messages go to `shared`, names it
/// (`near-cache:<prefix>` in `CLIENT LIST`) and turns tracking on.
async fn connect(
    client: &Client,
    prefix: &str,
    shared: &Weak<Shared>,
    connection: u64,
) -> RedisResult<MultiplexedConnection> {
    let info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = Client::open(info.set_redis_settings(settings))?;
    let sink = shared.clone();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_push_sender(move |push: PushInfo| {
            if let Some(shared) = sink.upgrade() {
                shared.on_push(connection, push);
            }
            Ok::<(), std::convert::Infallible>(())
        });
    let mut redis = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(connection_name(prefix))
        .exec_async(&mut redis)
        .await?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(prefix)
        .exec_async(&mut redis)
        .await?;
    Ok(redis)
}

/// The tracking connection's name: `near-cache:` and the prefix, with
/// anything Redis refuses in a name (spaces, control characters) as `_`.
pub(super) fn connection_name(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("near-cache:{clean}")
}

/// Renews the lease every [`HEARTBEAT`] until a `PING` fails or the
/// near-cache is dropped.
async fn heartbeat(mut redis: MultiplexedConnection, shared: &Weak<Shared>, connection: u64) {
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if shared.strong_count() == 0 {
            return;
        }
        let sent = Instant::now();
        let pong = tokio::time::timeout(
            CALL_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut redis),
        )
        .await;
        let Some(live) = shared.upgrade() else { return };
        if let Ok(Ok(_)) = pong {
            live.renew(connection, sent);
        } else {
            tracing::warn!("near-cache tracking lost; reads go to redis until it is back");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(budget_bytes: usize) -> NearCache {
        let shared = Arc::new(Shared::new(budget_bytes));
        shared.trust(7);
        shared.renew(7, Instant::now());
        NearCache { shared }
    }

    fn body(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn a_ticket_taken_before_an_invalidation_files_nothing() {
        let near = serving(1024);
        let stale = near.ticket().unwrap();
        near.invalidate(&["c".to_owned()]);
        near.insert(stale, "c", "s", body("old"), LEASE);
        assert_eq!(near.get("c", "s"), None);
        near.insert(near.ticket().unwrap(), "c", "s", body("new"), LEASE);
        assert_eq!(near.get("c", "s"), Some(body("new")));
    }

    #[test]
    fn invalidation_drops_only_that_counter() {
        let near = serving(1024);
        for (counter, slot) in [("a", "1"), ("a", "2"), ("b", "1")] {
            near.insert(near.ticket().unwrap(), counter, slot, body("x"), LEASE);
        }
        near.shared.on_push(
            7,
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![Value::Array(vec![Value::BulkString(b"a".to_vec())])],
            },
        );
        assert_eq!(near.get("a", "1"), None);
        assert_eq!(near.get("a", "2"), None);
        assert_eq!(near.get("b", "1"), Some(body("x")));
        assert_eq!(near.shared.write().bytes, 3);
    }

    #[test]
    fn a_disconnection_flushes_and_bypasses() {
        let near = serving(1024);
        near.insert(near.ticket().unwrap(), "a", "1", body("x"), LEASE);
        near.shared.on_push(
            7,
            PushInfo {
                kind: PushKind::Disconnection,
                data: Vec::new(),
            },
        );
        assert!(!near.is_serving());
        assert!(near.ticket().is_none());
        near.shared.trust(8);
        near.shared.renew(8, Instant::now());
        assert_eq!(near.get("a", "1"), None, "flushed, not merely hidden");
    }

    #[test]
    fn nothing_is_served_once_the_lease_ran_out() {
        let near = serving(1024);
        near.insert(near.ticket().unwrap(), "a", "1", body("x"), LEASE);
        near.shared.fresh_until.store(1, Ordering::Release);
        assert_eq!(near.get("a", "1"), None);
    }

    #[test]
    fn the_budget_caps_what_is_held() {
        let near = serving(8);
        near.insert(near.ticket().unwrap(), "a", "1", body("12345"), LEASE);
        near.insert(near.ticket().unwrap(), "b", "1", body("12345"), LEASE);
        assert!(near.get("a", "1").is_some());
        assert_eq!(near.get("b", "1"), None);
        near.insert(
            near.ticket().unwrap(),
            "a",
            "1",
            body("123"),
            Duration::ZERO,
        );
        near.insert(near.ticket().unwrap(), "b", "1", body("12345"), LEASE);
        assert!(near.get("b", "1").is_some(), "expired entries make room");
    }

    #[test]
    fn names_are_safe_for_client_setname() {
        assert_eq!(connection_name("shop a:\n"), "near-cache:shop_a:_");
    }
}
