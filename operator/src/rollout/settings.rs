//! The rollout settings of a spec, parsed once into what the state machine
//! compares against.

use chrono::TimeDelta;

use super::analysis::Limits;
use crate::api::StoreSpec;
use crate::error::Invalid;

/// How this Store wants to be rolled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Re-apply the stable revision when a step fails.
    pub auto_rollback: bool,
    /// `spec.paused`: freeze where the rollout stands.
    pub paused: bool,
    /// How long a step may take to become healthy.
    pub health_timeout: TimeDelta,
    /// Bake and judge the backend and storefront steps.
    pub analysis: Option<Analysis>,
}

/// The analysis block, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// How long a healthy step bakes.
    pub bake: TimeDelta,
    /// What the bake is judged against.
    pub limits: Limits,
}

impl Settings {
    /// The settings of `spec`; fails only on a spec validation refuses.
    pub fn from_spec(spec: &StoreSpec) -> Result<Self, Invalid> {
        let rollout = &spec.rollout;
        let analysis = match &rollout.analysis {
            None => None,
            Some(a) => Some(Analysis {
                bake: TimeDelta::seconds(a.bake_seconds.into()),
                limits: Limits::from_spec(a).ok_or_else(|| Invalid {
                    problems: vec![(
                        "spec.rollout.analysis.maxErrorRatio".to_owned(),
                        "must be a decimal from 0 to 1 with at most four decimals".to_owned(),
                    )],
                })?,
            }),
        };
        Ok(Self {
            auto_rollback: rollout.auto_rollback,
            paused: spec.paused,
            health_timeout: TimeDelta::seconds(rollout.health_timeout_seconds.into()),
            analysis,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AnalysisSpec;
    use crate::fixtures::store;

    #[test]
    fn settings_follow_the_spec() {
        let mut s = store("shop").paused();
        let plain = Settings::from_spec(&s.spec).unwrap();
        assert!(plain.auto_rollback && plain.paused && plain.analysis.is_none());
        assert_eq!(plain.health_timeout, TimeDelta::seconds(600));
        s.spec.rollout.analysis = Some(AnalysisSpec {
            bake_seconds: 30,
            max_error_ratio: Some("0.1".into()),
            max_p99_milliseconds: None,
            min_requests: 5,
        });
        let judged = Settings::from_spec(&s.spec).unwrap().analysis.unwrap();
        assert_eq!(judged.bake, TimeDelta::seconds(30));
        assert_eq!(judged.limits.max_error_basis_points, Some(1000));
        s.spec.rollout.analysis.as_mut().unwrap().max_error_ratio = Some("ten".into());
        let err = Settings::from_spec(&s.spec).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.rollout.analysis.maxErrorRatio"),
            "{err}"
        );
    }
}
