//! Reconciler tests against a mock API server (see `crate::fixtures`): each
//! checks the exact requests — method, path, query, body — a reconcile makes.

use std::sync::Arc;

use http::Method;
use serde_json::json;

use super::{RESYNC_PROGRESSING, RESYNC_READY, error_policy, reconcile};
use crate::api::{Phase, Store};
use crate::backoff::BASE;
use crate::controller::Context;
use crate::fixtures::{
    ApiServerVerifier, Expect, Scenario, Seen, collection, converged, expect_apply, expect_delete,
    expect_event, expect_failure, expect_history, expect_lists, expect_reads, expect_rollout_reads,
    expect_status, expect_user_secret, finish, first_decision, first_reads_and_secrets,
    revisions_path, store, with_status,
};
use crate::metrics::ReasonLabel;
use crate::reconcile::plan;
use crate::render::{ChildKind, render};
use kube::runtime::controller::Action;

fn writes(seen: &[Seen]) -> usize {
    seen.iter().filter(|s| s.method != Method::GET).count()
}

#[tokio::test]
async fn first_reconcile_creates_everything() {
    let (ctx, server) = Context::test();
    let s = store("shop");
    let rendered = render(&s).unwrap();
    let first = first_decision(&s);
    // Step by step: nothing of a later step goes out before the first is healthy.
    assert!(first.desired.objects.len() < rendered.objects.len());
    assert!(
        first
            .desired
            .objects
            .iter()
            .all(|o| o.kind != ChildKind::Deployment)
    );
    let mocksrv = server.run(Scenario::FirstRun(s.clone()));
    let action = reconcile(Arc::new(s), ctx).await.expect("reconcile");
    let seen = finish(mocksrv).await;
    assert_eq!(action, Action::requeue(first.requeue_after.unwrap()));
    // History, a GET of each Secret the Store may generate, the lists, pods
    // and ReplicaSets; the revision, every Secret, the first step's
    // objects, one status write, two Events.
    let expected_writes = 1 + rendered.secrets.len() + first.desired.objects.len() + 3;
    assert_eq!(writes(&seen), expected_writes);
    let reads = 1 + secret_reads() + listed_kinds() + 2;
    assert_eq!(seen.len(), reads + expected_writes);
    println!(
        "first reconcile: {} requests ({} writes)",
        seen.len(),
        expected_writes
    );
}

/// The kinds a reconcile lists in a cluster with the Prometheus Operator
/// and the Gateway API, without the data-store operators (Secrets are
/// never listed).
fn listed_kinds() -> usize {
    let served = crate::served::Served::all();
    ChildKind::ALL
        .iter()
        .filter(|k| k.is_applied() && served.serves(**k))
        .count()
}

/// Two passes over `s` against exactly `expected`, each ending Ready
/// (requeued at `RESYNC_READY`); what the server saw.
async fn two_ready_passes(
    s: &Store,
    ctx: &Arc<Context>,
    server: ApiServerVerifier,
    expected: Vec<Expect>,
) -> Vec<Seen> {
    let mocksrv = server.run(Scenario::Exactly(expected));
    for pass in ["first", "second"] {
        let action = reconcile(Arc::new(s.clone()), ctx.clone())
            .await
            .expect(pass);
        assert_eq!(action, Action::requeue(RESYNC_READY), "{pass} pass");
    }
    finish(mocksrv).await
}

/// The GETs of a Store's first pass: one per Secret it may generate.
fn secret_reads() -> usize {
    crate::render::secrets::generated_names("shop").len()
}

/// A converged Store's first pass reads its generated Secrets by name; the
/// next ones (until `generated_secrets::READ_EVERY` has passed) only list
/// its children, and neither writes.
#[tokio::test]
async fn steady_state_makes_no_write_requests() {
    let (ctx, server) = Context::test();
    let observed = converged(&store("shop"));
    let s = with_status(store("shop"), &observed);
    assert_eq!(s.status.as_ref().unwrap().phase, Some(Phase::Ready));
    let mut expected = vec![expect_history(&[&s])];
    expected.extend(expect_reads(&observed));
    expected.push(expect_history(&[&s]));
    expected.extend(expect_lists(&observed));
    let seen = two_ready_passes(&s, &ctx, server, expected).await;
    assert_eq!(writes(&seen), 0);
    let (first, second) = (1 + secret_reads() + listed_kinds(), 1 + listed_kinds());
    assert_eq!(seen.len(), first + second, "history and children");
    assert!(
        seen[first..].iter().all(|r| !r.path.contains("/secrets")),
        "the second pass reads no Secret"
    );
    println!("steady state: {second} requests (0 writes), {first} in a Store's first pass");
}

#[tokio::test]
async fn a_child_drifted_by_hand_is_reapplied() {
    let (ctx, server) = Context::test();
    let mut observed = converged(&store("shop"));
    let s = with_status(store("shop"), &observed);
    let desired = render(&s).unwrap();
    let user = desired
        .objects
        .iter()
        .find(|o| o.kind == ChildKind::Deployment && o.name == "shop-user")
        .unwrap();
    let mut live = observed
        .get(ChildKind::Deployment, "shop-user")
        .unwrap()
        .clone();
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil/image:1");
    observed.insert(ChildKind::Deployment, live);
    let writes = vec![expect_apply(
        ChildKind::Deployment,
        "shop-user",
        serde_json::Value::clone(&user.value),
    )];
    let mocksrv = server.run(Scenario::Observed {
        store: s.clone(),
        observed,
        writes,
    });
    reconcile(Arc::new(s), ctx).await.expect("reconcile");
    finish(mocksrv).await;
}

/// Issue 14: under `deletionPolicy: Delete` the data stores' credentials
/// must go with the Store; kept ones (left unowned under `Retain`, or by a
/// deleted Store) are adopted with a metadata merge patch, and nothing else
/// is written.
#[tokio::test]
async fn kept_credentials_are_adopted_under_delete() {
    let (ctx, server) = Context::test();
    let mut delete = store("shop");
    delete.spec.deletion_policy = crate::api::DeletionPolicy::Delete;
    let mut observed = converged(&delete);
    let data = ["shop-postgres", "shop-redis", "shop-rabbitmq"];
    for name in data {
        observed.insert(
            ChildKind::Secret,
            json!({"metadata": {"name": name, "namespace": "shop"}}),
        );
    }
    let s = with_status(delete, &observed);
    let patches: Vec<_> = data
        .iter()
        .map(|name| {
            let mut e = Expect::new(
                Method::PATCH,
                format!("{}/{name}", collection(ChildKind::Secret)),
            );
            e.body = Some(Box::new(|got| {
                let refs = &got["metadata"]["ownerReferences"];
                assert_eq!(refs[0]["kind"], json!("Store"));
                assert_eq!(
                    refs[0]["uid"],
                    json!("0b1c2d3e-0000-4000-8000-000000000001")
                );
                assert_eq!(refs[0]["controller"], json!(true));
            }));
            e.reply = Some(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "shop"}}));
            e
        })
        .collect();
    let mut expected = vec![expect_history(&[&s])];
    expected.extend(expect_reads(&observed));
    expected.extend(patches);
    // The next pass knows the patched Secrets are the Store's.
    expected.push(expect_history(&[&s]));
    expected.extend(expect_lists(&observed));
    let mocksrv = server.run(Scenario::Exactly(expected));
    for pass in ["first", "second"] {
        reconcile(Arc::new(s.clone()), ctx.clone())
            .await
            .expect(pass);
    }
    let seen = finish(mocksrv).await;
    assert_eq!(writes(&seen), 3, "three patches, nothing else");
}

#[tokio::test]
async fn a_removed_component_is_pruned() {
    let (ctx, server) = Context::test();
    let observed = converged(&store("shop"));
    // The revision without managed Redis has rolled out (the status was
    // written while all was Ready); what it no longer needs is still there.
    let mut s = with_status(store("shop"), &observed).with_external_redis();
    let id = crate::rollout::revision::id(&s.spec);
    let rollout = s.status.as_mut().unwrap().rollout.as_mut().unwrap();
    rollout.target_revision.clone_from(&id);
    rollout.stable_revision = Some(id);
    let rendered = render(&s).unwrap();
    let p = plan(
        &rendered,
        &observed,
        "0b1c2d3e-0000-4000-8000-000000000001",
        false,
    );
    assert!(p.create_secrets.is_empty());
    let mut writes: Vec<_> = p
        .apply
        .iter()
        .map(|o| expect_apply(o.kind, &o.name, serde_json::Value::clone(&o.value)))
        .collect();
    // Everything Redis had, except its generated Secret (kept: it holds data credentials).
    for kind in [
        ChildKind::ServiceAccount,
        ChildKind::NetworkPolicy,
        ChildKind::Service,
        ChildKind::StatefulSet,
    ] {
        writes.push(expect_delete(kind, "shop-redis"));
    }
    writes.push(expect_event("Normal", "Pruned"));
    writes.push(expect_status(&s, |st| {
        assert_eq!(st.phase, Some(Phase::Progressing));
        assert!(st.components.iter().any(|c| c.name == "redis" && c.ready));
    }));
    writes.push(expect_event("Normal", "Progressing"));
    let mut all = vec![
        expect_user_secret("my-redis", Some(&["url"])),
        expect_history(&[&s]),
    ];
    all.extend(expect_reads(&observed));
    all.extend(writes);
    let mocksrv = server.run(Scenario::Exactly(all));
    reconcile(Arc::new(s), ctx).await.expect("reconcile");
    finish(mocksrv).await;
}

#[tokio::test]
async fn an_invalid_spec_stalls_with_an_event_and_writes_no_child() {
    let (ctx, server) = Context::test();
    let s = store("shop").invalid();
    let mocksrv = server.run(Scenario::Exactly(vec![
        expect_status(&s, |st| {
            assert_eq!(st.phase, Some(Phase::Degraded));
            let stalled = st.condition("Stalled").unwrap();
            assert_eq!(
                (stalled.status.as_str(), stalled.reason.as_str()),
                ("True", "InvalidSpec")
            );
            assert!(
                stalled.message.contains("spec.version"),
                "{}",
                stalled.message
            );
            assert_eq!(stalled.observed_generation, Some(1));
            assert_eq!(st.condition("Ready").unwrap().status, "False");
        }),
        expect_event("Warning", "InvalidSpec"),
    ]));
    let action = reconcile(Arc::new(s), ctx).await.expect("reconcile");
    finish(mocksrv).await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_gateway_without_the_gateway_api_stalls_naming_the_field() {
    let (ctx, server) = Context::test();
    let mut ctx = Arc::into_inner(ctx).unwrap();
    ctx.served = crate::served::Served::default();
    let mut s = store("shop");
    s.spec.ingress.gateway = Some(crate::api::GatewayRef {
        name: "shop".into(),
        namespace: None,
        section_name: None,
    });
    let mocksrv = server.run(Scenario::Exactly(vec![
        expect_status(&s, |st| {
            let stalled = st.condition("Stalled").unwrap();
            assert_eq!(stalled.status, "True");
            assert!(
                stalled
                    .message
                    .starts_with("spec.ingress.gateway: this cluster does not serve"),
                "{}",
                stalled.message
            );
        }),
        expect_event("Warning", "InvalidSpec"),
    ]));
    reconcile(Arc::new(s), Arc::new(ctx))
        .await
        .expect("reconcile");
    finish(mocksrv).await;
}

#[tokio::test]
async fn a_missing_external_secret_stalls_and_writes_no_child() {
    let (ctx, server) = Context::test();
    let s = store("shop").with_external_redis();
    let mocksrv = server.run(Scenario::Exactly(vec![
        expect_user_secret("my-redis", None),
        expect_status(&s, |st| {
            let stalled = st.condition("Stalled").unwrap();
            assert_eq!(stalled.status, "True");
            assert_eq!(
                stalled.message,
                "spec.redis.external.secretName: Secret my-redis not found"
            );
        }),
        expect_event("Warning", "InvalidSpec"),
    ]));
    let action = reconcile(Arc::new(s), ctx).await.expect("reconcile");
    finish(mocksrv).await;
    assert_eq!(action, Action::requeue(RESYNC_PROGRESSING));
}

#[tokio::test]
async fn a_paused_store_writes_no_child() {
    let (ctx, server) = Context::test();
    let s = store("shop").paused();
    let observed = crate::reconcile::Observed::default();
    let writes = vec![
        expect_status(&s, |st| {
            assert_eq!(st.phase, Some(Phase::Paused));
            assert_eq!(st.condition("Reconciling").unwrap().reason, "Paused");
        }),
        expect_event("Normal", "Paused"),
    ];
    let mocksrv = server.run(Scenario::Observed {
        store: s.clone(),
        observed,
        writes,
    });
    reconcile(Arc::new(s), ctx).await.expect("reconcile");
    let seen = finish(mocksrv).await;
    assert!(seen.iter().all(|r| r.method == Method::GET
        || r.path.contains("/stores/")
        || r.path.contains("/events")));
}

#[tokio::test]
async fn an_api_500_fails_the_reconcile_and_backs_off_per_store() {
    let (ctx, server) = Context::test();
    let s = Arc::new(store("shop"));
    let mocksrv = server.run(Scenario::Exactly(vec![expect_failure(
        Method::GET,
        revisions_path(),
        500,
    )]));
    let err = reconcile(s.clone(), ctx.clone())
        .await
        .expect_err("must fail");
    finish(mocksrv).await;
    assert_eq!(err.metric_label(), "api_500");
    assert_eq!(
        error_policy(s.clone(), &err, ctx.clone()),
        Action::requeue(BASE)
    );
    assert_eq!(
        error_policy(s.clone(), &err, ctx.clone()),
        Action::requeue(BASE * 2)
    );
    let other = Arc::new(store("other"));
    assert_eq!(
        error_policy(other, &err, ctx.clone()),
        Action::requeue(BASE)
    );
    let failures = ctx
        .metrics
        .failures
        .get_or_create(&ReasonLabel {
            reason: "api_500".into(),
        })
        .get();
    assert_eq!(failures, 3);
}

#[tokio::test]
async fn an_api_409_on_apply_fails_the_reconcile_without_panic() {
    let (ctx, server) = Context::test();
    let s = store("shop");
    let mut v = first_reads_and_secrets(&s);
    let decision = first_decision(&s);
    let first = &decision.desired.objects[0];
    v.push(expect_failure(
        Method::PATCH,
        format!("{}/{}", collection(first.kind), first.name),
        409,
    ));
    let mocksrv = server.run(Scenario::Exactly(v));
    let err = reconcile(Arc::new(s.clone()), ctx.clone())
        .await
        .expect_err("must fail");
    finish(mocksrv).await;
    assert_eq!(err.metric_label(), "api_409");
    assert_eq!(error_policy(Arc::new(s), &err, ctx), Action::requeue(BASE));
}

/// A generated Secret that appeared between the read and the create (409)
/// is kept, and its owner read so the next pass knows it exists and
/// adopts it (the token keys are the Store's) instead of creating it again.
#[tokio::test]
async fn a_secret_that_appeared_meanwhile_is_kept_and_remembered() {
    let (ctx, server) = Context::test();
    let s = store("shop");
    let rendered = render(&s).unwrap();
    let mut v = first_reads_and_secrets(&s);
    let first_create = v.len() - rendered.secrets.len();
    let appeared = &rendered.secrets[0];
    assert!(appeared.owned);
    v[first_create] = expect_failure(Method::POST, collection(ChildKind::Secret), 409);
    let get = Expect::new(
        Method::GET,
        format!("{}/{}", collection(ChildKind::Secret), appeared.name),
    );
    let live = json!({"metadata": {"name": appeared.name, "namespace": "shop"}});
    v.insert(
        first_create + 1,
        crate::fixtures::expect_metadata(get, &live),
    );
    v.extend(
        first_decision(&s)
            .desired
            .objects
            .iter()
            .map(|o| expect_apply(o.kind, &o.name, serde_json::Value::clone(&o.value))),
    );
    v.push(expect_status(&s, |_| {}));
    v.push(expect_event("Normal", "RolloutStarted"));
    v.push(expect_event("Normal", "StepStarted"));
    let mocksrv = server.run(Scenario::Exactly(v));
    reconcile(Arc::new(s.clone()), ctx.clone())
        .await
        .expect("a 409 on create means the Secret exists");
    finish(mocksrv).await;

    let uid = s.metadata.uid.clone().unwrap();
    let known = ctx.memory.secrets(&uid).expect("read in the first pass");
    let names: Vec<&String> = known.found.keys().collect();
    let mut want: Vec<&String> = rendered.secrets.iter().map(|s| &s.name).collect();
    want.sort();
    assert_eq!(names, want, "every generated Secret is known to exist");
    assert_eq!(known.found[&appeared.name], None, "not the Store's yet");
    let mut observed = crate::reconcile::Observed::default();
    crate::generated_secrets::observe(
        &kube::Api::namespaced(ctx.client.clone(), "shop"),
        &ctx.memory,
        "shop",
        &uid,
        &mut observed,
    )
    .await
    .expect("from memory, no request");
    let next = plan(&rendered, &observed, &uid, false);
    assert!(next.create_secrets.is_empty(), "no Secret is created again");
    let adopted: Vec<&str> = next.own_secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(adopted, [appeared.name.as_str()]);
}

/// A Store as the watch cache may still hold it after the operator wrote a
/// newer status: its rollout still at the last step.
fn stale(mut s: Store) -> Store {
    let status = s.status.as_mut().unwrap();
    status.phase = Some(Phase::Progressing);
    let rollout = status.rollout.as_mut().unwrap();
    rollout.state = crate::api::RolloutState::Progressing;
    rollout.step = Some(crate::api::RolloutStep::Edge);
    rollout.step_started_at = Some(chrono::Utc::now().to_rfc3339());
    s
}

#[tokio::test]
async fn status_and_events_are_written_once_though_the_cache_lags() {
    let (ctx, server) = Context::test();
    let observed = converged(&store("shop"));
    let s = stale(with_status(store("shop"), &observed));
    let mut expected = vec![expect_history(&[&s])];
    expected.extend(expect_reads(&observed));
    expected.extend(expect_rollout_reads());
    expected.push(expect_status(&s, |st| {
        assert_eq!(st.phase, Some(Phase::Ready));
        let rollout = st.rollout.as_ref().unwrap();
        assert_eq!(rollout.state, crate::api::RolloutState::Complete);
    }));
    expected.push(expect_event("Normal", "RolloutComplete"));
    // The watch has not caught up: the same stale Store comes back. The
    // operator decides against what it wrote itself: the rollout is
    // complete, so no pods are read, nothing is written, no Event repeats.
    expected.push(expect_history(&[&s]));
    expected.extend(expect_lists(&observed));
    let seen = two_ready_passes(&s, &ctx, server, expected).await;
    assert_eq!(writes(&seen), 2, "one status write, one Event");
}

#[tokio::test]
async fn a_refused_apply_reaches_status_and_the_rest_still_goes_out() {
    let (ctx, server) = Context::test();
    let s = store("shop");
    let mut v = first_reads_and_secrets(&s);
    let decision = first_decision(&s);
    let refused = &decision.desired.objects[1];
    for (i, o) in decision.desired.objects.iter().enumerate() {
        v.push(if i == 1 {
            let mut e = expect_failure(
                Method::PATCH,
                format!("{}/{}", collection(o.kind), o.name),
                422,
            );
            e.reply = Some(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "spec.foo: Invalid value", "reason": "Invalid", "code": 422}),
            );
            e
        } else {
            expect_apply(o.kind, &o.name, serde_json::Value::clone(&o.value))
        });
    }
    let what = format!(
        "{} {}: spec.foo: Invalid value",
        refused.kind.kind(),
        refused.name
    );
    v.push(expect_status(&s, move |st| {
        assert_eq!(st.phase, Some(Phase::Degraded));
        assert_eq!(st.apply_failures, std::slice::from_ref(&what));
        let stalled = st.condition("Stalled").unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "ApplyFailed")
        );
        assert_eq!(stalled.message, what);
        assert_eq!(st.condition("Ready").unwrap().reason, "ApplyFailed");
    }));
    v.push(expect_event("Normal", "RolloutStarted"));
    v.push(expect_event("Normal", "StepStarted"));
    v.push(expect_event("Warning", "ApplyFailed"));
    let mocksrv = server.run(Scenario::Exactly(v));
    reconcile(Arc::new(s), ctx)
        .await
        .expect("a refused object does not fail the pass");
    finish(mocksrv).await;
}

#[tokio::test]
async fn events_of_one_reason_with_different_notes_are_each_their_own() {
    // kube's recorder would PATCH the second onto the first as a series and
    // keep the first note ("step Foundation") for both.
    let (ctx, server) = Context::test();
    let s = store("shop");
    let expect = |note: &'static str| {
        let mut e = expect_event("Normal", "StepStarted");
        let reason_and_type = e.body.take().unwrap();
        e.body = Some(Box::new(move |got| {
            reason_and_type(got);
            assert_eq!(got["note"], json!(note));
        }));
        e
    };
    let notes = ["step Foundation of revision a", "step Data of revision a"];
    let mocksrv = server.run(Scenario::Exactly(notes.map(expect).into()));
    for note in notes {
        s.event(&ctx, false, "StepStarted", note.to_owned()).await;
    }
    let seen = finish(mocksrv).await;
    assert!(seen.iter().all(|r| r.method == Method::POST), "{seen:?}");
}

#[test]
fn reconciles_in_flight_are_bounded() {
    // kube reads 0 as no bound: every Store at once, each holding its
    // children, is what took the operator past its memory limit.
    assert!(
        (1..=16).contains(&super::CONCURRENT_RECONCILES),
        "{}",
        super::CONCURRENT_RECONCILES
    );
}

/// Issue 12: a Store in the `Managed` observability mode installs like any
/// other — its first pass creates the Grafana password and applies the
/// Foundation step with the monitoring stack (`finish` checks every
/// request against the chart's RBAC, Roles and RoleBindings included) —
/// and once converged, with its Prometheus, Loki and Grafana not ready, it
/// is Ready and a pass writes nothing.
#[tokio::test]
async fn a_managed_monitoring_store_installs_and_then_rests() {
    let mut s = store("shop");
    s.spec.observability.mode = crate::api::ObservabilityMode::Managed;
    let (ctx, server) = Context::test();
    let mocksrv = server.run(Scenario::FirstRun(s.clone()));
    reconcile(Arc::new(s.clone()), ctx)
        .await
        .expect("first reconcile");
    let seen = finish(mocksrv).await;
    for (method, path) in [
        (Method::POST, "/api/v1/namespaces/shop/secrets"),
        (
            Method::PATCH,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/roles/shop-prometheus",
        ),
        (
            Method::PATCH,
            "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings/shop-prometheus",
        ),
        (
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/statefulsets/shop-prometheus",
        ),
        (
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/statefulsets/shop-loki",
        ),
        (
            Method::PATCH,
            "/apis/apps/v1/namespaces/shop/deployments/shop-grafana",
        ),
    ] {
        assert!(
            seen.iter().any(|x| x.method == method && x.path == path),
            "{method} {path}"
        );
    }

    let (ctx, server) = Context::test();
    let mut observed = converged(&s);
    for (kind, name) in [
        (ChildKind::StatefulSet, "shop-prometheus"),
        (ChildKind::StatefulSet, "shop-loki"),
        (ChildKind::Deployment, "shop-grafana"),
    ] {
        let mut live = observed.get(kind, name).unwrap().clone();
        live["status"] = json!({"observedGeneration": 1, "replicas": 1});
        observed.insert(kind, live);
    }
    let s = with_status(s, &observed);
    assert_eq!(s.status.as_ref().unwrap().phase, Some(Phase::Ready));
    let mocksrv = server.run(Scenario::Observed {
        store: s.clone(),
        observed,
        writes: vec![],
    });
    let action = reconcile(Arc::new(s), ctx).await.expect("reconcile");
    let seen = finish(mocksrv).await;
    assert_eq!(action, Action::requeue(RESYNC_READY));
    assert_eq!(writes(&seen), 0);
}
