//! Issue 15: a Store at rest costs the API server nothing. With the watch
//! caches, a resync pass reads every child, the revision history and the
//! Store from the caches, and its generated Secrets from what the operator
//! remembers (`rollout/secrets.rs`): no LIST, no GET, no write. And what
//! the caches hold is enough to repair drift and deletions.

use std::time::Duration;

use serde_json::{Value, json};
use storekeeper_simcluster::Script;

use super::support::{Harness, NS, store, text};

#[tokio::test(start_paused = true)]
async fn a_store_at_rest_is_reconciled_from_the_caches() {
    let mut h = Harness::new(Script::default());
    h.apply(&store("0.1.0"));
    h.start_operator();
    h.until_complete("0.1.0").await;
    // Let the last Deployment and Job events settle, then watch 30 minutes
    // of resyncs (one pass every five).
    tokio::time::sleep(Duration::from_mins(2)).await;
    h.sim.clear_requests();
    let before = h.metrics.reconciles.get();
    tokio::time::sleep(Duration::from_mins(30)).await;
    let counts = h.sim.request_counts();
    let passes = h.metrics.reconciles.get() - before;
    println!("30 minutes at rest, {passes} passes:\n{counts}");
    assert!(passes >= 5, "about six resync passes expected:\n{counts}");
    Harness::assert_no_requests(&counts, "at rest");
    println!(
        "{passes} passes: no LIST, no GET, no write; the {} requests renew watches \
         and rediscover kinds, whatever the number of Stores",
        counts.total()
    );
}

/// The caches keep the operator repairing what it owns: a hand edit and a
/// deleted child wake the Store through their watches and are undone well
/// before the next resync. (A deleted generated Secret wakes nothing; see
/// `rollout/secrets.rs` for when it comes back.)
#[tokio::test(start_paused = true)]
async fn drift_and_deletions_are_repaired_from_the_caches() {
    let mut h = Harness::new(Script::default());
    h.apply(&store("0.1.0"));
    h.start_operator();
    h.until_complete("0.1.0").await;
    tokio::time::sleep(Duration::from_mins(2)).await;
    let config = |h: &Harness| h.sim.get("configmaps", NS, "shop-config").unwrap();
    let format = text(&config(&h), "/data/LOG_FORMAT").to_owned();

    let mut edited = config(&h);
    edited["data"]["LOG_FORMAT"] = json!("by-hand");
    edited["metadata"]["managedFields"] = Value::Null;
    h.sim.apply_as("kubectl", &edited).unwrap();
    h.sim.delete("services", NS, "shop-user").unwrap();
    h.until(
        Duration::from_mins(1),
        "the edit undone, the Service back",
        |h| {
            let restored = text(&config(h), "/data/LOG_FORMAT") == format;
            (restored && h.sim.get("services", NS, "shop-user").is_some()).then_some(())
        },
    )
    .await;
}
