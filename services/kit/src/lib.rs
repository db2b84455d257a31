//! storekeeper-kit: the runtime every Storekeeper shop service shares, so no
//! service repeats it. See `README.md` in this crate for the API at a glance.
//!
//! A service's `main` is typically:
//!
//! ```ignore
//! let config = ServiceConfig::from_env("user-service", 3001, "users")?;
//! telemetry::init(config.name, config.log_format);
//! let pool = db::connect(&config.database_url, &MIGRATOR).await?;
//! let cache = cache::Cache::connect(&config.redis_url, &config.redis_prefix)?;
//! let metrics = Metrics::new();
//! let readiness = Readiness::new()
//!     .with(db::readiness_check(&pool))
//!     .with(cache::readiness_check(&cache));
//! let app = my_service::app(state);
//! server::serve(app, admin::router(metrics.clone(), readiness), &config, &metrics).await?;
//! pool.close().await;
//! ```

pub mod admin;
pub mod auth;
pub mod cache;
pub mod client_ip;
pub mod config;
pub mod db;
pub mod events;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod process_metrics;
pub mod server;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use admin::Readiness;
pub use auth::{AdminUser, AuthUser, Role};
pub use config::ServiceConfig;
pub use metrics::Metrics;
pub use problem::{ApiError, ApiResult, FieldError, Problem, ResultExt};
