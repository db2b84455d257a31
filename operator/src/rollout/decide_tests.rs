//! The state machine, driven pass after pass against the simulated
//! cluster: every step × every way a step goes wrong × autoRollback on and
//! off, first installs, pause, a spec change mid-rollout and mid-rollback,
//! re-syncs of a failed spec, restarts and analysis. Every pass also checks
//! that `decide` is deterministic and decides the same from a status read
//! back from the API (what a restarted operator sees).

use chrono::TimeDelta;

use super::analysis::Limits;
use super::decide::{Input, decide};
use super::outcome::Outcome;
use super::settings::Analysis;
use super::testing::{Driver, Fault, Rev, World, complete, everything_changes, hashes_of, t0};
use crate::api::{RolloutState, RolloutStatus, RolloutStep};
use crate::fixtures::store;
use crate::render::{ChildKind, Object};

use RolloutStep::{Backends, Data, Edge, Foundation, Migrations, Storefront};

/// `(stable, target)` where the target changes every step.
fn revisions() -> (Rev, Rev) {
    (Rev::of(|_| {}), Rev::of(everything_changes))
}

/// A later revision that changes every object the target changed.
fn fixed(s: &mut crate::api::Store) {
    everything_changes(s);
    s.spec.version = "1.4.1".into();
    s.spec.ingress.controller_namespace = "ingress-fixed".into();
    if let Some(m) = s.spec.postgres.managed.as_mut() {
        m.resources.limits.memory = "2Gi".into();
    }
    s.spec.ingress.class_name = "haproxy".into();
}

/// Objects a fault can be pinned to, by step: `(step, kind, component, what people read)`.
const FAILING: [(RolloutStep, ChildKind, &str, &str); 9] = [
    (Foundation, ChildKind::NetworkPolicy, "", ""),
    (Data, ChildKind::StatefulSet, "postgres", "postgres"),
    (Migrations, ChildKind::Job, "", ""),
    (Backends, ChildKind::Deployment, "user", "user-service"),
    (
        Backends,
        ChildKind::Deployment,
        "product",
        "product-service",
    ),
    (
        Backends,
        ChildKind::Deployment,
        "payment",
        "payment-service",
    ),
    (Backends, ChildKind::Deployment, "order", "order-service"),
    (
        Storefront,
        ChildKind::Deployment,
        "storefront",
        "storefront",
    ),
    (Edge, ChildKind::Ingress, "ingress", ""),
];

/// The faults a kind of object can have, with the reason the rollout
/// must report.
fn faults(kind: ChildKind) -> Vec<(Fault, &'static str)> {
    let mut out = vec![
        (Fault::Waiting("ImagePullBackOff"), "ImagePullBackOff"),
        (Fault::Waiting("ErrImagePull"), "ErrImagePull"),
        (Fault::Waiting("CrashLoopBackOff"), "CrashLoopBackOff"),
        (
            Fault::Waiting("CreateContainerConfigError"),
            "CreateContainerConfigError",
        ),
        (Fault::Waiting("InvalidImageName"), "InvalidImageName"),
        (Fault::Restarting, "Restarting"),
        (Fault::Slow, "HealthTimeout"),
    ];
    match kind {
        ChildKind::Job => {
            // A Job's pod never restarts; a failed attempt is a new pod,
            // and the Job says when it gave up.
            out.retain(|(f, _)| {
                !matches!(f, Fault::Restarting | Fault::Waiting("CrashLoopBackOff"))
            });
            out.push((Fault::Deadline, "DeadlineExceeded"));
            out.push((Fault::ReplicaFailure, "BackoffLimitExceeded"));
        }
        ChildKind::Deployment => {
            out.push((Fault::Deadline, "ProgressDeadlineExceeded"));
            out.push((Fault::ReplicaFailure, "ReplicaFailure"));
        }
        ChildKind::StatefulSet => {}
        _ => out = vec![(Fault::RejectApply, "HealthTimeout")],
    }
    out
}

/// The object of `rev` a `FAILING` row names (a NetworkPolicy the
/// upgrade changes, when the row names none).
fn failing_object(rev: &Rev, kind: ChildKind, component: &str) -> Object {
    let (stable, target) = revisions();
    let other = if rev.id == target.id {
        &stable
    } else {
        &target
    };
    let name = if component.is_empty() {
        rev.rendered
            .objects
            .iter()
            .find(|o| o.kind == kind && !other.rendered.objects.contains(o))
            .map(|o| o.name.clone())
            .unwrap()
    } else {
        format!("shop-{component}")
    };
    rev.rendered
        .objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .cloned()
        .unwrap()
}

fn count(d: &Driver<'_>, reason: &str) -> usize {
    d.reasons().iter().filter(|r| **r == reason).count()
}

/// Runs three more passes and checks they change nothing: a GitOps
/// re-sync of the same spec neither retries nor flaps.
fn assert_settled(d: &mut Driver<'_>) {
    let (applied, events, status) = (d.world.applied.len(), d.events().len(), d.status.clone());
    for _ in 0..3 {
        d.pass();
    }
    assert_eq!(
        d.world.applied.len(),
        applied,
        "a settled rollout applies nothing"
    );
    assert_eq!(d.events().len(), events, "a settled rollout emits nothing");
    assert_eq!(d.status, status, "a settled rollout keeps its status");
}

#[test]
fn a_good_upgrade_goes_step_by_step() {
    let (stable, target) = revisions();
    let mut d = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    let last = d.settle(100).clone();
    assert_eq!(last.rollout, Some(complete(&target.id)));
    assert_eq!(last.current_version.as_deref(), Some("1.4.0"));
    assert_eq!(last.outcome, Outcome::Complete);
    assert_eq!(d.world.hashes(), hashes_of(&target.rendered));
    // Each step is applied in a pass of its own, after the one before it.
    let mut passes = Vec::new();
    for step in RolloutStep::ALL {
        let of_step: Vec<usize> = d
            .world
            .applied
            .iter()
            .filter(|a| a.step == step)
            .map(|a| a.pass)
            .collect();
        assert!(!of_step.is_empty(), "{step} applied");
        assert!(
            of_step.iter().all(|p| *p == of_step[0]),
            "{step} in one pass"
        );
        passes.push(of_step[0]);
    }
    assert!(passes.is_sorted_by(|a, b| a < b), "{passes:?}");
    assert_eq!(
        d.reasons(),
        [
            "RolloutStarted",
            "StepStarted",
            "StepStarted",
            "StepStarted",
            "StepStarted",
            "StepStarted",
            "StepStarted",
            "RolloutComplete"
        ]
    );
    assert_settled(&mut d);
}

#[test]
fn the_storefront_is_not_touched_before_every_backend_is_available() {
    let (stable, target) = revisions();
    let mut d = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    let mut storefront_applied = false;
    for _ in 0..50 {
        let before = d.world.clone();
        d.pass();
        let now_applied = d
            .world
            .applied
            .iter()
            .any(|a| a.name == "shop-storefront" && a.kind == ChildKind::Deployment);
        if now_applied && !storefront_applied {
            for backend in ["user", "product", "payment", "order"] {
                let live = before
                    .children
                    .get(ChildKind::Deployment, &format!("shop-{backend}"))
                    .unwrap();
                let want = &target.object(ChildKind::Deployment, backend).hash;
                assert_eq!(
                    crate::reconcile::observed::applied_hash(live),
                    Some(want.as_str())
                );
                assert_eq!(
                    live["status"]["availableReplicas"], live["spec"]["replicas"],
                    "{backend}"
                );
            }
        }
        storefront_applied = now_applied;
    }
    assert!(storefront_applied);
}

/// One failure scenario: `fault` on `bad` (an object of `step`).
struct FailureCase<'a> {
    stable: &'a Rev,
    target: &'a Rev,
    step: RolloutStep,
    bad: &'a Object,
    display: &'a str,
    fault: Fault,
    reason: &'a str,
    auto_rollback: bool,
}

impl FailureCase<'_> {
    fn name(&self) -> String {
        format!(
            "{} {} {:?} autoRollback={}",
            self.step, self.bad.name, self.fault, self.auto_rollback
        )
    }

    fn run(&self) {
        let case = self.name();
        let mut world = World::running(&self.stable.rendered);
        world.faults.insert(self.bad.hash.clone(), self.fault);
        let mut d = Driver::new(world, self.target, Some(self.stable));
        d.settings.auto_rollback = self.auto_rollback;
        let last = d.settle(300).clone();
        let st = last.rollout.clone().unwrap();
        let failure = st
            .failure
            .clone()
            .unwrap_or_else(|| panic!("{case}: no failure in {st:?}"));
        assert_eq!(
            (
                failure.step,
                failure.component.as_str(),
                failure.reason.as_str()
            ),
            (self.step, self.display, self.reason),
            "{case}"
        );
        assert_eq!(
            st.failed_revision.as_deref(),
            Some(self.target.id.as_str()),
            "{case}"
        );
        assert_eq!(count(&d, "RolloutFailed"), 1, "{case}");
        assert!(
            d.events()
                .iter()
                .any(|e| e.warning && e.reason == "RolloutFailed" && e.note.contains(self.display)),
            "{case}"
        );
        self.assert_found_in_time(&d);
        self.assert_later_steps_untouched(&d);
        let conditions = last.outcome.conditions().unwrap();
        let get = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        let stalled = get("Stalled");
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", self.reason),
            "{case}"
        );
        assert!(
            stalled.message.contains(&format!("step {}", self.step)),
            "{case}: {}",
            stalled.message
        );
        let rolled_back = get("RolledBack");
        let stable_hashes = hashes_of(&self.stable.rendered);
        if self.auto_rollback {
            assert_eq!(st.state, RolloutState::RolledBack, "{case}");
            assert_eq!(
                d.world.hashes(),
                stable_hashes,
                "{case}: every object back on the stable revision"
            );
            assert_eq!(last.current_version.as_deref(), Some("1.2.3"), "{case}");
            assert_eq!(rolled_back.status, "True", "{case}");
            assert_eq!(count(&d, "RolledBack"), 1, "{case}");
            let reverts: Vec<RolloutStep> = d
                .world
                .applied
                .iter()
                .filter(|a| stable_hashes.get(&(a.kind, a.name.clone())) == Some(&a.hash))
                .map(|a| a.step)
                .collect();
            assert!(
                reverts.is_sorted_by(|a, b| a >= b),
                "{case}: last step first: {reverts:?}"
            );
        } else {
            assert_eq!(
                (st.state, st.step),
                (RolloutState::Halted, Some(self.step)),
                "{case}"
            );
            assert_eq!(rolled_back.reason, "AutoRollbackDisabled", "{case}");
            assert_eq!(count(&d, "RolledBack"), 0, "{case}");
        }
        assert_settled(&mut d);
    }

    /// Found at once, or when the step's time is up, never later.
    fn assert_found_in_time(&self, d: &Driver<'_>) {
        let case = self.name();
        let failed_at = d.times[d
            .decisions
            .iter()
            .position(|x| x.events.iter().any(|e| e.reason == "RolloutFailed"))
            .unwrap()];
        let step_started = d
            .decisions
            .iter()
            .filter_map(|x| x.rollout.as_ref())
            .find(|st| st.state == RolloutState::Progressing && st.step == Some(self.step))
            .and_then(|st| st.step_started_at.as_deref())
            .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
            .unwrap();
        let timeout = TimeDelta::seconds(600);
        if self.reason == "HealthTimeout" {
            assert!(
                failed_at >= step_started + timeout
                    && failed_at < step_started + timeout + TimeDelta::seconds(11),
                "{case}: {failed_at}"
            );
        } else {
            assert!(
                failed_at < step_started + TimeDelta::seconds(31),
                "{case}: {failed_at}"
            );
        }
    }

    /// Steps after the failed one never saw the target, and keep the stable.
    fn assert_later_steps_untouched(&self, d: &Driver<'_>) {
        let case = self.name();
        let stable_hashes = hashes_of(&self.stable.rendered);
        for a in &d.world.applied {
            if a.step > self.step {
                assert_eq!(
                    Some(&a.hash),
                    stable_hashes.get(&(a.kind, a.name.clone())),
                    "{case}: {} applied",
                    a.name
                );
            }
        }
        for ((k, n), h) in d.world.hashes() {
            let step = [self.stable, self.target]
                .iter()
                .flat_map(|rev| &rev.rendered.objects)
                .find(|o| o.kind == k && o.name == n)
                .map(RolloutStep::of)
                .unwrap();
            if step > self.step {
                assert_eq!(
                    Some(&h),
                    stable_hashes.get(&(k, n.clone())),
                    "{case}: {n} left alone"
                );
            }
        }
    }
}

#[test]
fn every_failure_in_every_step_rolls_back_or_holds() {
    let (stable, target) = revisions();
    for (step, kind, component, display) in FAILING {
        let bad = failing_object(&target, kind, component);
        let display = if display.is_empty() {
            super::health::component(&bad)
        } else {
            display.to_owned()
        };
        for (fault, reason) in faults(kind) {
            for auto_rollback in [true, false] {
                FailureCase {
                    stable: &stable,
                    target: &target,
                    step,
                    bad: &bad,
                    display: &display,
                    fault,
                    reason,
                    auto_rollback,
                }
                .run();
            }
        }
    }
}

#[test]
fn old_restarts_of_pods_a_rollout_does_not_replace_are_not_failures() {
    let stable = Rev::of(|_| {});
    let target = Rev::of(|s| s.spec.version = "1.4.0".into());
    assert!(!super::steps::changed(
        &target.rendered,
        Some(&stable.rendered),
        Data
    ));
    let world = World::running(&stable.rendered);
    assert!(
        world
            .pods
            .iter()
            .all(|p| p["status"]["containerStatuses"][0]["restartCount"] == 3)
    );
    let mut d = Driver::new(world, &target, Some(&stable));
    assert_eq!(d.settle(100).rollout, Some(complete(&target.id)));
}

#[test]
fn a_first_install_goes_step_by_step_and_holds_on_failure() {
    let target = Rev::of(everything_changes);
    let mut d = Driver::new(World::empty(), &target, None);
    let last = d.settle(100).clone();
    assert_eq!(last.rollout, Some(complete(&target.id)));
    assert_eq!(d.world.hashes(), hashes_of(&target.rendered));
    let firsts: Vec<usize> = RolloutStep::ALL
        .into_iter()
        .map(|s| d.world.applied.iter().find(|a| a.step == s).unwrap().pass)
        .collect();
    assert!(firsts.is_sorted_by(|a, b| a < b), "{firsts:?}");

    for (step, kind, component, _) in FAILING {
        let bad = failing_object(&target, kind, component);
        for (fault, reason) in faults(kind) {
            let case = format!("first install, {} {fault:?}", bad.name);
            let mut world = World::empty();
            world.faults.insert(bad.hash.clone(), fault);
            let mut d = Driver::new(world, &target, None);
            let last = d.settle(300).clone();
            let st = last.rollout.clone().unwrap();
            assert_eq!(
                (st.state, st.step),
                (RolloutState::Halted, Some(step)),
                "{case}"
            );
            assert_eq!(st.failure.unwrap().reason, reason, "{case}");
            assert!(
                st.message.contains("no earlier revision"),
                "{case}: {}",
                st.message
            );
            let Outcome::Halted {
                first_install: true,
                ..
            } = last.outcome
            else {
                panic!("{case}: {:?}", last.outcome);
            };
            assert!(
                d.world.applied.iter().all(|a| a.step <= step),
                "{case}: later steps untouched"
            );
            assert!(d.world.pruned.is_empty(), "{case}");
            assert_eq!(last.current_version, None, "{case}: nothing serves yet");
            assert_settled(&mut d);
        }
    }
}

/// Drives until the rollout waits in `step` (forwards or backwards).
fn run_until_in(d: &mut Driver<'_>, state: RolloutState, step: RolloutStep) {
    for _ in 0..200 {
        if let Some(st) = &d.status
            && st.state == state
            && st.step == Some(step)
        {
            return;
        }
        d.pass();
    }
    panic!("never {state:?} at {step}: {:?}", d.status);
}

/// A target that waits in `step`: its first failing object never gets healthy.
fn stuck_in(step: RolloutStep, target: &Rev, world: &mut World) {
    let (_, kind, component, _) = FAILING.iter().find(|f| f.0 == step).copied().unwrap();
    let fault =
        if kind.is_applied() && matches!(kind, ChildKind::Deployment | ChildKind::StatefulSet) {
            Fault::Slow
        } else {
            Fault::RejectApply
        };
    world
        .faults
        .insert(failing_object(target, kind, component).hash, fault);
}

#[test]
fn paused_freezes_every_step_and_resuming_restarts_its_clock() {
    let (stable, target) = revisions();
    for step in RolloutStep::ALL {
        let mut world = World::running(&stable.rendered);
        stuck_in(step, &target, &mut world);
        let mut d = Driver::new(world, &target, Some(&stable));
        run_until_in(&mut d, RolloutState::Progressing, step);
        d.settings.paused = true;
        let (applied, events) = (d.world.applied.len(), d.events().len());
        let frozen = d.status.clone().unwrap();
        for _ in 0..40 {
            let decision = d.pass().clone();
            assert!(matches!(decision.outcome, Outcome::Paused { .. }), "{step}");
            assert_eq!(decision.requeue_after, None);
            assert!(!decision.prune);
        }
        let st = d.status.clone().unwrap();
        assert!(st.paused_at.is_some(), "{step}");
        assert_eq!(
            RolloutStatus {
                paused_at: None,
                ..st
            },
            frozen,
            "{step}: nothing else moves"
        );
        assert_eq!(
            (d.world.applied.len(), d.events().len()),
            (applied, events),
            "{step}"
        );
        assert!(
            d.world.now > t0() + TimeDelta::seconds(1200),
            "paused longer than the timeout"
        );
        d.settings.paused = false;
        let resumed_at = d.world.now;
        let decision = d.pass().clone();
        let st = decision.rollout.clone().unwrap();
        assert_eq!(
            (st.state, st.step, st.paused_at),
            (RolloutState::Progressing, Some(step), None),
            "{step}"
        );
        assert_eq!(
            st.step_started_at.as_deref(),
            Some(
                resumed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    .as_str()
            )
        );
        let last = d.settle(200).clone();
        let failed_at = d.times[d
            .decisions
            .iter()
            .position(|x| x.events.iter().any(|e| e.reason == "RolloutFailed"))
            .unwrap()];
        assert!(
            failed_at >= resumed_at + TimeDelta::seconds(600),
            "{step}: a full timeout after resuming"
        );
        assert_eq!(
            last.rollout.unwrap().state,
            RolloutState::RolledBack,
            "{step}"
        );
    }
}

#[test]
fn paused_before_anything_and_after_the_end_changes_nothing() {
    let (stable, target) = revisions();
    let mut d = Driver::new(World::empty(), &target, None);
    d.status = None;
    d.settings.paused = true;
    let first = d.pass().clone();
    assert_eq!((first.rollout, first.events.len()), (None, 0));
    assert_eq!(
        first.outcome,
        Outcome::Paused {
            message: "spec.paused is set; the first rollout waits".into()
        }
    );
    let mut d = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    d.settings.paused = true;
    let waiting = d.pass().clone();
    assert_eq!(
        waiting.rollout,
        Some(complete(&stable.id)),
        "a new revision waits for the pause to end"
    );
    assert!(
        matches!(&waiting.outcome, Outcome::Paused { message } if message.contains(&target.id))
    );
    assert_eq!(waiting.current_version.as_deref(), Some("1.2.3"));
    d.settings.paused = false;
    assert_eq!(d.settle(100).rollout, Some(complete(&target.id)));
    assert_eq!(count(&d, "RolloutStarted"), 1);
}

#[test]
fn a_new_revision_wins_mid_rollout_and_mid_rollback() {
    let (stable, target) = revisions();
    let fixed = Rev::of(fixed);
    for step in RolloutStep::ALL {
        for state in [RolloutState::Progressing, RolloutState::RollingBack] {
            if state == RolloutState::RollingBack && matches!(step, Edge | Migrations) {
                // A failed Edge never landed (an Ingress only fails by not
                // applying), and the stable revision's migration Jobs are
                // still there, complete: the way back through either is
                // immediate, nothing waits there.
                continue;
            }
            let case = format!("{state:?} at {step}");
            let mut world = World::running(&stable.rendered);
            if state == RolloutState::Progressing {
                stuck_in(step, &target, &mut world);
            } else {
                // The target breaks at the last step; the way back is slow at `step`.
                world.faults.insert(
                    target.object(ChildKind::Ingress, "ingress").hash.clone(),
                    Fault::RejectApply,
                );
                let (_, kind, component, _) =
                    FAILING.iter().find(|f| f.0 == step).copied().unwrap();
                let slow = failing_object(&stable, kind, component);
                let fault = if kind == ChildKind::Deployment || kind == ChildKind::StatefulSet {
                    Fault::Slow
                } else {
                    Fault::RejectApply
                };
                world.faults.insert(slow.hash, fault);
            }
            let mut d = Driver::new(world, &target, Some(&stable));
            run_until_in(&mut d, state, step);
            d.target = &fixed;
            let last = d.settle(300).clone();
            assert_eq!(last.rollout, Some(complete(&fixed.id)), "{case}");
            assert_eq!(d.world.hashes(), hashes_of(&fixed.rendered), "{case}");
            let started = d
                .events()
                .into_iter()
                .rev()
                .find(|e| e.reason == "RolloutStarted")
                .unwrap()
                .note
                .clone();
            assert!(
                started.contains(&format!("replaces revision {} in flight", target.id)),
                "{case}: {started}"
            );
            assert_settled(&mut d);
        }
    }
}

#[test]
fn after_a_rollback_only_a_different_spec_moves_again() {
    let (stable, target) = revisions();
    let mut world = World::running(&stable.rendered);
    world.faults.insert(
        target.object(ChildKind::Deployment, "order").hash.clone(),
        Fault::Waiting("ImagePullBackOff"),
    );
    let mut d = Driver::new(world, &target, Some(&stable));
    d.settle(100);
    assert_eq!(d.status.as_ref().unwrap().state, RolloutState::RolledBack);
    assert_settled(&mut d);
    // Git goes back to the stable spec: nothing to roll out, all steps healthy.
    d.target = &stable;
    let last = d.settle(20).clone();
    assert_eq!(last.rollout, Some(complete(&stable.id)));
    assert_eq!(last.outcome, Outcome::Complete);
    assert_eq!(last.current_version.as_deref(), Some("1.2.3"));
}

#[test]
fn without_auto_rollback_a_fix_rolls_forward_from_where_it_held() {
    let (stable, target) = revisions();
    let mut world = World::running(&stable.rendered);
    world.faults.insert(
        target.object(ChildKind::Deployment, "order").hash.clone(),
        Fault::Waiting("CrashLoopBackOff"),
    );
    let mut d = Driver::new(world, &target, Some(&stable));
    d.settings.auto_rollback = false;
    d.settle(100);
    assert_eq!(d.status.as_ref().unwrap().state, RolloutState::Halted);
    let fixed = Rev::of(fixed);
    d.target = &fixed;
    assert_eq!(d.settle(100).rollout, Some(complete(&fixed.id)));
    assert_eq!(d.world.hashes(), hashes_of(&fixed.rendered));
}

#[test]
fn an_operator_restarted_mid_step_resumes_there() {
    let (stable, target) = revisions();
    let mut straight = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    with_analysis(&mut straight, 500, 100);
    straight.settle(100);
    for stop in 1..straight.decisions.len() {
        let mut first = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
        with_analysis(&mut first, 500, 100);
        for _ in 0..stop {
            first.pass();
        }
        // A new operator: only the cluster and the status it wrote survive.
        let mut second = Driver::new(first.world.clone(), &target, Some(&stable));
        with_analysis(&mut second, 500, 100);
        second.status = first.status.clone();
        second.settle(100);
        assert_eq!(second.status, straight.status, "restart after pass {stop}");
        assert_eq!(
            second.world.hashes(),
            straight.world.hashes(),
            "restart after pass {stop}"
        );
        // The second world carries the first one's history of applies.
        let steps: Vec<_> = second
            .world
            .applied
            .iter()
            .map(|a| (a.kind, a.name.clone(), a.hash.clone()))
            .collect();
        let once: Vec<_> = straight
            .world
            .applied
            .iter()
            .map(|a| (a.kind, a.name.clone(), a.hash.clone()))
            .collect();
        assert_eq!(
            steps, once,
            "restart after pass {stop}: nothing applied twice"
        );
    }
}

#[test]
fn objects_the_target_drops_are_pruned_only_once_it_runs_everywhere() {
    let stable = Rev::of(|_| {});
    let target = Rev::of(|s| {
        s.spec.version = "1.4.0".into();
        *s = s.clone().with_external_redis();
    });
    let mut d = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    d.settle(100);
    let pruned: Vec<&str> = d.world.pruned.iter().map(|(_, n)| n.as_str()).collect();
    assert!(pruned.contains(&"shop-redis"), "{pruned:?}");
    let prune_pass = d.decisions.iter().position(|x| x.prune).unwrap();
    assert_eq!(
        prune_pass,
        d.decisions.len() - 1,
        "pruned in the pass that completed, not before"
    );
    assert!(d.decisions[..prune_pass].iter().all(|x| !x.prune));
}

fn with_analysis(d: &mut Driver<'_>, max_error_basis_points: u32, min_requests: u32) {
    d.settings.analysis = Some(Analysis {
        bake: TimeDelta::seconds(60),
        limits: Limits {
            max_error_basis_points: Some(max_error_basis_points),
            max_p99_milliseconds: Some(500),
            min_requests,
        },
    });
}

#[test]
fn analysis_bakes_the_service_steps_and_judges_their_new_pods() {
    let (stable, target) = revisions();
    let mut d = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    with_analysis(&mut d, 500, 100);
    let last = d.settle(100).clone();
    assert_eq!(last.rollout, Some(complete(&target.id)));
    assert_eq!(count(&d, "AnalysisPassed"), 2, "{:?}", d.reasons());
    let passed: Vec<String> = d
        .events()
        .iter()
        .filter(|e| e.reason == "AnalysisPassed")
        .map(|e| e.note.clone())
        .collect();
    assert!(
        passed[0]
            .starts_with("step Backends: user-service: 0.00% 5xx, p99 2 ms over 1200 requests"),
        "{passed:?}"
    );
    assert!(
        passed[1].starts_with("step Storefront: storefront:"),
        "{passed:?}"
    );
    let first = |step| d.world.applied.iter().find(|a| a.step == step).unwrap().at;
    assert!(
        first(Storefront) >= first(Backends) + TimeDelta::seconds(60),
        "the storefront waits out the backends' bake"
    );
    assert!(first(Edge) >= first(Storefront) + TimeDelta::seconds(60));
    assert!(
        first(Data) < first(Foundation) + TimeDelta::seconds(31),
        "no bake for data"
    );
}

#[test]
fn a_5xx_burst_during_the_bake_rolls_back() {
    let (stable, target) = revisions();
    for (kind, component, display, step) in [
        (ChildKind::Deployment, "order", "order-service", Backends),
        (
            ChildKind::Deployment,
            "storefront",
            "storefront",
            Storefront,
        ),
    ] {
        let mut world = World::running(&stable.rendered);
        world.faults.insert(
            target.object(kind, component).hash.clone(),
            Fault::Errors(0.2),
        );
        let mut d = Driver::new(world, &target, Some(&stable));
        with_analysis(&mut d, 500, 100);
        let last = d.settle(100).clone();
        let st = last.rollout.unwrap();
        assert_eq!(st.state, RolloutState::RolledBack);
        let failure = st.failure.unwrap();
        assert_eq!(
            (
                failure.step,
                failure.component.as_str(),
                failure.reason.as_str()
            ),
            (step, display, "AnalysisFailed")
        );
        assert_eq!(
            failure.message,
            "5xx ratio 20.00% over 1200 requests exceeds 5.00%"
        );
        assert_eq!(d.world.hashes(), hashes_of(&stable.rendered));
    }
}

#[test]
fn a_quiet_shop_still_rolls_out_and_an_unchanged_step_does_not_bake() {
    let (stable, target) = revisions();
    let mut d = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    with_analysis(&mut d, 0, 1_000_000);
    d.settle(100);
    assert_eq!(d.status, Some(complete(&target.id)));
    assert!(d.events().iter().any(|e| e.reason == "AnalysisPassed"
        && e.note.contains("not judged, 1200 requests from 2/2 pods")));

    let edge_only = Rev::of(|s| s.spec.ingress.class_name = "traefik".into());
    let mut d = Driver::new(World::running(&stable.rendered), &edge_only, Some(&stable));
    with_analysis(&mut d, 0, 1);
    d.settle(100);
    assert_eq!(d.status, Some(complete(&edge_only.id)));
    assert_eq!(count(&d, "AnalysisPassed"), 0);
}

#[test]
fn restarted_new_pods_fail_even_when_available() {
    let (stable, target) = revisions();
    let mut world = World::running(&stable.rendered);
    world.faults.insert(
        target.object(ChildKind::Deployment, "payment").hash.clone(),
        Fault::Restarting,
    );
    let mut d = Driver::new(world, &target, Some(&stable));
    d.settle(100);
    let failure = d.status.clone().unwrap().failure.unwrap();
    assert_eq!(
        (failure.component.as_str(), failure.reason.as_str()),
        ("payment-service", "Restarting")
    );
    assert!(
        failure
            .message
            .starts_with("container app in pod shop-payment-"),
        "{}",
        failure.message
    );
    assert!(
        failure
            .message
            .ends_with("restarted 2 time(s) (last: OOMKilled, exit code 137)"),
        "{}",
        failure.message
    );
}

#[test]
fn a_crash_during_the_bake_fails_at_once() {
    let (stable, target) = revisions();
    let mut d = Driver::new(World::running(&stable.rendered), &target, Some(&stable));
    with_analysis(&mut d, 500, 100);
    for _ in 0..20 {
        d.pass();
        if d.status
            .as_ref()
            .is_some_and(|s| s.bake_started_at.is_some())
        {
            break;
        }
    }
    assert_eq!(
        d.status.as_ref().unwrap().step,
        Some(Backends),
        "baking the backends"
    );
    let pod = d.world.pods.iter_mut().find(|p| {
        p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("shop-order-")
            && p["metadata"]["creationTimestamp"] != "2025-12-31T00:00:00Z"
    });
    pod.unwrap()["status"]["containerStatuses"][0]["restartCount"] = 1.into();
    d.pass();
    let failure = d.status.clone().unwrap().failure.unwrap();
    assert_eq!(
        (
            failure.step,
            failure.component.as_str(),
            failure.reason.as_str()
        ),
        (Backends, "order-service", "Restarting")
    );
    assert_eq!(count(&d, "AnalysisPassed"), 0);
}

#[test]
fn a_lost_stable_revision_holds_instead_of_rolling_back_blind() {
    let (stable, target) = revisions();
    let world = World::running(&stable.rendered);
    let settings = super::settings::Settings::from_spec(&store("shop").spec).unwrap();
    let previous = RolloutStatus {
        state: RolloutState::RollingBack,
        stable_revision: Some(stable.id.clone()),
        step: Some(Backends),
        step_started_at: Some("2026-01-01T00:00:00Z".into()),
        failed_revision: Some(target.id.clone()),
        ..complete(&target.id)
    };
    let d = decide(&Input {
        target: target.as_revision(),
        stable: None,
        previous: Some(&previous),
        cluster: world.cluster(),
        settings: &settings,
        baseline: None,
        samples: None,
        now: t0(),
    });
    let st = d.rollout.unwrap();
    assert_eq!(st.state, RolloutState::Halted);
    assert!(st.message.starts_with("cannot roll back"), "{}", st.message);
    assert!(!d.prune, "never prune towards a half-known state");
}
