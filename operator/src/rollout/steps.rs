//! The ordered rollout steps, which step every rendered object belongs to,
//! and the mixed desired set of a rollout in flight: steps already reached
//! carry the target revision's objects, later steps keep the stable ones.

use crate::api::RolloutStep;
use crate::render::{Object, Rendered, Step};

impl RolloutStep {
    /// Every step, in rollout order.
    pub const ALL: [RolloutStep; 6] = [
        RolloutStep::Foundation,
        RolloutStep::Data,
        RolloutStep::Migrations,
        RolloutStep::Backends,
        RolloutStep::Storefront,
        RolloutStep::Edge,
    ];

    /// The step a rendered object rolls out in. Objects without health of
    /// their own (ConfigMaps, Services, PDBs, NetworkPolicies) go with the
    /// step render puts them in.
    pub fn of(object: &Object) -> RolloutStep {
        match object.step {
            Step::Foundation => RolloutStep::Foundation,
            Step::Data => RolloutStep::Data,
            Step::Migrations => RolloutStep::Migrations,
            Step::Backend => RolloutStep::Backends,
            Step::Storefront => RolloutStep::Storefront,
            Step::Edge => RolloutStep::Edge,
        }
    }

    fn position(self) -> usize {
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default()
    }

    /// The step after this one.
    pub fn next(self) -> Option<RolloutStep> {
        Self::ALL.get(self.position() + 1).copied()
    }

    /// The step before this one (where a rollback goes next).
    pub fn previous(self) -> Option<RolloutStep> {
        self.position()
            .checked_sub(1)
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// Whether a healthy step must also bake (and pass analysis) before the
    /// next one starts: the steps that run the shop's own code.
    pub fn bakes(self) -> bool {
        matches!(self, RolloutStep::Backends | RolloutStep::Storefront)
    }
}

/// The objects of `rendered` in `step`, in apply order.
pub fn objects(rendered: &Rendered, step: RolloutStep) -> impl Iterator<Item = &Object> {
    rendered
        .objects
        .iter()
        .filter(move |o| RolloutStep::of(o) == step)
}

/// Whether `step` differs between the two revisions (an object added,
/// removed or changed). A first install changes every step.
pub fn changed(target: &Rendered, stable: Option<&Rendered>, step: RolloutStep) -> bool {
    let Some(stable) = stable else {
        return true;
    };
    let key = |o: &Object| (o.kind, o.name.clone(), o.hash.clone());
    let a: Vec<_> = objects(target, step).map(key).collect();
    let b: Vec<_> = objects(stable, step).map(key).collect();
    a != b
}

/// The desired set while a rollout is in flight: the target's objects for
/// every step up to `last_on_target` (inclusive), the stable's for the
/// rest. Without a stable revision (a first install) later steps get
/// nothing — and since nothing is pruned mid-rollout, whatever runs there
/// is left alone. Secrets are the target's (they are only ever created).
pub fn mix(
    target: &Rendered,
    stable: Option<&Rendered>,
    last_on_target: Option<RolloutStep>,
) -> Rendered {
    let mut objects_out = Vec::with_capacity(target.objects.len());
    for step in RolloutStep::ALL {
        let source = if last_on_target.is_some_and(|last| step <= last) {
            Some(target)
        } else {
            stable
        };
        if let Some(source) = source {
            objects_out.extend(objects(source, step).cloned());
        }
    }
    Rendered {
        objects: objects_out,
        secrets: target.secrets.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;
    use crate::render::render;
    use crate::rollout::testing::{two_revisions, upgraded};

    #[test]
    fn steps_walk_both_ways() {
        let mut forward = vec![RolloutStep::Foundation];
        while let Some(n) = forward.last().and_then(|s| s.next()) {
            forward.push(n);
        }
        assert_eq!(forward, RolloutStep::ALL);
        let mut backward = vec![RolloutStep::Edge];
        while let Some(p) = backward.last().and_then(|s| s.previous()) {
            backward.push(p);
        }
        backward.reverse();
        assert_eq!(backward, RolloutStep::ALL);
        let baking: Vec<_> = RolloutStep::ALL.into_iter().filter(|s| s.bakes()).collect();
        assert_eq!(baking, [RolloutStep::Backends, RolloutStep::Storefront]);
    }

    #[test]
    fn every_rendered_object_has_a_step_in_render_order() {
        let rendered = render(&store("shop")).unwrap();
        let steps: Vec<RolloutStep> = rendered.objects.iter().map(RolloutStep::of).collect();
        assert!(steps.is_sorted(), "render applies in rollout order");
        for step in RolloutStep::ALL {
            assert!(objects(&rendered, step).next().is_some(), "{step} is empty");
        }
        let storefront: Vec<&str> = objects(&rendered, RolloutStep::Storefront)
            .map(|o| o.name.as_str())
            .collect();
        assert!(
            storefront.iter().all(|n| *n == "shop-storefront"),
            "{storefront:?}"
        );
    }

    #[test]
    fn mix_takes_the_target_up_to_the_step_and_the_stable_after() {
        let (stable, target) = two_revisions();
        for (i, last) in RolloutStep::ALL.into_iter().enumerate() {
            let mixed = mix(&target, Some(&stable), Some(last));
            for step in RolloutStep::ALL {
                let want = if step <= last { &target } else { &stable };
                let got: Vec<&Object> = objects(&mixed, step).collect();
                let expected: Vec<&Object> = objects(want, step).collect();
                assert_eq!(got, expected, "step {step} with last {last} (#{i})");
            }
        }
        assert_eq!(mix(&target, Some(&stable), None).objects, stable.objects);
        let first_install = mix(&target, None, Some(RolloutStep::Data));
        assert!(
            first_install
                .objects
                .iter()
                .all(|o| RolloutStep::of(o) <= RolloutStep::Data)
        );
    }

    #[test]
    fn every_step_differs_between_the_test_revisions() {
        let (stable, target) = two_revisions();
        for step in RolloutStep::ALL {
            assert!(changed(&target, Some(&stable), step), "{step}");
            assert!(!changed(&stable, Some(&stable), step), "{step}");
            assert!(changed(&stable, None, step), "{step}");
        }
        let same_services = upgraded(|s| s.spec.ingress.class_name = "traefik".into());
        let (stable, _) = two_revisions();
        assert!(!changed(
            &same_services,
            Some(&stable),
            RolloutStep::Backends
        ));
        assert!(changed(&same_services, Some(&stable), RolloutStep::Edge));
    }
}
