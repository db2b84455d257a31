//! Issue 14 item 2: a Store on a cluster that runs CloudNativePG and the
//! RabbitMQ Cluster Operator, with the real controller on the simulated
//! cluster. The scenario registers their kinds (so the operator discovers
//! them, as it discovers the Prometheus Operator's) and plays their
//! operators by writing the objects' status. `provider: Auto` puts the new
//! Store's PostgreSQL on a `Cluster` and its RabbitMQ on a `RabbitmqCluster`;
//! the rollout holds in the Data step (no migration Job) until both report
//! ready and every `Database` is applied, then completes.

use std::time::Duration;

use serde_json::{Value, json};
use storekeeper_simcluster::{ResourceType, Script};

use super::support::{Harness, NS, condition, store, text};

const CLUSTERS: &str = "clusters.postgresql.cnpg.io";
const DATABASES: &str = "databases.postgresql.cnpg.io";
const RABBITMQ_CLUSTERS: &str = "rabbitmqclusters.rabbitmq.com";

/// Serves CloudNativePG's and the RabbitMQ Cluster Operator's kinds.
fn install_operators(h: &Harness) {
    let n = ResourceType::namespaced;
    for t in [
        n("postgresql.cnpg.io", "v1", "Cluster", "clusters", true),
        n("postgresql.cnpg.io", "v1", "Database", "databases", true),
        n(
            "postgresql.cnpg.io",
            "v1",
            "ScheduledBackup",
            "scheduledbackups",
            true,
        ),
        n(
            "rabbitmq.com",
            "v1beta1",
            "RabbitmqCluster",
            "rabbitmqclusters",
            true,
        ),
    ] {
        h.sim.register(t);
    }
}

/// Writes `status` on the object as its operator would.
fn report(h: &Harness, resource: &str, name: &str, status: &Value) {
    let live = h.sim.get(resource, NS, name).expect("the object exists");
    let object = json!({
        "apiVersion": live["apiVersion"],
        "kind": live["kind"],
        "metadata": {"name": name, "namespace": NS},
        "status": status,
    });
    h.sim
        .apply_status_as("data-store-operator", &object)
        .unwrap();
}

fn generation(h: &Harness, resource: &str, name: &str) -> Value {
    h.sim.get(resource, NS, name).unwrap()["metadata"]["generation"].clone()
}

#[tokio::test(start_paused = true)]
async fn auto_delegates_a_new_store_and_the_data_step_waits_for_its_operators() {
    let mut h = Harness::new(Script::default());
    install_operators(&h);
    h.apply(&store("0.1.0"));
    h.start_operator();

    h.until(Duration::from_mins(5), "the Cluster applied", |h| {
        h.sim.get(CLUSTERS, NS, "shop-postgres")
    })
    .await;
    // Minutes pass with neither operator reporting: the Data step holds.
    tokio::time::sleep(Duration::from_mins(3)).await;
    let status = h.store()["status"].clone();
    assert_eq!(text(&status, "/rollout/step"), "Data", "{status:#}");
    assert!(
        h.sim.list("jobs", Some(NS), "").unwrap().is_empty(),
        "no migration runs before the databases exist"
    );
    assert!(h.sim.get("statefulsets", NS, "shop-postgres").is_none());
    assert!(h.sim.get("statefulsets", NS, "shop-rabbitmq").is_none());
    assert!(h.sim.get("secrets", NS, "shop-postgres").is_none());
    let login = h.sim.get("secrets", NS, "shop-postgres-orders").unwrap();
    assert_eq!(login["type"], "kubernetes.io/basic-auth");
    assert!(
        h.sim
            .get("secrets", NS, "shop-rabbitmq-default-user")
            .is_some()
    );

    // CloudNativePG: the Cluster healthy, but the databases not applied yet.
    report(
        &h,
        CLUSTERS,
        "shop-postgres",
        &json!({"phase": "Cluster in healthy state", "instances": 1, "readyInstances": 1}),
    );
    report(
        &h,
        RABBITMQ_CLUSTERS,
        "shop-rabbitmq",
        &json!({"observedGeneration": generation(&h, RABBITMQ_CLUSTERS, "shop-rabbitmq"),
               "conditions": [{"type": "AllReplicasReady", "status": "True"},
                              {"type": "ClusterAvailable", "status": "True"}]}),
    );
    tokio::time::sleep(Duration::from_mins(1)).await;
    assert_eq!(text(&h.store()["status"], "/rollout/step"), "Data");
    for db in ["users", "products", "payments", "orders"] {
        let name = format!("shop-postgres-{db}");
        report(
            &h,
            DATABASES,
            &name,
            &json!({"applied": true, "observedGeneration": generation(&h, DATABASES, &name)}),
        );
    }

    let status = h.until_complete("0.1.0").await;
    assert_eq!(text(&status, "/ready"), "5/5");
    let order = h.deployment("shop-order");
    let env = &order["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().unwrap().contains(&json!({
            "name": "DATABASE_URL",
            "value": "postgres://orders@shop-postgres-rw:5432/orders"})),
        "{env}"
    );
    let postgres = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "postgres")
        .unwrap();
    assert_eq!(postgres["ready"], json!(true), "{status:#}");
}

#[tokio::test(start_paused = true)]
async fn a_delegate_the_cluster_lacks_stalls_the_store_with_a_warning() {
    let mut h = Harness::new(Script::default());
    let mut s = store("0.1.0");
    s["spec"]["postgres"] = json!({"managed": {"provider": "CloudNativePG"}});
    h.apply(&s);
    h.start_operator();
    let status = h
        .until(Duration::from_mins(5), "the Store stalled", |h| {
            let status = h.store()["status"].clone();
            (text(condition(&status, "Stalled"), "/status") == "True").then_some(status)
        })
        .await;
    let stalled = condition(&status, "Stalled");
    assert_eq!(text(stalled, "/reason"), "InvalidSpec", "{status:#}");
    assert!(
        text(stalled, "/message").contains("spec.postgres.managed.provider"),
        "{status:#}"
    );
    let warnings: Vec<_> = h.events().into_iter().filter(|e| e.warning).collect();
    assert!(
        warnings
            .iter()
            .any(|e| e.note.contains("postgresql.cnpg.io/v1 Cluster")),
        "{warnings:?}"
    );
    assert!(h.sim.get("statefulsets", NS, "shop-postgres").is_none());
    assert!(
        h.sim.list("deployments", Some(NS), "").unwrap().is_empty(),
        "nothing of the shop is rolled out on the wrong kind"
    );
}
