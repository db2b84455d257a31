//! The real operator against the simulated cluster: `examples/store.yaml`
//! applied, `storekeeper::controller::run` started with a client for the
//! simulation, until the Store is Ready with every Deployment available.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::Value;
use storekeeper::controller::{self, Context};
use storekeeper::lease::LeaderElector;
use storekeeper::metrics::Metrics;
use storekeeper::pod_metrics::MetricsReader;
use storekeeper_simcluster::{Scraper, Script, SimCluster, Verb, Workloads};

use crate::{eventually, int, text};

/// The operator's metrics reader, pointed at the simulated pods.
struct SimMetrics(Scraper);

impl MetricsReader for SimMetrics {
    fn read<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<String>> {
        let text = self.0.scrape(url);
        Box::pin(async move { text })
    }
}

/// An operator context whose client and metrics reader talk to the simulation.
fn context(sim: &SimCluster, workloads: &Workloads) -> Arc<Context> {
    Arc::new(Context::new(
        sim.client(),
        Metrics::default(),
        None,
        Arc::new(SimMetrics(workloads.scraper())),
    ))
}

fn example_store() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/store.yaml");
    let yaml = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&yaml).unwrap()
}

fn deployments_available(sim: &SimCluster) -> (bool, Vec<String>) {
    deployments_available_in(sim, "shop")
}

fn deployments_available_in(sim: &SimCluster, ns: &str) -> (bool, Vec<String>) {
    let deployments = sim.list("deployments", Some(ns), "").unwrap();
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
    let (sim, _client) = SimCluster::new();
    let workloads = Workloads::start(&sim, Script::default());
    sim.apply_as("kubectl", &example_store()).unwrap();
    let ctx = context(&sim, &workloads);
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

    // A restarted operator (new client, new caches) finds nothing to change.
    sim.clear_requests();
    let restarted = tokio::spawn(controller::run(
        context(&sim, &workloads),
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_mins(1)).await;
    let after = sim.request_counts();
    println!("after a restart, one minute:\n{after}");
    assert!(after.get(Verb::List, "deployments") > 0, "it reconciled");
    let writes: usize = [Verb::Apply, Verb::Create, Verb::Update, Verb::Delete]
        .into_iter()
        .map(|v| after.verb(v))
        .sum();
    assert_eq!(writes, 0, "a steady state costs no writes:\n{after}");
    restarted.abort();
}

/// 100 Stores at once (run with `--ignored --nocapture`): how long the
/// simulation takes and how many API requests the operator makes per Store.
#[tokio::test(start_paused = true)]
#[ignore = "scale run; prints figures"]
async fn a_hundred_stores_reach_ready() {
    const STORES: usize = 100;
    let started = std::time::Instant::now();
    let (sim, _client) = SimCluster::new();
    let workloads = Workloads::start(&sim, Script::default());
    for i in 0..STORES {
        let mut store = example_store();
        store["metadata"]["namespace"] = serde_json::json!(format!("shop-{i}"));
        sim.apply_as("kubectl", &store).unwrap();
    }
    let operator = tokio::spawn(controller::run(
        context(&sim, &workloads),
        std::future::pending(),
    ));
    let simulated = tokio::time::Instant::now();
    eventually(Duration::from_mins(30), "every Store Ready", || {
        let stores = sim.list("stores", None, "").unwrap();
        let ready = stores
            .iter()
            .filter(|s| text(s, "/status/phase") == "Ready")
            .count();
        (ready == STORES, ready)
    })
    .await;
    let counts = sim.request_counts();
    let tenths = counts.total() * 10 / STORES;
    println!(
        "{STORES} Stores Ready after {:?} simulated, {:?} real; {} API requests, {}.{} per Store\n{counts}",
        simulated.elapsed(),
        started.elapsed(),
        counts.total(),
        tenths / 10,
        tenths % 10,
    );
    operator.abort();
}

/// Two operator replicas (two clients, as two processes would have) share
/// one Lease: the first leads, the second waits, and takes over on release.
#[tokio::test]
async fn leader_election_hands_over_through_the_lease() {
    let (sim, first) = SimCluster::new();
    let elector = |client: kube::Client, me: &str| {
        let api: Api<Lease> = Api::namespaced(client, "storekeeper");
        LeaderElector::new(api, "storekeeper-leader", me, Duration::from_secs(15))
    };
    let a = elector(first, "pod-a");
    let b = elector(sim.client(), "pod-b");
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap(), "renewal");
    a.release().await.unwrap();
    assert!(b.try_acquire_or_renew().await.unwrap());
    let lease = sim
        .get("leases", "storekeeper", "storekeeper-leader")
        .unwrap();
    assert_eq!(text(&lease, "/spec/holderIdentity"), "pod-b");
    assert_eq!(int(&lease, "/spec/leaseTransitions"), 2);
    assert_eq!(sim.request_counts().get(Verb::Update, "leases"), 3);
}
