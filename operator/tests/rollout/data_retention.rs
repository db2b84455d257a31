//! Issue 14: a Store's data-store volumes and the credentials they were
//! initialised with live and die together. With the real controller on the
//! simulated cluster (whose StatefulSet controller makes the claims and
//! honours `persistentVolumeClaimRetentionPolicy`, and whose API server
//! garbage-collects by owner reference): deleting a Store under the default
//! `deletionPolicy: Retain` keeps both, and a re-created Store runs on the
//! same passwords; under `Delete` both go.

use std::collections::BTreeMap;
use std::time::Duration;

use super::support::{Harness, NS, STORE, store, text};
use serde_json::{Value, json};
use storekeeper_simcluster::Script;

/// The data stores' generated credential Secrets.
const DATA_SECRETS: [&str; 3] = ["shop-postgres", "shop-redis", "shop-rabbitmq"];
/// The claims the three StatefulSets' pods get.
const CLAIMS: [&str; 3] = [
    "data-shop-postgres-0",
    "data-shop-redis-0",
    "data-shop-rabbitmq-0",
];

fn store_with_policy(policy: Option<&str>) -> Value {
    let mut s = store("0.1.0");
    if let Some(p) = policy {
        s["spec"]["deletionPolicy"] = json!(p);
    }
    s
}

async fn installed(policy: Option<&str>) -> Harness {
    let mut h = Harness::new(Script::default());
    h.apply(&store_with_policy(policy));
    h.start_operator();
    h.until_complete("0.1.0").await;
    h
}

/// Each object's `data` (the generated values), by name.
fn data_of(h: &Harness, names: &[&str]) -> BTreeMap<String, Value> {
    names
        .iter()
        .map(|n| {
            let s = h
                .sim
                .get("secrets", NS, n)
                .unwrap_or_else(|| panic!("Secret {n} exists"));
            ((*n).to_owned(), s["data"].clone())
        })
        .collect()
}

fn uid(v: &Value) -> &str {
    text(v, "/metadata/uid")
}

fn controller_uid(v: &Value) -> Option<&str> {
    v.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == json!(true))?["uid"]
        .as_str()
}

/// Deletes the Store and waits until its garbage (the StatefulSets) is gone.
async fn delete_store(h: &Harness) {
    h.sim.delete("stores", NS, STORE).unwrap();
    h.until(Duration::from_mins(1), "the StatefulSets' removal", |h| {
        h.sim
            .get("statefulsets", NS, "shop-postgres")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_re_created_store_reaches_the_data_its_volumes_were_initialised_with() {
    let h = installed(None).await;
    for sts in ["shop-postgres", "shop-redis", "shop-rabbitmq"] {
        let s = h.sim.get("statefulsets", NS, sts).unwrap();
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            "{sts}"
        );
    }
    let before = data_of(&h, &DATA_SECRETS);
    let claims: Vec<String> = CLAIMS
        .iter()
        .map(|c| uid(&h.sim.get("persistentvolumeclaims", NS, c).unwrap()).to_owned())
        .collect();
    let first_store = uid(&h.store()).to_owned();
    for name in DATA_SECRETS {
        let s = h.sim.get("secrets", NS, name).unwrap();
        assert_eq!(controller_uid(&s), None, "{name} is not owned: {s:#}");
    }

    delete_store(&h).await;
    for (c, claim_uid) in CLAIMS.iter().zip(&claims) {
        let claim = h.sim.get("persistentvolumeclaims", NS, c);
        assert_eq!(
            claim.as_ref().map(uid),
            Some(claim_uid.as_str()),
            "{c} kept"
        );
    }
    assert_eq!(
        data_of(&h, &DATA_SECRETS),
        before,
        "the credentials are kept"
    );
    assert!(
        h.sim.get("secrets", NS, "shop-token-keys").is_none(),
        "Secrets that hold no data-store credential go with the Store"
    );

    h.apply(&store_with_policy(None));
    h.until(Duration::from_mins(1), "the new Store's status", |h| {
        h.sim
            .get("stores", NS, STORE)
            .filter(|s| uid(s) != first_store && s["status"]["phase"].is_string())
    })
    .await;
    h.until_complete("0.1.0").await;
    assert_eq!(
        data_of(&h, &DATA_SECRETS),
        before,
        "the re-created Store reuses the credentials its volumes were initialised with"
    );
    for (c, claim_uid) in CLAIMS.iter().zip(&claims) {
        let claim = h.sim.get("persistentvolumeclaims", NS, c).unwrap();
        assert_eq!(uid(&claim), claim_uid, "{c} is the old volume");
    }
    assert!(
        h.sim.get("secrets", NS, "shop-token-keys").is_some(),
        "the other Secrets are generated again"
    );
}

#[tokio::test(start_paused = true)]
async fn with_delete_volumes_and_credentials_go_with_the_store() {
    let h = installed(Some("Delete")).await;
    let store_uid = uid(&h.store()).to_owned();
    for name in DATA_SECRETS {
        let s = h.sim.get("secrets", NS, name).unwrap();
        assert_eq!(controller_uid(&s), Some(store_uid.as_str()), "{name}");
    }
    for c in CLAIMS {
        assert!(h.sim.get("persistentvolumeclaims", NS, c).is_some(), "{c}");
    }

    delete_store(&h).await;
    for c in CLAIMS {
        assert!(
            h.sim.get("persistentvolumeclaims", NS, c).is_none(),
            "{c} deleted"
        );
    }
    let left = h.sim.list("secrets", Some(NS), "").unwrap();
    assert!(left.is_empty(), "every generated Secret is gone: {left:#?}");
}

#[tokio::test(start_paused = true)]
async fn switching_the_policy_moves_the_credentials_ownership() {
    let h = installed(None).await;
    let store_uid = uid(&h.store()).to_owned();
    h.apply(&store_with_policy(Some("Delete")));
    h.until(
        Duration::from_mins(1),
        "the Store owning its credentials",
        |h| {
            DATA_SECRETS
                .iter()
                .all(|n| {
                    let s = h.sim.get("secrets", NS, n).unwrap();
                    controller_uid(&s) == Some(store_uid.as_str())
                })
                .then_some(())
        },
    )
    .await;
    h.apply(&store_with_policy(Some("Retain")));
    h.until(Duration::from_mins(1), "the credentials released", |h| {
        DATA_SECRETS
            .iter()
            .all(|n| controller_uid(&h.sim.get("secrets", NS, n).unwrap()).is_none())
            .then_some(())
    })
    .await;
}
