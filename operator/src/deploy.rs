//! `storekeeper deploy` and `storekeeper wait`: continuous delivery through
//! the operator. A pipeline moves a Store to a version (or a GitOps commit
//! does) and then needs one answer: is the shop Ready at that version, or did
//! the operator roll it back, and why. [`verdict`] reads that answer off the
//! Store's status; [`wait`] polls until there is one.

use std::fmt::Write as _;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::api::{Phase, RolloutState, Store, StoreStatus};
use crate::reconcile::status::types;

/// How often [`wait`] reads the Store: a rollout step takes tens of seconds,
/// so a two-second poll adds little latency and few requests.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What a Store's status says about a deploy of one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet; the text says where the rollout stands.
    Waiting(String),
    /// Every component is ready at the version.
    Ready,
    /// The version will not become ready without a person: the operator
    /// rolled it back, halted it, or refused the spec. The text says why.
    Failed(String),
}

/// Why a deploy did not end Ready.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The API server refused a request (RBAC, the Store's validation rules, a missing Store).
    #[error("{action} Store {namespace}/{name}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// The Store's namespace.
        namespace: String,
        /// The Store's name.
        name: String,
        /// The API server's answer.
        source: kube::Error,
    },
    /// The operator decided the version cannot become ready.
    #[error("Store {namespace}/{name} at {version}: {reason}")]
    Failed {
        /// The Store's namespace.
        namespace: String,
        /// The Store's name.
        name: String,
        /// The version deployed.
        version: String,
        /// The operator's reason, from the Store's status.
        reason: String,
    },
    /// No verdict within the timeout.
    #[error("Store {namespace}/{name} not Ready at {version} after {waited:?}: {last}")]
    Timeout {
        /// The Store's namespace.
        namespace: String,
        /// The Store's name.
        name: String,
        /// The version deployed.
        version: String,
        /// How long was waited.
        waited: Duration,
        /// Where the rollout stood.
        last: String,
    },
}

/// The Store a deploy targets and the version it must reach.
#[derive(Clone, Debug)]
pub struct Target {
    /// The Store's namespace.
    pub namespace: String,
    /// The Store's name.
    pub name: String,
    /// The `spec.version` to reach.
    pub version: String,
}

/// Reads the deploy's outcome off a Store whose spec is at `generation`.
/// A status written for an older generation says nothing about this deploy,
/// however Ready it looks.
pub fn verdict(store: &Store, version: &str, generation: i64) -> Verdict {
    let Some(status) = store.status.as_ref() else {
        return Verdict::Waiting("the operator has not written a status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Verdict::Waiting(format!(
            "the operator has not read generation {generation} of the spec yet"
        ));
    }
    if let Some(stalled) = status
        .condition(types::STALLED)
        .filter(|c| c.status == "True" && c.reason == "InvalidSpec")
    {
        return Verdict::Failed(format!("invalid spec: {}", stalled.message));
    }
    if let Some(rollout) = &status.rollout {
        match rollout.state {
            RolloutState::RolledBack | RolloutState::Halted => {
                let verb = if rollout.state == RolloutState::RolledBack {
                    "rolled back"
                } else {
                    "halted"
                };
                return Verdict::Failed(failure_text(verb, status));
            }
            RolloutState::Progressing | RolloutState::RollingBack | RolloutState::Complete => {}
        }
    }
    let at_version = status.current_version.as_deref() == Some(version);
    let complete = status
        .rollout
        .as_ref()
        .is_none_or(|r| r.state == RolloutState::Complete);
    if status.phase == Some(Phase::Ready) && at_version && complete {
        return Verdict::Ready;
    }
    Verdict::Waiting(progress_text(status))
}

fn failure_text(verb: &str, status: &StoreStatus) -> String {
    let Some(rollout) = &status.rollout else {
        return verb.to_owned();
    };
    let mut text = verb.to_owned();
    if let Some(failure) = &rollout.failure {
        let _ = write!(
            text,
            ": {} failed in the {} step ({}): {}",
            failure.component, failure.step, failure.reason, failure.message
        );
    } else if !rollout.message.is_empty() {
        let _ = write!(text, ": {}", rollout.message);
    }
    if let (RolloutState::RolledBack, Some(current)) = (rollout.state, &status.current_version) {
        let _ = write!(text, "; the shop runs {current} again");
    }
    text
}

fn progress_text(status: &StoreStatus) -> String {
    let phase = status.phase.map_or("no phase", Phase::as_str);
    let mut text = phase.to_owned();
    if let Some(rollout) = &status.rollout {
        if let Some(step) = rollout.step {
            let _ = write!(text, ", step {step}");
        }
        if !rollout.message.is_empty() {
            let _ = write!(text, ": {}", rollout.message);
        }
    } else if let Some(ready) = status
        .condition(types::READY)
        .filter(|c| !c.message.is_empty())
    {
        let _ = write!(text, ": {}", ready.message);
    }
    text
}

/// Sets the Store's `spec.version` (a merge patch, so nothing else in the
/// spec changes) and returns the generation the API server gave that spec.
pub async fn set_version(api: &Api<Store>, target: &Target) -> Result<i64, DeployError> {
    let patch = json!({ "spec": { "version": target.version } });
    let store = api
        .patch(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| api_error("patching", target, source))?;
    Ok(store.metadata.generation.unwrap_or(0))
}

/// How long [`wait`] waits and how often it reads.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// Give up after this long.
    pub timeout: Duration,
    /// Read the Store this often ([`POLL_INTERVAL`]).
    pub poll: Duration,
}

/// Polls the Store until [`verdict`] decides, printing each new state to
/// `progress`; Ready is `Ok`, anything else an error with the operator's
/// reason. `generation` is the spec to judge (from [`set_version`], or the
/// Store's current one when something else changed the spec).
pub async fn wait(
    api: &Api<Store>,
    target: &Target,
    generation: Option<i64>,
    patience: Patience,
    mut progress: impl FnMut(&str),
) -> Result<(), DeployError> {
    let Patience { timeout, poll } = patience;
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    loop {
        let store = api
            .get(&target.name)
            .await
            .map_err(|source| api_error("reading", target, source))?;
        let generation = generation.unwrap_or(store.metadata.generation.unwrap_or(0));
        match verdict(&store, &target.version, generation) {
            Verdict::Ready => return Ok(()),
            Verdict::Failed(reason) => {
                return Err(DeployError::Failed {
                    namespace: target.namespace.clone(),
                    name: target.name.clone(),
                    version: target.version.clone(),
                    reason,
                });
            }
            Verdict::Waiting(now) => {
                if now != last {
                    progress(&now);
                    last = now;
                }
            }
        }
        let waited = started.elapsed();
        let Some(left) = timeout.checked_sub(waited).filter(|left| !left.is_zero()) else {
            return Err(DeployError::Timeout {
                namespace: target.namespace.clone(),
                name: target.name.clone(),
                version: target.version.clone(),
                waited,
                last,
            });
        };
        tokio::time::sleep(poll.min(left)).await;
    }
}

fn api_error(action: &'static str, target: &Target, source: kube::Error) -> DeployError {
    DeployError::Api {
        action,
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        source,
    }
}

#[cfg(test)]
#[path = "deploy_tests.rs"]
mod tests;
