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
    /// Objects to server-side apply, in step order.
    pub apply: Vec<&'a Object>,
    /// Children this Store owns that are no longer desired.
    pub prune: Vec<(ChildKind, String)>,
}

impl Plan<'_> {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.create_secrets.is_empty() && self.apply.is_empty() && self.prune.is_empty()
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
        apply,
        prune,
    }
}
