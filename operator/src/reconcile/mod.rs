//! The pure decisions of a reconcile: what the cluster holds (`observed`),
//! what to change (`plan`), what the status says (`status`), which Events a
//! status change deserves (`events`). The async shell in `crate::controller`
//! only gathers inputs for these functions and carries out their answers, so
//! health-gated rollout can later extend `plan` without touching I/O code.

pub mod compare;
pub mod events;
pub mod generate;
pub mod observed;
pub mod plan;
pub mod status;
pub mod upgrade;

pub use observed::Observed;
pub use plan::{Plan, plan};
