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
    /// Revision (hash of the spec) the operator is rolling out or running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Last revision that was fully Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good_revision: Option<String>,
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
