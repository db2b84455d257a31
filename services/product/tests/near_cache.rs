//! The near-cache across two replicas (two apps, two near-caches, one
//! database and one Redis prefix): a write is visible at once on the
//! replica that made it and within `LEASE` on the other, never stale again
//! once seen fresh, and a dropped tracking connection flushes and bypasses
//! the near-cache until tracking is back.

// The helpers below fail loudly, like the fixtures in `support`.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use storekeeper_kit::cache::LEASE;
use support::Ctx;

/// The reads a write must reach: detail by id, by slug, a list page, a search.
fn uris(id: &str) -> [String; 4] {
    [
        format!("/api/products/{id}"),
        "/api/products/kettlebell-16kg".to_owned(),
        "/api/products?category=fitness&sort=price_asc&per_page=100".to_owned(),
        "/api/products?q=kettlebell".to_owned(),
    ]
}

/// The price of the kettlebell in a detail or a list body.
fn price(body: &Value, id: &str) -> i64 {
    let product = body["items"]
        .as_array()
        .map_or(body, |items| items.iter().find(|p| p["id"] == id).unwrap());
    product["price_cents"].as_i64().unwrap()
}

async fn set_price(ctx: &Ctx, id: &str, cents: i64) {
    ctx.app
        .patch(&format!("/api/products/{id}"))
        .bearer(&ctx.admin_token())
        .json(&json!({ "price_cents": cents }))
        .send()
        .await
        .assert_status(StatusCode::OK);
}

/// Reads every uri on `reader`, round after round, until a while after
/// `written + LEASE`, and checks that each one shows `fresh` by then at the
/// latest and never the old price again once it showed the new one.
/// Returns the slowest time to fresh.
async fn watch(reader: &Ctx, id: &str, fresh: i64, written: Instant) -> Duration {
    let uris = uris(id);
    let mut fresh_after: [Option<Duration>; 4] = [None; 4];
    loop {
        let round = Instant::now();
        for (uri, seen) in uris.iter().zip(fresh_after.iter_mut()) {
            let asked = Instant::now();
            let body: Value = reader.app.get(uri).send().await.json();
            let now_fresh = price(&body, id) == fresh;
            assert!(
                now_fresh || seen.is_none(),
                "{uri}: stale after it was fresh"
            );
            assert!(
                now_fresh || asked < written + LEASE,
                "{uri}: stale {:?} after the write",
                asked - written
            );
            if now_fresh && seen.is_none() {
                *seen = Some(asked - written);
            }
        }
        if round > written + LEASE + Duration::from_millis(100) {
            break;
        }
    }
    fresh_after.into_iter().map(Option::unwrap).max().unwrap()
}

#[tokio::test]
async fn a_write_reaches_the_writer_at_once_and_the_other_replica_within_the_lease() {
    let (_database, pool) = support::database().await;
    let a = Ctx::new(pool).tracking().await.seeded().await;
    let b = a.replica().tracking().await;
    let product: Value = a
        .app
        .get("/api/products/kettlebell-16kg")
        .send()
        .await
        .json();
    let id = product["id"].as_str().unwrap().to_owned();
    for uri in uris(&id) {
        a.read_until_near(&uri).await;
        b.read_until_near(&uri).await;
    }

    set_price(&b, &id, 111).await;
    let written = Instant::now();
    for uri in uris(&id) {
        let body: Value = b.app.get(&uri).send().await.json();
        assert_eq!(price(&body, &id), 111, "{uri} on the writer");
    }
    let slowest = watch(&a, &id, 111, written).await;
    println!("other replica fresh after {slowest:?} (lease {LEASE:?})");

    // And back the other way.
    set_price(&a, &id, 222).await;
    let written = Instant::now();
    let body: Value = a.app.get(&uris(&id)[0]).send().await.json();
    assert_eq!(price(&body, &id), 222);
    watch(&b, &id, 222, written).await;
    a.cleanup().await;
}

/// `CLIENT KILL` on replica A's tracking connection, then a write on B that
/// A therefore never hears about: A must not serve its old entries, and
/// when tracking is back the near-cache serves again, fresh.
#[tokio::test]
async fn a_dropped_tracking_connection_flushes_and_bypasses_until_it_is_back() {
    let (_database, pool) = support::database().await;
    let a = Ctx::new(pool).tracking().await.seeded().await;
    let name = a.redis.near_cache_connection_name("ver:");
    let a_connection = tracking_ids(&a, &name).await;
    assert_eq!(a_connection.len(), 1, "{a_connection:?}");
    let b = a.replica().tracking().await;
    let product: Value = a
        .app
        .get("/api/products/kettlebell-16kg")
        .send()
        .await
        .json();
    let id = product["id"].as_str().unwrap().to_owned();
    for uri in uris(&id) {
        a.read_until_near(&uri).await;
    }

    let killed: i64 = a
        .redis
        .query(
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(&a_connection[0]),
        )
        .await
        .unwrap();
    assert_eq!(killed, 1);
    set_price(&b, &id, 333).await;
    let written = Instant::now();

    watch(&a, &id, 333, written).await;
    // Tracking comes back on a new connection, and the near-cache serves
    // again: the new price, never the entries from before the cut.
    let back = a.catalog.near();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !back.is_serving() {
        assert!(Instant::now() < deadline, "tracking not re-established");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let now_ids = tracking_ids(&a, &name).await;
    assert!(!now_ids.contains(&a_connection[0]), "{now_ids:?}");
    for uri in uris(&id) {
        a.read_until_near(&uri).await;
        let body: Value = a.app.get(&uri).send().await.json();
        assert_eq!(price(&body, &id), 333, "{uri}");
    }
    a.cleanup().await;
}

/// The ids of the clients named `name` (the near-caches' tracking connections).
async fn tracking_ids(ctx: &Ctx, name: &str) -> Vec<String> {
    let list: String = ctx
        .redis
        .query(redis::cmd("CLIENT").arg("LIST"))
        .await
        .unwrap();
    list.lines()
        .filter(|line| line.split(' ').any(|field| field == format!("name={name}")))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}
