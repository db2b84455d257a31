//! Issue 14: PostgreSQL image changes. With the real controller on the
//! simulated cluster: a Store whose PostgreSQL runs major 16 and whose spec
//! now asks for the operator's pinned major 17 keeps 16 (Stalled with
//! `PostgresMajorUpgradeRefused` and one Warning Event naming both), while
//! the services' upgrade in the same spec rolls out; a minor image change
//! (16.10 to 16.11) is a revision like any other, and its Data step gates
//! the rest: PostgreSQL runs the new image, ready, before any Deployment
//! changes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use serde_json::{Value, json};
use storekeeper::reconcile::upgrade::REASON;
use storekeeper::render::images;
use storekeeper_simcluster::Script;

use super::support::{Harness, NS, condition, int, store, text};

/// The major the Store was installed with.
const RUNNING: &str = "docker.io/library/postgres:16.10-bookworm";
/// A minor release of the same major.
const MINOR: &str = "docker.io/library/postgres:16.11-bookworm";

fn with_postgres(version: &str, image: Option<&str>) -> Value {
    let mut s = store(version);
    if let Some(image) = image {
        s["spec"]["postgres"] = json!({"managed": {"image": image}});
    }
    s
}

fn postgres_image(h: &Harness) -> String {
    let sts = h.sim.get("statefulsets", NS, "shop-postgres").unwrap();
    text(&sts, "/spec/template/spec/containers/0/image").to_owned()
}

fn rv(v: &Value) -> u64 {
    text(v, "/metadata/resourceVersion").parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_major_upgrade_is_refused_and_a_minor_one_rolls_in_the_data_step() {
    let mut h = Harness::new(Script::default());
    h.apply(&with_postgres("0.1.0", Some(RUNNING)));
    h.start_operator();
    h.until_complete("0.1.0").await;
    assert_eq!(postgres_image(&h), RUNNING);
    let statefulsets = h.record::<StatefulSet>();

    // Dropping the override asks for the operator's pinned image (major
    // 17); the services move to 0.2.0 in the same spec.
    h.apply(&with_postgres("0.2.0", None));
    let status = h
        .until(Duration::from_mins(30), "0.2.0 out, PostgreSQL held", |h| {
            let status = h.store()["status"].clone();
            let done = text(&status, "/rollout/state") == "Complete"
                && text(&status, "/currentVersion") == "0.2.0"
                && text(condition(&status, "Stalled"), "/reason") == REASON;
            done.then_some(status)
        })
        .await;
    assert_eq!(
        postgres_image(&h),
        RUNNING,
        "the data directory's major stays"
    );
    assert!(
        h.image("shop-user").ends_with(":0.2.0"),
        "the rest reconciles"
    );
    assert_eq!(text(&status, "/phase"), "Degraded");
    assert_eq!(text(condition(&status, "Stalled"), "/status"), "True");
    assert_eq!(text(condition(&status, "Ready"), "/status"), "False");
    let refusals: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| e.reason == REASON)
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    let note = &refusals[0].note;
    assert!(refusals[0].warning);
    for part in [RUNNING, images::POSTGRES, "operator.md", "CloudNativePG"] {
        assert!(note.contains(part), "{part} in {note}");
    }
    // A resync later: still held, nothing new said.
    tokio::time::sleep(Duration::from_mins(6)).await;
    assert_eq!(postgres_image(&h), RUNNING);
    assert_eq!(h.event_count(REASON), 1);

    // A minor release of the running major is a revision like any other.
    let deployments = h.record::<Deployment>();
    h.apply(&with_postgres("0.3.0", Some(MINOR)));
    h.until_complete("0.3.0").await;
    assert_eq!(postgres_image(&h), MINOR);
    let seen = statefulsets.seen();
    assert!(
        seen.iter()
            .filter(|s| text(s, "/metadata/name") == "shop-postgres")
            .all(|s| text(s, "/spec/template/spec/containers/0/image") != images::POSTGRES),
        "PostgreSQL never ran the other major, not even while the 16.11 rollout \
         still applied the stable revision (which asks for it) to later steps"
    );
    let postgres_ready = seen
        .into_iter()
        .find(|s| {
            text(s, "/metadata/name") == "shop-postgres"
                && text(s, "/spec/template/spec/containers/0/image") == MINOR
                && int(s, "/status/observedGeneration") == int(s, "/metadata/generation")
                && int(s, "/status/updatedReplicas") == 1
                && int(s, "/status/readyReplicas") == 1
        })
        .expect("PostgreSQL ran 16.11, ready");
    let first_deployment_change = deployments
        .seen()
        .into_iter()
        .filter(|d| text(d, "/spec/template/spec/containers/0/image").ends_with(":0.3.0"))
        .map(|d| rv(&d))
        .min()
        .expect("the Deployments moved to 0.3.0");
    assert!(
        rv(&postgres_ready) < first_deployment_change,
        "the Data step was healthy on the new image before the Backends step began"
    );
    assert_eq!(
        text(condition(&h.store()["status"], "Stalled"), "/status"),
        "False",
        "the refusal cleared"
    );
    h.stop_operator().await;
}
