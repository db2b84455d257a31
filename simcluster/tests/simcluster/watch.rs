//! Watches: order, resumption, selector transitions, lag, timeout.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use storekeeper_simcluster::SimCluster;
use tokio::time::Instant;

fn cm(name: &str, tier: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"tier": tier}}})).unwrap()
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();
    match e {
        WatchEvent::Added(c) => format!("ADDED {}", name(c)),
        WatchEvent::Modified(c) => format!("MODIFIED {}", name(c)),
        WatchEvent::Deleted(c) => format!("DELETED {}", name(c)),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

async fn relabel(api: &Api<ConfigMap>, name: &str, tier: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_watch_replays_then_follows_in_order() {
    let (sim, client) = SimCluster::new();
    let api: Api<ConfigMap> = Api::namespaced(client, "shop");
    api.create(&PostParams::default(), &cm("before", "web"))
        .await
        .unwrap();
    let from = sim.resource_version().to_string();
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let stream = api
        .watch(&WatchParams::default().timeout(1), &from)
        .await
        .unwrap();
    relabel(&api, "a", "db").await;
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let events: Vec<String> = stream
        .map(|e| describe(&e.unwrap()))
        .collect::<Vec<_>>()
        .await;
    let last = sim.resource_version();
    assert_eq!(
        events,
        [
            "ADDED a".to_owned(),
            "MODIFIED a".to_owned(),
            "DELETED a".to_owned(),
            format!("BOOKMARK {last}"),
        ]
    );
    let from_zero: Vec<String> = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .unwrap()
        .map(|e| describe(&e.unwrap()))
        .collect()
        .await;
    assert_eq!(
        from_zero,
        ["ADDED before"],
        "rv 0 starts from the current state"
    );
}

#[tokio::test]
async fn a_label_selector_turns_relabels_into_added_and_deleted() {
    let (sim, client) = SimCluster::new();
    let api: Api<ConfigMap> = Api::namespaced(client, "shop");
    api.create(&PostParams::default(), &cm("a", "db"))
        .await
        .unwrap();
    let from = sim.resource_version().to_string();
    let stream = api
        .watch(
            &WatchParams::default()
                .labels("tier=web")
                .timeout(1)
                .disable_bookmarks(),
            &from,
        )
        .await
        .unwrap();
    relabel(&api, "a", "web").await;
    relabel(&api, "a", "web2").await;
    let events: Vec<String> = stream.map(|e| describe(&e.unwrap())).collect().await;
    assert_eq!(events, ["ADDED a", "DELETED a"]);
}

#[tokio::test(start_paused = true)]
async fn watch_lag_delays_delivery_per_type() {
    let (sim, client) = SimCluster::new();
    sim.set_watch_lag("configmaps", Duration::from_secs(2))
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "shop");
    let mut stream = api
        .watch(&WatchParams::default(), &sim.resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    let written = Instant::now();
    api.create(&PostParams::default(), &cm("late", "web"))
        .await
        .unwrap();
    let event = stream.try_next().await.unwrap().unwrap();
    assert_eq!(describe(&event), "ADDED late");
    let waited = written.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn kube_runtime_watchers_list_then_watch() {
    let (_sim, client) = SimCluster::new();
    let api: Api<ConfigMap> = Api::namespaced(client, "shop");
    api.create(&PostParams::default(), &cm("a", "web"))
        .await
        .unwrap();
    let mut objects = watcher(api.clone(), watcher::Config::default().labels("tier=web"))
        .applied_objects()
        .boxed();
    let first = objects.try_next().await.unwrap().unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("a"));
    api.create(&PostParams::default(), &cm("b", "web"))
        .await
        .unwrap();
    let second = objects.try_next().await.unwrap().unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("b"));
    let mut streaming = watcher(api.clone(), watcher::Config::default().streaming_lists())
        .applied_objects()
        .boxed();
    let mut seen = vec![
        streaming.try_next().await.unwrap().unwrap().metadata.name,
        streaming.try_next().await.unwrap().unwrap().metadata.name,
    ];
    seen.sort();
    assert_eq!(seen, [Some("a".to_owned()), Some("b".to_owned())]);
}
