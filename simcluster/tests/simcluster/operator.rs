//! The real operator against the simulated cluster: `examples/store.yaml`
//! applied, `storekeeper::controller::run` started with a client for the
//! simulation, until the Store is Ready with every Deployment available.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use storekeeper::controller::{self, Context};
use storekeeper::metrics::Metrics;
use storekeeper_simcluster::{Script, SimCluster, Verb, Workloads};

use crate::{eventually, int, text};

fn example_store() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/store.yaml");
    let yaml = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&yaml).unwrap()
}

fn deployments_available(sim: &SimCluster) -> (bool, Vec<String>) {
    let deployments = sim.list("deployments", Some("shop"), "").unwrap();
    let summary: Vec<String> = deployments
        .iter()
        .map(|d| {
            format!(
                "{} gen {} observed {} available {}/{}",
                text(d, "/metadata/name"),
                int(d, "/metadata/generation"),
                int(d, "/status/observedGeneration"),
                int(d, "/status/availableReplicas"),
                int(d, "/spec/replicas"),
            )
        })
        .collect();
    let ready = deployments.len() == 5
        && deployments.iter().all(|d| {
            int(d, "/status/observedGeneration") == int(d, "/metadata/generation")
                && int(d, "/status/availableReplicas") == int(d, "/spec/replicas")
        });
    (ready, summary)
}

#[tokio::test(start_paused = true)]
async fn the_operator_brings_the_example_store_to_ready() {
    let (sim, client) = SimCluster::new();
    let _workloads = Workloads::start(&sim, Script::default());
    sim.apply_as("kubectl", &example_store()).unwrap();
    let ctx = Arc::new(Context::new(client, Metrics::default(), None));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(controller::run(ctx, async move {
        let _ = stopped.await;
    }));
    let store = eventually(Duration::from_mins(10), "Store Ready", || {
        let store = sim.get("stores", "shop", "shop").unwrap();
        let ready = text(&store, "/status/phase") == "Ready" && deployments_available(&sim).0;
        (
            ready,
            (store["status"].clone(), deployments_available(&sim).1),
        )
    })
    .await;
    let counts = sim.request_counts();
    println!(
        "Store Ready; status {:#}\nAPI requests by the operator for one Store:\n{counts}",
        store.0
    );
    assert!(counts.verb(Verb::Apply) > 0 && counts.verb(Verb::Watch) > 0);
    assert!(counts.get(Verb::Create, "secrets") > 0);
    assert!(counts.get(Verb::Apply, "stores/status") > 0);
    assert!(counts.get(Verb::Create, "events") > 0);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .unwrap()
        .unwrap();
}
