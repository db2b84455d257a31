//! Which Events a status change deserves: one per meaningful transition
//! (a new phase, a new stall reason), never one per reconcile.

use crate::api::{Phase, StoreStatus};

use super::status::types;

/// An Event to publish about the Store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable note (never contains credentials: status never does).
    pub note: String,
}

/// Events for moving from `old` to `new` status.
pub fn transitions(old: &StoreStatus, new: &StoreStatus) -> Vec<Transition> {
    let mut out = Vec::new();
    let stalled = |s: &StoreStatus| {
        s.condition(types::STALLED)
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let (old_stall, new_stall) = (stalled(old), stalled(new));
    if let Some((reason, message)) = &new_stall
        && old_stall.as_ref().map(|s| &s.0) != Some(reason)
    {
        out.push(Transition {
            warning: true,
            reason: reason.clone(),
            note: message.clone(),
        });
    }
    if old.phase != new.phase
        && let Some(phase) = new.phase
    {
        let warning = phase == Phase::Degraded;
        if !(warning && new_stall.is_some()) {
            out.push(Transition {
                warning,
                reason: phase.as_str().to_owned(),
                note: format!(
                    "phase {} -> {}",
                    old.phase.map_or("none", Phase::as_str),
                    phase.as_str()
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_phase(phase: Phase) -> StoreStatus {
        StoreStatus {
            phase: Some(phase),
            ..StoreStatus::default()
        }
    }

    #[test]
    fn unchanged_status_emits_nothing() {
        let s = with_phase(Phase::Ready);
        assert!(transitions(&s, &s).is_empty());
    }

    #[test]
    fn phase_change_emits_one_normal_event() {
        let t = transitions(&with_phase(Phase::Progressing), &with_phase(Phase::Ready));
        assert_eq!(t.len(), 1);
        assert!(!t[0].warning);
        assert_eq!(t[0].reason, "Ready");
    }
}
