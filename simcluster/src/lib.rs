//! An in-process simulated Kubernetes cluster for testing the operator over
//! time: an API server with real semantics (resource versions, generations,
//! server-side apply, the `/status` subresource, watches, garbage
//! collection) behind a `kube::Client`, and a scripted simulator of the
//! Deployment/StatefulSet controllers and the kubelet. No API server can run
//! where the tests run; this lets the real `storekeeper::controller::run`
//! drive rollouts, rollbacks and restarts inside a test. See README.md for
//! what it is faithful to and what it is not.

mod apply;
mod cluster;
mod error;
mod faults;
mod fields;
mod log;
mod metrics;
mod objects;
mod patch;
mod request;
mod resources;
mod selectors;
mod server;
mod watch;
mod workloads;

pub use cluster::{DEFAULT_NAMESPACE, SimCluster};
pub use error::ApiError;
pub use faults::Fault;
pub use log::{RequestCounts, RequestRecord, Verb};
pub use resources::ResourceType;
pub use workloads::script::{Behaviour, ImagePredicate, Script, Traffic};
pub use workloads::{Scraper, Workloads};
