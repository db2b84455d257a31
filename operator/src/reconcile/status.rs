//! The Store's status as a pure function of spec, rendered objects, observed
//! children and the previous status. Conditions follow kstatus: `Ready` is
//! normal-true, `Reconciling` and `Stalled` are abnormal-true; each carries
//! `observedGeneration`, and `lastTransitionTime` only moves when `status`
//! flips, so recomputing an unchanged state yields an equal value and the
//! reconciler writes nothing.

use serde_json::Value;
use storekeeper_contract::ShopService;

use super::observed::{Observed, applied_hash};
use crate::api::{ComponentStatus, Condition, Phase, RolloutStatus, Store, StoreStatus};
use crate::error::Invalid;
use crate::render::delegated::{self, readiness};
use crate::render::{ChildKind, Rendered, ingress, meta::Ctx};

/// Condition types.
pub mod types {
    /// Normal-true: everything is up with the current revision.
    pub const READY: &str = "Ready";
    /// Abnormal-true: the operator is working towards the spec.
    pub const RECONCILING: &str = "Reconciling";
    /// Abnormal-true: progress needs a person.
    pub const STALLED: &str = "Stalled";
    /// True after an automatic rollback.
    pub const ROLLED_BACK: &str = "RolledBack";
}

/// Readiness of one component, with why it is not ready.
#[derive(Clone, Debug, PartialEq)]
pub struct Readiness {
    /// The published part.
    pub status: ComponentStatus,
    /// Set when the component cannot progress (e.g. progress deadline exceeded).
    pub failed: Option<String>,
}

/// Status of a Store whose spec is invalid: nothing was applied.
pub fn invalid(store: &Store, old: &StoreStatus, problem: &Invalid, now: &str) -> StoreStatus {
    let gen_ = store.metadata.generation;
    let message = problem.to_string();
    let conditions = vec![
        cond(types::READY, false, "InvalidSpec", &message),
        cond(
            types::RECONCILING,
            false,
            "InvalidSpec",
            "waiting for a valid spec",
        ),
        cond(types::STALLED, true, "InvalidSpec", &message),
        cond(types::ROLLED_BACK, false, "NoRollback", ""),
    ];
    StoreStatus {
        observed_generation: gen_,
        phase: Some(Phase::Degraded),
        conditions: stamp(conditions, old, gen_, now),
        components: old.components.clone(),
        ready: old.ready.clone(),
        url: old.url.clone(),
        current_version: old.current_version.clone(),
        rollout: old.rollout.clone(),
        apply_failures: Vec::new(),
    }
}

/// What the rollout decided this pass, as far as status is concerned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutView {
    /// The next `status.rollout`.
    pub rollout: Option<RolloutStatus>,
    /// The next `status.currentVersion`.
    pub current_version: Option<String>,
    /// The phase a rollout in flight (or failed) implies; `None` lets
    /// component readiness decide.
    pub phase: Option<Phase>,
    /// The conditions it implies, unstamped; `None` lets readiness decide.
    pub conditions: Option<Vec<Condition>>,
}

/// Status of a valid Store from what was observed this reconcile, what the
/// rollout decided, and the children the API server refused (each
/// `"<Kind> <name>: <message>"`; they make the Store Degraded until an apply
/// succeeds).
pub fn compute(
    store: &Store,
    rendered: &Rendered,
    observed: &Observed,
    old: &StoreStatus,
    now: &str,
    view: RolloutView,
    apply_failures: Vec<String>,
) -> StoreStatus {
    match assess(store, rendered, observed, view) {
        Some(assessed) => assessed.finish(old, now, apply_failures),
        None => old.clone(),
    }
}

/// A Store's status before its writes: everything the observed children
/// tell, so a pass can drop them before it writes and add what the writes
/// refused ([`Assessed::finish`]) after.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessed {
    generation: Option<i64>,
    phase: Phase,
    conditions: Vec<Condition>,
    services_ready: usize,
    components: Vec<ComponentStatus>,
    url: String,
    current_version: Option<String>,
    rollout: Option<RolloutStatus>,
}

/// The first half of [`compute`]: `None` for a Store without a namespace
/// (whose status then stays as it was).
pub fn assess(
    store: &Store,
    rendered: &Rendered,
    observed: &Observed,
    view: RolloutView,
) -> Option<Assessed> {
    let ctx = Ctx::new(store).ok()?;
    let parts = components(&ctx, rendered, observed);
    let services_ready = parts
        .iter()
        .filter(|r| r.status.ready && ShopService::ALL.iter().any(|s| s.name() == r.status.name))
        .count();
    let all_ready = parts.iter().all(|r| r.status.ready);
    let failed: Vec<String> = parts.iter().filter_map(|r| r.failed.clone()).collect();
    let anything = parts.iter().any(|r| r.status.ready_replicas > 0);
    let (phase, conditions) = if store.spec.paused {
        (
            Phase::Paused,
            vec![
                ready_cond(all_ready, "Paused"),
                cond(
                    types::RECONCILING,
                    false,
                    "Paused",
                    "spec.paused is set; no changes are applied",
                ),
                cond(types::STALLED, false, "Paused", ""),
            ],
        )
    } else if let (Some(phase), Some(conditions)) = (view.phase, view.conditions) {
        (phase, conditions)
    } else if !failed.is_empty() {
        let message = failed.join("; ");
        (
            Phase::Degraded,
            vec![
                cond(types::READY, false, "ComponentFailed", &message),
                cond(types::RECONCILING, false, "ComponentFailed", ""),
                cond(types::STALLED, true, "ComponentFailed", &message),
            ],
        )
    } else if all_ready {
        (
            Phase::Ready,
            vec![
                cond(types::READY, true, "AllComponentsReady", ""),
                cond(types::RECONCILING, false, "AllComponentsReady", ""),
                cond(types::STALLED, false, "AllComponentsReady", ""),
            ],
        )
    } else {
        let waiting: Vec<&str> = parts
            .iter()
            .filter(|r| !r.status.ready)
            .map(|r| r.status.name.as_str())
            .collect();
        let message = format!("waiting for {}", waiting.join(", "));
        let phase = if anything {
            Phase::Progressing
        } else {
            Phase::Pending
        };
        (
            phase,
            vec![
                cond(types::READY, false, phase.as_str(), &message),
                cond(types::RECONCILING, true, phase.as_str(), &message),
                cond(types::STALLED, false, phase.as_str(), ""),
            ],
        )
    };
    let mut conditions = conditions;
    if !conditions.iter().any(|c| c.type_ == types::ROLLED_BACK) {
        conditions.push(cond(types::ROLLED_BACK, false, "NoRollback", ""));
    }
    Some(Assessed {
        generation: store.metadata.generation,
        phase,
        conditions,
        services_ready,
        components: parts.into_iter().map(|r| r.status).collect(),
        url: ingress::url(&ctx),
        current_version: view.current_version,
        rollout: view.rollout,
    })
}

impl Assessed {
    /// The second half of [`compute`]: the children the API server refused
    /// make the Store Degraded; conditions keep their transition time
    /// from `old` unless they flipped.
    pub fn finish(self, old: &StoreStatus, now: &str, apply_failures: Vec<String>) -> StoreStatus {
        let mut conditions = self.conditions;
        let phase = if apply_failures.is_empty() {
            self.phase
        } else {
            let message = apply_failures.join("; ");
            for c in &mut conditions {
                if c.type_ == types::READY || c.type_ == types::STALLED {
                    *c = cond(&c.type_, c.type_ == types::STALLED, "ApplyFailed", &message);
                }
            }
            Phase::Degraded
        };
        StoreStatus {
            observed_generation: self.generation,
            phase: Some(phase),
            conditions: stamp(conditions, old, self.generation, now),
            ready: Some(format!(
                "{}/{}",
                self.services_ready,
                ShopService::ALL.len()
            )),
            components: self.components,
            url: Some(self.url),
            current_version: self.current_version,
            rollout: self.rollout,
            apply_failures,
        }
    }
}

fn ready_cond(ready: bool, reason: &str) -> Condition {
    cond(types::READY, ready, reason, "")
}

fn cond(type_: &str, status: bool, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: None,
        last_transition_time: String::new(),
    }
}

/// Sets `observedGeneration` and keeps `lastTransitionTime` unless `status` flipped.
fn stamp(
    conditions: Vec<Condition>,
    old: &StoreStatus,
    gen_: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    conditions
        .into_iter()
        .map(|mut c| {
            c.observed_generation = gen_;
            c.last_transition_time = match old.condition(&c.type_) {
                Some(prev) if prev.status == c.status => prev.last_transition_time.clone(),
                _ => now.to_owned(),
            };
            c
        })
        .collect()
}

/// Readiness of each data store and service, in rollout order.
pub fn components(ctx: &Ctx<'_>, rendered: &Rendered, observed: &Observed) -> Vec<Readiness> {
    let stores = [
        ("postgres", ctx.spec.postgres.managed.is_some()),
        ("redis", ctx.spec.redis.managed.is_some()),
        ("rabbitmq", ctx.spec.rabbitmq.managed.is_some()),
    ];
    let mut out: Vec<Readiness> = stores
        .iter()
        .map(|(component, managed)| {
            if let Some(kind) = delegated_kind(ctx, component) {
                delegated_store(ctx, rendered, observed, kind, component)
            } else if *managed {
                workload(
                    ctx,
                    rendered,
                    observed,
                    ChildKind::StatefulSet,
                    component,
                    1,
                )
            } else {
                Readiness {
                    status: ComponentStatus {
                        name: (*component).to_owned(),
                        ready_replicas: 0,
                        desired_replicas: 0,
                        ready: true,
                    },
                    failed: None,
                }
            }
        })
        .collect();
    for service in ShopService::ALL {
        let spec = ctx.spec.services.get(service);
        // An autoscaled service wants what its autoscaler last set on the
        // live Deployment (the operator does not set it; the API server's
        // default is 1); its minimum until the Deployment exists.
        let desired = match &spec.autoscaling {
            Some(a) => observed
                .get(ChildKind::Deployment, &ctx.name(service.name()))
                .map_or(i64::from(a.min_replicas), |v| {
                    v.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                }),
            None => i64::from(spec.replicas),
        };
        let desired = i32::try_from(desired).unwrap_or(i32::MAX);
        out.push(workload(
            ctx,
            rendered,
            observed,
            ChildKind::Deployment,
            service.name(),
            desired,
        ));
    }
    out
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The kind a delegated data store runs as (`None`: built-in or external).
fn delegated_kind(ctx: &Ctx<'_>, component: &str) -> Option<ChildKind> {
    delegated::pod_selector(ctx, component)?;
    Some(if component == "postgres" {
        ChildKind::CnpgCluster
    } else {
        ChildKind::RabbitmqCluster
    })
}

/// A delegated data store is ready when its object carries the current
/// applied hash and its operator reports it ready (`delegated::readiness`).
fn delegated_store(
    ctx: &Ctx<'_>,
    rendered: &Rendered,
    observed: &Observed,
    kind: ChildKind,
    component: &str,
) -> Readiness {
    let name = ctx.name(component);
    let want_hash = rendered
        .objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .map(|o| o.hash.as_str());
    let live = observed.get(kind, &name);
    let (desired, ready_replicas) = live.map_or((1, 0), |v| readiness::replicas(kind, v));
    let ready = live
        .is_some_and(|v| applied_hash(v) == want_hash && readiness::waiting_for(kind, v).is_none());
    Readiness {
        status: ComponentStatus {
            name: component.to_owned(),
            ready_replicas: i32::try_from(ready_replicas).unwrap_or(i32::MAX),
            desired_replicas: i32::try_from(desired).unwrap_or(i32::MAX),
            ready,
        },
        failed: None,
    }
}

fn workload(
    ctx: &Ctx<'_>,
    rendered: &Rendered,
    observed: &Observed,
    kind: ChildKind,
    component: &str,
    desired: i32,
) -> Readiness {
    let name = ctx.name(component);
    let want_hash = rendered
        .objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .map(|o| o.hash.as_str());
    let live = observed.get(kind, &name);
    let ready_replicas = live.map_or(0, |v| int(v, "/status/readyReplicas"));
    let ready = live.is_some_and(|v| {
        let current = applied_hash(v) == want_hash
            && int(v, "/status/observedGeneration") >= int(v, "/metadata/generation");
        let want = i64::from(desired);
        current
            && match kind {
                ChildKind::Deployment => {
                    int(v, "/status/updatedReplicas") >= want
                        && int(v, "/status/availableReplicas") >= want
                        && int(v, "/status/replicas") == int(v, "/status/updatedReplicas")
                }
                _ => {
                    ready_replicas >= want
                        && v.pointer("/status/currentRevision")
                            == v.pointer("/status/updateRevision")
                }
            }
    });
    let failed = live.and_then(|v| {
        let conditions = v.pointer("/status/conditions")?.as_array()?;
        conditions
            .iter()
            .any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Progressing")
                    && c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded")
            })
            .then(|| format!("{component}: progress deadline exceeded"))
    });
    Readiness {
        status: ComponentStatus {
            name: component.to_owned(),
            ready_replicas: i32::try_from(ready_replicas).unwrap_or(i32::MAX),
            desired_replicas: desired,
            ready,
        },
        failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{converged, store};
    use crate::render::render;
    use serde_json::json;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:05:00Z";

    fn status_of(observed: &Observed, old: &StoreStatus, now: &str) -> StoreStatus {
        let s = store("shop");
        compute(
            &s,
            &render(&s).unwrap(),
            observed,
            old,
            now,
            RolloutView::default(),
            Vec::new(),
        )
    }

    fn tweak(observed: &mut Observed, name: &str, f: impl Fn(&mut Value)) {
        let mut v = observed.get(ChildKind::Deployment, name).unwrap().clone();
        f(&mut v);
        observed.insert(ChildKind::Deployment, v);
    }

    #[test]
    fn converged_is_ready_with_every_component() {
        let st = status_of(&converged(&store("shop")), &StoreStatus::default(), T0);
        assert_eq!(st.phase, Some(Phase::Ready));
        assert_eq!(st.ready.as_deref(), Some("5/5"));
        assert_eq!(st.components.len(), 8);
        assert!(
            st.conditions
                .iter()
                .all(|c| c.observed_generation == Some(1))
        );
    }

    #[test]
    fn a_stale_template_or_lagging_rollout_is_progressing() {
        let mut observed = converged(&store("shop"));
        tweak(&mut observed, "shop-order", |v| {
            v["metadata"]["annotations"]["storekeeper.dev/applied-hash"] = json!("old");
        });
        tweak(&mut observed, "shop-user", |v| {
            v["status"]["updatedReplicas"] = json!(1);
        });
        let st = status_of(&observed, &StoreStatus::default(), T0);
        assert_eq!(st.phase, Some(Phase::Progressing));
        assert_eq!(st.ready.as_deref(), Some("3/5"));
        let reconciling = st.condition(types::RECONCILING).unwrap();
        assert_eq!(reconciling.status, "True");
        assert_eq!(reconciling.message, "waiting for user, order");
    }

    #[test]
    fn a_progress_deadline_stalls_naming_the_component() {
        let mut observed = converged(&store("shop"));
        tweak(&mut observed, "shop-payment", |v| {
            v["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded"}]);
        });
        let st = status_of(&observed, &StoreStatus::default(), T0);
        assert_eq!(st.phase, Some(Phase::Degraded));
        let stalled = st.condition(types::STALLED).unwrap();
        assert_eq!(stalled.status, "True");
        assert_eq!(stalled.message, "payment: progress deadline exceeded");
    }

    #[test]
    fn transition_times_move_only_when_status_flips() {
        let observed = converged(&store("shop"));
        let first = status_of(&observed, &StoreStatus::default(), T0);
        let again = status_of(&observed, &first, T1);
        assert_eq!(
            first, again,
            "recomputing an unchanged state changes nothing"
        );
        let mut degraded = observed.clone();
        tweak(&mut degraded, "shop-user", |v| {
            v["status"]["availableReplicas"] = json!(0);
        });
        let later = status_of(&degraded, &first, T1);
        let ready = later.condition(types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time.as_str()),
            ("False", T1)
        );
        let rolled = later.condition(types::ROLLED_BACK).unwrap();
        assert_eq!(rolled.last_transition_time, T0);
    }
}
