//! Issue 12: a Store in the `Managed` observability mode, with the real
//! controller on the simulated cluster. Its Prometheus, Loki and Grafana
//! go out with the Foundation step and are left out of every step's
//! health: with Grafana crash-looping and Loki never ready, the first
//! install and an upgrade still complete, the Store is Ready 5/5, a resync
//! writes nothing, and switching to `Auto` prunes the stack.

use std::time::Duration;

use serde_json::{Value, json};
use storekeeper_simcluster::{Behaviour, Script};

use super::support::{Harness, NS, store, text};

fn managed(version: &str) -> Value {
    let mut s = store(version);
    s["spec"]["observability"] = json!({"mode": "Managed"});
    s
}

/// Every kind of child the stack has, by resource name.
const CHILDREN: [&str; 9] = [
    "configmaps",
    "serviceaccounts",
    "roles",
    "rolebindings",
    "networkpolicies",
    "services",
    "statefulsets",
    "deployments",
    "secrets",
];

fn child_writes(h: &Harness) -> usize {
    CHILDREN.iter().map(|r| h.writes_to(r)).sum()
}

#[tokio::test(start_paused = true)]
async fn an_unready_monitoring_stack_neither_holds_nor_rolls_back_the_shop() {
    let script = Script::default()
        .image(|i| i.contains("grafana/grafana"), Behaviour::CrashLoop)
        .image(|i| i.contains("grafana/loki"), Behaviour::NeverReady);
    let mut h = Harness::new(script);
    h.apply(&managed("0.1.0"));
    h.start_operator();
    let status = h.until_complete("0.1.0").await;
    assert_eq!(text(&status, "/ready"), "5/5");
    for (resource, name) in [
        ("statefulsets", "shop-prometheus"),
        ("statefulsets", "shop-loki"),
        ("deployments", "shop-grafana"),
        ("roles", "shop-prometheus"),
        ("rolebindings", "shop-prometheus"),
        ("secrets", "shop-grafana"),
        ("networkpolicies", "shop-telemetry"),
    ] {
        assert!(h.sim.get(resource, NS, name).is_some(), "{resource} {name}");
    }
    let grafana = h.deployment("shop-grafana");
    assert_ne!(
        grafana["status"]["availableReplicas"],
        json!(1),
        "Grafana never came up"
    );
    let order = h.deployment("shop-order");
    let env = &order["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().unwrap().contains(&json!({
            "name": "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "value": "http://shop-loki:3100/otlp/v1/logs"})),
        "{env}"
    );

    // Past a resync of the Ready Store: nothing written.
    let (writes, statuses) = (child_writes(&h), h.status_writes());
    tokio::time::sleep(Duration::from_mins(6)).await;
    assert_eq!(child_writes(&h), writes, "a resync writes no child");
    assert_eq!(h.status_writes(), statuses, "nor the status");

    // An upgrade with the stack still down rolls out, not back.
    h.apply(&managed("0.2.0"));
    let status = h.until_complete("0.2.0").await;
    assert_eq!(text(&status, "/ready"), "5/5");
    assert_eq!(h.event_count("RolloutFailed"), 0);

    // Back to Auto: the stack goes once that revision has rolled out.
    let mut auto = store("0.2.0");
    auto["spec"]["observability"] = json!({"mode": "Auto"});
    h.apply(&auto);
    h.until(Duration::from_mins(30), "the stack pruned", |h| {
        let gone = [
            ("statefulsets", "shop-prometheus"),
            ("statefulsets", "shop-loki"),
            ("deployments", "shop-grafana"),
            ("roles", "shop-prometheus"),
            ("rolebindings", "shop-prometheus"),
            ("networkpolicies", "shop-telemetry"),
        ]
        .iter()
        .all(|(r, n)| h.sim.get(r, NS, n).is_none());
        gone.then_some(())
    })
    .await;
    assert!(
        h.sim.get("configmaps", NS, "shop-dashboard").is_some(),
        "Auto keeps the dashboard"
    );
    assert_eq!(text(&h.store()["status"], "/phase"), "Ready");
}
