//! Issue 13: Secrets are read by name, never listed cluster-wide. The
//! operator GETs the few Secrets it generates by name (metadata only) at a
//! Store's first pass and once `generated_secrets::READ_EVERY` has passed,
//! and remembers what it found and what it did since; it never lists or
//! watches Secrets, which is what lets its RBAC rule on Secrets leave out
//! `list` and `watch`.

use std::time::Duration;

use serde_json::json;
use storekeeper::generated_secrets::READ_EVERY;
use storekeeper::render::secrets::generated_names;
use storekeeper_simcluster::{Fault, RequestRecord, Script, Verb};

use super::support::{Harness, NS, STORE, store, text};

/// The operator's requests on Secrets so far.
fn on_secrets(h: &Harness) -> Vec<RequestRecord> {
    h.sim
        .requests()
        .into_iter()
        .filter(|r| r.resource == "secrets")
        .collect()
}

fn show(requests: &[RequestRecord]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}?{} -> {}", r.method, r.path, r.query, r.code))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_install_and_an_upgrade_never_list_or_watch_secrets() {
    let mut h = Harness::new(Script::default());
    h.apply(&store("0.1.0"));
    h.start_operator();
    h.until_complete("0.1.0").await;
    h.apply(&store("0.2.0"));
    h.until_complete("0.2.0").await;

    let secrets = on_secrets(&h);
    println!("requests on Secrets: {:#?}", show(&secrets));
    let listed: Vec<RequestRecord> = secrets
        .iter()
        .filter(|r| matches!(r.verb, Verb::List | Verb::Watch))
        .cloned()
        .collect();
    assert!(
        listed.is_empty(),
        "Secrets listed or watched: {:#?}",
        show(&listed)
    );
    let names = generated_names(STORE);
    let gets: Vec<&RequestRecord> = secrets.iter().filter(|r| r.verb == Verb::Get).collect();
    assert!(
        gets.iter()
            .all(|r| r.name.as_ref().is_some_and(|n| names.contains(n))),
        "only generated Secrets are read, by name: {:#?}",
        show(&secrets)
    );
    assert!(
        gets.len() >= names.len() && gets.len().is_multiple_of(names.len()),
        "each generated name is read at a Store's first pass (and at most once an hour): {} GETs",
        gets.len()
    );
    assert!(
        secrets.iter().all(|r| r.namespace.as_deref() == Some(NS)),
        "nothing on Secrets outside the Store's namespace"
    );
}

/// The Secrets' periodic read is the only way a deleted one comes back:
/// nothing wakes the Store for it, and a Store at rest asks the API server
/// nothing, so the deletion goes unnoticed until the first pass an hour or
/// more after the last read, which creates it again.
#[tokio::test(start_paused = true)]
async fn a_deleted_secret_is_created_again_at_the_next_read_and_not_before() {
    let mut h = Harness::new(Script::default());
    h.apply(&store("0.1.0"));
    let started = tokio::time::Instant::now();
    h.start_operator();
    h.until_complete("0.1.0").await;
    tokio::time::sleep(Duration::from_mins(2)).await;
    let name = "shop-session";
    let old = h.sim.get("secrets", NS, name).expect("a generated Secret");
    h.sim.delete("secrets", NS, name).unwrap();
    h.sim.clear_requests();
    let before = h.metrics.reconciles.get();

    // The first pass read the Secrets right after the start.
    let quiet = READ_EVERY
        .checked_sub(started.elapsed() + Duration::from_mins(1))
        .expect("the install took less than an hour");
    tokio::time::sleep(quiet).await;
    let passes = h.metrics.reconciles.get() - before;
    let counts = h.sim.request_counts();
    assert!(passes >= 5, "the Store was passed over at rest: {passes}");
    assert!(
        h.sim.get("secrets", NS, name).is_none(),
        "created again before the periodic read"
    );
    Harness::assert_no_requests(&counts, "at rest");

    let again = h
        .until(Duration::from_mins(10), "the Secret created again", |h| {
            h.sim.get("secrets", NS, name)
        })
        .await;
    assert_ne!(text(&again, "/metadata/uid"), text(&old, "/metadata/uid"));
    let counts = h.sim.request_counts();
    println!("the periodic read:\n{counts}");
    assert_eq!(
        counts.get(Verb::Get, "secrets"),
        generated_names(STORE).len()
    );
    assert_eq!(
        counts.get(Verb::Create, "secrets"),
        1,
        "only the one deleted"
    );
}

/// A Secret another writer created between the operator's read and its
/// create: the create is answered 409, its values stand, the operator
/// remembers it (reading its owner) and adopts it with one owner patch
/// (`shop-admin` is the Store's), and never creates it again.
#[tokio::test(start_paused = true)]
async fn a_secret_answered_409_is_adopted_without_a_loop_of_creates() {
    let mut h = Harness::new(Script::default());
    let name = "shop-admin";
    h.sim
        .create(&json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS},
            "data": {"password": "dGhlaXJz"}}))
        .unwrap();
    // The operator's read comes before the other writer's create.
    h.sim
        .inject(Fault::new(Verb::Get, "secrets").named(name).answer(
            404,
            "NotFound",
            "secrets \"shop-admin\" not found",
        ));
    h.apply(&store("0.1.0"));
    h.start_operator();
    let status = h.until_complete("0.1.0").await;
    tokio::time::sleep(Duration::from_mins(30)).await;

    let secrets = on_secrets(&h);
    println!("requests on Secrets: {:#?}", show(&secrets));
    let creates: Vec<&RequestRecord> = secrets.iter().filter(|r| r.verb == Verb::Create).collect();
    assert_eq!(
        creates.iter().filter(|r| r.code == 409).count(),
        1,
        "one create answered 409: {:#?}",
        show(&secrets)
    );
    let generated = h
        .sim
        .list("secrets", Some(NS), "")
        .unwrap()
        .into_iter()
        .filter(|s| text(s, "/metadata/labels/app.kubernetes.io~1managed-by") == "storekeeper")
        .count();
    assert_eq!(
        creates.len(),
        generated + 1,
        "one create per generated Secret, none repeated: {:#?}",
        show(&secrets)
    );
    let patches: Vec<&RequestRecord> = secrets.iter().filter(|r| r.verb == Verb::Patch).collect();
    assert_eq!(patches.len(), 1, "one owner patch: {:#?}", show(&secrets));
    assert_eq!(patches[0].name.as_deref(), Some(name));

    let adopted = h.sim.get("secrets", NS, name).unwrap();
    assert_eq!(
        adopted["data"]["password"],
        json!("dGhlaXJz"),
        "its values stand"
    );
    let owner = &adopted["metadata"]["ownerReferences"][0];
    assert_eq!(text(owner, "/uid"), text(&h.store(), "/metadata/uid"));
    assert_eq!(owner["controller"], json!(true));
    assert_eq!(text(&status, "/phase"), "Ready");
}
