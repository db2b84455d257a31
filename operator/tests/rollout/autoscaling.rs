//! Issue 14: an autoscaled service. The operator creates its
//! HorizontalPodAutoscaler and leaves the Deployment's replica count to it:
//! when the autoscaler (here, a write as its field manager) scales the
//! Deployment, the operator neither reverts it nor writes anything, and
//! the Store stays Ready on the live replica count.

use std::time::Duration;

use serde_json::{Value, json};
use storekeeper_simcluster::Script;

use super::support::{Harness, NS, store, text};

fn autoscaled(version: &str) -> Value {
    let mut s = store(version);
    s["spec"]["services"] = json!({"user": {"autoscaling": {
        "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 60}}});
    s
}

#[tokio::test(start_paused = true)]
async fn the_autoscalers_replica_count_stands_and_costs_no_write() {
    let mut h = Harness::new(Script::default());
    h.apply(&autoscaled("0.1.0"));
    h.start_operator();
    h.until_complete("0.1.0").await;

    let hpa = h
        .sim
        .get("horizontalpodautoscalers", NS, "shop-user")
        .expect("the HorizontalPodAutoscaler exists");
    assert_eq!(hpa["apiVersion"], json!("autoscaling/v2"));
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop-user"})
    );
    assert_eq!(hpa["spec"]["minReplicas"], json!(2));
    assert_eq!(hpa["spec"]["maxReplicas"], json!(6));
    assert!(
        h.sim
            .get("horizontalpodautoscalers", NS, "shop-product")
            .is_none(),
        "only the autoscaled service has one"
    );

    // Let every Deployment settle, then scale as the autoscaler would.
    tokio::time::sleep(Duration::from_mins(1)).await;
    let before = h.writes_to("deployments");
    h.sim
        .apply_as(
            "horizontal-pod-autoscaler",
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "shop-user", "namespace": NS},
                "spec": {"replicas": 4}}),
        )
        .unwrap();
    h.until(Duration::from_mins(5), "4 user pods available", |h| {
        let d = h.deployment("shop-user");
        (d["status"]["availableReplicas"] == json!(4)).then_some(())
    })
    .await;
    // Past a resync of the Ready Store, which compares every child.
    tokio::time::sleep(Duration::from_mins(6)).await;
    assert_eq!(h.deployment("shop-user")["spec"]["replicas"], json!(4));
    assert_eq!(
        h.writes_to("deployments"),
        before,
        "the autoscaler's change is not drift"
    );
    assert_eq!(text(&h.store()["status"], "/phase"), "Ready");

    // An upgrade rolls the autoscaled Deployment at its live size.
    h.apply(&autoscaled("0.2.0"));
    h.until_complete("0.2.0").await;
    let d = h.deployment("shop-user");
    assert_eq!(
        d["spec"]["replicas"],
        json!(4),
        "the upgrade kept the scale"
    );
    assert_eq!(d["status"]["availableReplicas"], json!(4));
    h.stop_operator().await;
}
