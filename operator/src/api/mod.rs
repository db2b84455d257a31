//! The `Store` custom resource (`storekeeper.dev/v1alpha1`).
//!
//! Every field carries a doc comment (it becomes the schema description, so
//! `kubectl explain store.spec...` teaches it), a default where one makes
//! sense, and validation: plain OpenAPI where it can say it, CEL rules where
//! it cannot. `crate::validate` repeats the CEL rules in Rust so offline
//! `storekeeper render` and the reconciler reject the same Stores the API
//! server would.

pub mod spec;
pub mod status;

pub use spec::*;
pub use status::*;
