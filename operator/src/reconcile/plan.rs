//! The plan: which Secrets to create, which objects to apply, which to prune.
//!
//! An object is applied when it is missing, when its hash annotation differs
//! from the desired object's hash (our intent changed — this also catches
//! fields we *removed*), or when a field we set was changed by someone else
//! (drift, via `compare::is_subset`). Otherwise it is left alone, so a steady
//! state costs no write at all.

use super::compare::is_subset;
use super::observed::{Observed, applied_hash, controller_uid};
use crate::render::{ChildKind, Object, Rendered, SecretSpec};

/// What one reconcile will change.
#[derive(Debug, Default, PartialEq)]
pub struct Plan<'a> {
    /// Generated Secrets that do not exist yet.
    pub create_secrets: Vec<&'a SecretSpec>,
    /// Generated Secrets that exist but whose ownership disagrees with
    /// `SecretSpec::owned` (the deletion policy changed, or a kept Secret
    /// is reused by a re-created Store): the Store's owner reference is
    /// set on them or removed.
    pub own_secrets: Vec<&'a SecretSpec>,
    /// Objects to server-side apply, in step order.
    pub apply: Vec<&'a Object>,
    /// Children this Store owns that are no longer desired.
    pub prune: Vec<(ChildKind, String)>,
}

impl Plan<'_> {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.create_secrets.is_empty()
            && self.own_secrets.is_empty()
            && self.apply.is_empty()
            && self.prune.is_empty()
    }
}

/// Why an object needs applying, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// It does not exist.
    Missing,
    /// The operator's desired object changed.
    Changed,
    /// Someone changed a field the operator owns.
    Drifted,
}

/// Whether (and why) one desired object must be applied.
pub fn needs_apply(desired: &Object, observed: &Observed) -> Option<Reason> {
    let Some(live) = observed.get(desired.kind, &desired.name) else {
        return Some(Reason::Missing);
    };
    if applied_hash(live) != Some(desired.hash.as_str()) {
        return Some(Reason::Changed);
    }
    if !is_subset(&desired.value, live) {
        return Some(Reason::Drifted);
    }
    None
}

/// Compares desired with observed. A paused Store plans nothing.
pub fn plan<'a>(
    rendered: &'a Rendered,
    observed: &Observed,
    owner_uid: &str,
    paused: bool,
) -> Plan<'a> {
    if paused {
        return Plan::default();
    }
    let create_secrets = rendered
        .secrets
        .iter()
        .filter(|s| observed.get(ChildKind::Secret, &s.name).is_none())
        .collect();
    let own_secrets = rendered
        .secrets
        .iter()
        .filter(|s| {
            observed
                .get(ChildKind::Secret, &s.name)
                .is_some_and(|live| {
                    let owner = controller_uid(live);
                    // Owned by us but should not be, or should be and is not.
                    // A reference to another (deleted) owner is the garbage
                    // collector's to drop, unless the Secret must be ours.
                    if s.owned {
                        owner != Some(owner_uid)
                    } else {
                        owner == Some(owner_uid)
                    }
                })
        })
        .collect();
    let apply = rendered
        .objects
        .iter()
        .filter(|o| needs_apply(o, observed).is_some())
        .collect();
    let prune = observed
        .iter()
        .filter(|(kind, _, _)| kind.is_applied())
        .filter(|(_, _, live)| controller_uid(live) == Some(owner_uid))
        .filter(|(kind, name, _)| {
            !rendered
                .objects
                .iter()
                .any(|o| o.kind == *kind && o.name == *name)
        })
        .map(|(kind, name, _)| (kind, name.to_owned()))
        .collect();
    Plan {
        create_secrets,
        own_secrets,
        apply,
        prune,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::secrets::SecretKind;

    fn spec(owned: bool) -> SecretSpec {
        SecretSpec {
            name: "shop-postgres".to_owned(),
            component: "postgres",
            kind: SecretKind::Passwords(vec!["postgres".to_owned()]),
            owned,
        }
    }

    fn observed(owner: Option<&str>) -> Observed {
        let mut o = Observed::default();
        let refs = owner.map(|uid| json!([{"uid": uid, "controller": true}]));
        o.insert(
            ChildKind::Secret,
            json!({"metadata": {"name": "shop-postgres", "ownerReferences": refs}}),
        );
        o
    }

    fn own_secrets(should_own: bool, owner: Option<&str>) -> usize {
        let rendered = Rendered {
            objects: Vec::new(),
            secrets: vec![spec(should_own)],
        };
        let p = plan(&rendered, &observed(owner), "me", false);
        assert!(p.create_secrets.is_empty(), "an existing Secret is reused");
        p.own_secrets.len()
    }

    #[test]
    fn a_kept_secret_is_reused_and_its_ownership_follows_the_policy() {
        // Retain: an unowned Secret (left by a deleted Store) is just reused.
        assert_eq!(own_secrets(false, None), 0);
        // Retain on a Secret this Store owns: released.
        assert_eq!(own_secrets(false, Some("me")), 1);
        // A dangling reference to a deleted Store is the GC's to drop.
        assert_eq!(own_secrets(false, Some("gone")), 0);
        // Delete: adopted unless already ours.
        assert_eq!(own_secrets(true, None), 1);
        assert_eq!(own_secrets(true, Some("gone")), 1);
        assert_eq!(own_secrets(true, Some("me")), 0);
    }
}
