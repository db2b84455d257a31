//! API semantics, through kube's typed and dynamic clients.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};
use storekeeper_simcluster::{Fault, SimCluster, Verb};

use crate::{int, text};

fn cm(name: &str, tier: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"tier": tier, "app": "shop"}},
        "data": {"k": "v"},
    }))
    .unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names(list: &[ConfigMap]) -> Vec<String> {
    list.iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn create_get_list_with_label_and_field_selectors() {
    let (sim, client) = SimCluster::new();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        api.create(&PostParams::default(), &cm(name, tier))
            .await
            .unwrap();
    }
    Api::<ConfigMap>::namespaced(client, "other")
        .create(&PostParams::default(), &cm("d", "web"))
        .await
        .unwrap();
    let a = api.get("a").await.unwrap();
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));
    assert_eq!(a.metadata.namespace.as_deref(), Some("shop"));
    for (selector, want) in [
        ("tier=web", vec!["a", "c"]),
        ("tier!=web", vec!["b"]),
        ("tier in (db,cache)", vec!["b"]),
        ("tier notin (db)", vec!["a", "c"]),
        ("app", vec!["a", "b", "c"]),
        ("!app", vec![]),
        ("app=shop,tier=db", vec!["b"]),
    ] {
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        assert_eq!(names(&list.items), want, "{selector}");
        assert_eq!(
            list.metadata.resource_version,
            Some(sim.resource_version().to_string())
        );
    }
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(&by_name.items), ["b"]);
    let everywhere = Api::<ConfigMap>::all(sim.client())
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    assert_eq!(names(&everywhere.items), ["d", "a", "c"], "namespace order");
    let paged = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&paged.items), ["a", "b"]);
    let rest = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(paged.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(names(&rest.items), ["c"]);
    assert_eq!(
        api_error(
            api.create(&PostParams::default(), &cm("a", "x"))
                .await
                .unwrap_err()
        ),
        (409, "AlreadyExists".into())
    );
    assert_eq!(
        api_error(api.get("zzz").await.unwrap_err()),
        (404, "NotFound".into())
    );
    assert!(api.get_opt("zzz").await.unwrap().is_none());
}

fn deployment(replicas: i64, labels: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
        },
    })
}

#[tokio::test]
async fn a_repeated_apply_is_a_no_op_and_generation_tracks_spec_only() {
    let (sim, client) = SimCluster::new();
    let api: Api<Deployment> = Api::namespaced(client, "shop");
    let pp = PatchParams::apply("tester").force();
    let body = deployment(2, &json!({"a": "1"}));
    let first = api.patch("web", &pp, &Patch::Apply(&body)).await.unwrap();
    let again = api.patch("web", &pp, &Patch::Apply(&body)).await.unwrap();
    assert_eq!(
        first.metadata.resource_version,
        again.metadata.resource_version
    );
    assert_eq!(first.metadata.generation, Some(1));
    let relabelled = api
        .patch(
            "web",
            &pp,
            &Patch::Apply(&deployment(2, &json!({"a": "2"}))),
        )
        .await
        .unwrap();
    assert_ne!(
        relabelled.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(
        relabelled.metadata.generation,
        Some(1),
        "metadata is not spec"
    );
    let scaled = api
        .patch(
            "web",
            &pp,
            &Patch::Apply(&deployment(3, &json!({"a": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "status": {"observedGeneration": 2, "replicas": 3}});
    let with_status = api
        .patch_status(
            "web",
            &PatchParams::apply("controller").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(with_status.metadata.generation, Some(2));
    assert_eq!(with_status.status.unwrap().replicas, Some(3));
    let managers: Vec<String> = with_status
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| {
            format!(
                "{}/{}",
                m.manager.unwrap(),
                m.subresource.unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(managers, ["tester/", "controller/status"]);
    let mut body = deployment(3, &json!({"a": "2"}));
    body["status"] = json!({"replicas": 99});
    let main = api.patch("web", &pp, &Patch::Apply(&body)).await.unwrap();
    assert_eq!(
        main.status.unwrap().replicas,
        Some(3),
        "status is only written through /status"
    );
    assert_eq!(sim.request_counts().get(Verb::Apply, "deployments"), 5);
    assert_eq!(
        sim.request_counts().get(Verb::Apply, "deployments/status"),
        1
    );
}

#[tokio::test]
async fn the_same_manager_removes_fields_it_stopped_applying() {
    let (sim, client) = SimCluster::new();
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, "shop", &ApiResource::erase::<ConfigMap>(&()));
    let body = |labels: Value, data: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": labels}, "data": data})
    };
    let op = PatchParams::apply("operator");
    api.patch(
        "c",
        &op,
        &Patch::Apply(body(
            json!({"a": "1", "b": "1"}),
            json!({"x": "1", "y": "1"}),
        )),
    )
    .await
    .unwrap();
    sim.apply_as(
        "someone",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "shop", "labels": {"c": "1"}}}),
    )
    .unwrap();
    let after = api
        .patch(
            "c",
            &op,
            &Patch::Apply(body(json!({"a": "1"}), json!({"x": "1"}))),
        )
        .await
        .unwrap();
    let v = serde_json::to_value(&after).unwrap();
    assert_eq!(v["metadata"]["labels"], json!({"a": "1", "c": "1"}));
    assert_eq!(v["data"], json!({"x": "1"}));
    let conflict = api
        .patch(
            "c",
            &op,
            &Patch::Apply(body(json!({"a": "1", "c": "2"}), json!({"x": "1"}))),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(conflict), (409, "Conflict".into()));
    let forced = api
        .patch(
            "c",
            &op.clone().force(),
            &Patch::Apply(body(json!({"a": "1", "c": "2"}), json!({"x": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&forced).unwrap()["metadata"]["labels"]["c"],
        json!("2")
    );
}

fn store_api(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("storekeeper.dev", "v1alpha1", "Store");
    Api::namespaced_with(
        client,
        "shop",
        &ApiResource::from_gvk_with_plural(&gvk, "stores"),
    )
}

#[tokio::test]
async fn the_status_subresource_splits_writes() {
    let (_sim, client) = SimCluster::new();
    let api = store_api(client);
    let store: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "storekeeper.dev/v1alpha1", "kind": "Store",
        "metadata": {"name": "shop"}, "spec": {"version": "1"}, "status": {"phase": "Ready"},
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &store).await.unwrap();
    assert_eq!(created.data.get("status"), None, "create drops status");
    let patched = api
        .patch_status(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "2"}, "status": {"phase": "Pending"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["version"], json!("1"));
    assert_eq!(patched.data["status"]["phase"], json!("Pending"));
    assert_eq!(patched.metadata.generation, Some(1));
    let spec = api
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "3"}, "status": {"phase": "Gone"}})),
        )
        .await
        .unwrap();
    assert_eq!(spec.data["status"]["phase"], json!("Pending"));
    assert_eq!(spec.metadata.generation, Some(2));
}

#[tokio::test]
async fn a_stale_replace_is_a_conflict() {
    let (_sim, client) = SimCluster::new();
    let api: Api<Lease> = Api::namespaced(client, "shop");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &lease).await.unwrap();
    let read = api.get("leader").await.unwrap();
    let mut mine = read.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("b".into());
    api.replace("leader", &PostParams::default(), &mine)
        .await
        .unwrap();
    let mut theirs = read;
    theirs.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = api
        .replace("leader", &PostParams::default(), &theirs)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));
    let now = api.get("leader").await.unwrap();
    assert_eq!(now.spec.unwrap().holder_identity.as_deref(), Some("b"));
}

#[tokio::test]
async fn metadata_lists_carry_no_data() {
    let (_sim, client) = SimCluster::new();
    let api: Api<Secret> = Api::namespaced(client, "shop");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s", "labels": {"app": "shop"}}, "data": {"password": "c2VjcmV0"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &secret).await.unwrap();
    let list = api
        .list_metadata(&ListParams::default().labels("app=shop"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let item = serde_json::to_value(&list.items[0]).unwrap();
    assert_eq!(item["metadata"]["name"], json!("s"));
    assert_eq!(item.get("data"), None);
    assert_eq!(text(&item, "/kind"), "PartialObjectMetadata");
}

fn owned(kind: &str, name: &str, owners: &[&Value]) -> Value {
    let refs: Vec<Value> = owners
        .iter()
        .map(|o| {
            json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"], "controller": false})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": kind,
        "metadata": {"name": name, "namespace": "shop", "ownerReferences": refs}})
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let (sim, client) = SimCluster::new();
    let root = sim.create(&owned("ConfigMap", "root", &[])).unwrap();
    let other = sim.create(&owned("ConfigMap", "other", &[])).unwrap();
    let child = sim.create(&owned("Secret", "child", &[&root])).unwrap();
    sim.create(&owned("ServiceAccount", "grandchild", &[&child]))
        .unwrap();
    sim.create(&owned("Secret", "shared", &[&root, &other]))
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "shop");
    api.delete("root", &DeleteParams::background())
        .await
        .unwrap();
    assert!(sim.get("secrets", "shop", "child").is_none());
    assert!(sim.get("serviceaccounts", "shop", "grandchild").is_none());
    let shared = sim.get("secrets", "shop", "shared").unwrap();
    assert_eq!(
        shared["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "a surviving owner keeps it; the dangling reference goes"
    );
    let keep = sim.create(&owned("Secret", "orphan", &[&other])).unwrap();
    api.delete("other", &DeleteParams::orphan()).await.unwrap();
    let orphan = sim.get("secrets", "shop", "orphan").unwrap();
    assert_eq!(text(&orphan, "/metadata/uid"), text(&keep, "/metadata/uid"));
    assert_eq!(orphan["metadata"]["ownerReferences"], json!([]));
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_removed() {
    let (sim, client) = SimCluster::new();
    let api: Api<ConfigMap> = Api::namespaced(client, "shop");
    let mut c = cm("held", "web");
    c.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = sim.get("configmaps", "shop", "held").unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(sim.get("configmaps", "shop", "held").is_none());
}

#[tokio::test]
async fn injected_failures_answer_as_told_then_stop() {
    let (sim, client) = SimCluster::new();
    let api: Api<Deployment> = Api::namespaced(client, "shop");
    sim.inject(Fault::new(Verb::Apply, "deployments").named("web").answer(
        422,
        "Invalid",
        "spec.replicas: must be >= 0",
    ));
    let pp = PatchParams::apply("tester");
    let err = api
        .patch("web", &pp, &Patch::Apply(&deployment(1, &json!({}))))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(
                (s.code, s.reason.as_str(), s.message.as_str()),
                (422, "Invalid", "spec.replicas: must be >= 0")
            );
        }
        other => panic!("{other:?}"),
    }
    api.patch("web", &pp, &Patch::Apply(&deployment(1, &json!({}))))
        .await
        .unwrap();
    let log = sim.requests();
    assert_eq!(log.iter().map(|r| r.code).collect::<Vec<_>>(), [422, 201]);
    assert!(
        log[0].query.ends_with("fieldManager=tester"),
        "{}",
        log[0].query
    );
    assert_eq!(
        int(
            &sim.get("deployments", "shop", "web").unwrap(),
            "/metadata/generation"
        ),
        1
    );
}
