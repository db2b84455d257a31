//! Storekeeper: the Kubernetes operator that runs a whole online shop from one
//! `Store` resource.
//!
//! The crate is split the way the house rules ask: pure functions decide
//! (`render` turns a Store into the objects it needs, `reconcile::plan`
//! compares them with what the cluster holds, `rollout` decides which step
//! of a new revision goes out and when to roll back, `reconcile::status`
//! derives the Store's status), and a thin async shell (`controller`, with
//! `history` for ControllerRevisions, `generated_secrets` for the Secrets
//! it creates and `pod_metrics` for the analysis)
//! reads, applies and writes. Everything the pure part needs is a plain value, so it is tested
//! exhaustively without an API server.

pub mod admin;
pub mod api;
pub mod backoff;
pub mod cache;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod deploy;
pub mod error;
pub mod generated_secrets;
pub mod history;
pub mod identity;
pub mod lease;
pub mod memory;
pub mod metrics;
pub mod pod_metrics;
pub mod rbac;
pub mod reconcile;
pub mod render;
pub mod rollout;
pub mod scope;
pub mod served;
pub mod validate;

#[cfg(test)]
mod fixtures;

pub use error::{Error, Result};
