//! Health-gated, step-by-step rollout with automatic rollback, as pure
//! functions the controller calls with what it listed:
//!
//! * `revision`: the id of a spec, the ControllerRevision that keeps it,
//!   which old ones to delete;
//! * `steps`: the ordered steps and the mixed desired set of a rollout in
//!   flight;
//! * `template` and `health`: which pods run a workload's current template,
//!   and whether a step is healthy, waiting, or failed (and why);
//! * `exposition` and `analysis`: the new pods' `/metrics` read and judged;
//! * `settings`, `decide` and `outcome`: the state machine, and what its
//!   state means for the Store's phase and conditions.
//!
//! All state lives in `status.rollout` and the ControllerRevisions, so an
//! operator restarted mid-step resumes there; see `decide` for the diagram.

pub mod analysis;
pub mod decide;
pub mod exposition;
pub mod health;
pub mod outcome;
pub mod revision;
pub mod settings;
pub mod steps;
pub mod template;

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod testing;

pub use decide::{
    Decision, Input, MetricsRequest, MetricsTarget, Purpose, Revision, decide, in_flight,
};
pub use health::Cluster;
pub use outcome::Outcome;
pub use settings::Settings;
