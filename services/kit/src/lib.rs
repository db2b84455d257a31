//! storekeeper-kit: the runtime every Storekeeper shop service shares, so no
//! service repeats it. See `README.md` in this crate for the API at a glance.
//!
//! A service's `main` hands [`runner::Runner`] the code that builds its
//! API router; the runner owns configuration, logging, the database,
//! Redis, event workers, readiness, serving and shutdown:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     Runner::new(ShopService::Payment).serve(async |setup| {
//!         let state = AppState { pool: setup.database(&MIGRATOR).await?, .. };
//!         Ok(app(state))
//!     })
//! }
//! ```

pub mod admin;
pub mod auth;
pub mod cache;
pub mod client_ip;
pub mod config;
pub mod db;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod process_metrics;
pub mod runner;
pub mod secret_files;
pub mod server;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vars;

pub use admin::Readiness;
pub use auth::{AdminUser, AuthUser, Role};
pub use config::ServiceConfig;
pub use metrics::Metrics;
pub use problem::{ApiError, ApiResult, FieldError, Problem};
pub use runner::{Command, Runner, Setup};
