//! Issue 13: the namespace-scoped mode. An operator started with
//! `--watch-namespaces shop` runs the Store in `shop`, never touches the one
//! in another namespace, and never asks the API server for anything
//! cluster-wide — which is what lets the chart give it Roles only.

use std::time::Duration;

use storekeeper::scope::Scope;
use storekeeper_simcluster::Script;

use super::support::{Harness, NS, store};

#[tokio::test(start_paused = true)]
async fn only_the_watched_namespaces_are_reconciled_and_nothing_is_asked_cluster_wide() {
    let mut h = Harness::new(Script::default());
    h.apply(&store("0.1.0"));
    let mut elsewhere = store("0.1.0");
    elsewhere["metadata"]["namespace"] = "acme".into();
    h.apply(&elsewhere);
    h.start_operator_watching(Scope::new(vec![NS.into()]));
    h.until_complete("0.1.0").await;
    // Time for the other Store to be picked up, were it watched.
    tokio::time::sleep(Duration::from_mins(2)).await;

    let other = h.sim.get("stores", "acme", "shop").expect("it exists");
    assert!(
        other.get("status").is_none(),
        "the unwatched Store got a status: {other:#}"
    );
    for resource in ["deployments", "statefulsets", "services", "secrets"] {
        assert!(
            h.sim.list(resource, Some("acme"), "").unwrap().is_empty(),
            "{resource} were created in the unwatched namespace"
        );
    }
    let requests = h.sim.requests();
    let cluster_wide: Vec<String> = requests
        .iter()
        .filter(|r| r.namespace.is_none() && !r.resource.is_empty())
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(
        cluster_wide.is_empty(),
        "cluster-wide requests: {cluster_wide:#?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.namespace.as_deref() != Some("acme")),
        "a request went to the unwatched namespace"
    );
}
