//! Reconciler tests against a mock API server (see `crate::fixtures`): each
//! checks the exact requests — method, path, query, body — a reconcile makes.

use std::sync::Arc;

use http::Method;
use serde_json::json;

use super::{RESYNC_PROGRESSING, RESYNC_READY, error_policy, reconcile};
use crate::api::Phase;
use crate::backoff::BASE;
use crate::controller::Context;
use crate::fixtures::{
    Scenario, collection, converged, expect_apply, expect_delete, expect_event, expect_failure,
    expect_list, expect_lists, expect_status, expect_user_secret, finish, secret_creates, store,
    with_status,
};
use crate::metrics::ReasonLabel;
use crate::reconcile::plan;
use crate::render::{ChildKind, render};
use kube::runtime::controller::Action;

fn writes(seen: &[crate::fixtures::Seen]) -> usize {
    seen.iter().filter(|s| s.method != Method::GET).count()
}

#[tokio::test]
async fn first_reconcile_creates_everything() {
    let (ctx, server) = Context::test();
    let s = store("shop");
    let rendered = render(&s).unwrap();
    let mocksrv = server.run(Scenario::FirstRun(s.clone()));
    let action = reconcile(Arc::new(s), ctx).await.expect("reconcile");
    let seen = finish(mocksrv).await;
    assert_eq!(action, Action::requeue(RESYNC_PROGRESSING));
    // 9 lists, every Secret, every object, one status write, one Event.
    let expected_writes = rendered.secrets.len() + rendered.objects.len() + 2;
    assert_eq!(writes(&seen), expected_writes);
    assert_eq!(seen.len(), ChildKind::ALL.len() + expected_writes);
    println!(
        "first reconcile: {} requests ({} writes)",
        seen.len(),
        expected_writes
    );
}

#[tokio::test]
async fn steady_state_makes_no_write_requests() {
    let (ctx, server) = Context::test();
    let observed = converged(&store("shop"));
    let s = with_status(store("shop"), &observed);
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
    assert_eq!(seen.len(), ChildKind::ALL.len());
    println!("steady state: {} requests (0 writes)", seen.len());
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
        user.value.clone(),
    )];
    let mocksrv = server.run(Scenario::Observed {
        store: s.clone(),
        observed,
        writes,
    });
    reconcile(Arc::new(s), ctx).await.expect("reconcile");
    finish(mocksrv).await;
}

#[tokio::test]
async fn a_removed_component_is_pruned() {
    let (ctx, server) = Context::test();
    let observed = converged(&store("shop"));
    let s = with_status(store("shop"), &observed).with_external_redis();
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
        .map(|o| expect_apply(o.kind, &o.name, o.value.clone()))
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
    let mut all = vec![expect_user_secret("my-redis", Some(&["url"]))];
    all.extend(expect_lists(&observed));
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
        collection(ChildKind::Secret),
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
    let rendered = render(&s).unwrap();
    let empty = crate::reconcile::Observed::default();
    let mut v: Vec<_> = ChildKind::ALL
        .iter()
        .map(|k| expect_list(*k, &empty))
        .collect();
    v.extend(secret_creates(&rendered));
    let first = &rendered.objects[0];
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

#[tokio::test]
async fn a_secret_that_appeared_meanwhile_is_kept() {
    let (ctx, server) = Context::test();
    let s = store("shop");
    let rendered = render(&s).unwrap();
    let empty = crate::reconcile::Observed::default();
    let mut v: Vec<_> = ChildKind::ALL
        .iter()
        .map(|k| expect_list(*k, &empty))
        .collect();
    let mut creates = secret_creates(&rendered);
    creates[0] = expect_failure(Method::POST, collection(ChildKind::Secret), 409);
    v.extend(creates);
    v.extend(
        rendered
            .objects
            .iter()
            .map(|o| expect_apply(o.kind, &o.name, o.value.clone())),
    );
    v.push(expect_status(&s, |_| {}));
    v.push(expect_event("Normal", "Pending"));
    let mocksrv = server.run(Scenario::Exactly(v));
    reconcile(Arc::new(s), ctx)
        .await
        .expect("a 409 on create means the Secret exists");
    finish(mocksrv).await;
}
