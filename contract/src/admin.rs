//! The admin endpoints every service (and the operator) serves on a port of
//! its own, never routed by the edge: probes and Prometheus scraping.

/// Admin port of every pod in a cluster (and the default `ADMIN_PORT`).
pub const PORT: u16 = 9000;
/// Liveness: the process is alive and serving.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness: the service's own database answers (with its migrations
/// applied). Redis and the broker are reported in the JSON body as
/// `degraded` when down, without taking the pod out of rotation: the outbox
/// and the PostgreSQL fallbacks keep the shop working through their blips.
pub const READYZ_PATH: &str = "/readyz";
/// Prometheus text exposition.
pub const METRICS_PATH: &str = "/metrics";
/// Name of the container and Service port that carries the public API.
pub const HTTP_PORT_NAME: &str = "http";
/// Name of the container and Service port that carries the admin endpoints.
pub const METRICS_PORT_NAME: &str = "metrics";
