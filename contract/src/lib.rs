//! The shop's contract: every fact that more than one crate relies on —
//! which services exist, their ports, databases and `*_URL` variables, who
//! calls whom, the Ingress routes, the environment variable names, the event
//! exchange and routing keys, the admin endpoints and the labels.
//!
//! The operator renders Kubernetes objects from it, `cargo xtask up` starts
//! the local shop from it, the kit and the services take their defaults from
//! it, and `cargo xtask generate` writes the tables in
//! `docs/architecture.md` from it. Change a fact here and every user of it
//! follows; a test fails when the generated docs fall behind.
//!
//! The crate has no dependencies, so anything can depend on it cheaply.

pub mod admin;
pub mod docs;
pub mod env;
pub mod events;
pub mod labels;
pub mod topology;

pub use topology::ShopService;
