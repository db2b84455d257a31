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

/// The Events of one pass: the rollout's own (each already says what
/// happened, with its cause) and then the status transition's. A rollout
/// Event and a transition Event of the same type tell the same news ("step
/// started" and "phase -> Progressing"; "rollout failed" and "Stalled"), so
/// a transition is kept only when the rollout said nothing of its type
/// (an apply the API server refused, say).
pub fn merge(decided: Vec<Transition>, transitions: Vec<Transition>) -> Vec<Transition> {
    let said = |warning: bool| decided.iter().any(|t| t.warning == warning);
    let kept: Vec<Transition> = transitions
        .into_iter()
        .filter(|t| !said(t.warning))
        .collect();
    decided.into_iter().chain(kept).collect()
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

    fn event(warning: bool, reason: &str) -> Transition {
        Transition {
            warning,
            reason: reason.to_owned(),
            note: String::new(),
        }
    }

    #[test]
    fn a_rollout_failure_is_announced_once() {
        let merged = merge(
            vec![event(true, "RolloutFailed")],
            vec![event(true, "HealthTimeout"), event(false, "RollingBack")],
        );
        let reasons: Vec<&str> = merged.iter().map(|t| t.reason.as_str()).collect();
        assert_eq!(reasons, ["RolloutFailed", "RollingBack"]);
        let quiet = merge(
            vec![event(false, "StepStarted")],
            vec![event(true, "ApplyFailed")],
        );
        assert_eq!(
            quiet.len(),
            2,
            "a stall the rollout did not announce is kept"
        );
    }
}
