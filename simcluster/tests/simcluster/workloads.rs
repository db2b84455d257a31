//! The workload simulator: Deployments and StatefulSets converge, bad
//! images do not, and pods serve fake metrics.

use std::time::Duration;

use serde_json::{Value, json};
use storekeeper_simcluster::{Behaviour, Script, SimCluster, Workloads};

use crate::{eventually, int, text};

const MINUTE: Duration = Duration::from_mins(1);

fn deployment(image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}},
        },
    })
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == json!(type_))
}

/// Whether a Deployment finished rolling out, as `kubectl rollout status` judges.
fn rolled_out(d: &Value, replicas: i64) -> bool {
    int(d, "/status/observedGeneration") == int(d, "/metadata/generation")
        && int(d, "/status/updatedReplicas") == replicas
        && int(d, "/status/availableReplicas") == replicas
        && int(d, "/status/replicas") == replicas
        && condition(d, "Available").is_some_and(|c| c["status"] == json!("True"))
        && condition(d, "Progressing")
            .is_some_and(|c| c["reason"] == json!("NewReplicaSetAvailable"))
}

fn pods(sim: &SimCluster) -> Vec<Value> {
    sim.list("pods", Some("shop"), "app=web").unwrap()
}

fn bad_script() -> Script {
    Script::default()
        .image(|i| i.ends_with(":1.4.0-bad"), Behaviour::ImagePullBackOff)
        .image(|i| i.ends_with(":crash"), Behaviour::CrashLoop)
        .time_scale(0.01)
}

#[tokio::test(start_paused = true)]
async fn a_deployment_becomes_available_and_rolls_to_a_new_template() {
    let (sim, _client) = SimCluster::new();
    let _workloads = Workloads::start(&sim, Script::default());
    sim.apply_as("tester", &deployment("web:1.0.0", 2)).unwrap();
    let get = || sim.get("deployments", "shop", "web").unwrap();
    eventually(MINUTE, "rollout of 1.0.0", || {
        let d = get();
        (rolled_out(&d, 2), d)
    })
    .await;
    let running = pods(&sim);
    assert_eq!(running.len(), 2);
    let hash = text(&running[0], "/metadata/labels/pod-template-hash").to_owned();
    assert!(!hash.is_empty());
    assert_eq!(
        text(&running[0], "/metadata/ownerReferences/0/name"),
        format!("web-{hash}")
    );
    assert_eq!(text(&running[0], "/status/phase"), "Running");
    sim.apply_as("tester", &deployment("web:1.1.0", 2)).unwrap();
    let d = eventually(MINUTE, "rollout of 1.1.0", || {
        let d = get();
        (rolled_out(&d, 2) && int(&d, "/metadata/generation") == 2, d)
    })
    .await;
    assert_eq!(int(&d, "/status/observedGeneration"), 2);
    let images: Vec<String> = pods(&sim)
        .iter()
        .map(|p| text(p, "/spec/containers/0/image").to_owned())
        .collect();
    assert_eq!(images, ["web:1.1.0", "web:1.1.0"]);
    let sets = sim.list("replicasets", Some("shop"), "app=web").unwrap();
    assert_eq!(sets.len(), 2);
    let revision = |v: &Value| {
        text(
            v,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        )
        .to_owned()
    };
    assert_eq!(revision(&d), "2");
    sim.apply_as("tester", &deployment("web:1.0.0", 2)).unwrap();
    let d = eventually(MINUTE, "rollback to 1.0.0", || {
        let d = get();
        (rolled_out(&d, 2) && int(&d, "/metadata/generation") == 3, d)
    })
    .await;
    assert_eq!(
        revision(&d),
        "3",
        "the old ReplicaSet became the newest revision"
    );
    let old_set = sim
        .get("replicasets", "shop", &format!("web-{hash}"))
        .unwrap();
    assert_eq!(revision(&old_set), "3");
    assert_eq!(
        sim.list("replicasets", Some("shop"), "app=web")
            .unwrap()
            .len(),
        2
    );
    sim.delete("deployments", "shop", "web").unwrap();
    assert!(pods(&sim).is_empty(), "garbage collection took the pods");
    assert!(
        sim.list("replicasets", Some("shop"), "")
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn an_image_that_cannot_be_pulled_never_becomes_available() {
    let (sim, _client) = SimCluster::new();
    let _workloads = Workloads::start(&sim, bad_script());
    sim.apply_as("tester", &deployment("web:1.4.0-bad", 1))
        .unwrap();
    let d = eventually(MINUTE, "progress deadline", || {
        let d = sim.get("deployments", "shop", "web").unwrap();
        let exceeded = condition(&d, "Progressing")
            .is_some_and(|c| c["reason"] == json!("ProgressDeadlineExceeded"));
        (exceeded, d)
    })
    .await;
    assert_eq!(int(&d, "/status/availableReplicas"), 0);
    assert_eq!(
        condition(&d, "Available").unwrap()["status"],
        json!("False")
    );
    let pod = &pods(&sim)[0];
    assert_eq!(
        text(pod, "/status/containerStatuses/0/state/waiting/reason"),
        "ImagePullBackOff"
    );
    assert_eq!(text(pod, "/status/phase"), "Pending");
}

#[tokio::test(start_paused = true)]
async fn a_bad_rollout_keeps_the_old_pods_serving() {
    let (sim, _client) = SimCluster::new();
    let _workloads = Workloads::start(&sim, bad_script());
    sim.apply_as("tester", &deployment("web:1.3.0", 2)).unwrap();
    eventually(MINUTE, "first rollout", || {
        let d = sim.get("deployments", "shop", "web").unwrap();
        (rolled_out(&d, 2), d)
    })
    .await;
    sim.apply_as("tester", &deployment("web:1.4.0-bad", 2))
        .unwrap();
    let d = eventually(MINUTE, "progress deadline", || {
        let d = sim.get("deployments", "shop", "web").unwrap();
        let exceeded = condition(&d, "Progressing")
            .is_some_and(|c| c["reason"] == json!("ProgressDeadlineExceeded"));
        (exceeded, d)
    })
    .await;
    assert_eq!(int(&d, "/status/availableReplicas"), 2, "{d:#}");
    assert_eq!(int(&d, "/status/updatedReplicas"), 1, "maxSurge 25% of 2");
    assert_eq!(int(&d, "/status/replicas"), 3);
}

#[tokio::test(start_paused = true)]
async fn crash_looping_containers_restart_again_and_again() {
    let (sim, _client) = SimCluster::new();
    let _workloads = Workloads::start(&sim, bad_script());
    sim.apply_as("tester", &deployment("web:crash", 1)).unwrap();
    let pod = eventually(MINUTE, "three restarts", || {
        let all = pods(&sim);
        let restarts = all
            .first()
            .map_or(0, |p| int(p, "/status/containerStatuses/0/restartCount"));
        (restarts >= 3, all)
    })
    .await;
    assert_eq!(
        text(&pod[0], "/status/containerStatuses/0/state/waiting/reason"),
        "CrashLoopBackOff"
    );
}

fn statefulset(image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {
            "replicas": 2, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": image}]}},
        },
    })
}

#[tokio::test(start_paused = true)]
async fn a_statefulset_creates_pods_in_order_and_updates_its_revision() {
    let (sim, _client) = SimCluster::new();
    let _workloads = Workloads::start(&sim, bad_script());
    sim.apply_as("tester", &statefulset("db:1")).unwrap();
    let get = || sim.get("statefulsets", "shop", "db").unwrap();
    let first = eventually(MINUTE, "two ready pods", || {
        let s = get();
        (int(&s, "/status/readyReplicas") == 2, s)
    })
    .await;
    let revision = text(&first, "/status/updateRevision").to_owned();
    assert_eq!(text(&first, "/status/currentRevision"), revision);
    let names: Vec<String> = sim
        .list("pods", Some("shop"), "app=db")
        .unwrap()
        .iter()
        .map(|p| text(p, "/metadata/name").to_owned())
        .collect();
    assert_eq!(names, ["db-0", "db-1"]);
    sim.apply_as("tester", &statefulset("db:2")).unwrap();
    let updated = eventually(MINUTE, "update to db:2", || {
        let s = get();
        let done = text(&s, "/status/currentRevision") == text(&s, "/status/updateRevision")
            && text(&s, "/status/updateRevision") != revision
            && int(&s, "/status/readyReplicas") == 2
            && int(&s, "/status/observedGeneration") == 2;
        (done, s)
    })
    .await;
    assert_eq!(int(&updated, "/status/updatedReplicas"), 2);
    assert_eq!(
        sim.list("controllerrevisions", Some("shop"), "app=db")
            .unwrap()
            .len(),
        2
    );
    sim.apply_as("tester", &statefulset("db:1.4.0-bad"))
        .unwrap();
    let stuck = eventually(MINUTE, "a stuck update", || {
        let s = get();
        let one_pending = sim.get("pods", "shop", "db-1").is_some_and(|p| {
            text(&p, "/status/containerStatuses/0/state/waiting/reason") == "ImagePullBackOff"
        });
        (one_pending, s)
    })
    .await;
    assert_ne!(
        text(&stuck, "/status/currentRevision"),
        text(&stuck, "/status/updateRevision")
    );
    tokio::time::sleep(MINUTE).await;
    assert_eq!(
        text(
            &sim.get("pods", "shop", "db-0").unwrap(),
            "/spec/containers/0/image"
        ),
        "db:2",
        "the update waits for db-1 to be Ready"
    );
}

#[tokio::test(start_paused = true)]
async fn ready_pods_serve_growing_metrics_with_scripted_bursts() {
    let (sim, _client) = SimCluster::new();
    let workloads = Workloads::start(&sim, Script::default());
    sim.apply_as("tester", &deployment("web:1.0.0", 1)).unwrap();
    let pod = eventually(MINUTE, "a ready pod", || {
        let all = pods(&sim);
        let ready = all
            .first()
            .is_some_and(|p| p["status"]["containerStatuses"][0]["ready"] == json!(true));
        (ready, all)
    })
    .await;
    let name = text(&pod[0], "/metadata/name").to_owned();
    let url = format!("http://{}:9000/metrics", text(&pod[0], "/status/podIP"));
    let scraper = workloads.scraper();
    assert_eq!(scraper.scrape(&url), workloads.pod_metrics("shop", &name));
    let total = |status: &str| -> u64 {
        scraper
            .scrape(&url)
            .unwrap()
            .lines()
            .filter(|l| {
                l.starts_with("http_requests_total") && l.contains(&format!("status=\"{status}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let before = total("200");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(total("200") >= before + 99, "10 rps for 10 s");
    assert_eq!(total("500"), 0);
    workloads.burst_5xx(|i| i.starts_with("web:"), 0.5, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(total("500"), 50);
    assert!(workloads.pod_metrics("shop", "no-such-pod").is_none());
}
