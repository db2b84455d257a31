//! The rollout scenarios of issue 9, with the real controller
//! (`storekeeper::controller::run`) against the simulated cluster
//! (`storekeeper-simcluster`): an API server with real semantics and a
//! scripted Deployment/StatefulSet controller and kubelet. Tokio time is
//! paused, so minutes of cluster time pass in milliseconds.
//!
//! The operator judges deadlines and bakes by the wall clock (it stamps
//! them into status as RFC 3339), as do the timestamps the simulator
//! writes into objects; only the analysis bake needs wall-clock seconds to
//! pass, and that one scenario lets tokio time run for it.

// Helpers outside `#[test]` functions may panic too: this whole file is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "rollout/autoscaling.rs"]
mod autoscaling;
#[path = "rollout/data_retention.rs"]
mod data_retention;
#[path = "rollout/delegated.rs"]
mod delegated;
#[path = "rollout/monitoring.rs"]
mod monitoring;
#[path = "rollout/postgres_upgrade.rs"]
mod postgres_upgrade;
#[path = "rollout/secrets.rs"]
mod secrets;
#[path = "rollout/steady_state.rs"]
mod steady_state;
mod support;
#[path = "rollout/watch_namespaces.rs"]
mod watch_namespaces;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use storekeeper::api::Store;
use storekeeper_simcluster::{Behaviour, Fault, RequestCounts, Script, Verb};

use support::{
    BACKENDS, Harness, NS, STOREFRONT, available, condition, image, image_of, int, remote, store,
    text,
};

/// Every shop Deployment.
const DEPLOYMENTS: [&str; 5] = [
    BACKENDS[0],
    BACKENDS[1],
    BACKENDS[2],
    BACKENDS[3],
    STOREFRONT,
];

/// The rollout steps, in order.
const ORDER: [&str; 6] = [
    "Foundation",
    "Data",
    "Migrations",
    "Backends",
    "Storefront",
    "Edge",
];

/// A Store running `version`, its rollout complete, with an operator.
async fn installed(script: Script, version: &str) -> Harness {
    let mut h = Harness::new(script);
    h.apply(&store(version));
    h.start_operator();
    h.until_complete(version).await;
    h
}

/// Every spec change of a Deployment (its generation moved), in commit
/// order, with the state of every Deployment just before it.
fn spec_changes(seen: &[Value]) -> Vec<(String, Value, BTreeMap<String, Value>)> {
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    let mut changes = Vec::new();
    for d in seen {
        let name = text(d, "/metadata/name").to_owned();
        if let Some(before) = latest.get(&name)
            && int(before, "/metadata/generation") != int(d, "/metadata/generation")
        {
            changes.push((name.clone(), d.clone(), latest.clone()));
        }
        latest.insert(name, d.clone());
    }
    changes
}

#[tokio::test(start_paused = true)]
async fn a_good_upgrade_goes_step_by_step() {
    let h = installed(Script::default(), "0.1.0").await;
    let deployments = h.record::<Deployment>();
    let started_events = h.event_count("RolloutStarted");
    h.apply(&store("0.2.0"));
    let status = h.until_complete("0.2.0").await;

    let changes = spec_changes(&deployments.seen());
    let order: Vec<&str> = changes.iter().map(|(n, _, _)| n.as_str()).collect();
    println!("Deployment spec changes, in order: {order:?}");
    assert_eq!(changes.len(), 5, "each Deployment changed once: {order:?}");
    let (name, storefront, before) = changes.last().unwrap();
    assert_eq!(name, STOREFRONT, "the storefront changes last: {order:?}");
    assert_eq!(image_of(storefront), image("storefront", "0.2.0"));
    for backend in BACKENDS {
        let d = &before[backend];
        assert!(
            image_of(d).ends_with(":0.2.0") && available(d),
            "{backend} runs 0.2.0 and is available before the storefront changes: {:#}",
            d["status"]
        );
    }

    assert_eq!(text(&status, "/rollout/state"), "Complete");
    assert_eq!(text(&status, "/currentVersion"), "0.2.0");
    for d in BACKENDS.into_iter().chain([STOREFRONT]) {
        assert!(h.image(d).ends_with(":0.2.0"), "{d}: {}", h.image(d));
    }
    assert_eq!(h.event_count("RolloutStarted"), started_events + 1);
    assert_eq!(h.event_count("RolloutComplete"), 2, "install and upgrade");
}

/// The steps a rollout stopped at, as status showed them (consecutive
/// repeats dropped).
fn steps_seen(stores: &[Value]) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    for s in stores {
        let step = text(s, "/status/rollout/step");
        if !step.is_empty() && steps.last().is_none_or(|l| l != step) {
            steps.push(step.to_owned());
        }
    }
    steps
}

#[tokio::test(start_paused = true)]
async fn a_good_upgrade_reports_each_step_in_order_once() {
    let h = installed(Script::default(), "0.1.0").await;
    let stores = h.record::<Store>();
    let before = h.events();
    h.apply(&store("0.2.0"));
    h.until_complete("0.2.0").await;
    let steps = steps_seen(&stores.seen());
    assert!(
        steps.is_sorted_by_key(|s| ORDER.iter().position(|o| o == s)),
        "steps go forward only: {steps:?}"
    );
    assert!(steps.contains(&"Backends".to_owned()) && steps.contains(&"Storefront".to_owned()));
    // Each Event is its own (kube's recorder would fold a StepStarted
    // into the install's and keep that note), and says which revision.
    let all = h.events();
    assert!(all.iter().all(|e| e.count == 1), "{all:#?}");
    let upgrade = &all[before.len()..];
    println!("Events of the upgrade: {upgrade:#?}");
    let revision = text(&h.store(), "/status/rollout/targetRevision").to_owned();
    let notes = |reason: &str| -> Vec<&str> {
        upgrade
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.note.as_str())
            .collect()
    };
    let expected: Vec<String> = steps
        .iter()
        .map(|step| format!("step {step} of revision {revision}"))
        .collect();
    assert_eq!(
        notes("StepStarted"),
        expected,
        "one StepStarted per step waited at"
    );
    let started = notes("RolloutStarted");
    assert_eq!(started.len(), 1);
    assert!(
        started[0].contains("(version 0.2.0) over revision"),
        "{started:?}"
    );
    assert_eq!(
        notes("RolloutComplete"),
        [format!(
            "revision {revision} (version 0.2.0) runs in every step"
        )]
    );
    assert!(upgrade.iter().all(|e| !e.warning), "{upgrade:#?}");
}

/// A Store at `old`, rolled out to `new`, which failed; waits for the
/// rollback, which must come within `healthTimeoutSeconds` plus `slack`.
/// Returns the harness and the status.
async fn rolled_back(script: Script, old: &str, new: &Value, slack: Duration) -> (Harness, Value) {
    let h = installed(script, old).await;
    let applied = tokio::time::Instant::now();
    h.apply(new);
    let generation = int(&h.store(), "/metadata/generation");
    let status = h.until_state("RolledBack").await;
    let took = applied.elapsed();
    let timeout = new
        .pointer("/spec/rollout/healthTimeoutSeconds")
        .and_then(Value::as_u64)
        .map_or(Duration::from_mins(10), Duration::from_secs);
    println!("rolled back {took:?} after the new spec; status {status:#}");
    assert!(
        took < timeout + slack,
        "rolled back within healthTimeoutSeconds ({timeout:?}) + {slack:?}, took {took:?}"
    );
    let stored = h.store();
    assert_eq!(stored["spec"], new["spec"], "spec untouched");
    assert_eq!(int(&stored, "/metadata/generation"), generation);
    assert_eq!(text(&status, "/currentVersion"), old);
    assert_eq!(text(&status, "/phase"), "Degraded");
    assert_eq!(text(condition(&status, "RolledBack"), "/status"), "True");
    assert_eq!(text(condition(&status, "Stalled"), "/status"), "True");
    assert_eq!(text(condition(&status, "Ready"), "/status"), "False");
    for d in DEPLOYMENTS {
        let dep = h.deployment(d);
        assert!(
            image_of(&dep).ends_with(&format!(":{old}")),
            "{d} back on {old}: {}",
            image_of(&dep)
        );
    }
    h.until(Duration::from_mins(5), "every Deployment available", |h| {
        DEPLOYMENTS
            .iter()
            .all(|d| available(&h.deployment(d)))
            .then_some(())
    })
    .await;
    let warnings: Vec<String> = h
        .events()
        .iter()
        .filter(|e| e.warning)
        .map(|e| format!("{}: {}", e.reason, e.note))
        .collect();
    println!("Warning Events: {warnings:#?}");
    // One Warning of each, naming the component and the cause.
    let cause = format!(
        "{}: {}",
        text(&status, "/rollout/failure/component"),
        text(&status, "/rollout/failure/message")
    );
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("RolloutFailed: ") && warnings[0].contains(&cause),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].starts_with("RolledBack: ") && warnings[1].contains(&cause),
        "{warnings:#?}"
    );
    (h, status)
}

/// The Stalled condition has one of `reasons` and a message naming
/// `component` and saying `cause`, and `status.rollout.failure` agrees.
fn assert_stalled_by(status: &Value, component: &str, reasons: &[&str], cause: &str) {
    let stalled = condition(status, "Stalled");
    let reason = text(stalled, "/reason");
    assert!(reasons.contains(&reason), "Stalled reason {reason}");
    let message = text(stalled, "/message");
    assert!(
        message.contains(component) && message.contains(cause),
        "Stalled message names {component} and says {cause}: {message}"
    );
    assert_eq!(text(status, "/rollout/failure/component"), component);
    assert_eq!(text(status, "/rollout/failure/reason"), reason);
}

/// The Store at `version` with `f` applied to its spec.
fn store_with(version: &str, f: impl FnOnce(&mut Value)) -> Value {
    let mut s = store(version);
    f(&mut s["spec"]);
    s
}

#[tokio::test(start_paused = true)]
async fn a_bad_image_is_rolled_back_and_not_retried() {
    let bad = image("order-service", "0.2.0");
    let script = Script::default().image(move |i| i == bad, Behaviour::ImagePullBackOff);
    let new = store_with("0.2.0", |s| {
        s["rollout"] = json!({"healthTimeoutSeconds": 120});
    });
    let (mut h, status) = rolled_back(script, "0.1.0", &new, Duration::ZERO).await;
    let reasons = ["ImagePullBackOff", "ErrImagePull"];
    let cause = format!(" for {}", image("order-service", "0.2.0"));
    // The image is first needed by its migration Job: the rollout stops
    // there, before any serving pod was touched.
    assert_stalled_by(&status, "order-service migrations", &reasons, &cause);
    assert_eq!(text(&status, "/rollout/failure/step"), "Migrations");

    // The same spec again (a GitOps re-sync: an identical apply, then one
    // that only touches metadata), and the operator restarted: the failed
    // revision is not rolled out again, nothing flaps.
    let started = h.event_count("RolloutStarted");
    let status_writes = h.status_writes();
    let deployment_writes = h.writes_to("deployments");
    h.apply(&new);
    let mut annotated = new.clone();
    annotated["metadata"]["annotations"] = json!({"argocd.argoproj.io/tracking-id": "shop:x"});
    h.apply(&annotated);
    tokio::time::sleep(Duration::from_mins(10)).await;
    h.stop_operator().await;
    h.start_operator();
    tokio::time::sleep(Duration::from_mins(10)).await;
    let after = h.store()["status"].clone();
    assert_eq!(
        h.event_count("RolloutStarted"),
        started,
        "not started again"
    );
    assert_eq!(
        h.writes_to("deployments"),
        deployment_writes,
        "no Deployment touched"
    );
    assert_eq!(h.status_writes(), status_writes, "status not rewritten");
    assert_eq!(after, status, "status unchanged");
    for d in DEPLOYMENTS {
        assert!(h.image(d).ends_with(":0.1.0"), "{d}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_migration_is_rolled_back_before_any_pod_changes() {
    let bad = image("payment-service", "0.2.0");
    let script = Script::default().run_once(move |i| i == bad, Behaviour::CrashLoop);
    let h = installed(script, "0.1.0").await;
    let jobs_before: Vec<String> = h
        .sim
        .list("jobs", Some(NS), "")
        .unwrap()
        .iter()
        .map(|j| text(j, "/metadata/name").to_owned())
        .collect();
    assert_eq!(jobs_before.len(), 4, "one migration Job per database");
    let deployment_writes = h.writes_to("deployments");
    h.apply(&store("0.2.0"));
    let status = h.until_state("RolledBack").await;
    assert_stalled_by(
        &status,
        "payment-service migrations",
        &["BackoffLimitExceeded"],
        "kubectl logs job/shop-payments-migrate-",
    );
    assert_eq!(text(&status, "/rollout/failure/step"), "Migrations");
    assert_eq!(
        h.writes_to("deployments"),
        deployment_writes,
        "no serving pod was touched"
    );
    // The stable revision's Jobs are kept (they ran; nothing reverts a
    // schema) and the failed one is gone once the rollback settled.
    let jobs_after: Vec<String> = h
        .until(Duration::from_mins(2), "the failed Job pruned", |h| {
            let names: Vec<String> = h
                .sim
                .list("jobs", Some(NS), "")
                .unwrap()
                .iter()
                .map(|j| text(j, "/metadata/name").to_owned())
                .collect();
            (names.len() == 4).then_some(names)
        })
        .await;
    assert_eq!(jobs_after, jobs_before);
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_is_rolled_back() {
    let bad = image("payment-service", "0.2.0");
    let script = Script::default().image(move |i| i == bad, Behaviour::CrashLoop);
    let (_h, status) = rolled_back(script, "0.1.0", &store("0.2.0"), Duration::ZERO).await;
    let reasons = ["CrashLoopBackOff", "Restarting"];
    assert_stalled_by(&status, "payment-service", &reasons, "container payment");
}

#[tokio::test(start_paused = true)]
async fn a_5xx_burst_during_the_bake_is_rolled_back() {
    let h = installed(Script::default(), "0.1.0").await;
    let new = store_with("0.2.0", |s| {
        s["rollout"] = json!({"analysis": {
            "bakeSeconds": 10, "maxErrorRatio": "0.05", "minRequests": 10,
        }});
    });
    h.apply(&new);
    h.until(Duration::from_mins(10), "the Backends bake", |h| {
        let status = h.store()["status"].clone();
        (text(&status, "/rollout/step") == "Backends"
            && !text(&status, "/rollout/bakeStartedAt").is_empty())
        .then_some(())
    })
    .await;
    // Half of order-service's new requests fail from now on.
    let order = image("order-service", "0.2.0");
    h.workloads
        .burst_5xx(move |i| i == order, 0.5, Duration::from_hours(1));
    // The bake is judged by the wall clock: let tokio time run with it.
    tokio::time::resume();
    let status = h.until_state("RolledBack").await;
    tokio::time::pause();
    println!("status {status:#}");
    assert_stalled_by(&status, "order-service", &["AnalysisFailed"], "5xx ratio");
    assert_eq!(text(&status, "/rollout/failure/step"), "Backends");
    assert_eq!(text(&status, "/currentVersion"), "0.1.0");
    assert_eq!(text(condition(&status, "RolledBack"), "/status"), "True");
    assert_eq!(h.store()["spec"], new["spec"], "spec untouched");
    for d in DEPLOYMENTS {
        assert!(h.image(d).ends_with(":0.1.0"), "{d}: {}", h.image(d));
    }
    assert_eq!(h.image(STOREFRONT), image("storefront", "0.1.0"));
    assert!(
        h.events()
            .iter()
            .any(|e| e.warning && e.reason == "RolloutFailed")
    );
}

#[tokio::test(start_paused = true)]
async fn an_operator_restarted_mid_step_resumes_there() {
    let slow = Behaviour::Healthy {
        after: Duration::from_mins(2),
    };
    let script = Script::default().image(|i| i.ends_with("-service:0.2.0"), slow);
    let mut h = installed(script, "0.1.0").await;
    let stores = h.record::<Store>();
    let steps_before = h.event_count("StepStarted");
    h.apply(&store("0.2.0"));
    let at_backends = h
        .until(Duration::from_mins(5), "the Backends step", |h| {
            let status = h.store()["status"].clone();
            let applied = BACKENDS.iter().all(|d| h.image(d).ends_with(":0.2.0"));
            (applied && text(&status, "/rollout/step") == "Backends").then_some(status)
        })
        .await;
    let started_at = text(&at_backends, "/rollout/stepStartedAt").to_owned();
    h.stop_operator().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let generations: Vec<i64> = BACKENDS
        .iter()
        .map(|d| int(&h.deployment(d), "/metadata/generation"))
        .collect();
    h.sim.clear_requests();
    h.start_operator();
    h.until_complete("0.2.0").await;

    // The new process went on from the Backends step: the same step clock,
    // nothing of the earlier steps or the backends applied again, no new
    // rollout, and one StepStarted per step of the upgrade.
    let backends_clock: Vec<String> = stores
        .seen()
        .iter()
        .filter(|s| text(s, "/status/rollout/step") == "Backends")
        .map(|s| text(s, "/status/rollout/stepStartedAt").to_owned())
        .collect();
    assert!(
        backends_clock.iter().all(|t| *t == started_at),
        "the Backends step kept its clock: {backends_clock:?}"
    );
    let after: Vec<i64> = BACKENDS
        .iter()
        .map(|d| int(&h.deployment(d), "/metadata/generation"))
        .collect();
    assert_eq!(after, generations, "no backend re-applied");
    let applied: Vec<String> = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.verb == Verb::Apply && r.resource != "stores/status")
        .map(|r| format!("{} {}", r.resource, r.name.clone().unwrap_or_default()))
        .collect();
    println!("applied after the restart: {applied:?}");
    assert!(
        applied
            .iter()
            .all(|a| a.ends_with(" shop-storefront") || a.starts_with("ingresses ")),
        "only the later steps are applied after the restart: {applied:?}"
    );
    assert_eq!(
        h.event_count("RolloutStarted"),
        2,
        "install and upgrade only"
    );
    assert_eq!(
        h.event_count("StepStarted") - steps_before,
        i64::try_from(steps_seen(&stores.seen()).len()).unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn a_spec_change_during_a_rollback_wins() {
    // The old version's pods take two minutes to start, so rolling the
    // backends back takes that long; the new storefront cannot be pulled.
    let slow = Behaviour::Healthy {
        after: Duration::from_mins(2),
    };
    let bad = image("storefront", "0.2.0");
    let script = Script::default()
        .image(move |i| i == bad, Behaviour::ImagePullBackOff)
        .image(|i| i.ends_with(":0.1.0"), slow);
    let h = installed(script, "0.1.0").await;
    let rolled_back_events = h.event_count("RolledBack");
    h.apply(&store("0.2.0"));
    let rolling_back = h
        .until(Duration::from_mins(10), "rolling back the backends", |h| {
            let status = h.store()["status"].clone();
            (text(&status, "/rollout/state") == "RollingBack"
                && text(&status, "/rollout/step") == "Backends")
                .then_some(status)
        })
        .await;
    assert_eq!(text(&rolling_back, "/phase"), "RollingBack");
    let cause = format!(" for {}", image("storefront", "0.2.0"));
    assert_stalled_by(
        &rolling_back,
        "storefront",
        &["ImagePullBackOff", "ErrImagePull"],
        &cause,
    );
    let started = h.event_count("RolloutStarted");
    h.apply(&store("0.3.0"));
    let status = h.until_complete("0.3.0").await;
    assert_eq!(h.event_count("RolloutStarted"), started + 1);
    assert_eq!(
        h.event_count("RolledBack"),
        rolled_back_events,
        "the rollback was overtaken, never finished"
    );
    assert_eq!(text(condition(&status, "RolledBack"), "/status"), "False");
    assert_eq!(text(condition(&status, "Stalled"), "/status"), "False");
    for d in DEPLOYMENTS {
        assert_eq!(h.image(d), image_for(d, "0.3.0"));
        assert!(available(&h.deployment(d)), "{d}");
    }
}

/// The image Deployment `d` runs at `version`.
fn image_for(d: &str, version: &str) -> String {
    let package = match d.trim_start_matches("shop-") {
        "storefront" => "storefront".to_owned(),
        other => format!("{other}-service"),
    };
    image(&package, version)
}

#[tokio::test(start_paused = true)]
async fn pausing_mid_rollout_holds_and_resuming_finishes() {
    let slow = Behaviour::Healthy {
        after: Duration::from_mins(2),
    };
    let script = Script::default().image(|i| i.ends_with("-service:0.2.0"), slow);
    let h = installed(script, "0.1.0").await;
    h.apply(&store("0.2.0"));
    h.until(Duration::from_mins(5), "the Backends step", |h| {
        let status = h.store()["status"].clone();
        (text(&status, "/rollout/step") == "Backends").then_some(())
    })
    .await;
    h.apply(&store_with("0.2.0", |s| s["paused"] = json!(true)));
    let paused = h
        .until(Duration::from_mins(1), "phase Paused", |h| {
            let status = h.store()["status"].clone();
            (text(&status, "/phase") == "Paused").then_some(status)
        })
        .await;
    assert!(!text(&paused, "/rollout/pausedAt").is_empty(), "{paused:#}");
    let writes = h.writes_to("deployments");
    let generations: Vec<i64> = DEPLOYMENTS
        .iter()
        .map(|d| int(&h.deployment(d), "/metadata/generation"))
        .collect();
    // Long enough for the backends to become available: still nothing moves.
    tokio::time::sleep(Duration::from_mins(10)).await;
    assert!(BACKENDS.iter().all(|d| available(&h.deployment(d))));
    let held = h.store()["status"].clone();
    assert_eq!(text(&held, "/phase"), "Paused");
    assert_eq!(text(&held, "/rollout/step"), "Backends");
    assert_eq!(h.writes_to("deployments"), writes, "no Deployment written");
    let after: Vec<i64> = DEPLOYMENTS
        .iter()
        .map(|d| int(&h.deployment(d), "/metadata/generation"))
        .collect();
    assert_eq!(after, generations);
    assert_eq!(h.image(STOREFRONT), image("storefront", "0.1.0"));

    h.apply(&store("0.2.0"));
    let done = h.until_complete("0.2.0").await;
    assert!(done.pointer("/rollout/pausedAt").is_none());
    assert_eq!(h.image(STOREFRONT), image("storefront", "0.2.0"));
}

#[tokio::test(start_paused = true)]
async fn without_auto_rollback_a_failed_step_holds() {
    // The new binary migrates fine but crashes serving.
    let bad = image("order-service", "0.2.0");
    let script = Script::default().image(move |i| i == bad, Behaviour::CrashLoop);
    let h = installed(script, "0.1.0").await;
    let new = store_with("0.2.0", |s| s["rollout"] = json!({"autoRollback": false}));
    h.apply(&new);
    let halted = h.until_state("Halted").await;
    println!("status {halted:#}");
    let message = text(&halted, "/rollout/message");
    assert!(
        message.contains("autoRollback is off") && message.contains("old pods keep serving"),
        "{message}"
    );
    assert_stalled_by(
        &halted,
        "order-service",
        &["CrashLoopBackOff", "Restarting"],
        "container order",
    );
    let rolled_back = condition(&halted, "RolledBack");
    assert_eq!(text(rolled_back, "/status"), "False");
    assert_eq!(text(rolled_back, "/reason"), "AutoRollbackDisabled");
    assert_eq!(text(&halted, "/currentVersion"), "0.1.0");
    assert!(
        h.events()
            .iter()
            .any(|e| e.warning && e.reason == "RolloutFailed")
    );

    let writes = h.writes_to("deployments");
    tokio::time::sleep(Duration::from_mins(10)).await;
    assert_eq!(h.store()["status"], halted, "holds, unchanged");
    assert_eq!(h.writes_to("deployments"), writes);
    // Held where it failed: the order Deployment asks for the new image, its
    // old pods keep serving; the storefront was never touched.
    assert_eq!(h.image("shop-order"), image("order-service", "0.2.0"));
    let order = h.deployment("shop-order");
    assert_eq!(int(&order, "/status/availableReplicas"), 2);
    let serving: Vec<Value> = h
        .sim
        .list("pods", Some(NS), "app.kubernetes.io/name=order")
        .unwrap()
        .into_iter()
        .filter(|p| {
            text(p, "/spec/containers/0/image") == image("order-service", "0.1.0")
                && p.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True")
                    })
        })
        .collect();
    assert_eq!(serving.len(), 2, "the old pods serve");
    assert_eq!(h.image(STOREFRONT), image("storefront", "0.1.0"));
}

#[tokio::test(start_paused = true)]
async fn a_refused_apply_shows_in_status_while_the_rest_goes_out() {
    let h = installed(Script::default(), "0.1.0").await;
    let refusal = "admission webhook \"images.example.com\" denied the request: unsigned image";
    h.sim.inject(
        Fault::new(Verb::Apply, "deployments")
            .named("shop-order")
            .answer(422, "Invalid", refusal)
            .times(3),
    );
    h.apply(&store("0.2.0"));
    let refused = h
        .until(Duration::from_mins(5), "an apply failure in status", |h| {
            let status = h.store()["status"].clone();
            let failures = status["applyFailures"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            failures.then_some(status)
        })
        .await;
    println!("status {refused:#}");
    let what = format!("Deployment shop-order: {refusal}");
    assert_eq!(refused["applyFailures"], json!([what]));
    assert_eq!(text(&refused, "/phase"), "Degraded");
    let stalled = condition(&refused, "Stalled");
    assert_eq!(text(stalled, "/status"), "True");
    assert_eq!(text(stalled, "/reason"), "ApplyFailed");
    assert_eq!(text(stalled, "/message"), what);
    assert_eq!(text(condition(&refused, "Ready"), "/reason"), "ApplyFailed");
    // The other backends of the step went out in the same pass.
    for d in ["shop-user", "shop-product", "shop-payment"] {
        assert_eq!(h.image(d), image_for(d, "0.2.0"));
    }
    assert_eq!(h.image("shop-order"), image("order-service", "0.1.0"));
    let warnings: Vec<_> = h.events().into_iter().filter(|e| e.warning).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].reason, "ApplyFailed");
    assert_eq!(
        warnings[0].count, 1,
        "announced once, though refused thrice"
    );
    assert_eq!(warnings[0].note, what);

    // Once the API server takes it, the rollout goes on and the failure clears.
    let done = h.until_complete("0.2.0").await;
    assert!(done.get("applyFailures").is_none(), "{done:#}");
    assert_eq!(h.image("shop-order"), image("order-service", "0.2.0"));
}

/// Phases in the order the recorded Stores went through them (repeats dropped).
fn phases(stores: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in stores {
        let phase = text(s, "/status/phase");
        if !phase.is_empty() && out.last().is_none_or(|l| l != phase) {
            out.push(phase.to_owned());
        }
    }
    out
}

/// Every condition of `after` whose `lastTransitionTime` moved though its
/// `status` did not flip from `before`.
fn moved_without_flip(before: &Value, after: &Value) -> Vec<String> {
    let Some(conditions) = after.pointer("/conditions").and_then(Value::as_array) else {
        return Vec::new();
    };
    conditions
        .iter()
        .filter_map(|c| {
            let type_ = text(c, "/type");
            let old = condition(before, type_);
            (!old.is_null()
                && text(old, "/status") == text(c, "/status")
                && text(old, "/lastTransitionTime") != text(c, "/lastTransitionTime"))
            .then(|| type_.to_owned())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_lagging_store_watch_still_yields_each_transition_once() {
    let mut h = Harness::new(Script::default());
    h.sim
        .set_watch_lag("stores", Duration::from_secs(2))
        .unwrap();
    let stores = h.record::<Store>();
    h.apply(&store("0.1.0"));
    h.start_operator();
    h.until_complete("0.1.0").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let installed = stores.seen().len();
    let install_writes = h.status_writes();
    h.apply(&store("0.2.0"));
    h.until_complete("0.2.0").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = stores.seen();
    let (install, upgrade) = seen.split_at(installed);
    println!(
        "status writes: install {install_writes}, upgrade {}; phases: install {:?}, upgrade {:?}; Events {:#?}",
        h.status_writes() - install_writes,
        phases(install),
        phases(upgrade),
        h.events()
    );

    // Every status write changed the status (none repeated a stale one),
    // and no condition's lastTransitionTime moved without a flip.
    let status_changes = seen
        .windows(2)
        .filter(|w| w[0]["status"] != w[1]["status"])
        .count()
        + usize::from(seen.first().is_some_and(|s| s.get("status").is_some()));
    assert_eq!(
        h.status_writes(),
        status_changes,
        "no write without a change"
    );
    for w in seen.windows(2) {
        let moved = moved_without_flip(&w[0]["status"], &w[1]["status"]);
        assert!(moved.is_empty(), "{moved:?} moved without flipping");
    }
    // Each rollout goes through its phases once, without flapping back.
    assert_eq!(
        phases(&seen),
        ["Progressing", "Ready", "Progressing", "Ready"],
        "install, then upgrade"
    );
    // Each Event once, in order: per rollout its start, one StepStarted per
    // step it waited at, its completion. The phase Events (Pending ->
    // Progressing -> Ready) tell the same news, so none goes out beside
    // them — the lag made the old operator repeat those (Pending x4).
    let mut expected = Vec::new();
    for part in [install, upgrade] {
        expected.push("RolloutStarted".to_owned());
        expected.extend(steps_seen(part).iter().map(|_| "StepStarted".to_owned()));
        expected.push("RolloutComplete".to_owned());
    }
    let events = h.events();
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, expected, "{events:#?}");
    assert!(
        events.iter().all(|e| !e.warning && e.count == 1),
        "{events:#?}"
    );
    let mut news: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.reason.as_str(), e.note.as_str()))
        .collect();
    news.sort_unstable();
    news.dedup();
    assert_eq!(news.len(), events.len(), "an Event repeated: {events:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_missed_progress_deadline_is_rolled_back() {
    // Pods that never pass their readiness probe: the Deployment's progress
    // deadline (healthTimeoutSeconds, on the simulator's tokio clock) runs out.
    let stuck = image("user-service", "0.2.0");
    let script = Script::default().image(move |i| i == stuck, Behaviour::NeverReady);
    let new = store_with("0.2.0", |s| {
        s["rollout"] = json!({"healthTimeoutSeconds": 120});
    });
    // Noticed within a poll (10 s) of the deadline.
    let (h, status) = rolled_back(script, "0.1.0", &new, Duration::from_secs(15)).await;
    let reasons = ["ProgressDeadlineExceeded"];
    assert_stalled_by(&status, "user-service", &reasons, "timed out progressing");

    // A new spec starts a new rollout, which the old deadline does not fail.
    let fixed = store_with("0.3.0", |s| {
        s["rollout"] = json!({"healthTimeoutSeconds": 120});
    });
    h.apply(&fixed);
    let done = h.until_complete("0.3.0").await;
    assert_eq!(text(condition(&done, "RolledBack"), "/status"), "False");
    assert_eq!(text(condition(&done, "Stalled"), "/status"), "False");
    assert!(done.pointer("/rollout/failure").is_none(), "{done:#}");
}

/// How many Stores the benchmark runs: 100, or `STOREKEEPER_BENCH_STORES`
/// for a cheaper figure (a release build takes about 13 minutes for 100).
fn stores() -> usize {
    std::env::var("STOREKEEPER_BENCH_STORES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

/// Applies every benchmark Store at `version` and waits until each has
/// rolled out completely; returns the API requests made meanwhile and how
/// long it took in real time. A failure names how many were done.
async fn roll_all(h: &Harness, version: &str, limit: Duration) -> (RequestCounts, Duration) {
    h.sim.clear_requests();
    let real = std::time::Instant::now();
    let stores = stores();
    for i in 0..stores {
        let mut s = store(version);
        s["metadata"]["namespace"] = json!(format!("shop-{i}"));
        h.apply(&s);
    }
    loop {
        let done = h
            .sim
            .list("stores", None, "")
            .unwrap()
            .iter()
            .filter(|s| {
                text(s, "/status/rollout/state") == "Complete"
                    && text(s, "/status/currentVersion") == version
                    && text(s, "/status/phase") == "Ready"
            })
            .count();
        if done == stores {
            return (h.sim.request_counts(), real.elapsed());
        }
        assert!(
            real.elapsed() < limit,
            "{done}/{stores} Stores complete at {version}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One line of figures and the requests by verb and resource.
fn figures(what: &str, counts: &RequestCounts, took: Duration) -> String {
    let stores = stores();
    let tenths = counts.total() * 10 / stores;
    format!(
        "{what}: {stores} Stores complete in {took:.1?} real time; {} API requests, {}.{} per Store\n{counts}",
        counts.total(),
        tenths / 10,
        tenths % 10,
    )
}

/// Ten minutes of (paused) time with every Store at rest: the passes the
/// operator made (each Store's five-minute resync) and the requests they cost.
async fn at_rest(h: &Harness) -> String {
    tokio::time::sleep(Duration::from_mins(2)).await;
    h.sim.clear_requests();
    let before = h.metrics.reconciles.get();
    tokio::time::sleep(Duration::from_mins(10)).await;
    let counts = h.sim.request_counts();
    let passes = h.metrics.reconciles.get() - before;
    format!(
        "in one process, at rest: {passes} passes in 10 minutes; {} LIST, {} GET, {} writes, {} requests in all\n{counts}",
        counts.verb(Verb::List),
        counts.verb(Verb::Get),
        [
            Verb::Apply,
            Verb::Create,
            Verb::Patch,
            Verb::Update,
            Verb::Delete
        ]
        .into_iter()
        .map(|v| counts.verb(v))
        .sum::<usize>(),
        counts.total(),
    )
}

/// 100 Stores created at once, then all upgraded at once, each run to
/// completion, twice: with the operator in this process (API requests in
/// total and per Store, then ten minutes at rest; this process's peak RSS,
/// which includes the simulator), then with the release `storekeeper run`
/// in a process of its own talking HTTP to the simulator (that process's
/// peak RSS: the operator's own). Run with
/// `cargo test --release -p storekeeper --test rollout hundred -- --ignored --nocapture`.
#[tokio::test(start_paused = true)]
#[ignore = "benchmark; prints figures"]
async fn a_hundred_stores_install_and_upgrade_at_once() {
    let limit = Duration::from_mins(30);
    let mut h = Harness::new(Script::default());
    h.start_operator();
    let mut report = Vec::new();
    for (what, version) in [("install", "0.1.0"), ("upgrade", "0.2.0")] {
        let (counts, took) = roll_all(&h, version, limit).await;
        report.push(figures(&format!("in one process, {what}"), &counts, took));
    }
    report.push(at_rest(&h).await);
    h.stop_operator().await;
    for i in 0..stores() {
        for d in DEPLOYMENTS {
            let dep = h.sim.get("deployments", &format!("shop-{i}"), d).unwrap();
            assert!(image_of(&dep).ends_with(":0.2.0"), "shop-{i}/{d}");
        }
    }
    let changes = h.sim.resource_version();
    drop(h);
    let own = format!(
        "peak RSS of this process, operator and simulator ({changes} changes kept for watches): VmHWM {}",
        remote::proc_status("self", "VmHWM")
    );

    // The operator alone: a child process, in real time.
    tokio::time::resume();
    let h = Harness::new(Script::default());
    let addr = remote::serve(&h.sim).await;
    let dir = std::env::temp_dir().join(format!("storekeeper-hundred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = remote::spawn_operator(addr, &dir);
    let pid = child.pid();
    for (what, version) in [("install", "0.1.0"), ("upgrade", "0.2.0")] {
        let (counts, took) = roll_all(&h, version, limit).await;
        report.push(figures(
            &format!("operator in its own process, {what}"),
            &counts,
            took,
        ));
    }
    let operator = format!(
        "peak RSS of the operator's own process ({}): VmHWM {}, now VmRSS {} (heap and stacks RssAnon {}, mapped files RssFile {})",
        remote::operator_binary().display(),
        remote::proc_status(&pid, "VmHWM"),
        remote::proc_status(&pid, "VmRSS"),
        remote::proc_status(&pid, "RssAnon"),
        remote::proc_status(&pid, "RssFile"),
    );
    let peak_kib: u64 = remote::proc_status(&pid, "VmHWM")
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    drop(child);
    std::fs::remove_dir_all(&dir).unwrap();
    println!("{}\n\n{own}\n{operator}", report.join("\n\n"));
    // The chart limits the operator to 256 Mi; past it, it is OOM-killed
    // and meets the same backlog again on restart.
    assert!(
        peak_kib < 256 * 1024,
        "the operator peaked at {peak_kib} KiB"
    );
}

#[tokio::test(start_paused = true)]
async fn reverting_the_spec_after_a_rollback_settles_without_touching_the_shop() {
    let bad = image("order-service", "0.2.0");
    let script = Script::default().image(move |i| i == bad, Behaviour::ImagePullBackOff);
    let (h, _) = rolled_back(script, "0.1.0", &store("0.2.0"), Duration::ZERO).await;
    let deployment_writes = h.writes_to("deployments");
    let generations: Vec<i64> = DEPLOYMENTS
        .iter()
        .map(|d| int(&h.deployment(d), "/metadata/generation"))
        .collect();
    // What a GitOps user does next: revert the commit.
    h.apply(&store("0.1.0"));
    let done = h.until_complete("0.1.0").await;
    println!("status {done:#}");
    assert_eq!(text(condition(&done, "RolledBack"), "/status"), "False");
    assert_eq!(text(condition(&done, "Stalled"), "/status"), "False");
    assert_eq!(text(condition(&done, "Ready"), "/status"), "True");
    assert_eq!(
        text(&done, "/rollout/targetRevision"),
        text(&done, "/rollout/stableRevision")
    );
    assert_eq!(
        h.writes_to("deployments"),
        deployment_writes,
        "nothing to apply"
    );
    let after: Vec<i64> = DEPLOYMENTS
        .iter()
        .map(|d| int(&h.deployment(d), "/metadata/generation"))
        .collect();
    assert_eq!(after, generations);
}

#[tokio::test(start_paused = true)]
async fn a_bad_first_install_holds_and_a_fixed_spec_rolls_out() {
    let bad = image("product-service", "0.1.0");
    let script = Script::default().image(move |i| i == bad, Behaviour::ImagePullBackOff);
    let mut h = Harness::new(script);
    h.apply(&store("0.1.0"));
    h.start_operator();
    let halted = h.until_state("Halted").await;
    println!("status {halted:#}");
    let cause = format!(" for {}", image("product-service", "0.1.0"));
    assert_stalled_by(
        &halted,
        "product-service migrations",
        &["ImagePullBackOff", "ErrImagePull"],
        &cause,
    );
    assert_eq!(
        text(condition(&halted, "RolledBack"), "/reason"),
        "NoStableRevision"
    );
    assert!(halted.get("currentVersion").is_none(), "nothing serves yet");
    assert!(
        h.sim.get("deployments", NS, STOREFRONT).is_none(),
        "no later step went out"
    );
    h.apply(&store("0.1.1"));
    h.until_complete("0.1.1").await;
    for d in DEPLOYMENTS {
        assert_eq!(h.image(d), image_for(d, "0.1.1"));
    }
}
