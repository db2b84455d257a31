//! `health::assess` against the simulated cluster: what is healthy, what
//! waits (and says why), what fails at once (and names the component, the
//! cause and what to look at).

use chrono::TimeDelta;
use serde_json::json;

use super::health::{Assessment, Cause, assess};
use super::steps::objects;
use super::testing::{Fault, Rev, World, everything_changes, t0};
use crate::api::RolloutStep;
use crate::render::{ChildKind, Object};

fn revisions() -> (Rev, Rev) {
    (Rev::of(|_| {}), Rev::of(everything_changes))
}

/// `world` after applying `object` with `fault`.
fn with(world: &World, object: &Object, fault: Option<Fault>) -> World {
    let mut w = world.clone();
    if let Some(f) = fault {
        w.faults.insert(object.hash.clone(), f);
    }
    w.apply(
        &crate::render::Rendered {
            objects: vec![object.clone()],
            secrets: Vec::new(),
        },
        false,
    );
    w
}

fn order(rev: &Rev) -> &Object {
    rev.object(ChildKind::Deployment, "order")
}

fn assess_one(world: &World, object: &Object) -> Assessment {
    assess([object], &world.cluster(), t0())
}

#[test]
fn a_running_revision_is_healthy_in_every_step() {
    let (stable, target) = revisions();
    let world = World::running(&stable.rendered);
    for step in RolloutStep::ALL {
        let a = assess(objects(&stable.rendered, step), &world.cluster(), t0());
        assert!(a.healthy(), "{step}: {a:?}");
        let b = assess(objects(&target.rendered, step), &world.cluster(), t0());
        // A new migration Job is a new object (its name carries its hash).
        let want = if step == RolloutStep::Migrations {
            "NotCreated"
        } else {
            "NotApplied"
        };
        assert_eq!(b.waiting.map(|c| c.reason), Some(want.to_owned()), "{step}");
    }
    let empty = World::empty();
    let a = assess(
        objects(&stable.rendered, RolloutStep::Edge),
        &empty.cluster(),
        t0(),
    );
    assert_eq!(
        a.waiting,
        Some(Cause {
            component: "ingress".into(),
            reason: "NotCreated".into(),
            message: "Ingress shop-ingress does not exist yet".into(),
        })
    );
}

#[test]
fn stuck_containers_fail_at_once_naming_component_and_cause() {
    let (stable, target) = revisions();
    let world = World::running(&stable.rendered);
    let image = "ghcr.io/storekeeper-dev/order-service:1.4.0";
    for (fault, reason, message) in [
        (
            "ImagePullBackOff",
            "ImagePullBackOff",
            format!("ImagePullBackOff for {image}"),
        ),
        (
            "ErrImagePull",
            "ErrImagePull",
            format!("ErrImagePull for {image}"),
        ),
        (
            "InvalidImageName",
            "InvalidImageName",
            format!("InvalidImageName for {image}"),
        ),
        (
            "CreateContainerConfigError",
            "CreateContainerConfigError",
            "CreateContainerConfigError in pod shop-order-".to_owned(),
        ),
        (
            "CrashLoopBackOff",
            "CrashLoopBackOff",
            "CrashLoopBackOff in pod shop-order-".to_owned(),
        ),
    ] {
        let w = with(&world, order(&target), Some(Fault::Waiting(fault)));
        let a = assess_one(&w, order(&target));
        let failure = a
            .failure
            .clone()
            .unwrap_or_else(|| panic!("{fault}: {a:?}"));
        assert_eq!(
            (failure.component.as_str(), failure.reason.as_str()),
            ("order-service", reason)
        );
        assert!(
            failure.message.starts_with(&message),
            "{fault}: {}",
            failure.message
        );
        assert!(
            a.waiting.is_some(),
            "{fault}: the new pod is not available either"
        );
    }
    let w = with(
        &world,
        order(&target),
        Some(Fault::Waiting("CrashLoopBackOff")),
    );
    let crash = assess_one(&w, order(&target)).failure.unwrap();
    assert!(
        crash
            .message
            .ends_with("(container app: Error, exit code 1; 4 restarts)"),
        "{}",
        crash.message
    );
    let w = with(
        &world,
        order(&target),
        Some(Fault::Waiting("CreateContainerConfigError")),
    );
    let config = assess_one(&w, order(&target)).failure.unwrap();
    assert!(
        config.message.ends_with(": secret \"x\" not found"),
        "{}",
        config.message
    );
    assert_eq!(
        config.to_string(),
        format!("order-service: {}", config.message),
        "people read the component first"
    );
}

#[test]
fn deployment_conditions_fail_at_once_but_only_when_current() {
    let (stable, target) = revisions();
    let world = World::running(&stable.rendered);
    let w = with(&world, order(&target), Some(Fault::Deadline));
    let failure = assess_one(&w, order(&target)).failure.unwrap();
    assert_eq!(failure.reason, "ProgressDeadlineExceeded");
    assert!(
        failure.message.contains("has timed out progressing"),
        "{}",
        failure.message
    );
    let w = with(&world, order(&target), Some(Fault::ReplicaFailure));
    let failure = assess_one(&w, order(&target)).failure.unwrap();
    assert_eq!(
        (failure.reason.as_str(), failure.message.as_str()),
        (
            "ReplicaFailure",
            "ReplicaFailure: pods \"x\" is forbidden: exceeded quota"
        )
    );
    // A deadline left over from the last template, not yet seen by the controller.
    let mut lagging = with(&world, order(&target), Some(Fault::Deadline));
    let mut live = lagging
        .children
        .get(ChildKind::Deployment, "shop-order")
        .unwrap()
        .clone();
    live["metadata"]["generation"] = json!(9);
    lagging.children.insert(ChildKind::Deployment, live);
    let a = assess_one(&lagging, order(&target));
    assert_eq!(a.failure, None);
    assert_eq!(
        a.waiting.unwrap().message,
        "the Deployment controller has not seen generation 9 yet"
    );
}

#[test]
fn only_pods_of_the_current_template_are_judged() {
    let (stable, target) = revisions();
    let world = World::running(&stable.rendered);
    let mut broken_old = world
        .pods
        .iter()
        .find(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("shop-order-")
        })
        .unwrap()
        .clone();
    broken_old["status"]["containerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    let mut w = with(&world, order(&target), None);
    assert!(assess_one(&w, order(&target)).healthy());
    // An old pod still terminating, crash-looping: not this revision's problem.
    w.pods.push(broken_old.clone());
    assert!(assess_one(&w, order(&target)).healthy());
    // The same pod as the current template's is.
    let current = w
        .replica_sets
        .iter()
        .rev()
        .find(|rs| {
            rs["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("shop-order-")
        })
        .unwrap();
    broken_old["metadata"]["labels"]["pod-template-hash"] =
        current["metadata"]["labels"]["pod-template-hash"].clone();
    w.pods.push(broken_old);
    assert_eq!(
        assess_one(&w, order(&target)).failure.unwrap().reason,
        "CrashLoopBackOff"
    );
}

#[test]
fn restarts_count_only_in_pods_created_since_the_step_started() {
    let (stable, target) = revisions();
    let world = World::running(&stable.rendered);
    let w = with(&world, order(&target), Some(Fault::Restarting));
    let fresh = assess([order(&target)], &w.cluster(), t0());
    assert_eq!(fresh.failure.unwrap().reason, "Restarting");
    assert_eq!(fresh.waiting, None, "available, yet failed");
    let later = assess([order(&target)], &w.cluster(), t0() + TimeDelta::seconds(1));
    assert!(
        later.healthy(),
        "pods older than the step are not judged by their restarts"
    );
    let old_restarts = assess(
        objects(&stable.rendered, RolloutStep::Backends),
        &world.cluster(),
        t0(),
    );
    assert!(
        old_restarts.healthy(),
        "the running pods restarted 3 times a day ago"
    );
}

#[test]
fn waiting_says_how_far_it_got_and_why() {
    let (stable, target) = revisions();
    let world = World::running(&stable.rendered);
    let w = with(&world, order(&target), Some(Fault::Slow));
    let a = assess_one(&w, order(&target));
    assert_eq!(a.failure, None);
    assert_eq!(
        a.waiting.unwrap().to_string(),
        "order-service: 2/2 pods available, 1/2 updated; pod shop-order-".to_owned()
            + &order(&target).hash[..8]
            + "-0 unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
    );
    let postgres = target.object(ChildKind::StatefulSet, "postgres");
    let w = with(&world, postgres, Some(Fault::Slow));
    let a = assess([postgres], &w.cluster(), t0());
    assert_eq!(
        a.waiting.unwrap().message.split(';').next(),
        Some("0/1 pods ready, 1/1 updated")
    );
}

/// Issue 14: an autoscaled Deployment is healthy at the autoscaler's live
/// count, not the spec's `replicas` (which the operator does not apply).
#[test]
fn an_autoscaled_deployment_is_judged_by_its_live_replicas() {
    let rev = Rev::of(|s| {
        s.spec.services.order.autoscaling = Some(crate::api::Autoscaling {
            min_replicas: 2,
            max_replicas: 8,
            target_cpu_utilization_percentage: 70,
        });
    });
    let object = order(&rev);
    assert!(object.value.pointer("/spec/replicas").is_none());
    let mut world = World::running(&rev.rendered);
    assert!(assess_one(&world, object).healthy());
    // The autoscaler raised it to 5; 2 pods are available so far.
    let mut live = world
        .children
        .get(ChildKind::Deployment, &object.name)
        .unwrap()
        .clone();
    live["spec"]["replicas"] = json!(5);
    live["status"]["availableReplicas"] = json!(2);
    world.children.insert(ChildKind::Deployment, live);
    let a = assess_one(&world, object);
    let waiting = a.waiting.expect("waits for the autoscaler's count");
    assert_eq!(waiting.reason, "NotReady");
    assert!(
        waiting.message.contains("2/5 pods available"),
        "{waiting:?}"
    );
}
