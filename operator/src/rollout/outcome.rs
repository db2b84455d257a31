//! What a rollout's state means for the Store's phase and kstatus
//! conditions. `reconcile::status` uses these instead of its own when a
//! rollout is in flight or ended in a failure; for a complete rollout (and
//! a paused Store) it keeps judging by component readiness.

use crate::api::{Condition, Phase, RolloutFailure, RolloutState, RolloutStatus};
use crate::reconcile::status::types;

/// The phase and conditions a rollout implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No rollout in flight; the target runs everywhere.
    Complete,
    /// `spec.paused` holds the rollout.
    Paused {
        /// Where it holds.
        message: String,
    },
    /// Moving to the target, step by step.
    Progressing {
        /// What the step waits for.
        message: String,
    },
    /// Returning to the stable revision after `failure`.
    RollingBack {
        /// What the step waits for.
        message: String,
        /// Why.
        failure: RolloutFailure,
    },
    /// Back on the stable revision after `failure`.
    RolledBack {
        /// Summary.
        message: String,
        /// Why.
        failure: RolloutFailure,
    },
    /// Holding where `failure` happened.
    Halted {
        /// Summary.
        message: String,
        /// Why.
        failure: RolloutFailure,
        /// Whether there was no stable revision to return to (a first install).
        first_install: bool,
    },
}

impl Outcome {
    /// The outcome of a rollout status (`paused` wins over everything).
    pub fn of(status: Option<&RolloutStatus>, paused: Option<String>) -> Self {
        if let Some(message) = paused {
            return Outcome::Paused { message };
        }
        let Some(st) = status else {
            return Outcome::Complete;
        };
        let message = st.message.clone();
        match (st.state, st.failure.clone()) {
            (RolloutState::Progressing, _) => Outcome::Progressing { message },
            (RolloutState::RollingBack, Some(failure)) => Outcome::RollingBack { message, failure },
            (RolloutState::RolledBack, Some(failure)) => Outcome::RolledBack { message, failure },
            (RolloutState::Halted, Some(failure)) => Outcome::Halted {
                message,
                failure,
                first_install: st.stable_revision.is_none(),
            },
            _ => Outcome::Complete,
        }
    }

    /// The phase, or `None` to let component readiness decide.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Outcome::Complete => None,
            Outcome::Paused { .. } => Some(Phase::Paused),
            Outcome::Progressing { .. } => Some(Phase::Progressing),
            Outcome::RollingBack { .. } => Some(Phase::RollingBack),
            Outcome::RolledBack { .. } | Outcome::Halted { .. } => Some(Phase::Degraded),
        }
    }

    /// `Ready`, `Reconciling`, `Stalled` and `RolledBack` (without
    /// `observedGeneration` and `lastTransitionTime`, which the status
    /// code stamps), or `None` to let component readiness decide.
    pub fn conditions(&self) -> Option<Vec<Condition>> {
        let c = |type_: &str, status: bool, reason: &str, message: &str| Condition {
            type_: type_.to_owned(),
            status: if status { "True" } else { "False" }.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: None,
            last_transition_time: String::new(),
        };
        let cause = |f: &RolloutFailure| format!("step {}, {}: {}", f.step, f.component, f.message);
        Some(match self {
            Outcome::Complete | Outcome::Paused { .. } => return None,
            Outcome::Progressing { message } => vec![
                c(types::READY, false, "RollingOut", message),
                c(types::RECONCILING, true, "RollingOut", message),
                c(types::STALLED, false, "RollingOut", ""),
                c(types::ROLLED_BACK, false, "RollingOut", ""),
            ],
            Outcome::RollingBack { message, failure } => vec![
                c(types::READY, false, &failure.reason, &cause(failure)),
                c(types::RECONCILING, true, "RollingBack", message),
                c(types::STALLED, true, &failure.reason, &cause(failure)),
                c(types::ROLLED_BACK, false, "RollingBack", message),
            ],
            Outcome::RolledBack { message, failure } => vec![
                c(types::READY, false, &failure.reason, &cause(failure)),
                c(types::RECONCILING, false, "RolledBack", message),
                c(types::STALLED, true, &failure.reason, &cause(failure)),
                c(types::ROLLED_BACK, true, &failure.reason, message),
            ],
            Outcome::Halted {
                message,
                failure,
                first_install,
            } => vec![
                c(types::READY, false, &failure.reason, &cause(failure)),
                c(types::RECONCILING, false, "Halted", message),
                c(types::STALLED, true, &failure.reason, &cause(failure)),
                c(
                    types::ROLLED_BACK,
                    false,
                    if *first_install {
                        "NoStableRevision"
                    } else {
                        "AutoRollbackDisabled"
                    },
                    message,
                ),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RolloutStep;

    fn status(state: RolloutState, stable: Option<&str>) -> RolloutStatus {
        RolloutStatus {
            state,
            target_revision: "t".into(),
            stable_revision: stable.map(Into::into),
            step: Some(RolloutStep::Backends),
            step_started_at: None,
            bake_started_at: None,
            paused_at: None,
            message: "m".into(),
            failed_revision: Some("t".into()),
            failure: Some(RolloutFailure {
                step: RolloutStep::Backends,
                component: "order-service".into(),
                reason: "ImagePullBackOff".into(),
                message: "ImagePullBackOff for r/order-service:1.4.0".into(),
            }),
        }
    }

    fn get<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn every_state_maps_to_a_phase_and_kstatus_conditions() {
        use RolloutState as S;
        for (state, stable, phase, reconciling, stalled, rolled_back) in [
            (
                S::Progressing,
                Some("s"),
                Some(Phase::Progressing),
                "True",
                "False",
                "False",
            ),
            (
                S::RollingBack,
                Some("s"),
                Some(Phase::RollingBack),
                "True",
                "True",
                "False",
            ),
            (
                S::RolledBack,
                Some("s"),
                Some(Phase::Degraded),
                "False",
                "True",
                "True",
            ),
            (
                S::Halted,
                Some("s"),
                Some(Phase::Degraded),
                "False",
                "True",
                "False",
            ),
            (
                S::Halted,
                None,
                Some(Phase::Degraded),
                "False",
                "True",
                "False",
            ),
        ] {
            let st = status(state, stable);
            let outcome = Outcome::of(Some(&st), None);
            assert_eq!(outcome.phase(), phase, "{state:?}");
            let conds = outcome.conditions().unwrap();
            assert_eq!(get(&conds, types::READY).status, "False");
            assert_eq!(
                get(&conds, types::RECONCILING).status,
                reconciling,
                "{state:?}"
            );
            assert_eq!(get(&conds, types::STALLED).status, stalled, "{state:?}");
            assert_eq!(
                get(&conds, types::ROLLED_BACK).status,
                rolled_back,
                "{state:?}"
            );
            if stalled == "True" {
                let s = get(&conds, types::STALLED);
                assert_eq!(s.reason, "ImagePullBackOff");
                assert!(s.message.contains("order-service"), "{}", s.message);
            }
        }
        let halted = Outcome::of(Some(&status(S::Halted, None)), None);
        assert_eq!(
            get(&halted.conditions().unwrap(), types::ROLLED_BACK).reason,
            "NoStableRevision"
        );
        let complete = Outcome::of(Some(&status(S::Complete, Some("t"))), None);
        assert_eq!((complete.phase(), complete.conditions()), (None, None));
        assert_eq!(Outcome::of(None, None), Outcome::Complete);
        let paused = Outcome::of(Some(&status(S::Progressing, Some("s"))), Some("p".into()));
        assert_eq!(
            (paused.phase(), paused.conditions()),
            (Some(Phase::Paused), None)
        );
    }
}
