//! The Store's status: what the operator observed, in a shape kstatus, Flux
//! and Argo CD read natively.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a Store. Never contains credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary: Pending, Progressing, Ready, Degraded, RollingBack or Paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// kstatus conditions: `Ready` (normal-true), `Reconciling` and `Stalled` (abnormal-true), `RolledBack`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Readiness of every component (data stores and services).
    #[serde(default)]
    pub components: Vec<ComponentStatus>,
    /// Ready services out of all services, e.g. `5/5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// Where shoppers reach the storefront.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Version the shop serves: that of the last revision that rolled out completely (while a rollout is in flight, the stable one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The step-by-step rollout: target and stable revision, the step in flight and why it waits, and how the last rollout ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Children the API server refused to apply this pass (kind, name and its message); they are retried every pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apply_failures: Vec<String>,
}

impl StoreStatus {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// One-word summary of a Store's state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Nothing is running yet.
    Pending,
    /// Children are being created or updated.
    Progressing,
    /// Every component is ready with the current revision.
    Ready,
    /// Something is wrong that needs a person: invalid spec, failed rollout.
    Degraded,
    /// A failed revision is being replaced by the last good one.
    RollingBack,
    /// `spec.paused` is set; the operator changes nothing.
    Paused,
}

impl Phase {
    /// The phase as the word written to status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Progressing => "Progressing",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::RollingBack => "RollingBack",
            Phase::Paused => "Paused",
        }
    }
}

/// A kstatus-compatible condition (the shape of `metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: `Ready`, `Reconciling`, `Stalled` or `RolledBack`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason, stable for tools to match on.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
}

/// Readiness of one component.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Component name, e.g. `postgres` or `user`.
    pub name: String,
    /// Pods ready with the current template.
    pub ready_replicas: i32,
    /// Pods wanted.
    pub desired_replicas: i32,
    /// Whether the component is ready (an `external` data store always is).
    pub ready: bool,
}

/// Where a rollout stands. Together with the Store's ControllerRevisions
/// this is all the state a rollout has, so an operator restarted in the
/// middle of a step resumes exactly there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Progressing (moving to the target step by step), Complete (the target runs everywhere), RollingBack (returning to the stable revision, last step first), RolledBack (back on the stable revision; the target is not retried until the spec changes) or Halted (failed and holding where it failed: autoRollback is off, or there is nothing to roll back to).
    pub state: RolloutState,
    /// Revision the spec asks for: a hash of everything that defines the shop (not `paused`, not `rollout`). Its spec is kept in the ControllerRevision `<store>-<revision>`.
    pub target_revision: String,
    /// Last revision that finished rolling out, and what a rollback returns to. Absent until the first rollout completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Step in flight: Foundation, Data, Migrations, Backends, Storefront or Edge (in that order; backwards while rolling back). Absent when nothing is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<RolloutStep>,
    /// When the step in flight started (RFC 3339). It fails when it is not healthy `spec.rollout.healthTimeoutSeconds` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<String>,
    /// When the step in flight became healthy (RFC 3339); it bakes for `spec.rollout.analysis.bakeSeconds` from then before the next step starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bake_started_at: Option<String>,
    /// When `spec.paused` froze the rollout (RFC 3339). Resuming restarts the step's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    /// Why the rollout waits, or how it ended, in one line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Revision that failed; it is not rolled out again until the spec names another revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// What made `failedRevision` fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<RolloutFailure>,
}

impl RolloutStatus {
    /// A rollout of `target` in `state`, with no step in flight (yet) and
    /// nothing failed: where a new rollout starts and a complete one rests.
    pub fn new(state: RolloutState, target: &str, stable: Option<&str>) -> Self {
        Self {
            state,
            target_revision: target.to_owned(),
            stable_revision: stable.map(str::to_owned),
            step: None,
            step_started_at: None,
            bake_started_at: None,
            paused_at: None,
            message: String::new(),
            failed_revision: None,
            failure: None,
        }
    }
}

/// The state of a rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutState {
    /// Moving to the target revision, one step at a time.
    Progressing,
    /// The target revision runs in every step; it is now the stable one.
    Complete,
    /// The target failed; the stable revision is being re-applied, last step first.
    RollingBack,
    /// The stable revision runs again; the failed target is not retried.
    RolledBack,
    /// The target failed and the rollout holds where it failed.
    Halted,
}

/// A rollout step: the objects that change together and must be healthy
/// before the next step starts.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum RolloutStep {
    /// Shared config, service accounts, network policies.
    Foundation,
    /// PostgreSQL, Redis, RabbitMQ.
    Data,
    /// The services' schema migrations: a Job each, run to completion.
    Migrations,
    /// user, product, payment and order services.
    Backends,
    /// The storefront.
    Storefront,
    /// The Ingress.
    Edge,
}

impl RolloutStep {
    /// The step as written to status.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStep::Foundation => "Foundation",
            RolloutStep::Data => "Data",
            RolloutStep::Migrations => "Migrations",
            RolloutStep::Backends => "Backends",
            RolloutStep::Storefront => "Storefront",
            RolloutStep::Edge => "Edge",
        }
    }
}

impl std::fmt::Display for RolloutStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a revision failed, precise enough to act on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutFailure {
    /// Step that failed.
    pub step: RolloutStep,
    /// Component that failed, e.g. `order-service` or `postgres`.
    pub component: String,
    /// CamelCase cause, e.g. `ImagePullBackOff`, `CrashLoopBackOff`, `Restarting`, `ProgressDeadlineExceeded`, `HealthTimeout` or `AnalysisFailed`.
    pub reason: String,
    /// The cause in words, e.g. `ImagePullBackOff for registry.example.com/order-service:1.4.0`.
    pub message: String,
}
