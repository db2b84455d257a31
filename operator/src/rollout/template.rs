//! Which pods run a workload's current template: the pods a rollout judges.
//! A Deployment's current ReplicaSet is the one whose
//! `deployment.kubernetes.io/revision` matches the Deployment's; its pods
//! carry its `pod-template-hash`. A StatefulSet's current pods carry its
//! `status.updateRevision` as `controller-revision-hash`.

use serde_json::Value;

use crate::render::ChildKind;

/// Annotation the Deployment controller numbers a Deployment and its
/// ReplicaSets with.
pub const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";
/// Label tying a ReplicaSet's pods to its template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Label tying a StatefulSet's pods to a revision of its template.
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// The pods of `live` (a Deployment or StatefulSet as listed) that run its
/// current template. Empty before the controller made any.
pub fn current_pods<'a>(
    kind: ChildKind,
    live: &Value,
    pods: &'a [Value],
    replica_sets: &[Value],
) -> Vec<&'a Value> {
    let owned = |v: &&Value| selects(live, v);
    let template = match kind {
        ChildKind::Deployment => {
            let revision = annotation(live, DEPLOYMENT_REVISION);
            replica_sets
                .iter()
                .filter(owned)
                .filter(|rs| owner_uid_matches(live, rs))
                .find(|rs| revision.is_some() && annotation(rs, DEPLOYMENT_REVISION) == revision)
                .and_then(|rs| label(rs, POD_TEMPLATE_HASH))
                .map(|hash| (POD_TEMPLATE_HASH, hash))
        }
        ChildKind::StatefulSet => live
            .pointer("/status/updateRevision")
            .and_then(Value::as_str)
            .map(|rev| (CONTROLLER_REVISION_HASH, rev)),
        _ => None,
    };
    let Some((key, value)) = template else {
        return Vec::new();
    };
    pods.iter()
        .filter(owned)
        .filter(|p| label(p, key) == Some(value))
        .collect()
}

/// Whether the workload's `spec.selector.matchLabels` select `object`.
fn selects(workload: &Value, object: &Value) -> bool {
    let Some(wanted) = workload
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    else {
        return false;
    };
    !wanted.is_empty()
        && wanted
            .iter()
            .all(|(k, v)| object.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
}

/// A ReplicaSet belongs to the Deployment when its controller owner is the
/// Deployment (by uid, when both carry one).
fn owner_uid_matches(deployment: &Value, rs: &Value) -> bool {
    let Some(uid) = deployment.pointer("/metadata/uid").and_then(Value::as_str) else {
        return true;
    };
    crate::reconcile::observed::controller_uid(rs).is_none_or(|owner| owner == uid)
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")?.get(key)?.as_str()
}

fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/labels")?.get(key)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(revision: &str) -> Value {
        json!({"metadata": {"name": "shop-order", "uid": "d1",
                "annotations": {DEPLOYMENT_REVISION: revision}},
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "order"}}}})
    }

    fn rs(hash: &str, revision: &str, owner: &str) -> Value {
        json!({"metadata": {"name": format!("shop-order-{hash}"),
            "labels": {"app.kubernetes.io/name": "order", POD_TEMPLATE_HASH: hash},
            "annotations": {DEPLOYMENT_REVISION: revision},
            "ownerReferences": [{"uid": owner, "controller": true}]}})
    }

    fn pod(name: &str, labels: &Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}})
    }

    fn names(pods: &[&Value]) -> Vec<String> {
        pods.iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn deployment_pods_of_the_current_replica_set_only() {
        let pods = [
            pod(
                "old",
                &json!({"app.kubernetes.io/name": "order", POD_TEMPLATE_HASH: "aaa"}),
            ),
            pod(
                "new",
                &json!({"app.kubernetes.io/name": "order", POD_TEMPLATE_HASH: "bbb"}),
            ),
            pod(
                "other-service",
                &json!({"app.kubernetes.io/name": "user", POD_TEMPLATE_HASH: "bbb"}),
            ),
        ];
        let sets = [
            rs("aaa", "1", "d1"),
            rs("bbb", "2", "d1"),
            rs("ccc", "3", "someone-else"),
        ];
        assert_eq!(
            names(&current_pods(
                ChildKind::Deployment,
                &deployment("2"),
                &pods,
                &sets
            )),
            ["new"]
        );
        assert_eq!(
            names(&current_pods(
                ChildKind::Deployment,
                &deployment("1"),
                &pods,
                &sets
            )),
            ["old"]
        );
        assert!(
            current_pods(ChildKind::Deployment, &deployment("3"), &pods, &sets).is_empty(),
            "a ReplicaSet of another owner is not the Deployment's"
        );
        assert!(current_pods(ChildKind::Deployment, &deployment("4"), &pods, &sets).is_empty());
    }

    #[test]
    fn statefulset_pods_of_the_update_revision_only() {
        let sts = json!({"metadata": {"name": "shop-postgres"},
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}}},
            "status": {"updateRevision": "shop-postgres-2", "currentRevision": "shop-postgres-1"}});
        let pods = [
            pod(
                "shop-postgres-0",
                &json!({"app.kubernetes.io/name": "postgres", CONTROLLER_REVISION_HASH: "shop-postgres-2"}),
            ),
            pod(
                "shop-postgres-1",
                &json!({"app.kubernetes.io/name": "postgres", CONTROLLER_REVISION_HASH: "shop-postgres-1"}),
            ),
        ];
        assert_eq!(
            names(&current_pods(ChildKind::StatefulSet, &sts, &pods, &[])),
            ["shop-postgres-0"]
        );
        assert!(current_pods(ChildKind::ConfigMap, &sts, &pods, &[]).is_empty());
    }

    #[test]
    fn a_workload_without_selector_selects_nothing() {
        let pods = [pod("p", &json!({"a": "b"}))];
        let sts = json!({"status": {"updateRevision": "r"}});
        assert!(current_pods(ChildKind::StatefulSet, &sts, &pods, &[]).is_empty());
    }
}
