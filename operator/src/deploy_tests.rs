//! The deploy verdict read off a Store's status, and `set_version` + `wait`
//! against a mock API server that checks the exact requests.

use std::time::Duration;

use http::{Method, Request, Response};
use kube::Api;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use super::{DeployError, Patience, Target, Verdict, set_version, verdict, wait};
use crate::api::Store;
use crate::fixtures::{ApiServerVerifier, Expect, Scenario, store};

const PATH: &str = "/apis/storekeeper.dev/v1alpha1/namespaces/shop/stores/shop";

fn with(status: Value, generation: i64) -> Store {
    let mut s = store("shop");
    s.metadata.generation = Some(generation);
    s.status = Some(serde_json::from_value(status).unwrap());
    s
}

fn ready_at(version: &str, generation: i64) -> Value {
    json!({
        "observedGeneration": generation,
        "phase": "Ready",
        "currentVersion": version,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AllComponentsReady", "lastTransitionTime": "2026-12-01T00:00:00Z"},
            {"type": "Stalled", "status": "False", "reason": "AllComponentsReady", "lastTransitionTime": "2026-12-01T00:00:00Z"},
        ],
        "rollout": {"state": "Complete", "targetRevision": "b"},
    })
}

fn progressing(step: &str, generation: i64) -> Value {
    json!({
        "observedGeneration": generation,
        "phase": "Progressing",
        "currentVersion": "1.2.3",
        "rollout": {"state": "Progressing", "targetRevision": "b", "stableRevision": "a",
            "step": step, "message": format!("waiting for {step} to be healthy")},
    })
}

fn rolled_back(generation: i64) -> Value {
    json!({
        "observedGeneration": generation,
        "phase": "Degraded",
        "currentVersion": "1.2.3",
        "rollout": {"state": "RolledBack", "targetRevision": "b", "stableRevision": "a",
            "failedRevision": "b", "message": "rolled back to a",
            "failure": {"step": "Backends", "component": "order-service",
                "reason": "CrashLoopBackOff", "message": "order-service restarts (exit 1)"}},
    })
}

#[test]
fn ready_at_the_version_is_ready() {
    assert_eq!(
        verdict(&with(ready_at("1.3.0", 2), 2), "1.3.0", 2),
        Verdict::Ready
    );
}

#[test]
fn a_status_of_an_older_generation_says_nothing() {
    // Ready, even at the version, but written before the spec changed.
    let v = verdict(&with(ready_at("1.3.0", 1), 2), "1.3.0", 2);
    assert!(
        matches!(&v, Verdict::Waiting(t) if t.contains("generation 2")),
        "{v:?}"
    );
}

#[test]
fn ready_at_another_version_is_waiting() {
    let v = verdict(&with(ready_at("1.2.3", 2), 2), "1.3.0", 2);
    assert!(matches!(v, Verdict::Waiting(_)), "{v:?}");
}

#[test]
fn a_rollout_in_flight_names_its_step() {
    let v = verdict(&with(progressing("Migrations", 2), 2), "1.3.0", 2);
    assert_eq!(
        v,
        Verdict::Waiting(
            "Progressing, step Migrations: waiting for Migrations to be healthy".into()
        )
    );
}

#[test]
fn a_rollback_fails_with_the_component_and_the_cause() {
    let v = verdict(&with(rolled_back(2), 2), "1.3.0", 2);
    assert_eq!(
        v,
        Verdict::Failed(
            "rolled back: order-service failed in the Backends step (CrashLoopBackOff): \
             order-service restarts (exit 1); the shop runs 1.2.3 again"
                .into()
        )
    );
}

#[test]
fn a_halted_rollout_fails() {
    let mut status = rolled_back(2);
    status["rollout"]["state"] = json!("Halted");
    let v = verdict(&with(status, 2), "1.3.0", 2);
    assert!(
        matches!(&v, Verdict::Failed(t) if t.starts_with("halted: order-service")),
        "{v:?}"
    );
}

#[test]
fn an_invalid_spec_fails_at_once() {
    let status = json!({
        "observedGeneration": 2,
        "phase": "Degraded",
        "conditions": [{"type": "Stalled", "status": "True", "reason": "InvalidSpec",
            "message": "spec.services.order.replicas: must be at least 1",
            "lastTransitionTime": "2026-12-01T00:00:00Z"}],
    });
    assert_eq!(
        verdict(&with(status, 2), "1.3.0", 2),
        Verdict::Failed("invalid spec: spec.services.order.replicas: must be at least 1".into())
    );
}

#[test]
fn no_status_yet_is_waiting() {
    let mut s = store("shop");
    s.status = None;
    assert!(matches!(verdict(&s, "1.3.0", 1), Verdict::Waiting(_)));
}

fn api() -> (Api<Store>, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "shop");
    (
        Api::namespaced(client, "shop"),
        ApiServerVerifier::from_handle(handle),
    )
}

fn target() -> Target {
    Target {
        namespace: "shop".into(),
        name: "shop".into(),
        version: "1.3.0".into(),
    }
}

/// Under the mock's two-second wait for each request.
fn patience(timeout_secs: u64) -> Patience {
    Patience {
        timeout: Duration::from_secs(timeout_secs),
        poll: Duration::from_secs(1),
    }
}

fn get(status: Value, generation: i64) -> Expect {
    let mut e = Expect::new(Method::GET, PATH.into());
    e.reply = Some(serde_json::to_value(with(status, generation)).unwrap());
    e
}

fn patch_version() -> Expect {
    let mut e = Expect::new(Method::PATCH, PATH.into());
    e.body = Some(Box::new(|b| {
        assert_eq!(b, &json!({"spec": {"version": "1.3.0"}}));
    }));
    e.reply = Some(serde_json::to_value(with(ready_at("1.2.3", 1), 2)).unwrap());
    e
}

#[tokio::test(start_paused = true)]
async fn a_deploy_patches_the_version_and_waits_for_ready() {
    let (api, server) = api();
    let srv = server.run(Scenario::Exactly(vec![
        patch_version(),
        get(ready_at("1.2.3", 1), 2),
        get(progressing("Migrations", 2), 2),
        get(progressing("Backends", 2), 2),
        get(progressing("Backends", 2), 2),
        get(ready_at("1.3.0", 2), 2),
    ]));
    let generation = set_version(&api, &target()).await.unwrap();
    assert_eq!(generation, 2);
    let mut lines = Vec::new();
    wait(&api, &target(), Some(generation), patience(600), |l| {
        lines.push(l.to_owned());
    })
    .await
    .unwrap();
    srv.await.unwrap();
    // Each state once, in order; the repeated Backends read prints nothing.
    assert_eq!(
        lines,
        [
            "the operator has not read generation 2 of the spec yet",
            "Progressing, step Migrations: waiting for Migrations to be healthy",
            "Progressing, step Backends: waiting for Backends to be healthy",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_deploy_is_an_error_with_the_operators_reason() {
    let (api, server) = api();
    let srv = server.run(Scenario::Exactly(vec![
        get(progressing("Backends", 2), 2),
        get(rolled_back(2), 2),
    ]));
    let err = wait(&api, &target(), None, patience(600), |_| {})
        .await
        .unwrap_err();
    srv.await.unwrap();
    assert!(matches!(err, DeployError::Failed { .. }));
    assert_eq!(
        err.to_string(),
        "Store shop/shop at 1.3.0: rolled back: order-service failed in the Backends step \
         (CrashLoopBackOff): order-service restarts (exit 1); the shop runs 1.2.3 again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deploy_that_never_settles_times_out_saying_where_it_stood() {
    let (api, server) = api();
    // 2.5 s at one read a second: reads at 0, 1, 2 and the last at 2.5.
    let srv = server.run(Scenario::Exactly(
        (0..4).map(|_| get(progressing("Data", 2), 2)).collect(),
    ));
    let short = Patience {
        timeout: Duration::from_millis(2500),
        poll: Duration::from_secs(1),
    };
    let err = wait(&api, &target(), Some(2), short, |_| {})
        .await
        .unwrap_err();
    srv.await.unwrap();
    assert!(
        err.to_string()
            .ends_with("Progressing, step Data: waiting for Data to be healthy"),
        "{err}"
    );
}
